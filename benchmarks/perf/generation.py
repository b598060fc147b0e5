"""Generation speed (new tokens/s) of our engine vs HF ``generate`` on the same weights, greedy, same outputs.

    PYTHONPATH=. python -m benchmarks.perf.generation --configs tiny small-100m --batches 1 8

Each run decodes exactly ``--new-tokens`` tokens (no stop id) after a ``--prompt``-token prompt, so both sides do the
same work; the generated ids are compared to prove it. Runs are interleaved and the median is reported.
``--compile`` adds our engine with ``torch.compile`` of the one-token decode step: its speed excludes compilation, and
the first call (which compiles) is timed separately to give the break-even point, the number of generated tokens after
which compiling has paid for itself. Inductor caches compiled kernels on disk (``TORCHINDUCTOR_CACHE_DIR``, default
under /tmp), so a repeated run compiles faster; point it at an empty folder to time a cold start.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from anygpt.generation.options import GenerationConfig
from anygpt.generation.sampling import generate
from anygpt.model.llama.config import Config
from benchmarks.perf.train_step import build_pair

HF, OURS, COMPILED = "hf generate", "ours", "ours (compiled step)"


def now(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _synced(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    start = now(device)
    out = fn()
    return out, now(device) - start


def compare(ours: torch.nn.Module, hf: torch.nn.Module, batch: int, prompt_len: int, new_tokens: int, repeats: int,
            compile: bool) -> dict[str, Any]:
    """Time HF ``generate`` and ours (optionally also with the compiled step) on the same random prompts.

    Returns, per contender: tokens/s, ms per step, speed-up over HF, the first call's time (with compilation) and
    the share of generated ids equal to HF's; with ``compile`` also the compile time and the break-even point.
    """
    ours.eval()
    hf.eval()
    hf.generation_config.eos_token_id = None
    device = ours.lm_head.weight.device
    vocab = ours.config.vocab_size
    prompts = torch.randint(3, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).to(device)
    gen_config = GenerationConfig(max_new_tokens=new_tokens)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        return out[:, prompt_len:]

    def run_ours(compiled: bool = False) -> torch.Tensor:
        return generate(ours, prompts, gen_config, compile=compiled).sequences[:, prompt_len:]

    contenders = {HF: run_hf, OURS: run_ours}
    if compile:
        contenders[COMPILED] = lambda: run_ours(True)
    outputs, first_call = {}, {}
    for name, fn in contenders.items():  # warm-up (and compilation)
        outputs[name], first_call[name] = _synced(fn, device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(_synced(fn, device)[1])
    base = statistics.median(times[HF])
    result: dict[str, Any] = {"batch": batch, "prompt": prompt_len, "new_tokens": new_tokens, "repeats": repeats}
    for name, t in times.items():
        med = statistics.median(t)
        result[name] = {"tokens_per_s": batch * new_tokens / med, "ms_per_step": med * 1e3 / new_tokens,
                        "vs_hf": base / med, "first_call_s": first_call[name],
                        "ids_equal_to_hf": (outputs[name] == outputs[HF]).float().mean().item()}
    if compile:
        eager, compiled = statistics.median(times[OURS]), statistics.median(times[COMPILED])
        overhead = first_call[COMPILED] - compiled - (first_call[OURS] - eager)
        saved_per_step = (eager - compiled) / new_tokens
        result["compile_s"] = overhead
        result["compile_pays_after_steps"] = overhead / saved_per_step if saved_per_step > 0 else float("inf")
    return result


def report(title: str, result: dict[str, Any]) -> None:
    print(f"{title} batch={result['batch']} prompt={result['prompt']} new={result['new_tokens']}")
    for name in (HF, OURS, COMPILED):
        if name not in result:
            continue
        r = result[name]
        same = "" if r["ids_equal_to_hf"] == 1.0 else f"  ids equal to HF: {100 * r['ids_equal_to_hf']:.1f}%"
        print(f"  {name:22s} {r['tokens_per_s']:9.1f} tokens/s  {r['ms_per_step']:7.2f} ms/step  "
              f"{r['vs_hf']:5.2f}x vs HF  first call {r['first_call_s']:6.2f} s{same}")
    if "compile_s" in result:
        steps = result["compile_pays_after_steps"]
        saved = (result[OURS]["ms_per_step"] - result[COMPILED]["ms_per_step"])
        print(f"  compiling took {result['compile_s']:.1f} s and saves {saved:.2f} ms per decode step: it pays after "
              f"{steps:,.0f} steps ({steps * result['batch']:,.0f} tokens at batch {result['batch']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small-100m"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[128, 32],
                        help="per config (the last value repeats)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for i, name in enumerate(args.configs):
        new = args.new_tokens[min(i, len(args.new_tokens) - 1)]
        config = Config.from_name(name)
        ours, hf = build_pair(config)
        for batch in args.batches:
            result = compare(ours, hf, batch, args.prompt, new, args.repeats, args.compile)
            report(f"{name} ({config.num_parameters() / 1e6:.0f}M) threads={torch.get_num_threads()}", result)


if __name__ == "__main__":
    main()
