"""Encode/decode throughput of the image and music tokenizers on this machine, as ratios against a reference.

References measured in the same run: for images, decoding + resizing the same PNG files (`load`); for music, the
paper-size Encodec 32 kHz (random weights; speed does not depend on the values) on the same audio.

    python benchmarks/perf/tokenizer_throughput.py [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch

from anygpt.modalities.image import TinyImageTokenizer
from anygpt.modalities.music import EncodecMusicTokenizer, TinyMusicCodec
from anygpt.modalities.registry import modality_for


def _timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def images(device: str, batch: int = 32) -> None:
    from PIL import Image, ImageDraw

    model = TinyImageTokenizer.from_pretrained().to(device)
    modality = modality_for(model)
    rng = np.random.default_rng(0)
    files = []
    for _ in range(batch):
        image = Image.new("RGB", (64, 64), tuple(int(c) for c in rng.integers(0, 255, 3)))
        ImageDraw.Draw(image).ellipse((10, 10, 40, 40), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files.append(buffer.getvalue())
    loaded = [modality.read(f) for f in files]
    codes = model.encode(loaded)
    t_load = _timed(lambda: [modality.read(f) for f in files])
    t_enc = _timed(lambda: model.encode(loaded))
    t_dec = _timed(lambda: model.decode(codes))
    print(f"image  load (reference): {batch / t_load:9.1f} images/s")
    print(f"image  encode          : {batch / t_enc:9.1f} images/s  ({t_load / t_enc:.2f}x load)")
    print(f"image  decode          : {batch / t_dec:9.1f} images/s  ({t_load / t_dec:.2f}x load)")


def music(device: str, batch: int = 4, seconds: float = 5.0) -> None:
    tiny = TinyMusicCodec.from_pretrained().to(device)
    paper = EncodecMusicTokenizer().eval().to(device)
    audio_s = batch * seconds
    for name, model in (("encodec32k (reference)", paper), ("tiny", tiny)):
        wavs = [torch.randn(int(seconds * model.sample_rate)) * 0.1 for _ in range(batch)]
        codes = model.encode(wavs)
        t_enc = _timed(lambda m=model, w=wavs: m.encode(w), repeats=2)
        t_dec = _timed(lambda m=model, c=codes: m.decode(c), repeats=2)
        if name.startswith("encodec"):
            ref_enc, ref_dec = t_enc, t_dec
        print(
            f"music  {name:<22} encode {audio_s / t_enc:8.1f} audio-s/s ({ref_enc / t_enc:.1f}x ref), "
            f"decode {audio_s / t_dec:8.1f} audio-s/s ({ref_dec / t_dec:.1f}x ref)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device={args.device} threads={args.threads} torch={torch.__version__}")
    images(args.device)
    music(args.device)
