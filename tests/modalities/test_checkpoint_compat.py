"""Saved tokenizer checkpoints keep loading: every shipped asset, and folders written before codecs and their training
were split (``legacy/*.json``: the config.json files ``Modality.save_pretrained`` wrote then, verbatim, whose classes
took training settings as constructor arguments and some of which have moved)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from anygpt.assets import assets_dir
from anygpt.modalities.codec import Codec
from anygpt.modalities.image.tiny import TinyImageTokenizer
from anygpt.modalities.music.codec import SEANetCodec
from anygpt.modalities.music.tiny import TinyMusicCodec
from anygpt.modalities.pretrained import LEGACY_CLASSES, Pretrained, accepted_arguments
from anygpt.modalities.registry import TokenizerRef
from anygpt.modalities.speech.codec import SpeechTokenizerCodec
from anygpt.modalities.speech.soundstorm import SoundStorm
from anygpt.modalities.speech.tiny import TinySpeechCodec

LEGACY = Path(__file__).parent / "legacy"
SHIPPED = sorted(p for p in (assets_dir() / "tokenizers").iterdir() if (p / "config.json").exists())


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_tokenizer_asset_loads(folder):
    module = Pretrained.from_pretrained(folder)
    weights = {k for k in module.state_dict() if not k.startswith("discriminator.")}
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert weights == set(f.keys())  # every saved weight is used, none is missing
    if isinstance(module, Codec):
        modality = TokenizerRef(f"anygpt-assets:tokenizers/{folder.name}").load(folder.name, source="test")
        assert modality.name == folder.name and modality.codebook_size == module.codebook_size


def _legacy_folder(tmp_path: Path, name: str, module: torch.nn.Module, extra_weights: dict | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text((LEGACY / f"{name}.json").read_text())
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    save_file({**state, **(extra_weights or {})}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("name, new_class", [
    ("image", TinyImageTokenizer), ("music", TinyMusicCodec), ("speech", TinySpeechCodec), ("soundstorm", SoundStorm)])
def test_folders_of_the_old_format_load_as_the_new_classes(tmp_path, name, new_class):
    old = json.loads((LEGACY / f"{name}.json").read_text())
    assert old["class_path"] in LEGACY_CLASSES and "format" not in old
    dropped = set(old["init_args"]) - accepted_arguments(new_class)  # the training settings
    assert dropped and dropped <= {"lr", "weight_decay", "commit_weight", "vq_warmup_steps", "warmup_steps",
                                   "time_weight", "mel_weight", "adversarial_weight", "feature_weight", "grad_clip",
                                   "semantic_teacher", "phones", "hubert_path", "loss_weights", "mel_scales"}
    reference = new_class(**{k: v for k, v in old["init_args"].items() if k not in dropped and k != "soundstorm"})
    torch.manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # weights that differ from a fresh model's
    folder = _legacy_folder(tmp_path, name, reference)
    loaded = Pretrained.from_pretrained(folder)
    assert type(loaded) is new_class
    assert not set(loaded.init_args) & set(dropped)  # training settings are the trainer's now
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    again = tmp_path / "resaved"
    loaded.save_pretrained(again)
    assert json.loads((again / "config.json").read_text()) == {
        "class_path": f"{new_class.__module__}.{new_class.__qualname__}", "init_args": loaded.init_args, "format": 2}
    assert type(Pretrained.from_pretrained(again)) is new_class


def test_moved_speech_classes_and_gan_weights_of_old_codecs(tmp_path):
    """The paper-sized class names moved too; an old codec trained with a discriminator saved its weights alongside."""
    config = {"class_path": "anygpt.modalities.speech.modality.SpeechTokenizerModality",
              "init_args": {"config": {"n_filters": 4, "strides": [2, 2], "dimension": 16, "semantic_dimension": 8,
                                       "lstm_layers": 1, "codebook_size": 16, "n_q": 2},
                            "soundstorm": None, "semantic_teacher": "hubert", "lr": 1e-4, "mel_scales": [256]}}
    reference = SpeechTokenizerCodec(config=config["init_args"]["config"])
    folder = tmp_path / "speech"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_file(reference.state_dict(), str(folder / "model.safetensors"))
    assert type(SpeechTokenizerCodec.from_pretrained(folder)) is SpeechTokenizerCodec

    codec = SEANetCodec(sample_rate=8000, n_filters=4, ratios=(4, 2), dimension=8, n_q=1, bins=16, lstm=0)
    old_args = {**codec.init_args, "lr": 3e-4, "adversarial_weight": 1.0, "feature_weight": 3.0}
    folder = tmp_path / "gan"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"class_path": "anygpt.modalities.music.codec.SEANetCodec",
                                                    "init_args": old_args}))
    save_file({**codec.state_dict(), "discriminator.convs.0.weight": torch.zeros(2)}, str(folder / "model.safetensors"))
    assert type(Codec.from_pretrained(folder)) is SEANetCodec


def test_old_folders_with_training_settings_unknown_today_still_load(tmp_path):
    """Whatever training settings an old class took (a branch may have added some), they are dropped."""
    codec = TinyImageTokenizer(grid=4, image_size=16, channels=(8, 16))
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"class_path": "anygpt.modalities.image.tiny.TinyImageTokenizer",
                                                    "init_args": {**codec.init_args, "perceptual_weight": 0.1}}))
    save_file(codec.state_dict(), str(folder / "model.safetensors"))
    assert Codec.from_pretrained(folder).init_args == codec.init_args


def test_unknown_arguments_in_a_new_format_folder_are_an_error(tmp_path):
    TinyImageTokenizer(grid=4, image_size=16, channels=(8, 16)).save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    config["init_args"]["colour"] = "red"
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(TypeError, match="colour"):
        Codec.from_pretrained(tmp_path / "tok")
