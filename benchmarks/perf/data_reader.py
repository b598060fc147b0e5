"""Throughput of the training data path (shard reader + shuffle buffer + templates + packer), single process.

    PYTHONPATH=. python -m benchmarks.perf.data_reader --samples 2000 --max-length 4500 --buffer 1000

Writes paper-sized shards with random codes into a temporary folder (image 32 codes, speech 10 s = 500 codes,
music 5 s = [4, 250] Encodec codes, captions of ~15 words), then measures, rounds interleaved, median reported:
  reference  webdataset's own pipeline reading the same shards (``wds.WebDataset(...).decode()``), samples/s
  reader     our reader (`anygpt.data.shards.read_shard`: webdataset tar iterators + checked .npy decode), samples/s
  stream     `SampleStream` over the same shards (shard order per pass, reader split), without and with the
             shuffle buffer, samples/s
  full       `MixtureStream`: streams + templates + packing into max-length blocks + collation, without and with
             the buffer (per source): steady samples/s and tokens/s after the first batch, and the wait for the
             first batch (with a buffer: filling ``--buffer`` samples per source, as every epoch start does)
The ratios against the reference (samples/s) say what our checks, the buffer and the templating cost on top of plain
webdataset reading; tokens/s of ``full`` is what one loader worker feeds a trainer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from anygpt.data.datamodule import MixtureStream, Source
from anygpt.data.schema import ShardSample
from anygpt.data.shards import ShardWriter, expand_shards, read_shard
from anygpt.data.stream import SampleStream
from anygpt.modalities.registry import configured_modality
from anygpt.modalities.spec import RELEASE_MODALITIES
from anygpt.prompts import TemplateRenderer
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab

WORDS = ("a dog runs on the beach while the sun sets behind calm blue water and two birds fly over the small "
         "boats near an old wooden pier as people walk slowly with guitars drums piano voices").split()


def write_corpus(root: Path, samples: int) -> None:
    rng = np.random.default_rng(0)
    pick = random.Random(0)
    shapes = {"image": (32,), "speech": (500,), "music": (4, 250)}
    highs = {"image": 8192, "speech": 1024, "music": 2048}
    for modality in shapes:
        with ShardWriter(root / modality, maxcount=500) as writer:
            for i in range(samples // 3):
                text = " ".join(pick.choice(WORDS) for _ in range(15))
                codes = rng.integers(0, highs[modality], shapes[modality]).astype(np.int16)
                sample = ShardSample("pair", text=text, media={f"{modality}0": modality})
                writer.write(f"{i:07d}", sample.to_json(), {f"{modality}0": codes})


def per_second(items: Callable[[], Iterable]) -> float:
    """Items per second of making and reading ``items()`` to its end."""
    start = time.perf_counter()
    count = sum(1 for _ in items())
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--max-length", type=int, default=4500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--buffer", type=int, default=1000, help="shuffle buffer (samples per source)")
    args = parser.parse_args()

    import webdataset as wds

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, args.samples)
        text = train_bpe_tokenizer([" ".join(WORDS)] * 50, 1000, root / "tokenizer")
        resolved = [configured_modality(s.name) for s in RELEASE_MODALITIES]  # the paper's codecs, sized on meta
        vocab = UnifiedVocab(text, [spec for spec, _ in resolved])
        renderer = TemplateRenderer(vocab, {spec.name: fn for spec, fn in resolved})
        urls = [u for m in ("image", "speech", "music") for u in expand_shards(str(root / m))]
        total = len(urls) and sum(1 for _ in read_shard(urls[0]))  # warm the page cache

        sizes = {s.name: s.codebook_size for s, _ in resolved}

        def reference() -> float:
            return per_second(lambda: wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode())

        def reader() -> float:
            return per_second(lambda: (sample for url in urls for sample in read_shard(url, codebook_sizes=sizes)))

        def stream(buffer: int) -> float:
            return per_second(lambda: SampleStream(urls, "bench", shuffle_buffer=buffer, cycle=False,
                                                   codebook_sizes=sizes))

        tokens_per_s: dict[int, list[float]] = {0: [], args.buffer: []}
        first_batch_s: dict[int, list[float]] = {0: [], args.buffer: []}

        def full(buffer: int) -> float:
            """Steady-state samples/s after the first batch (whose wait, the buffer fill, is reported apart)."""
            sources = [Source(str(root / m)) for m in ("image", "speech", "music")]
            batches = max(2, args.samples * 600 // args.max_length)  # ~ one pass worth of tokens
            mixture = MixtureStream(sources, renderer, args.max_length, 1, batches, shuffle_buffer=buffer)
            start, tokens, samples, first = time.perf_counter(), 0, 0, None
            bos = vocab.text.bos_id
            for batch in mixture:
                if first is None:
                    first = time.perf_counter()
                    first_batch_s[buffer].append(first - start)
                    continue
                tokens += int(batch["loss_mask"].sum()) + int((batch["input_ids"] == bos).sum())
                samples += int((batch["input_ids"] == bos).sum())
            elapsed = time.perf_counter() - first
            tokens_per_s[buffer].append(tokens / elapsed)
            return samples / elapsed

        runs = {"reference": reference, "reader": reader, "stream": lambda: stream(0),
                "stream+buffer": lambda: stream(args.buffer), "full": lambda: full(0),
                "full+buffer": lambda: full(args.buffer)}
        results: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, fn in runs.items():
                results[name].append(fn())
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"shards: {len(urls)}, samples: {args.samples // 3 * 3} (first shard {total}), max_length "
              f"{args.max_length}, buffer {args.buffer}, rounds {args.rounds}")
        ref = med["reference"]
        print(f"webdataset pipeline (reference):     {ref:9.0f} samples/s")
        labels = {"reader": "our reader (checked decode):", "stream": "SampleStream, no buffer:",
                  "stream+buffer": f"SampleStream, buffer {args.buffer}:", "full": "full stream, no buffer:",
                  "full+buffer": f"full stream, buffer {args.buffer}:"}
        for name, label in labels.items():
            line = f"{label:<36} {med[name]:9.0f} samples/s  ratio {med[name] / ref:.2f}"
            if name.startswith("full"):
                buffer = args.buffer if name.endswith("buffer") else 0
                line += (f"  = {statistics.median(tokens_per_s[buffer]):,.0f} tokens/s, first batch after "
                         f"{statistics.median(first_batch_s[buffer]):.2f} s")
            print(line)
        print(f"buffer cost: stream {med['stream+buffer'] / med['stream']:.2f}x, full "
              f"{med['full+buffer'] / med['full']:.2f}x the samples/s without it")


if __name__ == "__main__":
    main()
