"""Settings every test runs under, and `tiny_export`: a random tiny LLaMA with the shipped tiny tokenizers, saved as
`anygpt fit` exports a model (what `anygpt serve`, hub-id and API tests load)."""

import os
from pathlib import Path

import pytest
import torch

# Tests never touch the network: every model is built locally or read from a file the test writes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# after the settings above: huggingface_hub reads HF_HUB_OFFLINE when first imported
from anygpt.checkpoints import Bundle, save_bundle  # noqa: E402
from anygpt.modalities.registry import TokenizerRef  # noqa: E402
from anygpt.model.llama.config import Config  # noqa: E402
from anygpt.model.llama.model import LLaMA  # noqa: E402
from anygpt.text_tokenizer import train_bpe_tokenizer  # noqa: E402
from anygpt.vocab import UnifiedVocab  # noqa: E402


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve-model")
    text = train_bpe_tokenizer(["describe this image", "a red square", "say hello", "calm piano music"] * 20,
                               vocab_size=280, directory=root / "text")
    refs = {name: TokenizerRef(f"anygpt-assets:tokenizers/{name}") for name in ("image", "speech", "music")}
    tokenizers = {name: ref.load(name) for name, ref in refs.items()}
    vocab = UnifiedVocab(text, list(tokenizers.values()))
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=1024))
    # recorded as the demo export records it: the chat template (a conversation with history)
    return save_bundle(Bundle(model, vocab, tokenizers, None, refs, template="chat"), root / "export")
