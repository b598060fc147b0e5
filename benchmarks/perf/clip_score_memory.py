"""Peak memory of the CLIP score over 1k-30k items: flat when media are streamed and only embeddings kept.

    PYTHONPATH=. python benchmarks/perf/clip_score_memory.py                       # 1k, 3k, 10k, 30k items
    PYTHONPATH=. python benchmarks/perf/clip_score_memory.py --items 1000 30000 --media_kept 1000 3000

Each measurement is a fresh subprocess (peak RSS from ``getrusage``, so runs do not share a high-water mark) that
scores N synthetic 256x256 images against N captions with the tiny CLIP judge shipped with anygpt:

- ``streamed`` (what `benchmarks.metrics.CLIPScore` and the coco-t2i task do): images arrive ``batch`` at a time and
  the metric keeps only their embeddings;
- ``media kept`` (what the tasks did before): every image is held until the end and preprocessed into one stacked
  tensor, as coco-t2i did with its generated images; memory grows with N. Measured for fewer N (it is the slow,
  large one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.judges import load_judge
from benchmarks.metrics import CLIPScore

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("a an the two three red blue green yellow small large old young man woman dog cat bus car train plate table "
         "street field room on in with next to near of sitting standing riding holding eating parked white black "
         "wooden grass snow water sky building").split()


def synthetic_batch(start: int, count: int, size: int):
    rng = np.random.default_rng(start)
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]
    # captions from a fixed vocabulary, like real ones (unique words would grow the BPE tokenizer's word cache)
    texts = [" ".join(rng.choice(WORDS, 9)) for _ in range(count)]
    return images, texts


def child(items: int, mode: str, batch: int, size: int) -> dict:
    torch.set_num_threads(1)
    judge = load_judge("clip")
    metric = CLIPScore(judge.model, preprocess=judge.preprocess, tokenizer=judge.tokenizer, batch_size=batch)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    batches = (synthetic_batch(first, min(batch, items - first), size) for first in range(0, items, batch))
    if mode == "streamed":
        for images, texts in batches:
            metric.update(images, texts)
        value = float(metric.compute())
    else:  # every image kept, then preprocessed into one tensor (the earlier metric and coco-t2i)
        kept = list(batches)
        images, texts = [im for ims, _ in kept for im in ims], [text for _, more in kept for text in more]
        with torch.inference_mode():
            pixels = torch.stack([judge.preprocess(im) for im in images])
            image_emb = torch.cat([judge.model.encode_image(b, normalize=True) for b in pixels.split(batch)])
            text_emb = torch.cat([judge.model.encode_text(judge.tokenizer(texts[i:i + batch]), normalize=True)
                                  for i in range(0, items, batch)])
        value = float((image_emb * text_emb).sum(-1).mean())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"items": items, "mode": mode, "peak_rss_mb": round(peak / 1024, 1),
            "growth_mb": round((peak - base) / 1024, 1), "seconds": round(time.perf_counter() - start, 1),
            "clip_score": round(value, 5)}


def measure(items: int, mode: str, batch: int, size: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(items), "--mode", mode, "--batch", str(batch),
           "--size", str(size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    parser.add_argument("--media_kept", type=int, nargs="*", default=[1000, 3000, 10000],
                        help="item counts to measure with every image kept (the earlier behaviour)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic images")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="streamed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.mode, args.batch, args.size)))
        return
    print(f"CLIP score (tiny shipped judge), {args.size}x{args.size} synthetic images, batches of {args.batch}")
    print(f"{'items':>7} {'mode':>11} {'peak RSS MB':>12} {'growth MB':>10} {'seconds':>8}")
    rows = []
    for mode, counts in (("streamed", args.items), ("media kept", args.media_kept)):
        for n in counts:
            r = measure(n, mode, args.batch, args.size)
            rows.append(r)
            print(f"{r['items']:>7} {r['mode']:>11} {r['peak_rss_mb']:>12} {r['growth_mb']:>10} {r['seconds']:>8}",
                  flush=True)
    streamed = [r for r in rows if r["mode"] == "streamed"]
    if len(streamed) > 1:
        lo, hi = streamed[0], streamed[-1]
        ratio = hi["peak_rss_mb"] / lo["peak_rss_mb"]
        print(f"streamed: {hi['items'] // lo['items']}x the items -> peak RSS x{ratio:.2f} "
              f"(+{hi['peak_rss_mb'] - lo['peak_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
