"""Peak memory of ``anygpt prepare`` as the dataset grows: it should stay flat from 1k to 30k items.

    PYTHONPATH=. python -m benchmarks.perf.prepare_memory --sizes 1000 3000 10000 30000 --num_workers 1

Two kinds of source, each size in a fresh subprocess (peak RSS is a high-water mark per process):
  files     a csv of tiny wav files (`AudioCaptionCsv`, the file-list path: records planned to disk in chunks, media
            decoded in the loader worker) encoded by a stand-in codec (frame energy, no model), so the figure is the
            pipeline's, not a network's
  release   the release's pre-tokenized jsonl (`ReleasePairs`: line ranges read in the worker, no tokenizer)
Reported per run: the main process's peak RSS above its RSS after its imports (torch, lightning), the largest loader
worker's peak RSS (its own pages: a forked worker shares the parent's until it writes them), and the wall time. The
ratio of the largest to the smallest run is the figure that matters: ~1.0 means memory does not grow with the number
of items.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from anygpt.data.prepare import prepare
from anygpt.data.sources import AudioCaptionCsv, ReleasePairs
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import TokenizerRef


class EnergyCodec(Codec):
    """A stand-in music codec: quantised energy of 20 ms frames of 16 kHz audio (no parameters to speak of)."""

    modality = "music"
    sample_rate = 16000
    frame_rate = 50.0

    def __init__(self, levels: int = 64) -> None:
        super().__init__()
        self.levels = levels
        self.register_buffer("scale", torch.tensor(float(levels)))

    @property
    def codebook_size(self) -> int:
        return self.levels

    @torch.inference_mode()
    def encode(self, items):
        return [(x.reshape(-1)[: x.numel() // 320 * 320].view(-1, 320).abs().mean(1) * self.scale).long()
                .clamp(0, self.levels - 1) for x in items]

    def decode(self, codes, **context):
        raise NotImplementedError


def write_corpus(root: Path, size: int) -> None:
    """``size`` tiny wav files + their csv, and the same number of release-format jsonl lines."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    audio = root / "audio"
    audio.mkdir(parents=True)
    with open(root / "pairs.csv", "w") as csv_file, open(root / "release.jsonl", "w", encoding="utf-8") as jsonl:
        csv_file.write("audio,caption\n")
        for i in range(size):
            sf.write(str(audio / f"{i:06d}.wav"), (rng.standard_normal(640) * 0.1).astype(np.float32), 16000)
            csv_file.write(f"audio/{i:06d}.wav,clip number {i} of the benchmark\n")
            span = "".join(f"<👀{c}>" for c in rng.integers(0, 8192, 32))
            jsonl.write(json.dumps({"text": f"caption {i}", "image": f"<soim>{span}<eoim>"}, ensure_ascii=False) + "\n")


def child(kind: str, size: int, root: Path, num_workers: int) -> None:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Path(tempfile.mkdtemp(dir=root))
    start = time.perf_counter()
    if kind == "files":
        lines = (root / "pairs.csv").read_text().splitlines()[: size + 1]
        (out / "pairs.csv").write_text("\n".join(lines) + "\n")
        source = AudioCaptionCsv(str(out / "pairs.csv"), audio_root=str(root))
        EnergyCodec().save_pretrained(out / "tok")
        tokenizers = {"music": TokenizerRef(str(out / "tok"), "benchmarks.perf.prepare_memory.EnergyCodec")}
    else:
        with open(root / "release.jsonl", encoding="utf-8") as f, open(out / "part.jsonl", "w", encoding="utf-8") as g:
            for _, line in zip(range(size), f, strict=False):
                g.write(line)
        source, tokenizers = ReleasePairs(str(out / "part.jsonl")), {}
    summary = prepare({kind: source}, tokenizers, out=str(out / "shards"), chunk_size=1000, batch_size=64,
                      num_workers=num_workers, accelerator="cpu", progress=False)[kind]
    seconds = time.perf_counter() - start
    assert summary["samples"] == size, summary
    print(json.dumps({"baseline_kb": baseline, "main_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "worker_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    parser.add_argument("--kinds", nargs="+", default=["files", "release"], choices=["files", "release"])
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SIZE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size, root = args.child
        child(kind, int(size), Path(root), args.num_workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, max(args.sizes))
        print(f"{'source':<8} {'items':>6} {'main MB':>8} {'worker MB':>10} {'seconds':>8}   (main: RSS above its "
              "RSS after imports; worker: its peak RSS)")
        for kind in args.kinds:
            peaks = []
            for size in args.sizes:
                # imported by name (not run as __main__), so the saved codec's class path names this module
                proc = subprocess.run([sys.executable, "-c", "from benchmarks.perf.prepare_memory import main; main()",
                                       "--num_workers", str(args.num_workers), "--child", kind, str(size), str(root)],
                                      capture_output=True, text=True, check=False)
                if proc.returncode:
                    raise SystemExit(proc.stderr[-3000:])
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                main_mb = (run["main_kb"] - run["baseline_kb"]) / 1024
                worker_mb = run["worker_kb"] / 1024
                peaks.append(main_mb + worker_mb)
                print(f"{kind:<8} {size:>6} {main_mb:>8.1f} {worker_mb:>10.1f} {run['seconds']:>8.1f}")
            print(f"{kind:<8} main + worker at {args.sizes[-1]} items / at {args.sizes[0]}: "
                  f"{peaks[-1] / max(peaks[0], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
