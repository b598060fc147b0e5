"""The GPU suite: training throughput and MFU, generation vs HF, tokenizer throughput, and peak memory of each.

One command, under 8 minutes on one H100/H200. The GPU image (torch 2.11, lightning, torchmetrics, transformers) lacks
a few small packages: `benchmarks/perf/gpu_wheels.sh`, run beforehand where a package index is reachable, puts their
wheels in ``wheels/gpu/`` (git-ignored; carry it to the GPU machine with the working tree). There, from the
repository root:

    pip install -q --no-index --no-deps wheels/gpu/*.whl && pip install -q --no-index --no-deps --no-build-isolation \\
      -e . && python -m benchmarks.perf.gpu_suite --out runs/perf/gpu_suite.json

The JSON is rewritten after each part, so a run cut short keeps what it measured; ``--sections`` runs a subset.

What it measures, on random weights (speed does not depend on the values), printed with the GPU's name and saved as
JSON (``--out``):

- **training**: `AnyGPTLM` through Lightning's `ModelParallelStrategy` (FSDP2, one rank), bf16-mixed, the ~1B
  ``llama-1b`` size at the unified vocabulary of the paper (49418 ids), sequences of 4096 tokens, activation
  checkpointing on, eager and with ``compile=True``. Tokens/s over the steps after warm-up and MFU: model FLOPs per
  token (`anygpt.model.llama.model.flops_per_token`: 6 x parameters other than the input embedding + PaLM's
  attention term 12 x layers x width x sequence, no discount for the causal mask, recomputation not counted) x
  tokens/s, over the GPU's dense bf16 peak (`PEAK_BF16_FLOPS`, NVIDIA's datasheet figures; ``--peak-tflops`` for other
  GPUs).
- **finetune**: LoRA steps (rank 16, bf16, activation checkpointing, one sequence) of the 7B model at the paper's
  length (4500) and vocabulary layout, its peak memory next to `benchmarks.perf.finetune_memory`'s estimate for the
  same run (the table in docs/finetune.md).
- **generation**: our engine (eager, and with the compiled decode step, its compile time and break-even point) vs
  transformers' ``generate`` on the same bf16 weights, greedy, batch 1 and 8 (`benchmarks.perf.generation.compare`).
- **tokenizers**: encode throughput (audio seconds per second) of SpeechTokenizer and Encodec 32 kHz in the paper's
  configurations, against the reference implementations on the same input when installed (the ``speechtokenizer``
  package with the same weights; transformers' ``EncodecModel`` at the same configuration).
- **peak memory**: ``torch.cuda.max_memory_allocated`` per part.

Without CUDA it says so and exits 0. ``--device cpu --quick`` runs every part at toy sizes on the CPU, which is how
the tests keep this script working; its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import ModelParallelStrategy

from anygpt.modalities.music import EncodecMusicTokenizer
from anygpt.modalities.spec import ModalitySpec
from anygpt.modalities.speech import SpeechTokenizerCodec
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import flops_per_token
from anygpt.model.lm import AnyGPTLM
from anygpt.model.lora import LoraOptions, trainable_summary
from anygpt.vocab import UnifiedVocab
from benchmarks.perf.finetune_memory import estimate
from benchmarks.perf.generation import compare, now
from benchmarks.perf.generation import report as print_generation
from benchmarks.perf.speech_tokenizer_throughput import rate
from benchmarks.perf.train_step import build_pair

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, matched against torch.cuda.get_device_name()
# in this order (first match wins).
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("GH200", 989e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
]
PAPER_VOCAB = 49418  # the release's unified vocabulary (LLaMA-2 text + image, speech, music codes and markers)

SIZES = {
    # full: the figures docs/performance.md asks for; quick: the same code paths at toy size (CPU tests)
    # finetune: a LoRA step of the 7B model at the paper's length, next to benchmarks/perf/finetune_memory.py
    "full": {"model": "llama-1b", "model_config": {}, "vocab": PAPER_VOCAB, "seq": 4096, "train_batch": 4,
             "ft_model": "llama2-7b", "ft_seq": 4500, "ft_text": 32000, "ft_codes": (8192, 1024, 8192),
             "warmup_steps": 3, "train_steps": 8, "gen_batches": (1, 8), "prompt": 128, "new_tokens": 200,
             "gen_repeats": 3, "audio_seconds": 10.0, "audio_batch": 8, "audio_repeats": 3},
    "quick": {"model": "tiny", "model_config": {}, "vocab": 512, "seq": 64, "train_batch": 2, "warmup_steps": 1,
              "ft_model": "tiny", "ft_seq": 64, "ft_text": 256, "ft_codes": (64, 32, 64),
              "train_steps": 2, "gen_batches": (1, 2), "prompt": 8, "new_tokens": 8, "gen_repeats": 1,
              "audio_seconds": 0.25, "audio_batch": 2, "audio_repeats": 1},
}


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    """The bf16 peak used for MFU and where it came from."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak for a CPU"
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops, f"datasheet dense bf16 for {key}"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


