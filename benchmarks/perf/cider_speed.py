"""CIDEr-D speed: benchmarks.metrics.cider_d vs pycocoevalcap's Cider on the same tokenized captions, one run.

    PYTHONPATH=. python benchmarks/perf/cider_speed.py --images 5000 --refs 5

Captions are synthetic but COCO-shaped: 8-14 tokens drawn from a Zipf-distributed vocabulary of a few thousand words,
references of an image share a topic so n-gram overlap is realistic. Both implementations get identical inputs; the
script also checks that the scores agree.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.metrics.cider import cider_d


def make_captions(images: int, refs: int, vocab: int = 4000, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()

    def caption(topic: np.ndarray) -> str:
        length = rng.integers(8, 15)
        mix = np.where(rng.random(length) < 0.5, rng.choice(topic, length), rng.choice(vocab, length, p=p))
        return " ".join(words[mix])

    hyps, all_refs = [], []
    for _ in range(images):
        topic = rng.choice(vocab, 12, p=p)
        hyps.append(caption(topic))
        all_refs.append([caption(topic) for _ in range(refs)])
    return hyps, all_refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--refs", type=int, default=5)
    args = parser.parse_args()

    from pycocoevalcap.cider.cider import Cider

    hyps, refs = make_captions(args.images, args.refs)
    gts = {i: r for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}

    t0 = time.perf_counter()
    ref_score, ref_scores = Cider().compute_score(gts, res)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    score, scores = cider_d(hyps, refs)
    t_ours = time.perf_counter() - t0

    print(f"{args.images} images x {args.refs} references")
    print(f"pycocoevalcap Cider: {t_ref:.3f} s  CIDEr={ref_score:.6f}")
    print(f"benchmarks cider_d: {t_ours:.3f} s  CIDEr={score:.6f}")
    print(f"max |per-image diff| = {np.abs(np.asarray(ref_scores) - scores).max():.2e}")
    print(f"speed-up (pycocoevalcap time / ours) = {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
