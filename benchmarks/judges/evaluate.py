"""How well a judge judges, on held-out data: retrieval accuracy for CLIP/CLAP, WER for ASR.

    python -m benchmarks.judges.evaluate clip data/demo/coco/dataset_coco.json
    python -m benchmarks.judges.evaluate clap data/demo/musiccaps/musiccaps-public.csv
    python -m benchmarks.judges.evaluate asr data/demo/LibriSpeech --split test-clean

R@1 is measured among ``limit`` held-out items (chance = 1/limit); the positive/negative cosines show the margin
the CLIP and CLAP scores rest on.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks.judges.data import decode_all, load_audio, read_karpathy, read_librispeech, read_musiccaps
from benchmarks.judges.registry import load_judge
from benchmarks.judges.training import retrieval_at_1


def _retrieval(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    sims = a @ b.T
    off = ~torch.eye(len(a), dtype=torch.bool)
    return {"r1_a2b": retrieval_at_1(a, b), "r1_b2a": retrieval_at_1(b, a), "chance": 1 / len(a),
            "cos_pos": sims.diag().mean().item(), "cos_neg": sims[off].mean().item()}


def evaluate_judge(kind: str, data: str, judge_path: str | None = None, split: str | None = None,
                   limit: int = 100) -> dict:
    """Measure a judge on ``limit`` items of a held-out split (default: test) of a dataset in its standard layout.

    Args:
        kind: "clip" (data = Karpathy json), "clap" (data = MusicCaps csv) or "asr" (data = LibriSpeech root).
        judge_path: a judge folder/checkpoint (default: the shipped tiny judge).
    """
    judge = load_judge(kind, judge_path)
    if kind == "clip":
        from PIL import Image

        items = read_karpathy(data, split or "test")[:limit]
        images, items = decode_all(items, lambda p: Image.open(p).convert("RGB"), "image")
        result = _retrieval(judge.embed_images(images), judge.embed_texts([it.texts[0] for it in items]))
        result = {"image_to_text_r1": result.pop("r1_a2b"), "text_to_image_r1": result.pop("r1_b2a"), **result}
    elif kind == "clap":
        items = read_musiccaps(data, None, split or "test")[:limit]
        wavs, items = decode_all(items, lambda p: load_audio(p, 48000), "audio")
        result = _retrieval(judge.embed_audio(wavs, 48000), judge.embed_text([it.texts[0] for it in items]))
        result = {"audio_to_text_r1": result.pop("r1_a2b"), "text_to_audio_r1": result.pop("r1_b2a"), **result}
    elif kind == "asr":
        from benchmarks.judges.asr import word_error_rate

        items = read_librispeech(data, [split or "test-clean"])[:limit]
        wavs, items = decode_all(items, lambda p: load_audio(p, 16000), "speech")
        hyps = judge.transcribe(wavs, 16000)
        refs = [it.texts[0] for it in items]
        result = {"wer": word_error_rate(hyps, refs), "examples": [[r, h] for r, h in zip(refs, hyps, strict=True)][:3]}
    else:
        raise ValueError(f"unknown judge kind {kind!r}")
    return {"kind": kind, "judge": judge.description, "data": str(Path(data)), "n": len(items), **result}


def main(kind: str, data: str, judge_path: str | None = None, split: str | None = None, limit: int = 100) -> None:
    """Print `evaluate_judge`'s result as JSON."""
    print(json.dumps(evaluate_judge(kind, data, judge_path, split, limit), indent=1))


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=True)
