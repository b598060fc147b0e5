"""SoundStorm: the release's key layout, MaskGIT generation with prompts, and the training objective."""

import math

import pytest
import torch

from anygpt.modalities.speech.soundstorm import SoundStorm, cosine_schedule
from anygpt.modalities.speech.training import SoundStormTrainer

TINY = dict(codebook_size=16, num_quantizers=3, num_semantic_tokens=16, dim=32, depth=2, heads=2, dim_head=16,
            ff_mult=2, conv_kernel_size=5)

# Names and shapes of AnyGPT's speechtokenizer_soundstorm_mls.pt (ConformerWrapper(codebook_size=1024,
# num_quantizers=7, conformer=dict(dim=1024, depth=12, heads=8, dim_head=128)) inside SoundStorm).
RELEASE_BLOCK = {
    "ff1.fn.norm.weight": (1024,), "ff1.fn.norm.bias": (1024,),
    "ff1.fn.fn.net.0.weight": (4096, 1024), "ff1.fn.fn.net.0.bias": (4096,),
    "ff1.fn.fn.net.3.weight": (1024, 4096), "ff1.fn.fn.net.3.bias": (1024,),
    "attn.norm.weight": (1024,), "attn.norm.bias": (1024,),
    "attn.fn.to_q.weight": (1024, 1024), "attn.fn.to_kv.weight": (2048, 1024),
    "attn.fn.to_out.weight": (1024, 1024), "attn.fn.to_out.bias": (1024,),
    "conv.net.0.weight": (1024,), "conv.net.0.bias": (1024,),
    "conv.net.2.weight": (4096, 1024, 1), "conv.net.2.bias": (4096,),
    "conv.net.4.conv.weight": (2048, 1, 31), "conv.net.4.conv.bias": (2048,),
    "conv.net.6.gamma": (1, 2048, 1),
    "conv.net.7.weight": (1024, 2048, 1), "conv.net.7.bias": (1024,),
    "ff2.fn.norm.weight": (1024,), "ff2.fn.norm.bias": (1024,),
    "ff2.fn.fn.net.0.weight": (4096, 1024), "ff2.fn.fn.net.0.bias": (4096,),
    "ff2.fn.fn.net.3.weight": (1024, 4096), "ff2.fn.fn.net.3.bias": (1024,),
    "post_norm.weight": (1024,), "post_norm.bias": (1024,),
}
RELEASE_TOP = {
    "semantic_token_emb.weight": (1024, 1024), "net.code_embeds.weight": (7 * 1025, 1024),
    "net.heads.0.weight": (7 * 1024, 1024), "net.heads.0.bias": (7 * 1024,),
    "net.to_logits.0.weight": (1024,), "net.to_logits.0.bias": (1024,),
    "net.to_logits.2.weight": (7, 1024, 1024), "net.to_logits.2.bias": (7, 1024),
}


def test_paper_configuration_has_the_release_key_layout(tmp_path):
    with torch.device("meta"):
        model = SoundStorm()
    expected = dict(RELEASE_TOP)
    for i in range(12):
        expected.update({f"net.conformer.layers.{i}.{k}": v for k, v in RELEASE_BLOCK.items()})
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_release_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SoundStorm(**TINY)
    torch.save(model.state_dict(), tmp_path / "soundstorm.pt")
    loaded = SoundStorm.from_release(tmp_path / "soundstorm.pt", **TINY)
    semantic = torch.randint(0, 16, (1, 9))
    assert torch.equal(model.eval().generate(semantic, steps=1), loaded.generate(semantic, steps=1))
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(KeyError, match="bad.pt"):
        SoundStorm.from_release(tmp_path / "bad.pt", **TINY)


def test_cosine_schedule():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(cosine_schedule(t), torch.tensor([1.0, math.cos(math.pi / 4), 0.0]), atol=1e-6)


def count_forwards(model):
    calls = []
    model.net.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("schedule", ["release", "annealed"])
@pytest.mark.parametrize("steps", [1, 3])
def test_generation_passes_and_shapes(steps, schedule):
    torch.manual_seed(0)
    model = SoundStorm(**TINY).eval()
    calls = count_forwards(model)
    semantic = torch.randint(0, 16, (2, 11))
    out = model.generate(semantic, steps=steps, schedule=schedule)
    assert out.shape == (2, 11, 4)
    assert torch.equal(out[..., 0], semantic)
    assert out[..., 1:].max() < 16 and out.min() >= 0  # the mask id never survives
    level_2 = steps + 1 if schedule == "release" else (steps if steps > 1 else 1)  # the release adds a greedy pass
    assert len(calls) == level_2 + (TINY["num_quantizers"] - 1)


@pytest.mark.parametrize("schedule", ["release", "annealed"])
def test_prompt_conditions_generation_and_may_exceed_the_target_length(schedule):
    torch.manual_seed(0)
    model = SoundStorm(**TINY).eval()
    seen = []
    model.net.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    prompt = torch.randint(0, 16, (1, 20, 4))  # longer than the speech to generate
    semantic = torch.randint(0, 16, (1, 6))
    out = model.generate(semantic, prompt=prompt, steps=3, schedule=schedule)
    assert out.shape == (1, 6, 4)
    # the passes over level 2 see the prompt's acoustic levels as a fixed prefix (the release's greedy passes over
    # the higher levels then rewrite them, prompt included: levels 3.. of the prompt are the model's own guesses)
    fixed = seen if schedule == "annealed" else seen[:5]
    for codes in fixed:
        assert codes.shape[1] == 26 and torch.equal(codes[:, :20], prompt[..., 1:])
    # a different prompt changes the result (the prompt is actually used)
    other = model.generate(semantic, prompt=(prompt + 7) % 16, steps=3, schedule=schedule,
                           generator=torch.Generator().manual_seed(0))
    again = model.generate(semantic, prompt=prompt, steps=3, schedule=schedule,
                           generator=torch.Generator().manual_seed(0))
    assert not torch.equal(other, again)


def test_unprompted_sampling_gives_varied_voices():
    torch.manual_seed(0)
    model = SoundStorm(**TINY).eval()
    semantic = torch.randint(0, 16, (1, 30))
    a = model.generate(semantic, steps=4, generator=torch.Generator().manual_seed(1))
    b = model.generate(semantic, steps=4, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a[..., 1], b[..., 1])


def test_training_objective_learns_a_fixed_batch():
    torch.manual_seed(0)
    module = SoundStormTrainer(SoundStorm(**TINY), lr=3e-3, warmup_steps=1)
    codes = torch.randint(0, 16, (4, 12, 4))
    codes[..., 1:] = (codes[..., :1] * torch.tensor([1, 3, 5]) + 1) % 16  # acoustic levels follow the semantic one
    opt = module.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(60):
        loss, _ = module.soundstorm.loss(codes[..., 1:], codes[..., 0], torch.tensor([12, 12, 10, 12]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert math.isfinite(losses[0]) and sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


def test_save_and_load_pretrained(tmp_path):
    module = SoundStorm(**TINY)
    module.save_pretrained(tmp_path / "storm")
    loaded = SoundStorm.from_pretrained(tmp_path / "storm")
    assert loaded.init_args == module.init_args
    for (k, v), (k2, v2) in zip(module.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(FileNotFoundError, match="nothing"):
        SoundStorm.from_pretrained(tmp_path / "nothing")
