"""Zero-shot text-to-speech on VCTK: the model speaks each sentence in the voice of a 3 s prompt of the same speaker
(the prompt goes to the speech decoder, SoundStorm, as ``voice``). Scored by WER of an ASR judge's transcript of the
generated speech (the paper: Whisper-medium, 8.5) and by speaker similarity between the generated speech and the
prompt (the paper: WavLM-TDNN, 0.77); top-p 0.7.

Baselines (both metrics, same run, same redraws), each something a model must beat to show it speaks and clones:
- ``silence``: no speech (as long as the real recording);
- ``prompt``: the voice prompt itself replayed (right voice, wrong words: similarity 1 by construction);
- ``other-speaker``: a real recording of *another speaker* (the same sentence where the corpus has one, else another
  sentence): right kind of audio, wrong voice. Beating it on speaker similarity is what shows cloning.
Reference (ceiling): the real recording of the sentence by the prompt's speaker (the judge's WER on real speech, and
the similarity of two real utterances of one speaker). Speech that failed to decode counts as an empty transcript and
the worst similarity, -1.

``--protocol seed-tts-eval`` scores the way seed-tts-eval does, to compare with other TTS papers: the ASR judge must be
a Whisper folder (Whisper-large-v3) and the speaker encoder a WavLM x-vector folder (transformers' WavLMForXVector;
seed-tts-eval itself uses UniSpeech's WavLM-large + ECAPA-TDNN, not a transformers model), and WER is the mean of
per-utterance WERs after the protocol's normalization (`benchmarks.metrics.seed_tts`).

``--mos sig_bak_ovr.onnx`` adds DNSMOS P.835 OVRL (`benchmarks.metrics.dnsmos`, higher is better, 1-5) for the model,
every baseline and the reference; speech that failed to decode scores the bottom of the scale, 1.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anygpt.data.sources.base import DatasetError
from anygpt.data.sources.speech import Utterance
from anygpt.data.sources.vctk import read_vctk
from anygpt.media import read_audio_with_rate
from anygpt.prompts import TEXT2X_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.judges.asr import WhisperAsr
from benchmarks.metrics import ResemblyzerEncoder, SpeakerSimilarity, WavLMSpeakerEncoder, WordErrorRate
from benchmarks.metrics.dnsmos import WORST_MOS, Dnsmos
from benchmarks.metrics.seed_tts import NORMALIZATION, PROTOCOLS, utterance_wers
from benchmarks.stats import mean_of, ratio_of
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, locate, option
from benchmarks.tasks.scoring import WORST_COSINE

SYSTEMS = ("model", "silence", "prompt", "other-speaker", "reference")


@dataclass
class TtsItem:
    """A sentence to speak (``target``: its real recording), the voice prompt, and another speaker's recording."""

    target: Utterance
    voice: Utterance
    other: Utterance | None


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


def other_speaker_recording(target: Utterance, by_text: Mapping[str, list[Utterance]],
                            others: Sequence[Utterance], rng: random.Random) -> Utterance | None:
    """Another speaker's recording of the same sentence if the corpus has one, else a random other speaker's."""
    same = [u for u in by_text.get(_text_key(target.text), []) if u.speaker != target.speaker]
    if same:
        return rng.choice(same)
    pool = [u for u in others if u.speaker != target.speaker]
    return rng.choice(pool) if pool else None


