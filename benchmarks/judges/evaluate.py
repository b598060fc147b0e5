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

from anygpt.media import audio_info, read_image
from benchmarks.judges.asr import word_error_rate
from benchmarks.judges.data import check_image, load_audio, read_karpathy, read_librispeech, read_musiccaps, readable
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

    def batched(fn, paths: list, batch_size: int = 32) -> list:
        """fn over ``paths`` a batch at a time (media are read per batch, not all at once)."""
        return [fn(paths[start:start + batch_size]) for start in range(0, len(paths), batch_size)]

    if kind == "clip":
        items = readable(read_karpathy(data, split or "test")[:limit], check_image, "image")
        images = torch.cat(batched(lambda ps: judge.embed_images([read_image(p) for p in ps]), [i.path for i in items]))
        result = _retrieval(images, judge.embed_texts([it.texts[0] for it in items]))
        result = {"image_to_text_r1": result.pop("r1_a2b"), "text_to_image_r1": result.pop("r1_b2a"), **result}
    elif kind == "clap":
        items = readable(read_musiccaps(data, None, split or "test")[:limit], audio_info, "audio")
        audio = torch.cat(batched(lambda ps: judge.embed_audio([load_audio(p, 48000) for p in ps], 48000),
                                  [i.path for i in items]))
        result = _retrieval(audio, judge.embed_text([it.texts[0] for it in items]))
        result = {"audio_to_text_r1": result.pop("r1_a2b"), "text_to_audio_r1": result.pop("r1_b2a"), **result}
    elif kind == "asr":
        items = readable(read_librispeech(data, [split or "test-clean"])[:limit], audio_info, "speech")
        hyps = [h for part in batched(lambda ps: judge.transcribe([load_audio(p, 16000) for p in ps], 16000),
                                      [i.path for i in items]) for h in part]
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
