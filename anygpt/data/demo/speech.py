"""Demo speech: espeak-ng voices as speakers, duration control, resampling, phoneme timing.

Synthesis itself is in :mod:`anygpt.data.demo.espeak` (22.05 kHz, reproducible). Audio is resampled with a polyphase
filter (scipy) to 16 kHz (LibriSpeech layout) or 48 kHz (VCTK layout). Each utterance also yields its phoneme sequence
with start times (espeak's PHONEME/WORD events), kept as a json sidecar: a cheap alignment for teaching a tiny speech
tokenizer semantic units.
"""

from __future__ import annotations

import multiprocessing.util
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from anygpt.data.demo.espeak import ESPEAK_RATE, EVENT_PHONEME, EVENT_WORD, Client

MIN_SECONDS, MAX_SECONDS = 1.0, 4.0


@dataclass(frozen=True)
class Voice:
    """An espeak voice (language + variant) with prosody settings; one voice = one speaker of the corpus."""

    speaker: str  # corpus speaker id ("103" in the LibriSpeech tree, "p225" in the VCTK tree)
    name: str  # espeak voice name with variant, e.g. "en-us+m3"
    pitch: int = 50  # 0..99
    pitch_range: int = 50  # 0..99
    rate: int = 170  # words per minute
    sex: str = "M"
    accent: str = "American"


# Speakers of the LibriSpeech-style tree. As in LibriSpeech, the splits have disjoint speakers: the voices of dev-clean
# and test-clean are never heard in training. dev-clean recombines the espeak variants of train with other accents;
# test-clean (and two VCTK speakers) use variants held out of train and dev altogether (Mike, aunty, Gene, linda, m6,
# max) and one held-out accent (Welsh English), so the test voices are new timbres, not new mixes of known ones.
TRAIN_VOICES = (
    Voice("103", "en-us+m1", 42, 45, 165, "M", "American"),
    Voice("118", "en-us+f2", 62, 60, 170, "F", "American"),
    Voice("163", "en+m3", 48, 40, 160, "M", "British"),
    Voice("211", "en+f1", 58, 55, 175, "F", "British"),
    Voice("249", "en-gb-scotland+m2", 44, 50, 165, "M", "Scottish"),
    Voice("302", "en-gb-x-rp+f3", 66, 50, 160, "F", "British"),
    Voice("378", "en-us-nyc+m5", 38, 35, 180, "M", "American"),
    Voice("405", "en-029+f4", 60, 65, 165, "F", "Caribbean"),
    Voice("446", "en-us+m7", 52, 55, 185, "M", "American"),
    Voice("510", "en+f5", 70, 45, 170, "F", "British"),
    Voice("587", "en-gb-x-gbclan+m4", 46, 60, 170, "M", "British"),
    Voice("652", "en-us+f1", 56, 40, 180, "F", "American"),
)
DEV_VOICES = (
    Voice("1272", "en-us+m3", 46, 45, 170, "M", "American"),
    Voice("1462", "en-gb-scotland+f3", 64, 55, 165, "F", "Scottish"),
    Voice("2277", "en-gb-x-rp+m4", 45, 50, 175, "M", "British"),
)
TEST_VOICES = (
    Voice("1089", "en-us+Mike", 45, 50, 170, "M", "American"),
    Voice("121", "en-us+aunty", 60, 50, 165, "F", "American"),
    Voice("1188", "en-gb-x-rp+Gene", 48, 55, 170, "M", "British"),
    Voice("1221", "en-gb-x-gbcwmd+linda", 62, 45, 170, "F", "Welsh"),
)
LIBRISPEECH_VOICES = {"train": TRAIN_VOICES, "val": DEV_VOICES, "test": TEST_VOICES}
# Speakers of the VCTK-style tree, none of them in the LibriSpeech tree (zero-shot TTS evaluation needs unseen voices).
VCTK_VOICES = (
    Voice("p225", "en-gb-x-rp+f2", 64, 55, 165, "F", "English"),
    Voice("p226", "en+m6", 40, 45, 170, "M", "English"),
    Voice("p227", "en-gb-scotland+f4", 60, 50, 160, "F", "Scottish"),
    Voice("p228", "en-us+max", 47, 60, 175, "M", "American"),
    Voice("p229", "en-029+m3", 50, 50, 170, "M", "Caribbean"),
    Voice("p230", "en-us-nyc+f5", 68, 55, 175, "F", "American"),
    Voice("p231", "en-gb-x-gbclan+f1", 57, 45, 165, "F", "English"),
    Voice("p232", "en+m1", 36, 40, 160, "M", "English"),
)
# The assistant's voice in spoken dialogues (one consistent voice, like AnyInstruct's synthesized answers).
ASSISTANT_VOICE = Voice("assistant", "en-us+f3", 60, 55, 175, "F", "American")


