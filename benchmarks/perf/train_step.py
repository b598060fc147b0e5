"""Training step time (forward + backward + AdamW) of our LLaMA vs HF ``LlamaForCausalLM``, same weights, same batch.

    PYTHONPATH=. python -m benchmarks.perf.train_step --config tiny --batch 8 --seq 256

Steps of the contenders are interleaved (round robin) and the median is reported, so load from other processes on a
shared machine hits both alike. The first-step losses are printed too: equal weights must give equal losses.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from anygpt.model.llama.config import Config
from anygpt.model.llama.hf_adapter import config_to_hf, hf_state_dict
from anygpt.model.llama.model import LLaMA


def build_pair(config: Config, seed: int = 0) -> tuple[LLaMA, torch.nn.Module]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ours = LLaMA(config)
    hf_config = LlamaConfig(**{k: v for k, v in config_to_hf(config).items() if k not in ("architectures",)},
                            attn_implementation="sdpa")
    hf = LlamaForCausalLM(hf_config)
    hf.load_state_dict(hf_state_dict(ours), strict=not config.tie_embeddings)
    if config.tie_embeddings:
        hf.tie_weights()
    return ours.train(), hf.train()


def make_step(model: torch.nn.Module, hf: bool, optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], float]:
    def step(batch: torch.Tensor) -> float:
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = model(input_ids=inputs).logits if hf else model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="named size from anygpt.model.llama.config")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--compile", action="store_true", help="add ours under torch.compile (compile time excluded)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = Config.from_name(args.config)
    ours, hf = build_pair(config)
    ours_ref, _ = build_pair(config)  # a second copy for the default-optimizer variant, same weights
    lr = 1e-4
    contenders = {
        "hf (AdamW default)": make_step(hf, True, torch.optim.AdamW(hf.parameters(), lr=lr)),
        "ours (AdamW default)": make_step(ours_ref, False, torch.optim.AdamW(ours_ref.parameters(), lr=lr)),
        "ours (AdamW fused)": make_step(ours, False, torch.optim.AdamW(ours.parameters(), lr=lr, fused=True)),
    }
    if args.compile:
        ours_c, _ = build_pair(config)
        compiled = torch.compile(ours_c)
        contenders["ours (compiled, fused)"] = make_step(compiled, False,
                                                         torch.optim.AdamW(ours_c.parameters(), lr=lr, fused=True))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq + 1), generator=gen)
               for _ in range(args.warmup + args.steps)]
    times: dict[str, list[float]] = {name: [] for name in contenders}
    first_loss: dict[str, float] = {}
    for i, batch in enumerate(batches):
        for name, step in contenders.items():
            start = time.perf_counter()
            loss = step(batch)
            elapsed = time.perf_counter() - start
            first_loss.setdefault(name, loss)
            if i >= args.warmup:
                times[name].append(elapsed)
    tokens = args.batch * args.seq
    print(f"config={args.config} ({config.num_parameters() / 1e6:.1f}M params) batch={args.batch} seq={args.seq} "
          f"threads={torch.get_num_threads()} steps={args.steps} device=cpu")
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in median.items():
        print(f"  {name:22s} {t * 1e3:9.1f} ms/step  {tokens / t:9.0f} tokens/s  first loss {first_loss[name]:.6f}")
    base = median["hf (AdamW default)"]
    print(f"  speed-up vs HF, same optimizer: {base / median['ours (AdamW default)']:.2f}x; "
          f"with fused AdamW: {base / median['ours (AdamW fused)']:.2f}x")
    if args.compile:
        print(f"  compiled + fused AdamW: {base / median['ours (compiled, fused)']:.2f}x")


if __name__ == "__main__":
    main()
