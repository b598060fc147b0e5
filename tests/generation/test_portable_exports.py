"""Portable exports (issue #23, item 6): an export loads from any working directory (small tokenizers are copied
into it and recorded relative to it), and a codec without weights is named by its class alone, checked by the same
trust rules as any class named on disk."""

import json

import numpy as np
import pytest
import torch

from anygpt.checkpoints import Bundle, load_bundle, save_bundle
from anygpt.generation.chat import chat
from anygpt.generation.options import DecodingOptions
from anygpt.modalities.registry import TokenizerRef, modality_for
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.resolve import UntrustedCodeError
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.third_party.depth_modality import DepthCodec

DEPTH = "tests.third_party.depth_modality.DepthCodec"


def export(root, refs, codec=None):
    depth = modality_for(codec or DepthCodec(levels=16))
    vocab = UnifiedVocab(train_bpe_tokenizer(["a depth map", "a corridor"] * 20, 300, root / "text"), [depth])
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=128))
    return save_bundle(Bundle(model, vocab, {"depth": depth}, None, refs), root / "export")


def test_an_export_loads_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    DepthCodec(levels=8).save_pretrained("tok/depth")  # a relative path, as a user writes it in a config
    export(tmp_path, {"depth": TokenizerRef("tok/depth")}, DepthCodec(levels=8))
    recorded = json.loads((tmp_path / "export" / "anygpt.json").read_text())["tokenizers"]["depth"]
    assert recorded["path"] == "tokenizers/depth" and (tmp_path / "export" / "tokenizers" / "depth").is_dir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for where in (tmp_path / "export", "../export"):
        bundle = load_bundle(where)
        assert bundle.tokenizers["depth"].codebook_size == 8
    # re-exported from the loaded bundle into another folder: copied again, still self-contained
    save_bundle(bundle, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "anygpt.json").read_text())["tokenizers"]["depth"]["path"] == \
        "tokenizers/depth"
    np.save(tmp_path / "scan.npy", np.full((16, 16), 2.0, dtype=np.float32))
    (tmp_path / "msgs.txt").write_text(f"What is this? [depth: {tmp_path / 'scan.npy'}]\n")
    chat(str(tmp_path / "again"), out=str(tmp_path / "chat"), input=str(tmp_path / "msgs.txt"),
         decoding=DecodingOptions(max_new_tokens=4))
    assert (tmp_path / "chat" / "transcript.html").is_file()


def test_a_missing_tokenizer_path_is_named_at_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="the depth tokenizer tok/nowhere does not exist"):
        export(tmp_path, {"depth": TokenizerRef("tok/nowhere")})


def test_a_codec_without_weights_is_named_by_its_class(tmp_path):
    folder = export(tmp_path, {"depth": TokenizerRef.of({"class_path": DEPTH, "init_args": {"levels": 16}})})
    recorded = json.loads((folder / "anygpt.json").read_text())["tokenizers"]["depth"]
    assert recorded == {"path": None, "class_path": DEPTH, "options": {"levels": 16}}
    assert type(load_bundle(folder).tokenizers["depth"].codec) is DepthCodec

    # prepare takes it from a config as {class_path: ...} (jsonargparse used to refuse it as a TokenizerRef subclass)
    from anygpt.cli import main

    np.save(tmp_path / "scan.npy", np.full((16, 16), 2.0, dtype=np.float32))
    row = {"id": "d0", "conversation": [[{"role": "user", "message": "What is [depth: scan.npy]?"},
                                         {"role": "assistant", "message": "A wall."}]]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "prepare.yaml").write_text(f"""
sources: {{chat: {{class_path: anygpt.data.prepare.AnyInstruct, init_args: {{path: {tmp_path / 'chat.jsonl'}}}}}}}
tokenizers: {{depth: {{class_path: {DEPTH}}}}}
out: {tmp_path / 'shards'}
num_workers: 0
accelerator: cpu
progress: false
""")
    main(["prepare", "--config", str(tmp_path / "prepare.yaml")])
    assert json.loads((tmp_path / "shards" / "chat" / "manifest.json").read_text())["modalities"] == {"depth": 1}


def test_class_only_references_follow_the_trust_rules(tmp_path):
    folder = export(tmp_path, {"depth": TokenizerRef(class_path=DEPTH)})
    info = json.loads((folder / "anygpt.json").read_text())
    info["tokenizers"]["depth"]["class_path"] = "somewhere_else.motion.MotionCodec"  # a module nobody registered
    (folder / "anygpt.json").write_text(json.dumps(info))
    with pytest.raises(UntrustedCodeError, match="somewhere_else.motion.MotionCodec"):
        load_bundle(folder)

    with pytest.raises(ValueError, match=r"WeightedDepthCodec has 1 weight tensor\(s\) \(scale, ...\) and ships no"):
        TokenizerRef(class_path=f"{__name__}.WeightedDepthCodec").load("depth")
    with pytest.raises(TypeError, match="not a Codec subclass"):
        TokenizerRef(class_path="json.loads").load("depth")
    with pytest.raises(ValueError, match="cannot build .*DepthCodec from its class alone"):
        TokenizerRef(class_path=DEPTH, options={"colour": 3}).load("depth")


class WeightedDepthCodec(DepthCodec):
    """A codec with a weight: naming it by class alone would silently use random weights, so it is refused."""

    def __init__(self, levels: int = 16) -> None:
        super().__init__(levels)
        self.scale = torch.nn.Parameter(torch.ones(1))
