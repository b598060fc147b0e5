"""Demo corpus build speed: per-modality throughput (real-time factors) and the parallel speedup.

Ratios measured in one run: audio seconds synthesized per wall second (speech, music), and the build time with
``--workers`` processes against one process on the same corpus (both builds must give the same content hash).

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 python benchmarks/perf/demo_corpus_build.py --scale 0.1 --workers 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from anygpt.data.demo import build_demo_corpus, images, music, sentences, speech


def _throughput(tmp: Path, n: int) -> dict:
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(n):
        images.make_image((0, i, str(tmp / f"{i}.png")))
    image_s = time.perf_counter() - t

    texts = [sentences.sentence(rng) for _ in range(n)]
    speech.synthesize(speech.SpeechItem(0, 0, "warm up", speech.TRAIN_VOICES[0], str(tmp / "w.flac")))
    t, audio_s = time.perf_counter(), 0.0
    for i, text in enumerate(texts):
        voice = speech.TRAIN_VOICES[i % len(speech.TRAIN_VOICES)]
        audio_s += speech.synthesize(speech.SpeechItem(0, i, text, voice, str(tmp / f"{i}.flac")))["duration"]
    speech_s = time.perf_counter() - t
    speech.close_client()

    m = max(2, n // 4)
    t = time.perf_counter()
    for i in range(m):
        music.make_music((0, i, str(tmp / f"m{i}.flac")))
    music_s = time.perf_counter() - t
    return {
        "images_per_s": round(n / image_s, 1),
        "speech_utterances_per_s": round(n / speech_s, 1),
        "speech_realtime_factor": round(audio_s / speech_s, 1),
        "music_clips_per_s": round(m / music_s, 1),
        "music_realtime_factor": round(m * music.DURATION / music_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=40, help="items per modality for the throughput part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = {"throughput_one_process": _throughput(tmp, args.items)}
        t = time.perf_counter()
        one = build_demo_corpus(tmp / "one", scale=args.scale, workers=1, progress=False)
        one_s = time.perf_counter() - t
        t = time.perf_counter()
        many = build_demo_corpus(tmp / "many", scale=args.scale, workers=args.workers, progress=False)
        many_s = time.perf_counter() - t
        result["build"] = {
            "scale": args.scale,
            "seconds_1_worker": round(one_s, 1),
            f"seconds_{args.workers}_workers": round(many_s, 1),
            "speedup": round(one_s / many_s, 2),
            "same_content": one["content_hash"] == many["content_hash"],
            "counts": many["counts"],
            "mb_on_disk": round(sum(p.stat().st_size for p in (tmp / "many").rglob("*") if p.is_file()) / 1e6, 1),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
