"""Opening a checkpoint never runs code it names: malicious folders are refused before anything is imported or called.

Every attack writes a marker file if it succeeds; the tests assert the refusal message and that no marker appeared.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anygpt.checkpoints import load_bundle
from anygpt.modalities.codec import Codec
from anygpt.modalities.image.unclip import check_pipeline_index
from anygpt.modalities.registry import TokenizerRef, load_modality, trusted_codec_class
from anygpt.resolve import UntrustedCodeError, is_trusted_name, resolve_trusted_class

ROOT = Path(__file__).resolve().parents[1]


def _evil_module(tmp_path: Path, marker: Path) -> str:
    """A module that writes ``marker`` when imported, on sys.path as ``evil_plugin``."""
    (tmp_path / "evil_plugin.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('pwned')\n"
        "from anygpt.modalities.image.tiny import TinyImageTokenizer\n"
        "class Evil(TinyImageTokenizer):\n    pass\n")
    return "evil_plugin.Evil"


def _tokenizer_folder(folder: Path, class_path: str, init_args: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"class_path": class_path, "init_args": init_args}))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    return folder


def test_os_system_in_tokenizer_config_is_refused(tmp_path):
    marker = tmp_path / "marker"
    folder = _tokenizer_folder(tmp_path / "tok", "os.system", {"command": f"touch {marker}"})
    with pytest.raises(UntrustedCodeError) as err:
        load_modality(folder)
    assert str(folder / "config.json") in str(err.value) and "--trust_code" in str(err.value)
    assert not marker.exists()
    # even with trust_code the object must be a Codec subclass before it is called
    with pytest.raises(UntrustedCodeError, match="not a registered codec"):
        load_modality(folder, trust_code=True)
    assert not marker.exists()


def test_unknown_module_is_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    name = _evil_module(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = _tokenizer_folder(tmp_path / "tok", name, {})
    with pytest.raises(UntrustedCodeError, match="evil_plugin.Evil"):
        Codec.from_pretrained(folder)
    assert not marker.exists(), "the module named by the folder was imported"
    assert "evil_plugin" not in sys.modules
    # a subclass's from_pretrained must not be a back door either
    from anygpt.modalities.image.tiny import TinyImageTokenizer

    with pytest.raises(UntrustedCodeError):
        TinyImageTokenizer.from_pretrained(folder)
    assert not marker.exists()


def test_trust_code_allows_a_plugin_the_user_trusts(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    name = _evil_module(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert trusted_codec_class(name, "test", trust_code=True).__name__ == "Evil"
    assert marker.exists()  # the user asked for it
    sys.modules.pop("evil_plugin", None)


def test_registered_and_anygpt_classes_are_trusted():
    from anygpt.modalities.image.tiny import TinyImageTokenizer

    assert trusted_codec_class("anygpt.modalities.image.tiny.TinyImageTokenizer", "x") is TinyImageTokenizer
    assert trusted_codec_class("anygpt.modalities.image.tiny:TinyImageTokenizer", "x") is TinyImageTokenizer
    # class names of folders saved before the codec/training split map to today's classes
    from anygpt.modalities.speech.tiny import TinySpeechCodec

    assert trusted_codec_class("anygpt.modalities.speech.modality.TinySpeechModality", "x") is TinySpeechCodec
    # the registered modalities' codecs (the paper's tokenizers) are allowed by name
    assert is_trusted_name("anygpt.modalities.music.encodec32k.EncodecMusicTokenizer", Codec)
    # inside anygpt, but not a Codec: refused before it is called
    with pytest.raises(UntrustedCodeError, match="not a registered codec"):
        trusted_codec_class("anygpt.model.lm.AnyGPTLM", "x")
    with pytest.raises(UntrustedCodeError):
        resolve_trusted_class("", Codec, "x")


def test_shipped_tokenizers_still_load():
    for name in ("image", "speech", "music"):
        tok = TokenizerRef(f"anygpt-assets:tokenizers/{name}").load(name, source="anygpt.json")
        assert isinstance(tok.codec, Codec) and tok.name == name


@pytest.fixture
def tiny_bundle_dir(tmp_path) -> Path:
    """A random tiny LLaMA with the shipped tiny tokenizers, saved as an AnyGPT folder."""
    from anygpt.checkpoints import Bundle, save_bundle
    from anygpt.model.llama.config import Config
    from anygpt.model.llama.model import LLaMA
    from anygpt.text_tokenizer import train_bpe_tokenizer
    from anygpt.vocab import UnifiedVocab

    text = train_bpe_tokenizer(["hello there", "a red square"] * 20, vocab_size=280, directory=tmp_path / "text")
    refs = {name: TokenizerRef(f"anygpt-assets:tokenizers/{name}") for name in ("image", "speech", "music")}
    tokenizers = {name: ref.load(name) for name, ref in refs.items()}
    vocab = UnifiedVocab(text, list(tokenizers.values()))
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=128))
    return save_bundle(Bundle(model, vocab, tokenizers, None, refs), tmp_path / "export")


def test_malicious_anygpt_json_is_refused(tmp_path, tiny_bundle_dir):
    """A checkpoint folder whose anygpt.json names a foreign tokenizer class: chat/generate/benchmark refuse it."""
    marker = tmp_path / "marker"
    info_file = tiny_bundle_dir / "anygpt.json"
    info = json.loads(info_file.read_text())
    info["tokenizers"]["image"] = {"path": str(tmp_path), "class_path": "os.system"}
    info_file.write_text(json.dumps(info))
    with pytest.raises(UntrustedCodeError) as err:
        load_bundle(tiny_bundle_dir)
    assert str(info_file) in str(err.value)
    # through the real CLI: a clear message, no traceback of a successful attack, no marker
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", "generate", "hi", "--ckpt", str(tiny_bundle_dir),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert "--trust_code" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_pipeline_index_naming_foreign_modules_is_refused(tmp_path):
    index = tmp_path / "model_index.json"
    index.write_text(json.dumps({"_class_name": "StableUnCLIPImg2ImgPipeline", "unet": ["os", "system"]}))
    with pytest.raises(UntrustedCodeError, match="unet"):
        check_pipeline_index(index)
    index.write_text(json.dumps({"_class_name": "StableUnCLIPImg2ImgPipeline",
                                 "unet": ["diffusers", "UNet2DConditionModel"], "image_normalizer": [None, None]}))
    check_pipeline_index(index)
