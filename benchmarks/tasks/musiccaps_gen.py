"""Text-to-music on MusicCaps captions, scored with the CLAP score between the generated music and its caption (the
paper: 0.14; top-p 1.0 with repetition penalty 1.15, the "paper/music" preset).

Baseline (same metric, same run): the generated music scored against shuffled captions (another item's caption).
Reference: the real clips against their captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anygpt.data.templates import TEXT2X_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.tasks.musiccaps_caption import clap_scores, read_clips
from benchmarks.tasks.runner import Evaluation, Row, TaskArgs, data_root, derangement, read_audio, sample_rows

TASK = "musiccaps-gen"


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = None, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None,
        judge_options: dict[str, Any] | None = None, seed: int = 0, settings: str = "paper",
        generation: dict[str, Any] | None = None, template: str = "pretrain", baseline: bool = True,
        report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False, compile: bool | None = None, audio_dir: Path | None = None,
        split: str = "test", instruction: str = TEXT2X_INSTRUCTIONS["music"][0]) -> dict[str, Any]:
    """Generate music for MusicCaps captions and score CLAP(generated music, caption).

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: a root holding musiccaps/musiccaps.csv (or the csv itself); default: the demo corpus.
        limit: evaluate the first N captions only.
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/musiccaps-gen).
        judge: CLAP judge: a tiny CLAP folder, or a laion_clap checkpoint with judge_options {"roberta": DIR,
            "amodel": "HTSAT-base"}; default: the tiny CLAP shipped with anygpt.
        judge_options: extra options for the judge.
        seed: seed for sampling and the baseline.
        settings: decoding preset family ("paper": top-p 1.0, repetition penalty 1.15).
        generation: overrides of the decoding preset, e.g. {"max_new_tokens": 500}.
        template: "pretrain" or "chat".
        baseline: also score shuffled (music, caption) pairs.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        compile: torch.compile the decode step (true/false); default: on CUDA only.
        audio_dir: folder of the real clips (default: audio/ beside the csv); they appear in the report and the
            reference score.
        split: the csv's split column value, or "test" = is_audioset_eval for the original csv.
        instruction: the text-to-music instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, judge_options, seed,
                    settings, generation, template, baseline, report_samples, tokenizers, trust_code, compile)
    clips = read_clips(root, split, audio_dir, limit)
    ev = Evaluation(args, needs=["music"], output="music")
    keys = [c.ytid for c in clips]
    captions = [c.caption for c in clips]

    def make(indices: list[int], generator):
        prompts = [ev.prompt(instruction, [captions[i]], "text2x") for i in indices]
        return ev.media_predictions([keys[i] for i in indices], prompts, generator)

    preds = ev.predict(keys, make, "text-to-music")
    clap = load_judge("clap", judge, device=ev.fabric.device, **(judge_options or {}))
    mine = ev.shard(len(clips))
    generated = {i: read_audio(preds[i].path) for i in mine if not preds[i].empty}
    texts = {i: captions[i] for i in mine}
    value = clap_scores(ev, clap, generated, texts, {i: i for i in mine})
    n_empty = sum(p.empty for p in preds)
    notes = [f"{n_empty} caption(s) got no decodable music; the CLAP score averages the others"] if n_empty else []
    base, perm = None, derangement(len(clips), seed)
    if baseline:
        base = {"values": None, "description": "shuffled pairs need at least 2 items"} if perm is None else {
            # caption perm[i] with music i: pair item i's music with another item's caption
            "values": {"clap_score": clap_scores(ev, clap, generated, {i: captions[perm[i]] for i in mine},
                                                 {i: i for i in mine})},
            "description": "the generated music scored against shuffled captions (another item's)"}
    real = {i: read_audio(clips[i].path) for i in mine}
    reference = {"values": {"clap_score": clap_scores(ev, clap, real, texts, {i: i for i in mine})},
                 "description": "the real clips scored against their own captions"}
    rows = [Row().add("caption", captions[i]).add("generated music", preds[i].path, "audio")
            .add("real clip", clips[i].path, "audio").add("note", preds[i].note or "")
            for i in sample_rows(len(clips), report_samples)]
    return ev.finish("clap_score", {"clap_score": value}, len(clips), n_empty, clap.description, base, rows, notes,
                     reference)