def _text_key(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


@dataclass
class VctkTts(Task):
    """Speak VCTK sentences in the prompt speaker's voice; score WER (ASR judge) and speaker similarity.

    Args:
        speaker_encoder: "resemblyzer" (offline GE2E) or a local WavLM x-vector folder (the paper's kind).
        prompt_seconds: length of the voice prompt cut from another utterance of the same speaker.
        instruction: the text-to-speech instruction.
        protocol: "anygpt" (corpus WER after Whisper's English normalizer) or "seed-tts-eval" (mean per-utterance
            WER after that protocol's normalization; needs --judge a Whisper folder and --speaker_encoder a WavLM
            x-vector folder).
        mos: DNS-Challenge's DNSMOS P.835 model (sig_bak_ovr.onnx): also score DNSMOS OVRL.
    """

    name = "vctk-tts"
    needs = ("speech",)
    output = "speech"
    metric = "wer"
    higher_is_better = {"wer": False, "speaker_similarity": True, "dnsmos_ovrl": True}

    speaker_encoder: str = option("resemblyzer", cache=False)
    prompt_seconds: float = option(3.0)
    instruction: str = option(TEXT2X_INSTRUCTIONS["speech"][0])
    protocol: str = option("anygpt", cache=False)
    mos: Path | None = option(None, cache=False)

    def check_options(self) -> None:
        super().check_options()
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {PROTOCOLS}, got {self.protocol!r}")

    def read_items(self, root: Path) -> list[TtsItem]:
        vctk = locate(root, ("vctk", "VCTK", "VCTK-Corpus"), "VCTK folder (txt/)", inside="txt")
        every = list(read_vctk(vctk))
        if not every:
            raise DatasetError(f"{vctk} holds no VCTK utterances")
        by_speaker: dict[str, list[Utterance]] = {}
        by_text: dict[str, list[Utterance]] = {}
        for u in every:
            by_speaker.setdefault(u.speaker, []).append(u)
            by_text.setdefault(_text_key(u.text), []).append(u)
        rng = random.Random(self.seed)
        items = []
        for target in interleave_speakers(every)[: self.limit]:
            same = by_speaker[target.speaker]  # the voice prompt: the speaker's next utterance (itself if only one)
            voice = same[(same.index(target) + 1) % len(same)]
            items.append(TtsItem(target, voice, other_speaker_recording(target, by_text, every, rng)))
        return items

    def keys(self, items) -> list[str]:
        return [it.target.utt_id for it in items]

    def _prompt_audio(self, item: TtsItem) -> torch.Tensor:
        tok = self.model.tokenizers["speech"]
        wav = tok.read(item.voice.path)  # mono at the tokenizer's rate (resampled from VCTK's 48 kHz)
        return wav[..., : int(self.prompt_seconds * tok.codec.sample_rate)]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [it.target.text], "text2x") for it in items]
        return self.media_predictions(keys, prompts, generator, [self._prompt_audio(it) for it in items])

    def score(self, items, preds) -> Scored | None:
        seed = self.protocol == "seed-tts-eval"
        if seed and (self.judge is None or self.speaker_encoder == "resemblyzer"):
            raise ValueError("--protocol seed-tts-eval needs --judge <a local whisper-large-v3 folder> and "
                             "--speaker_encoder <a local WavLM x-vector folder>")
        asr = load_judge("asr", self.judge, device=self.device)
        if seed and not isinstance(asr, WhisperAsr):
            raise ValueError(f"--protocol seed-tts-eval: --judge {self.judge} is not a Whisper folder")
        encoder = (ResemblyzerEncoder() if self.speaker_encoder == "resemblyzer"
                   else WavLMSpeakerEncoder(self.speaker_encoder))
        similarity, wer = SpeakerSimilarity(encoder), WordErrorRate()
        dnsmos = Dnsmos(self.mos) if self.mos is not None else None
        n, mine = len(items), self.shard(len(items))
        local: dict[int, dict[str, Any]] = {}
        for start in range(0, len(mine), self.batch_size):  # audio is read one batch at a time
            batch = mine[start:start + self.batch_size]
            speech = {name: [] for name in SYSTEMS}
            for i in batch:
                item = items[i]
                prompt, rate = read_audio_with_rate(item.voice.path)
                prompt = prompt[..., : int(self.prompt_seconds * rate)]  # what the model heard
                real = read_audio_with_rate(item.target.path)
                speech["model"].append(read_audio_with_rate(preds[i].path) if not preds[i].empty else None)
                speech["silence"].append((torch.zeros(1, real[0].shape[-1] * 16000 // real[1]), 16000))
                speech["prompt"].append((prompt, rate))
                speech["other-speaker"].append(read_audio_with_rate(item.other.path) if item.other else None)
                speech["reference"].append(real)
            prompt_emb = [similarity.embed([w], r)[0] for w, r in speech["prompt"]]
            for name, wavs in speech.items():
                said = _transcribe(asr, wavs)
                texts = [items[i].target.text for i in batch]
                if seed:  # per-utterance WER (its mean is the protocol's score)
                    errors, words = utterance_wers(said, texts), [1] * len(batch)
                else:
                    errors, words = wer.item_errors(said, texts)
                for k, i in enumerate(batch):
                    if wavs[k] is None:
                        cos = WORST_COSINE
                    else:
                        emb = prompt_emb[k] if name == "prompt" else similarity.embed([wavs[k][0]], wavs[k][1])[0]
                        cos = float(torch.nn.functional.cosine_similarity(emb, prompt_emb[k], dim=0))
                    mos = (WORST_MOS if wavs[k] is None else dnsmos.score(*wavs[k])["ovrl"]) if dnsmos else None
                    local.setdefault(i, {})[name] = (errors[k], words[k], cos, said[k], mos)
        gathered = self.gather(local, n)
        if not self.is_main:
            return None

        def system(name: str) -> dict[str, Any]:
            e, w, c = (np.array([g[name][k] for g in gathered], dtype=np.float64) for k in range(3))
            out = {"wer": mean_of(e) if seed else ratio_of(e, w), "speaker_similarity": mean_of(c)}
            if dnsmos is not None:
                out["dnsmos_ovrl"] = mean_of(np.array([g[name][4] for g in gathered], dtype=np.float64))
            return out

        notes = [f"protocol {NORMALIZATION}"] if seed else []
        if any(it.voice is it.target for it in items):
            notes.append("some speakers have a single utterance: their voice prompt is cut from the target utterance")
        baselines = {}
        if self.baseline:
            baselines["silence"] = System("no speech (silence as long as the real recording)", system("silence"))
            baselines["prompt"] = System("the voice prompt itself replayed (the right voice saying other words)",
                                         system("prompt"))
            if all(it.other is not None for it in items):
                same = sum(_text_key(it.other.text) == _text_key(it.target.text) for it in items)
                baselines["other-speaker"] = System(
                    f"a real recording of another speaker ({same} of {n} of the same sentence, the rest of another "
                    "sentence): real speech in the wrong voice", system("other-speaker"))
            else:
                notes.append("no other-speaker baseline: the corpus has a single speaker")
        extra = {i: {"judge transcript": g["model"][3]} for i, g in enumerate(gathered)}
        return Scored(model=system("model"), baselines=baselines,
                      reference=System("the real recording of each sentence by the prompt's speaker",
                                       system("reference")),
                      judge=f"{asr.description}; speaker encoder: {self.speaker_encoder}"
                            + ("; protocol: seed-tts-eval" if seed else "")
                            + (f"; MOS: {dnsmos.description}" if dnsmos else ""),
                      failed_as="an empty transcript and the worst speaker similarity, -1"
                                + (", DNSMOS 1 (the bottom of the scale)" if dnsmos else ""),
                      notes=notes, extra=extra)

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return [Row().text("text", items[i].target.text).media("voice prompt", items[i].voice.path, "speech")
                .media("generated speech", preds[i].path, "speech")
                .text("judge transcript", extra[i]["judge transcript"])
                .media("real recording (reference)", items[i].target.path, "speech")
                .media("another speaker (baseline)", items[i].other.path if items[i].other else None, "speech")
                .text("note", preds[i].note or "") for i in indices]


def _transcribe(asr: Any, wavs: Sequence[tuple[torch.Tensor, int] | None]) -> list[str]:
    """The judge's transcript of each waveform (one call per sample rate); "" for a missing one."""
    out = [""] * len(wavs)
    for rate in sorted({w[1] for w in wavs if w is not None}):
        idx = [k for k, w in enumerate(wavs) if w is not None and w[1] == rate]
        for k, text in zip(idx, asr.transcribe([wavs[k][0][0] for k in idx], rate), strict=True):
            out[k] = text
    return out

