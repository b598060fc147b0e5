"""Zero-shot text-to-speech on VCTK: the model speaks each sentence in the voice of a 3 s prompt of the same speaker
(the prompt goes to the speech decoder, SoundStorm, as ``voice``). Scored by WER of an ASR judge's transcript of the
generated speech (the paper: Whisper-medium, 8.5) and by speaker similarity between the generated speech and the
prompt (the paper: WavLM-TDNN, 0.77); top-p 0.7.

Baseline (same metrics, same run): another item's generated speech (another sentence, preferably another speaker)
scored against this item's text and prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from anygpt.data.readers import DatasetError, read_vctk
from anygpt.data.templates import TEXT2X_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.metrics import ResemblyzerEncoder, SpeakerSimilarity, WavLMSpeakerEncoder, WordErrorRate
from benchmarks.tasks.runner import (
    Evaluation,
    Prediction,
    Row,
    TaskArgs,
    compute,
    data_root,
    locate,
    read_audio,
    sample_rows,
)

TASK = "vctk-tts"


def interleave_speakers(items: list) -> list:
    """Round-robin over speakers, so that the first N items (--limit) cover as many speakers as possible."""
    by_speaker: dict[str, list] = {}
    for it in items:
        by_speaker.setdefault(it.speaker, []).append(it)
    queues = list(by_speaker.values())
    out = []
    for k in range(max(len(q) for q in queues)):
        out += [q[k] for q in queues if k < len(q)]
    return out


def other_speaker_pairing(speakers: list[str]) -> list[int] | None:
    """For each item another item: the next one with a different speaker if any, else simply the next one."""
    n = len(speakers)
    if n < 2:
        return None
    out = []
    for i in range(n):
        j = next((j % n for j in range(i + 1, i + n) if speakers[j % n] != speakers[i]), (i + 1) % n)
        out.append(j)
    return out


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = None, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None, seed: int = 0,
        settings: str = "paper", generation: dict[str, Any] | None = None, template: str = "pretrain",
        baseline: bool = True, report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False,
        speaker_encoder: str = "resemblyzer", prompt_seconds: float = 3.0,
        instruction: str = TEXT2X_INSTRUCTIONS["speech"][0]) -> dict[str, Any]:
    """Speak VCTK sentences in the prompt speaker's voice; score WER (ASR judge) and speaker similarity.

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: the VCTK folder (txt/ + wav48/ or wav48_silence_trimmed/), or a root holding vctk/; default: the demo
            corpus.
        limit: evaluate N utterances (taken round-robin over speakers).
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/vctk-tts).
        judge: ASR judge: a CTC judge folder or a transformers Whisper folder; default: the tiny CTC judge shipped
            with anygpt.
        seed: seed for sampling.
        settings: decoding preset family ("paper": top-p 0.7).
        generation: overrides of the decoding preset.
        template: "pretrain" or "chat".
        baseline: also score another item's speech against this item's text and voice.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        speaker_encoder: "resemblyzer" (offline GE2E) or a local WavLM x-vector folder (the paper's kind).
        prompt_seconds: length of the voice prompt cut from another utterance of the same speaker.
        instruction: the text-to-speech instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, None, seed, settings,
                    generation, template, baseline, report_samples, tokenizers, trust_code)
    vctk = locate(root, ("vctk", "VCTK", "VCTK-Corpus"), "VCTK folder (txt/)", inside="txt")
    every = list(read_vctk(vctk))
    if not every:
        raise DatasetError(f"{vctk} holds no VCTK utterances")
    by_speaker: dict[str, list] = {}
    for it in every:
        by_speaker.setdefault(it.speaker, []).append(it)
    items = interleave_speakers(every)[:limit]
    notes = []
    # the voice prompt: the next utterance of the same speaker (the utterance itself if the speaker has only one)
    voices = []
    for it in items:
        same = by_speaker[it.speaker]
        voices.append(same[(same.index(it) + 1) % len(same)])
    if any(p is it for p, it in zip(voices, items, strict=True)):
        notes.append("some speakers have a single utterance: their voice prompt is cut from the target utterance")
    ev = Evaluation(args, needs=["speech"], output="speech")
    tok = ev.model.tokenizers["speech"]
    keys = [it.utt_id for it in items]

    def voice(i: int) -> torch.Tensor:
        wav = tok.read(voices[i].path)  # mono at the tokenizer's rate (resampled from VCTK's 48 kHz)
        return wav[..., : int(prompt_seconds * tok.codec.sample_rate)]

    def make(indices: list[int], generator) -> list[Prediction]:
        prompts = [ev.prompt(instruction, [items[i].text], "text2x") for i in indices]
        return ev.media_predictions([keys[i] for i in indices], prompts, generator, [voice(i) for i in indices])

    preds = ev.predict(keys, make, "text-to-speech")
    asr = load_judge("asr", judge, device=ev.fabric.device)
    mine = ev.shard(len(items))
    audio = {i: read_audio(preds[i].path) for i in mine if not preds[i].empty}
    heard = sorted(audio)
    said = asr.transcribe([audio[i][0] for i in heard], audio[heard[0]][1]) if heard else []
    transcripts = {i: "" for i in mine} | dict(zip(heard, said, strict=True))
    prompt_audio = {i: read_audio(voices[i].path) for i in mine}
    for i in mine:  # the metric compares with what the model heard: the first prompt_seconds
        wav, rate = prompt_audio[i]
        prompt_audio[i] = (wav[: int(prompt_seconds * rate)], rate)
    encoder = ResemblyzerEncoder() if speaker_encoder == "resemblyzer" else WavLMSpeakerEncoder(speaker_encoder)

    def scores(speech: dict[int, tuple[torch.Tensor, int]], text_of: dict[int, str], pairs: dict[int, int]):
        wer = ev.metric(WordErrorRate())  # an empty generation counts as all deletions
        wer.update([text_of.get(pairs[i], "") for i in mine], [items[i].text for i in mine])
        sim = ev.metric(SpeakerSimilarity(encoder))
        for i in mine:
            if pairs[i] in speech:
                wav, rate = speech[pairs[i]]
                ref, ref_rate = prompt_audio[i]
                sim.update([wav], [_resampled(ref, ref_rate, rate)], rate)
        return {"wer": compute(wer), "speaker_similarity": compute(sim)}

    values = scores(audio, transcripts, {i: i for i in mine})
    all_transcripts = ev.gather(transcripts, len(items))
    n_empty = sum(p.empty for p in preds)
    if n_empty:
        notes.append(f"{n_empty} sentence(s) got no decodable speech: counted as empty transcripts in the WER and "
                     "left out of the speaker similarity")
    base = None
    if baseline:
        pairing = other_speaker_pairing([it.speaker for it in items])
        if pairing is None:
            base = {"values": None, "description": "another item's speech needs at least 2 items"}
        else:
            # another item's speech must be at hand on this rank: load it from the gathered prediction files
            need = {pairing[i] for i in mine if not preds[pairing[i]].empty}
            other_audio = {j: read_audio(preds[j].path) for j in need}
            other_text = {j: all_transcripts[j] for j in need}
            base = {"values": scores(other_audio, other_text, {i: pairing[i] for i in mine}),
                    "description": "another item's generated speech (another sentence, another speaker where "
                                   "possible) scored against this item's text and voice prompt"}
    rows = [Row().add("text", items[i].text).add("voice prompt", voices[i].path, "audio")
            .add("generated speech", preds[i].path, "audio").add("judge transcript", all_transcripts[i])
            .add("note", preds[i].note or "") for i in sample_rows(len(items), report_samples)]
    desc = f"{asr.description}; speaker encoder: {speaker_encoder}"
    return ev.finish("wer", values, len(items), n_empty, desc, base, rows, notes)


def _resampled(wav: torch.Tensor, rate: int, target: int) -> torch.Tensor:
    from benchmarks.metrics.speaker_similarity import resample

    return resample(wav, rate, target)
