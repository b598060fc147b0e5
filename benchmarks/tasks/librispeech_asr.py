"""Speech recognition on LibriSpeech test-clean, scored with WER after Whisper's English normalization (the paper:
8.5, beam search 5 as text).

Baseline (same metric, same run): each utterance "recognized" as the reference transcript of another utterance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anygpt.data.readers import DatasetError, read_librispeech
from anygpt.data.templates import X2TEXT_INSTRUCTIONS
from anygpt.generation.pipeline import Media
from benchmarks.metrics import WordErrorRate
from benchmarks.tasks.runner import (
    Evaluation,
    Prediction,
    Row,
    TaskArgs,
    compute,
    data_root,
    derangement,
    locate,
    sample_rows,
)

TASK = "librispeech-asr"


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = None, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None, seed: int = 0,
        settings: str = "paper", generation: dict[str, Any] | None = None, template: str = "pretrain",
        baseline: bool = True, report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False, compile: bool | None = None,
        split: str = "test-clean", instruction: str = X2TEXT_INSTRUCTIONS["speech"][0]) -> dict[str, Any]:
    """Transcribe LibriSpeech utterances with the model and score the corpus WER.

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: the LibriSpeech folder holding test-clean/ (or a root holding librispeech/); default: the demo corpus.
        limit: evaluate the first N utterances only.
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/librispeech-asr).
        judge: unused (the model itself transcribes); accepted for a uniform command line.
        seed: seed for sampling and the baseline.
        settings: decoding preset family ("paper": beam 5).
        generation: overrides of the decoding preset.
        template: "pretrain" or "chat".
        baseline: also score the transcripts of other utterances.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        compile: torch.compile the decode step (true/false); default: on CUDA only.
        split: LibriSpeech subset.
        instruction: the transcription instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, None, seed, settings,
                    generation, template, baseline, report_samples, tokenizers, trust_code, compile)
    speech_root = locate(root, ("librispeech", "LibriSpeech"), f"LibriSpeech {split}/ folder", inside=split)
    items = list(read_librispeech(speech_root, split, with_alignment=False))[:limit]
    if not items:
        raise DatasetError(f"{speech_root / split} holds no utterances")
    ev = Evaluation(args, needs=["speech"], output="text")
    keys = [u.utt_id for u in items]

    def make(indices: list[int], generator) -> list[Prediction]:
        prompts = [ev.prompt(instruction, [Media("speech", items[i].path)], "x2text") for i in indices]
        return ev.text_predictions([keys[i] for i in indices], prompts, generator)

    preds = ev.predict(keys, make, "transcribing")
    mine = ev.shard(len(items))
    wer = ev.metric(WordErrorRate())
    wer.update([preds[i].text for i in mine], [items[i].text for i in mine])
    value = compute(wer)
    base, perm = None, derangement(len(items), seed)
    if baseline:
        if perm is None:
            base = {"values": None, "description": "another utterance's transcript needs at least 2 items"}
        else:
            metric = ev.metric(WordErrorRate())
            metric.update([items[perm[i]].text for i in mine], [items[i].text for i in mine])
            base = {"values": {"wer": compute(metric)},
                    "description": "the reference transcript of another test utterance"}
    rows = [Row().add("speech", items[i].path, "audio").add("transcript", preds[i].text)
            .add("reference", items[i].text) for i in sample_rows(len(items), report_samples)]
    return ev.finish("wer", {"wer": value}, len(items), sum(p.empty for p in preds),
                     "none (the model transcribes; WER after Whisper English normalization)", base, rows)
