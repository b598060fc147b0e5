"""Music captioning on MusicCaps, scored with the CLAP score between the music and the generated caption (the paper:
0.11; real captions 0.16). Decoding: the paper's text setting (beam search 5).

Baseline (same metric, same run): the generated captions scored against shuffled clips (another item's music).
Reference: the clips against their own MusicCaps captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anygpt.data.readers import DatasetError, read_musiccaps
from anygpt.data.templates import X2TEXT_INSTRUCTIONS
from anygpt.generation.pipeline import Media
from benchmarks.judges import load_judge
from benchmarks.metrics import CLAPScore
from benchmarks.tasks.runner import (
    Evaluation,
    Prediction,
    Row,
    TaskArgs,
    compute,
    data_root,
    derangement,
    locate,
    read_audio,
    sample_rows,
)

TASK = "musiccaps-caption"
CSV = ("musiccaps/musiccaps.csv", "musiccaps.csv", "musiccaps/musiccaps-public.csv", "musiccaps-public.csv")


def read_clips(data: Path, split: str, audio_dir: Path | None, limit: int | None) -> list:
    csv_path = locate(data, CSV, "MusicCaps csv")
    clips = list(read_musiccaps(csv_path, audio_dir, split))[:limit]
    if not clips:
        raise DatasetError(f"{csv_path} has no clips in split {split!r} with audio")
    return clips


def clap_scores(ev: Evaluation, judge: Any, audio: dict[int, tuple], texts: dict[int, str],
                pairs: dict[int, int]) -> float | None:
    """CLAP(audio[pairs[i]], texts[i]) over this rank's items whose audio exists, averaged over all ranks."""
    metric = ev.metric(CLAPScore(judge))
    for i, j in pairs.items():
        if j in audio:
            wav, rate = audio[j]
            metric.update([wav], [texts[i]], rate)
    return compute(metric)


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = None, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None,
        judge_options: dict[str, Any] | None = None, seed: int = 0, settings: str = "paper",
        generation: dict[str, Any] | None = None, template: str = "pretrain", baseline: bool = True,
        report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False, compile: bool | None = None, audio_dir: Path | None = None,
        split: str = "test", instruction: str = X2TEXT_INSTRUCTIONS["music"][0]) -> dict[str, Any]:
    """Caption MusicCaps clips with the model and score CLAP(music, generated caption).

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: a root holding musiccaps/musiccaps.csv (or the csv itself); default: the demo corpus.
        limit: evaluate the first N clips only.
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/musiccaps-caption).
        judge: CLAP judge: a tiny CLAP folder, or a laion_clap checkpoint with judge_options {"roberta": DIR,
            "amodel": "HTSAT-base"}; default: the tiny CLAP shipped with anygpt.
        judge_options: extra options for the judge.
        seed: seed for sampling and the baseline.
        settings: decoding preset family ("paper": beam 5 for text).
        generation: overrides of the decoding preset.
        template: "pretrain" or "chat".
        baseline: also score shuffled (music, caption) pairs.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        compile: torch.compile the decode step (true/false); default: on CUDA only.
        audio_dir: folder of the clips (default: audio/ beside the csv).
        split: the csv's split column value, or "test" = is_audioset_eval for the original csv.
        instruction: the captioning instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, judge_options, seed,
                    settings, generation, template, baseline, report_samples, tokenizers, trust_code, compile)
    clips = read_clips(root, split, audio_dir, limit)
    ev = Evaluation(args, needs=["music"], output="text")
    keys = [c.ytid for c in clips]

    def make(indices: list[int], generator) -> list[Prediction]:
        prompts = [ev.prompt(instruction, [Media("music", clips[i].path)], "x2text") for i in indices]
        return ev.text_predictions([keys[i] for i in indices], prompts, generator)

    preds = ev.predict(keys, make, "music captioning")
    clap = load_judge("clap", judge, device=ev.fabric.device, **(judge_options or {}))
    mine = ev.shard(len(clips))
    perm = derangement(len(clips), seed)
    need = set(mine) | ({perm[i] for i in mine} if baseline and perm else set())
    audio = {j: read_audio(clips[j].path) for j in need}
    texts = {i: preds[i].text for i in mine}
    value = clap_scores(ev, clap, audio, texts, {i: i for i in mine})
    base = None
    if baseline:
        base = {"values": None, "description": "shuffled pairs need at least 2 items"} if perm is None else {
            "values": {"clap_score": clap_scores(ev, clap, audio, texts, {i: perm[i] for i in mine})},
            "description": "the generated captions scored against shuffled clips (another item's music)"}
    reference = {"values": {"clap_score": clap_scores(ev, clap, audio, {i: clips[i].caption for i in mine},
                                                      {i: i for i in mine})},
                 "description": "the clips scored against their own MusicCaps captions"}
    rows = [Row().add("music", clips[i].path, "audio").add("generated caption", preds[i].text)
            .add("reference caption", clips[i].caption) for i in sample_rows(len(clips), report_samples)]
    return ev.finish("clap_score", {"clap_score": value}, len(clips), sum(p.empty for p in preds), clap.description,
                     base, rows, reference=reference)
