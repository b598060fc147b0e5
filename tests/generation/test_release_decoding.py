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
