import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from anygpt.modalities.spec import ModalitySpec
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.lm import AnyGPTLM
from anygpt.model.schedule import warmup_cosine_factor
from anygpt.vocab import UnifiedVocab


class ByteText:
    vocab_size, bos_id, eos_id = 256, None, None

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(ids).decode()


def vocab():
    return UnifiedVocab(ByteText(), [ModalitySpec("image", 16, ("<soim>", "<eoim>"), "<i{}>"),
                                     ModalitySpec("speech", 8, ("<sosp>", "<eosp>"), "<s{}>")])


def with_trainer(module):
    module._trainer = SimpleNamespace(world_size=1, precision="32-true")
    return module


def test_loss_uses_mask_and_splits_by_modality():
    torch.manual_seed(0)
    v = vocab()
    lm = with_trainer(AnyGPTLM("tiny", vocab=v))
    lm.configure_model()
    assert lm.model.config.vocab_size == len(v) == 256 + 4 + 18 + 10
    assert lm.group_names == ["text", "image", "speech"]
    image, speech = v.modalities["image"], v.modalities["speech"]
    ids = torch.tensor([[1, 2, image.start_id, image.first_id + 3, image.end_id, speech.first_id, 7, 9]])
    mask = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 0]], dtype=torch.bool)
    total, sums, counts = lm.losses({"input_ids": ids, "loss_mask": mask})
    logits = lm.model(ids[:, :-1])
    ce = F.cross_entropy(logits[0], ids[0, 1:], reduction="none")
    keep = mask[0, 1:]
    torch.testing.assert_close(total, ce[keep].sum())
    # targets 2 (text), <soim>, image code (image), speech code (speech), 7 (text); <eoim> and 9 are masked out
    assert counts.tolist() == [2, 2, 1]
    torch.testing.assert_close(sums, torch.stack([ce[0] + ce[5], ce[1] + ce[2], ce[4]]))


def test_vocab_size_mismatch_and_missing_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size 300 differs from the data module's vocabulary \\(288 ids\\)"):
        AnyGPTLM("tiny", vocab_size=300, vocab=vocab())
    missing = tmp_path / "Llama-2-7b-hf"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        AnyGPTLM("llama2-7b", pretrained=str(missing))
    with pytest.raises(KeyError, match="Unknown model size 'llama9'"):
        AnyGPTLM("llama9")
    with pytest.raises(ValueError, match="needs a vocabulary size"):
        AnyGPTLM("tiny").configure_model()


def test_pretrained_checkpoint_is_expanded_keeping_old_rows(tmp_path):
    from anygpt.model.llama.hf_adapter import save_hf

    torch.manual_seed(0)
    base = LLaMA(Config.from_name("tiny", vocab_size=256))
    save_hf(base, tmp_path / "hf")
    v = vocab()
    lm = with_trainer(AnyGPTLM("tiny", pretrained=str(tmp_path / "hf"), vocab_init="random", vocab=v))
    lm.configure_model()
    assert lm.model.embed_tokens.weight.shape == (len(v), 64)
    assert torch.equal(lm.model.embed_tokens.weight[:256], base.embed_tokens.weight)
    assert torch.equal(lm.model.lm_head.weight[:256], base.lm_head.weight)
    assert not any(t.is_meta for t in lm.model.buffers())  # else Lightning would re-initialise the loaded weights
    small = UnifiedVocab(type("T", (ByteText,), {"vocab_size": 200})(), [])
    lm = with_trainer(AnyGPTLM("tiny", pretrained=str(tmp_path / "hf"), vocab=small))
    with pytest.raises(ValueError, match="has 256 embedding rows but the configured vocabulary has only 204"):
        lm.configure_model()


def test_cosine_schedule_with_warmup():
    assert warmup_cosine_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(55, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 10, 100, 0.0) == pytest.approx(0.0)


def test_compile_and_checkpointing_options_wrap_each_block_keeping_state_dict_keys():
    """``compile`` compiles every block in place (after activation checkpointing); the state dict is unchanged, so
    checkpoints load either way. (Compiled numerics are checked by benchmarks/perf/gpu_suite.py: compiling takes
    minutes on a 2-core CPU.)"""
    v = vocab()
    torch.manual_seed(0)
    plain = with_trainer(AnyGPTLM("tiny", vocab=v))
    plain.configure_model()
    torch.manual_seed(0)
    wrapped = with_trainer(AnyGPTLM("tiny", compile=True, activation_checkpointing=True, vocab=v))
    wrapped.configure_model()
    assert all(block._compiled_call_impl is not None for block in wrapped.model.blocks)
    assert all(block._compiled_call_impl is None for block in plain.model.blocks)
    assert all(block.forward.__name__ == "checkpointed" for block in wrapped.model.blocks)
    assert wrapped.model.state_dict().keys() == plain.model.state_dict().keys()
    for key, value in plain.model.state_dict().items():
        assert torch.equal(wrapped.model.state_dict()[key], value), key
