"""One-off oracle: the codes AnyGPT's own SoundStorm ``generate`` gives, for the release-schedule parity test.

NOT part of the test run. It loads ``soundstorm_speechtokenizer/soundstorm.py`` (and its ``attend.py``) from a local
clone of OpenMOSS/AnyGPT, puts the weights of a tiny `SoundStorm` of ours (seeded, so the test rebuilds it) into the
release's class, and records what ``generate(steps, greedy=True)`` returns for a few semantic sequences, with and
without a voice prompt, after ``torch.manual_seed(seed)``. Re-run it only when a case is added::

    PYTHONPATH=$PWD .venv/bin/python tests/generation/release_oracle/make_soundstorm_expected.py \
        --release /path/to/OpenMOSS-AnyGPT --out tests/generation/release_oracle/soundstorm_expected.json

(the project's environment has what that module imports: torch, einops, beartype).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

from anygpt.modalities.speech.soundstorm import SoundStorm

TINY = dict(codebook_size=16, num_quantizers=3, num_semantic_tokens=16, dim=32, depth=2, heads=2, dim_head=16,
            ff_mult=2, conv_kernel_size=5)
SEED = 0
CASES = [  # name, semantic length, prompt length (0: none), steps, batch, sampling seed
    ("no-prompt-steps3", 11, 0, 3, 1, 1),
    ("prompt-steps3", 9, 6, 3, 1, 2),
    ("prompt-steps4-batch2", 7, 5, 4, 2, 3),
    ("no-prompt-steps1", 8, 0, 1, 1, 4),
    ("long-prompt-steps3", 5, 12, 3, 1, 5),
]


def tiny_model() -> SoundStorm:
    torch.manual_seed(SEED)
    return SoundStorm(**TINY).eval()


def state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode() + value.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def case_inputs(length: int, prompt_length: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(100 + seed)
    semantic = torch.randint(0, TINY["num_semantic_tokens"], (batch, length), generator=g)
    if not prompt_length:
        return semantic, None
    prompt = torch.randint(0, TINY["codebook_size"], (batch, prompt_length, 1 + TINY["num_quantizers"]), generator=g)
    return semantic, prompt


def load_release_module(release: Path):
    import beartype

    beartype.beartype = lambda fn: fn  # the release pinned beartype 0.16; newer ones reject its `Dict[str, any]` hint
    folder = release / "soundstorm_speechtokenizer"
    package = types.ModuleType("release_soundstorm")
    package.__path__ = [str(folder)]
    sys.modules["release_soundstorm"] = package
    for name in ("attend", "soundstorm"):
        spec = importlib.util.spec_from_file_location(f"release_soundstorm.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["release_soundstorm.soundstorm"]


def to_anygpt_layout(state: dict, target: dict) -> dict:
    """Our key names -> those of AnyGPT's soundstorm.py (its conv module is net1 / ds_conv / net2)."""
    from anygpt.modalities.speech.soundstorm import _ANYGPT_CONV_KEYS

    out = {}
    for key, value in state.items():
        for theirs, ours in _ANYGPT_CONV_KEYS.items():
            if f".conv.{ours}" in key:
                key = key.replace(f".conv.{ours}", f".conv.{theirs}")
                break
        out[key] = value.reshape(target[key].shape)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", type=Path, required=True, help="a local clone of OpenMOSS/AnyGPT")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    release = load_release_module(args.release)
    ours = tiny_model()
    conformer = dict(dim=TINY["dim"], depth=TINY["depth"], heads=TINY["heads"], dim_head=TINY["dim_head"],
                     ff_mult=TINY["ff_mult"], conv_kernel_size=TINY["conv_kernel_size"], attn_flash=False)
    net = release.ConformerWrapper(codebook_size=TINY["codebook_size"], num_quantizers=TINY["num_quantizers"],
                                   conformer=conformer)
    theirs = release.SoundStorm(net=net, num_semantic_token_ids=TINY["num_semantic_tokens"],
                                semantic_pad_id=TINY["num_semantic_tokens"], pad_id=TINY["codebook_size"],
                                schedule="cosine")
    theirs.load_state_dict(to_anygpt_layout(ours.state_dict(), theirs.state_dict()), strict=True)
    theirs.eval()
    results = []
    for name, length, prompt_length, steps, batch, seed in CASES:
        semantic, prompt = case_inputs(length, prompt_length, batch, seed)
        torch.manual_seed(seed)
        with torch.no_grad():
            prompt_tokens = None if prompt is None else prompt  # [B, P, 1 + Q], as the release's CLI passes it
            out = theirs.generate(semantic_tokens=semantic, prompt_tokens=prompt_tokens, steps=steps, greedy=True)
        results.append({"name": name, "length": length, "prompt_length": prompt_length, "steps": steps,
                        "batch": batch, "seed": seed, "codes": out.tolist()})
    expected = {"generated_by": "tests/generation/release_oracle/make_soundstorm_expected.py", "tiny": TINY,
                "seed": SEED, "state_sha256": state_digest(ours), "torch": torch.__version__, "cases": results}
    args.out.write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(results)} cases to {args.out}")


if __name__ == "__main__":
    main()
