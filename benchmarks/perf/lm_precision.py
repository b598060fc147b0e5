"""Training-step throughput of the LM in fp32 and under bf16 autocast, at one or more torch thread counts, on this CPU.

    PYTHONPATH=. python -m benchmarks.perf.lm_precision [--config demo] [--batch 4 --seq 512] [--threads 1 2]

The contenders (precision x threads) run in interleaved rounds in one process, so load from other processes hits all
alike; the best round of each is reported with its ratio to fp32 at the first thread count, and the median round next
to it (on a shared machine several threads can lose far more to contention than one). Whether the CPU has
native bf16 (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo) is printed: without it bf16 autocast is emulated and slow.
The demo recipe (experiments/demo/pretrain.yaml) chooses its precision and thread count from these figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA

DEMO = dict(vocab_size=3104, block_size=512, n_layer=4, n_head=8, n_kv_head=4, n_embd=256, intermediate_size=688)


def native_bf16() -> list[str]:
    """The CPU's bf16 instruction sets named in /proc/cpuinfo (empty: none, or not Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo", help="'demo' (the demo recipe's model) or a named size")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    args = parser.parse_args()

    config = Config(name="demo", **DEMO) if args.config == "demo" else Config.from_name(args.config)
    torch.manual_seed(0)
    model = LLaMA(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(0, config.vocab_size, (args.batch, args.seq + 1))

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch[:, :-1])
        F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    contenders = [(threads, bf16) for threads in args.threads for bf16 in (False, True)]
    for threads, bf16 in contenders:  # warm-up
        torch.set_num_threads(threads)
        step(bf16)
    rounds: dict[tuple[int, bool], list[float]] = {c: [] for c in contenders}
    for _ in range(args.rounds):
        for threads, bf16 in contenders:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(bf16)
            rounds[threads, bf16].append((time.perf_counter() - start) / args.steps)
    tokens = args.batch * args.seq
    best = {c: min(times) for c, times in rounds.items()}
    reference = best[contenders[0]]
    print(f"{config.name}: batch {args.batch} x {args.seq} tokens; native bf16: {', '.join(native_bf16()) or 'none'}")
    for (threads, bf16), seconds in best.items():
        print(f"  threads {threads}, {'bf16 autocast' if bf16 else 'fp32         '}: {seconds:.3f} s/step, "
              f"{tokens / seconds:7.0f} tokens/s, x{reference / seconds:.2f} (median round "
              f"{tokens / statistics.median(rounds[threads, bf16]):.0f} tokens/s)")


if __name__ == "__main__":
    main()
