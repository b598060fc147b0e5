"""Generation speed (new tokens/s) of our engine vs HF ``generate`` on the same weights, greedy, same outputs.

    PYTHONPATH=. python -m benchmarks.perf.generation --configs tiny small-100m --batches 1 8

Each run decodes exactly ``--new-tokens`` tokens (no stop id) after a ``--prompt``-token prompt, so both sides do the
same work; the generated ids are compared to prove it. Runs are interleaved and the median is reported.
``--compile`` adds our engine with ``torch.compile`` of the one-token decode step (compilation time excluded).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from anygpt.generation.sampling import GenerationConfig, generate
from anygpt.model.configs import Config
from benchmarks.perf.train_step import build_pair


def bench(config_name: str, batch: int, prompt_len: int, new_tokens: int, repeats: int, compile: bool) -> None:
    config = Config.from_name(config_name)
    ours, hf = build_pair(config)
    ours.eval()
    hf.eval()
    hf.generation_config.eos_token_id = None
    prompts = torch.randint(3, config.vocab_size, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    gen_config = GenerationConfig(max_new_tokens=new_tokens)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        return out[:, prompt_len:]

    def run_ours(compiled: bool = False) -> torch.Tensor:
        return generate(ours, prompts, gen_config, compile=compiled).sequences[:, prompt_len:]

    contenders = {"hf generate": run_hf, "ours": run_ours}
    if compile:
        contenders["ours (compiled step)"] = lambda: run_ours(True)
    outputs = {name: fn() for name, fn in contenders.items()}  # warm-up (and compilation)
    reference = outputs["hf generate"]
    for name, out in outputs.items():
        if not torch.equal(out, reference):
            agree = (out == reference).float().mean().item()
            print(f"  warning: {name} differs from HF in {100 * (1 - agree):.1f}% of ids")
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["hf generate"])
    print(f"{config_name} ({config.num_parameters() / 1e6:.0f}M) batch={batch} prompt={prompt_len} "
          f"new={new_tokens} threads={torch.get_num_threads()}")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"  {name:22s} {batch * new_tokens / med:9.1f} tokens/s  {med * 1e3 / new_tokens:7.2f} ms/step  "
              f"{base / med:5.2f}x vs HF")


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
        for batch in args.batches:
            bench(name, batch, args.prompt, new, args.repeats, args.compile)


if __name__ == "__main__":
    main()