_CLIENT: Client | None = None


def client() -> Client:
    """This process's connection to the espeak-ng server (started on first use)."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = Client()
        # in a multiprocessing worker, stop (and reap) the server when the worker exits normally
        multiprocessing.util.Finalize(_CLIENT, close_client, exitpriority=10)
    return _CLIENT


def close_client() -> None:
    """Stop this process's espeak-ng server (a later synthesis starts a new one)."""
    global _CLIENT
    if _CLIENT is not None:
        _CLIENT.close()
        _CLIENT = None


def speak(voice: Voice, text: str, rate: int | None = None, seed: int = 0) -> tuple[np.ndarray, list[list], str]:
    """(int16 samples at 22.05 kHz, events [type, sample, text position, length, phoneme], IPA) for ``text``."""
    reply = client().speak(text, voice.name, voice.pitch, voice.pitch_range, int(rate or voice.rate), seed)
    return np.frombuffer(reply["audio"], dtype="<i2"), reply["events"], reply["ipa"]


def resample(audio: np.ndarray, orig: int, target: int) -> np.ndarray:
    """Polyphase (Kaiser-windowed FIR) resampling; float32 in [-1, 1]."""
    if orig == target:
        return audio.astype(np.float32)
    ratio = Fraction(target, orig)
    return resample_poly(audio.astype(np.float32), ratio.numerator, ratio.denominator).astype(np.float32)


@dataclass
class SpeechItem:
    """One utterance to synthesize: seed/index make it reproducible regardless of which worker runs it."""

    seed: int
    index: int
    text: str
    voice: Voice
    path: str
    sample_rate: int = 16000
    rate_jitter: float = 0.08  # relative random change of the speaking rate per utterance


def synthesize(item: SpeechItem) -> dict:
    """Worker: synthesize, trim, fit the duration into [1, 4] s, resample, write; returns the alignment."""
    rng = np.random.default_rng([item.seed, 2, item.index])
    espeak_seed = int(rng.integers(2**31))
    rate = int(item.voice.rate * (1 + rng.uniform(-item.rate_jitter, item.rate_jitter)))
    for _ in range(4):  # speak faster until the utterance fits MAX_SECONDS (trimmed)
        audio, events, ipa = speak(item.voice, item.text, rate, espeak_seed)
        start, end = _speech_bounds(audio)
        seconds = (end - start) / ESPEAK_RATE
        if seconds <= MAX_SECONDS - 0.05 or rate >= 440:
            break
        rate = min(450, int(rate * seconds / (MAX_SECONDS - 0.2)) + 5)
    audio = audio[start:end].astype(np.float32) / 32768.0
    pad = max(0, int(MIN_SECONDS * ESPEAK_RATE) - len(audio))
    audio = np.pad(audio, (pad // 2, pad - pad // 2))
    offset = start - pad // 2  # sample index in espeak's output where the written audio begins
    wav = resample(audio, ESPEAK_RATE, item.sample_rate)
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak > 0.99:
        wav *= 0.99 / peak
    Path(item.path).parent.mkdir(parents=True, exist_ok=True)
    audio_format = "FLAC" if item.path.endswith(".flac") else "WAV"
    sf.write(item.path, wav, item.sample_rate, subtype="PCM_16", format=audio_format)
    phonemes, words = [], []
    duration = len(wav) / item.sample_rate
    for kind, sample, pos, length, name in events:
        t = round(max(0.0, (sample - offset) / ESPEAK_RATE), 3)
        if t >= duration:  # events of the trimmed trailing silence
            continue
        if kind == EVENT_PHONEME and name:
            phonemes.append([name, t])
        elif kind == EVENT_WORD and length > 0:
            words.append([item.text[pos - 1 : pos - 1 + length], t])
    return {"index": item.index, "duration": round(duration, 4), "rate_wpm": rate, "voice": asdict(item.voice),
            "ipa": ipa, "phonemes": phonemes, "words": words}


def _speech_bounds(audio: np.ndarray, threshold: int = 200, margin: float = 0.08) -> tuple[int, int]:
    """First and last loud sample, widened by ``margin`` seconds of silence on each side."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > threshold)
    if len(loud) == 0:
        return 0, len(audio)
    m = int(margin * ESPEAK_RATE)
    return max(0, int(loud[0]) - m), min(len(audio), int(loud[-1]) + m)
