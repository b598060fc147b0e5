"""``anygpt prepare`` throughput per modality with the shipped tiny tokenizers on CPU.

For each modality it times the whole prepare path (read + decode media in loader workers, encode in Lightning's
predict loop, write shards) and, as the reference in the same run, the tokenizer alone on the same items already
loaded in memory. The ratio shows what the pipeline around the tokenizer costs.

    python -m benchmarks.perf.prepare_throughput --corpus data/demo --limit 400 --num_workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from anygpt.data.demo.datamodule import default_tokenizers
from anygpt.data.prepare import CocoKarpathy, LibriSpeech, MusicCaps, RawSource, prepare
from anygpt.data.sources.base import SkipReport
from anygpt.modalities.registry import load_modality


class _Limited(RawSource):
    """The first ``limit`` items of another source."""

    def __init__(self, inner: RawSource, limit: int) -> None:
        self.inner, self.limit, self.name = inner, limit, inner.name

    def chunks(self, chunk_size, report):
        items = [item for chunk in self.inner.chunks(10**9, report) for item in chunk][: self.limit]
        return self.split_list(items, chunk_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--corpus", default="data/demo", help="demo corpus root (anygpt data demo --out DIR)")
    parser.add_argument("--limit", type=int, default=400, help="items per modality")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args()
    corpus = Path(args.corpus)
    sources = {
        "image": CocoKarpathy(str(corpus / "coco" / "dataset_coco.json"), split="train"),
        "speech": LibriSpeech(str(corpus / "librispeech"), split="train-clean-100"),
        "music": MusicCaps(str(corpus / "musiccaps" / "musiccaps.csv"), split="train"),
    }
    tokenizers = default_tokenizers()
    print(f"{'modality':<8} {'items':>6} {'prepare items/s':>16} {'tokenizer-only items/s':>23} {'ratio':>6}")
    for modality, source in sources.items():
        limited = _Limited(source, args.limit)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = prepare({modality: limited}, {modality: tokenizers[modality]}, out=out, chunk_size=200,
                              batch_size=args.batch_size, num_workers=args.num_workers, accelerator="cpu",
                              progress=False)[modality]
            prepare_rate = summary["samples"] / (time.perf_counter() - start)
        tok = load_modality(tokenizers[modality])
        items = [item for chunk in limited.chunks(10**9, SkipReport()) for item in chunk]
        loaded = [tok.read(src) for it in items for (_, src) in it.media.values()]
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(loaded), args.batch_size):
                tok.codec.encode(loaded[i: i + args.batch_size])
        encode_rate = len(loaded) / (time.perf_counter() - start)
        print(f"{modality:<8} {summary['samples']:>6} {prepare_rate:>16.1f} {encode_rate:>23.1f} "
              f"{prepare_rate / encode_rate:>6.2f}")


if __name__ == "__main__":
    main()
