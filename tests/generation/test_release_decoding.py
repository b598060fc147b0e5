"""Release decoding: SoundStorm's own MaskGIT schedule (parity with AnyGPT's ``soundstorm.py``), the release's
generation configs, beam sampling, music cropping and the constrained-decoding switch."""

import json
from pathlib import Path

import pytest
import torch

from anygpt.modalities.speech.soundstorm import SoundStorm
from tests.generation.release_oracle import make_soundstorm_expected as storm_oracle

ORACLE = Path(__file__).parent / "release_oracle"


@pytest.fixture(scope="module")
def storm_expected():
    return json.loads((ORACLE / "soundstorm_expected.json").read_text())


def test_soundstorm_release_schedule_equals_anygpts_generate(storm_expected):
    """Codes for codes what AnyGPT's ``SoundStorm.generate(steps, greedy=True)`` gave on the same tiny weights and
    the same random draws (``make_soundstorm_expected.py`` ran it once)."""
    model = storm_oracle.tiny_model()
    assert storm_oracle.state_digest(model) == storm_expected["state_sha256"], (
        "the seeded tiny SoundStorm changed; re-run make_soundstorm_expected.py as its docstring says")
    for case in storm_expected["cases"]:
        semantic, prompt = storm_oracle.case_inputs(case["length"], case["prompt_length"], case["batch"],
                                                    case["seed"])
        got = model.generate(semantic, prompt, steps=case["steps"], schedule="release",
                             generator=torch.Generator().manual_seed(case["seed"]))
        assert got.tolist() == case["codes"], case["name"]


def test_soundstorm_schedules_are_named_and_differ(storm_expected):
    model = storm_oracle.tiny_model()
    semantic, prompt = storm_oracle.case_inputs(9, 6, 1, 2)
    release = model.generate(semantic, prompt, steps=3, generator=torch.Generator().manual_seed(2))  # the default
    annealed = model.generate(semantic, prompt, steps=3, schedule="annealed",
                              generator=torch.Generator().manual_seed(2))
    assert release.shape == annealed.shape == (1, 9, 4)
    assert release.tolist() == storm_expected["cases"][1]["codes"] and not torch.equal(release, annealed)
    with pytest.raises(ValueError, match="'release' or 'annealed'"):
        model.generate(semantic, steps=3, schedule="maskgit")


def test_soundstorm_loads_anygpts_checkpoint_layout(tmp_path):
    """AnyGPT's soundstorm.py names the conv module net1 / ds_conv / net2 (newer einops store EinMix biases 4-d): the
    release checkpoint in that layout loads into ours."""
    model = storm_oracle.tiny_model()
    renamed = {}
    for key, value in model.state_dict().items():
        for theirs, ours in (("net1.0.", "net.0."), ("net1.2.", "net.2."), ("ds_conv.", "net.4."),
                             ("net2.1.", "net.6."), ("net2.2.", "net.7.")):
            key = key.replace(f".conv.{ours}", f".conv.{theirs}")
        renamed[key] = value[None, None] if key == "net.to_logits.2.bias" else value
    assert any(".conv.ds_conv." in k for k in renamed)
    torch.save(renamed, tmp_path / "speechtokenizer_soundstorm_mls.pt")
    loaded = SoundStorm.from_release(tmp_path / "speechtokenizer_soundstorm_mls.pt", **storm_oracle.TINY)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# -- beam sampling -----------------------------------------------------------------------------------------------------
PROMPTS = [[5, 17, 33, 8, 61, 12, 40], [9, 70], [44, 3, 27, 81]]


@pytest.fixture(scope="module")
def llama_pair(tmp_path_factory):
    from anygpt.model.llama.hf_adapter import load_hf
    from tests.model.helpers import tiny_hf_llama

    path = tmp_path_factory.mktemp("hf")
    hf = tiny_hf_llama(n_kv_head=2, vocab_size=96)
    hf.save_pretrained(path)
    hf.generation_config.eos_token_id = None
    return hf, load_hf(path).eval()


@pytest.mark.parametrize("num_beams,temperature,top_k", [(5, 1.0, None), (3, 0.7, 20)])
def test_beam_sampling_equals_hf_generate_with_the_same_draws(llama_pair, num_beams, temperature, top_k):
    """``generate(do_sample=True, num_beams=N)`` of transformers and ours draw the same tokens from the same seed."""
    from anygpt.generation.options import GenerationConfig
    from anygpt.generation.sampling import generate
    from tests.generation.test_sampling import hf_generate

    hf, ours = llama_pair
    plain = hf_generate(hf, PROMPTS, max_new_tokens=10, do_sample=False, eos_token_id=None)
    stops = 0
    for seed, eos in ((0, plain[0][4]), (1, plain[2][2])):
        torch.manual_seed(seed)
        expected = hf_generate(hf, PROMPTS, max_new_tokens=10, do_sample=True, num_beams=num_beams, top_p=1.0,
                               temperature=temperature, top_k=top_k, eos_token_id=eos, length_penalty=1.0,
                               early_stopping=False)
        config = GenerationConfig(max_new_tokens=10, do_sample=True, num_beams=num_beams, temperature=temperature,
                                  top_k=top_k, stop_ids=(eos,))
        got = generate(ours, PROMPTS, config, generator=torch.Generator().manual_seed(seed)).new_tokens()
        assert got == expected, seed
        stops += sum(row[-1] == eos and len(row) < 10 for row in expected)
        again = generate(ours, PROMPTS, config, generator=torch.Generator().manual_seed(seed)).new_tokens()
        assert again == got
    assert stops >= 1
    beam = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10, num_beams=num_beams)).new_tokens()
    sampled = [generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10, num_beams=num_beams, do_sample=True),
                        generator=torch.Generator().manual_seed(s)).new_tokens() for s in range(3)]
    assert any(s != beam for s in sampled)  # sampling, not the deterministic search


RELEASE_CONFIGS = {  # OpenMOSS/AnyGPT config/*.json, field for field (vc_steps: SoundStorm steps)
    "chat-text": {"temperature": 1.0, "top_p": 1.0, "do_sample": True, "max_new_tokens": 500, "min_new_tokens": 10,
                  "repetition_penalty": 1.0, "vc_steps": 3, "num_beams": 5},
    "text": {"temperature": 1.0, "top_p": 1.0, "do_sample": True, "max_new_tokens": 100, "min_new_tokens": 10},
    "image": {"temperature": 1, "top_p": 1.0, "do_sample": True, "max_new_tokens": 200, "min_new_tokens": 10},
    "speech": {"temperature": 1, "top_p": 1.0, "do_sample": True, "max_new_tokens": 1500, "min_new_tokens": 10,
               "repetition_penalty": 1.05},
    "music": {"temperature": 1, "top_p": 1.0, "top_k": 200, "do_sample": True, "max_new_tokens": 2000,
              "min_new_tokens": 10, "repetition_penalty": 1.15},
}


@pytest.mark.parametrize("name", sorted(RELEASE_CONFIGS))
def test_release_presets_are_the_release_configs(name):
    from anygpt.generation.options import preset

    config = preset(f"release/{name}")
    for key, value in RELEASE_CONFIGS[name].items():
        if key == "vc_steps":
            assert config.extra["soundstorm_steps"] == value
        else:
            assert getattr(config, key) == value, key
    assert config.stop_tokens == ("<eos>",)
