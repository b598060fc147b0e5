"""Discoverable chat (issue #23, item 8): ``/help`` lists the loaded model's commands (from its registered
modalities), a command or placeholder for a modality the model lacks says so instead of being sent as text, and the
slash commands appear in ``anygpt chat --help``."""

import numpy as np
import pytest
import torch

from anygpt.checkpoints import Bundle, save_bundle
from anygpt.cli import main
from anygpt.generation.chat import chat, generate
from anygpt.generation.options import DecodingOptions
from anygpt.modalities.registry import TokenizerRef, modality_for
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.third_party.depth_modality import DepthCodec


@pytest.fixture(scope="module")
def depth_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth-model")
    depth = modality_for(DepthCodec())
    vocab = UnifiedVocab(train_bpe_tokenizer(["a depth map", "a wall"] * 20, 300, root / "text"), [depth])
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=256))
    save_bundle(Bundle(model, vocab, {"depth": depth}, None,
                       {"depth": TokenizerRef(class_path="tests.third_party.depth_modality.DepthCodec")}),
                root / "export")
    np.save(root / "scan.npy", np.full((16, 16), 2.0, dtype=np.float32))
    return root


def test_help_unknown_and_missing_modality_commands(depth_export, tmp_path, capsys):
    scan = depth_export / "scan.npy"
    (tmp_path / "in.txt").write_text("\n".join([
        "/help",
        "/image a cat",                  # a registered modality this model lacks
        "/dpeth a wall",                 # a typo of one it has
        f"What is [image: {scan}]?",     # a placeholder of a modality it lacks
        f"What is [dpeth: {scan}]?",     # a placeholder of no registered modality
        "/depth a wall close by",        # the one turn that reaches the model
    ]) + "\n")
    chat(str(depth_export / "export"), out=str(tmp_path / "chat"), input=str(tmp_path / "in.txt"),
         decoding=DecodingOptions(max_new_tokens=20))
    out, err = capsys.readouterr()
    help_text = out.split("commands:", 1)[1]
    assert "/depth MESSAGE" in help_text and "/text MESSAGE" in help_text and "/help" in help_text
    assert "[depth: FILE]" in help_text and "/image" not in help_text and "[image" not in help_text
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: this model has no image modality, so /image cannot ask for image output (its modality commands: "
        "/depth); /help lists its commands",
        "error: unknown command /dpeth; did you mean /depth? /help lists the commands of this model",
        f"error: this model has no image modality, so it cannot read {scan} (it has: depth); /help lists its "
        "placeholders",
        f"error: media placeholder [dpeth: {scan}] names no registered modality; did you mean [depth: ...]? "
        "registered: " + errors[3].split("registered: ", 1)[1],
    ]
    assert out.count("anygpt> ") == 1  # only /depth was answered
    assert [p.suffix for p in (tmp_path / "chat").glob("turn001-*")] == [".npy"]


def test_generate_refuses_an_output_the_model_lacks(depth_export, tmp_path):
    with pytest.raises(ValueError, match="this model has no image modality"):
        generate("a cat", ckpt=str(depth_export / "export"), output="image", out=str(tmp_path / "g"))


def test_slash_commands_are_in_chat_help(capsys):
    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "/text or /MODALITY" in text and "/help, /reset, /quit" in text
    registered = text.split("registered here: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"depth", "image", "music", "speech"} <= set(registered)  # a plugin's modality (imported here) included
