import pytest
import torch

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA


def _model(tie: bool = False, seed: int = 0) -> LLaMA:
    torch.manual_seed(seed)
    return LLaMA(Config.from_name("tiny", vocab_size=100, tie_embeddings=tie)).eval()


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("init", ["mean", "random"])
def test_resize_keeps_old_rows_and_initialises_new(tie, init):
    model = _model(tie)
    old_emb, old_head = model.embed_tokens.weight.clone(), model.lm_head.weight.clone()
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        before = model(ids)
    model.resize_token_embeddings(130, init=init, generator=torch.Generator().manual_seed(0))
    assert model.config.vocab_size == 130
    emb, head = model.embed_tokens.weight, model.lm_head.weight
    assert emb.shape == head.shape == (130, 64)
    assert torch.equal(emb[:100], old_emb) and torch.equal(head[:100], old_head)
    if tie:
        assert head is emb
    new = emb[100:]
    if init == "mean":
        assert torch.allclose(new, old_emb.mean(0, keepdim=True).expand_as(new))
    else:
        assert new.std() > 0.5 * old_emb.std() and not torch.allclose(new[0], new[1])
    with torch.no_grad():
        after = model(ids)
    assert torch.allclose(after[..., :100], before, atol=1e-6)  # old ids behave exactly as before
    assert set(model.state_dict()) >= {"embed_tokens.weight", "lm_head.weight"}
    assert all(p.requires_grad for p in model.parameters())


def test_resize_random_is_deterministic_and_shrinks():
    a, b = _model(), _model()
    a.resize_token_embeddings(120, init="random", generator=torch.Generator().manual_seed(3))
    b.resize_token_embeddings(120, init="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.embed_tokens.weight, b.embed_tokens.weight)
    old = a.lm_head.weight[:50].clone()
    a.resize_token_embeddings(50)
    assert torch.equal(a.lm_head.weight, old)
    with pytest.raises(ValueError, match="init"):
        a.resize_token_embeddings(60, init="zeros")


def test_resize_on_meta_model_before_materialisation():
    """The FSDP2 flow builds on meta, resizes, then shards and materialises; resizing must not touch data."""
    with torch.device("meta"):
        model = LLaMA(Config.from_name("tiny", vocab_size=100))
    model.resize_token_embeddings(128)
    assert model.embed_tokens.weight.device.type == "meta" and model.lm_head.weight.shape == (128, 64)


def test_left_padded_batch_matches_unpadded_rows():
    """Per-row position_ids + a padding mask give each row the logits it has alone."""
    model = _model()
    short, long = torch.randint(3, 100, (1, 5)), torch.randint(3, 100, (1, 8))
    pad = 3
    ids = torch.cat([torch.cat([torch.zeros(1, pad, dtype=torch.long), short], 1), long])
    valid = torch.ones(2, 8, dtype=torch.bool)
    valid[0, :pad] = False
    positions = (valid.cumsum(1) - 1).clamp(min=0)
    causal = torch.ones(8, 8, dtype=torch.bool).tril()
    mask = (causal & valid[:, None, :]) | torch.eye(8, dtype=torch.bool)  # pad rows attend to themselves
    with torch.no_grad():
        batched = model(ids, position_ids=positions, mask=mask[:, None])
        assert (batched[0, pad:] - model(short)[0]).abs().max() < 1e-5
        assert (batched[1] - model(long)[0]).abs().max() < 1e-5


def test_training_backward_is_finite():
    model = _model().train()
    ids = torch.randint(0, 100, (2, 16))
    loss = torch.nn.functional.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_logits_to_keep_is_the_tail_of_the_full_output():
    model = _model()
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        assert torch.allclose(model(ids, logits_to_keep=2), model(ids)[:, -2:], atol=1e-6)