class Memory:
    """Peak allocated device memory over a block (CUDA only; None on the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_gb: float | None = None

    def __enter__(self) -> Memory:
        _release(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.peak_gb = torch.cuda.max_memory_allocated(self.device) / 2**30


# -- training ----------------------------------------------------------------------------------------------------------
class RandomTokens(torch.utils.data.IterableDataset):
    """Endless batches of random ids (``seq + 1`` per row: the model sees ``seq`` inputs), every token in the loss."""

    def __init__(self, batch: int, seq: int, vocab: int) -> None:
        self.batch, self.seq, self.vocab = batch, seq, vocab

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(0)
        while True:
            ids = torch.randint(0, self.vocab, (self.batch, self.seq + 1), generator=generator)
            yield {"input_ids": ids, "loss_mask": torch.ones_like(ids, dtype=torch.bool)}


def train_throughput(device: torch.device, size: dict[str, Any], compile: bool, peak: float | None) -> dict[str, Any]:
    """Tokens/s, MFU, compile time and peak memory of `AnyGPTLM` steps under FSDP2 (one rank), bf16-mixed."""
    class StepTimes(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.start = 0.0
            self.losses: list[float] = []

        def on_train_start(self, trainer, pl_module) -> None:
            self.start = now(device)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ends.append(now(device))
            self.losses.append(float(outputs["loss"]))

    warmup, steps = size["warmup_steps"], size["train_steps"]
    L.seed_everything(0)  # the same weights and batches for the eager and compiled runs: their first losses agree
    times = StepTimes()
    module = AnyGPTLM(size["model"], model_config=size["model_config"], vocab_size=size["vocab"],
                      learning_rate=1e-4, warmup=1, max_steps=warmup + steps, activation_checkpointing=True,
                      compile=compile)
    trainer = L.Trainer(accelerator=device.type, devices=1, precision="bf16-mixed", max_steps=warmup + steps,
                        strategy=ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=1),
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[times])
    loader = torch.utils.data.DataLoader(RandomTokens(size["train_batch"], size["seq"], size["vocab"]),
                                         batch_size=None)
    with Memory(device) as memory:
        trainer.fit(module, loader)
    ends = [times.start, *times.ends]
    step_times = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    steady = statistics.median(step_times[warmup:])
    config = Config.from_name(size["model"], vocab_size=size["vocab"], **size["model_config"])
    tokens = size["train_batch"] * size["seq"]
    tokens_per_s = tokens / steady
    flops = flops_per_token(config, size["seq"])
    result = {
        "model": size["model"], "parameters": config.num_parameters(), "seq": size["seq"],
        "batch": size["train_batch"], "tokens_per_step": tokens, "steps_timed": steps,
        "activation_checkpointing": True, "compile": compile, "precision": "bf16-mixed", "strategy": "FSDP2 (1 rank)",
        "s_per_step": steady, "tokens_per_s": tokens_per_s, "flops_per_token": flops,
        "mfu": tokens_per_s * flops / peak if peak else None,
        "first_steps_s": sum(step_times[:warmup]), "warmup_overhead_s": sum(step_times[:warmup]) - warmup * steady,
        "first_loss": times.losses[0], "last_loss": times.losses[-1], "peak_memory_gb": memory.peak_gb,
    }
    del trainer, module
    _release(device)
    return result


class SizedText:
    """A text tokenizer of ``vocab_size`` ids (random-token steps never encode text)."""

    bos_id = eos_id = None

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError("random-token benchmark: no text is encoded")

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError("random-token benchmark: no text is decoded")


def finetune_step(device: torch.device, size: dict[str, Any]) -> dict[str, Any]:
    """Peak memory and tokens/s of LoRA steps (rank 16, bf16, one sequence, activation checkpointing, one device) on
    the paper's vocabulary layout, next to `benchmarks.perf.finetune_memory`'s estimate for the same run."""
    L.seed_everything(0)
    specs = [ModalitySpec(name, n, (f"<so{name}>", f"<eo{name}>"), f"<{name}{{}}>")
             for name, n in zip(("image", "speech", "music"), size["ft_codes"], strict=True)]
    vocab = UnifiedVocab(SizedText(size["ft_text"]), specs, instruction_tokens=True)
    steps, seq = 3, size["ft_seq"]
    module = AnyGPTLM(size["ft_model"], vocab=vocab, learning_rate=1e-4, warmup=1, max_steps=steps,
                      activation_checkpointing=True, lora=LoraOptions(rank=16))
    trainer = L.Trainer(accelerator=device.type, devices=1, precision="bf16-true", max_steps=steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    loader = torch.utils.data.DataLoader(RandomTokens(1, seq, len(vocab)), batch_size=None)
    start = time.perf_counter()
    with Memory(device) as memory:
        trainer.fit(module, loader)
    trainable, total, fraction = trainable_summary(module.model)
    config = replace(Config.from_name(size["ft_model"]), vocab_size=len(vocab))
    expected = estimate(config, seq, "lora", 16, size["ft_text"]).total / 2**30
    result = {"model": size["ft_model"], "seq": seq, "vocab": len(vocab), "precision": "bf16-true", "lora_rank": 16,
              "trainable": trainable, "parameters": total, "trainable_fraction": fraction,
              "s_per_step_incl_build": (time.perf_counter() - start) / steps, "peak_memory_gb": memory.peak_gb,
              "estimated_gb": expected}
    del trainer, module
    _release(device)
    return result


# -- generation --------------------------------------------------------------------------------------------------------
def generation_speed(device: torch.device, size: dict[str, Any], compile: bool) -> list[dict[str, Any]]:
    config = Config.from_name(size["model"], vocab_size=size["vocab"], **size["model_config"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        ours, hf = build_pair(config)
    ours, hf = ours.to(dtype), hf.to(dtype)
    results = []
    for batch in size["gen_batches"]:
        with Memory(device) as memory:
            result = compare(ours, hf, batch, size["prompt"], size["new_tokens"], size["gen_repeats"], compile)
        result.update(model=size["model"], dtype=str(dtype).removeprefix("torch."), peak_memory_gb=memory.peak_gb)
        results.append(result)
    del ours, hf
    _release(device)
    return results


# -- tokenizers --------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def tokenizer_speed(device: torch.device, size: dict[str, Any]) -> dict[str, Any]:
    seconds, batch = size["audio_seconds"], size["audio_batch"]
    out: dict[str, Any] = {"audio_seconds_per_call": seconds * batch, "clip_seconds": seconds, "batch": batch}
    for name, measure in (("speechtokenizer", _speechtokenizer_speed), ("encodec_32khz", _encodec_speed)):
        out[name] = measure(device, size)
        _release(device)
    return out


def _speechtokenizer_speed(device: torch.device, size: dict[str, Any]) -> dict[str, Any]:
    seconds, batch, repeats = size["audio_seconds"], size["audio_batch"], size["audio_repeats"]
    torch.manual_seed(0)
    speech = SpeechTokenizerCodec().eval().to(device)  # the paper's configuration
    clips = [torch.randn(1, int(seconds * speech.sample_rate), device=device) * 0.1 for _ in range(batch)]
    with Memory(device) as memory:
        section = {"encode_audio_s_per_s": rate(lambda: speech.encode_all_levels(clips), seconds * batch, repeats,
                                                 device)}
    section["peak_memory_gb"] = memory.peak_gb
    try:
        from speechtokenizer import SpeechTokenizer
    except ImportError:
        section["reference"] = "speechtokenizer not installed"
        return section
    reference = SpeechTokenizer(speech.config.to_dict()).eval().to(device)
    reference.load_state_dict(speech.model.state_dict())
    stacked = torch.stack(clips)
    section["reference_encode_audio_s_per_s"] = rate(lambda: reference.encode(stacked), seconds * batch, repeats,
                                                      device)
    section["vs_reference"] = section["encode_audio_s_per_s"] / section["reference_encode_audio_s_per_s"]
    return section


def _encodec_speed(device: torch.device, size: dict[str, Any]) -> dict[str, Any]:
    from transformers import EncodecConfig, EncodecModel

    seconds, batch, repeats = size["audio_seconds"], size["audio_batch"], size["audio_repeats"]
    torch.manual_seed(0)
    music = EncodecMusicTokenizer().eval().to(device)  # MusicGen's 32 kHz configuration
    clips = [torch.randn(int(seconds * music.sample_rate), device=device) * 0.1 for _ in range(batch)]
    with Memory(device) as memory:
        section = {"encode_audio_s_per_s": rate(lambda: music.encode(clips), seconds * batch, repeats, device)}
    section["peak_memory_gb"] = memory.peak_gb
    # transformers' implementation at the same configuration (its codebooks are zeros: speed does not care)
    reference = EncodecModel(EncodecConfig(
        sampling_rate=32000, num_filters=64, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, hidden_size=128,
        num_lstm_layers=2, target_bandwidths=[2.2], use_causal_conv=False, norm_type="weight_norm",
        pad_mode="reflect", use_conv_shortcut=False, normalize=False)).eval().to(device)
    stacked = torch.stack(clips).unsqueeze(1)
    section["reference_encode_audio_s_per_s"] = rate(lambda: reference.encode(stacked, bandwidth=2.2),
                                                      seconds * batch, repeats, device)
    section["vs_reference"] = section["encode_audio_s_per_s"] / section["reference_encode_audio_s_per_s"]
    return section


# -- driver ------------------------------------------------------------------------------------------------------------
def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _gb(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value:.1f} GB"


def run(device: torch.device, quick: bool, compile: bool, sections: list[str], peak_tflops: float | None,
        save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    peak, peak_source = peak_flops(device, peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    report: dict[str, Any] = {
        "device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "size": "quick" if quick else "full", "peak_bf16_flops": peak, "peak_source": peak_source,
        "threads": torch.get_num_threads(), "sections": {},
    }
    print(f"[gpu_suite] {name} | torch {torch.__version__} | peak bf16 {peak / 1e12 if peak else 'n/a'} TFLOP/s "
          f"({peak_source}) | {report['size']} sizes", flush=True)
    start = time.perf_counter()
    if "train" in sections:
        runs = []
        for compiled in ((False, True) if compile else (False,)):
            r = train_throughput(device, size, compiled, peak)
            runs.append(r)
            mfu = f"MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else "MFU n/a"
            print(f"[train] {r['model']} seq {r['seq']} x {r['batch']} | AC on | "
                  f"{'compiled' if compiled else 'eager':8s} | {r['tokens_per_s']:10.0f} tokens/s | {mfu} | "
                  f"{r['s_per_step'] * 1e3:.0f} ms/step | warm-up +{r['warmup_overhead_s']:.1f} s | "
                  f"first loss {r['first_loss']:.4f} | peak {_gb(r['peak_memory_gb'])}", flush=True)
            report["sections"]["train"] = runs
            save(report)
    if "finetune" in sections:
        r = finetune_step(device, size)
        print(f"[finetune] LoRA r16 {r['model']} seq {r['seq']} bf16 | trainable {r['trainable']:,} "
              f"({100 * r['trainable_fraction']:.2f}%) | peak {_gb(r['peak_memory_gb'])} | estimated "
              f"{r['estimated_gb']:.1f} GB (benchmarks/perf/finetune_memory.py)", flush=True)
        report["sections"]["finetune"] = r
        save(report)
    if "generate" in sections:
        runs = generation_speed(device, size, compile)
        for r in runs:
            print_generation(f"[generate] {r['model']} {r['dtype']} peak {_gb(r['peak_memory_gb'])}", r)
        report["sections"]["generate"] = runs
        save(report)
    if "tokenizers" in sections:
        r = tokenizer_speed(device, size)
        for key in ("speechtokenizer", "encodec_32khz"):
            s = r[key]
            ref = f"{s['vs_reference']:.2f}x reference" if "vs_reference" in s else s.get("reference", "")
            print(f"[tokenizers] {key:16s} encode {s['encode_audio_s_per_s']:10.2f} audio-s/s ({ref}) | "
                  f"peak {_gb(s['peak_memory_gb'])}", flush=True)
        report["sections"]["tokenizers"] = r
    report["wall_s"] = time.perf_counter() - start
    save(report)
    print(f"[gpu_suite] done in {report['wall_s']:.0f} s", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --quick: checks the script)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: every code path in seconds, no figures")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile variants (compiling takes minutes on a CPU)")
    parser.add_argument("--sections", nargs="+", default=["train", "finetune", "generate", "tokenizers"],
                        choices=["train", "finetune", "generate", "tokenizers"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of a GPU not in PEAK_BF16_FLOPS")
    parser.add_argument("--out", type=Path, default=Path("runs/perf/gpu_suite.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"[gpu_suite] no CUDA device here (torch {torch.__version__}): nothing measured. Run it on a GPU "
              "machine, or with --device cpu --quick to check that the script works.")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run(device, args.quick, args.compile, args.sections, args.peak_tflops,
        save=lambda report: args.out.write_text(json.dumps(report, indent=2)))
    print(f"[gpu_suite] {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
