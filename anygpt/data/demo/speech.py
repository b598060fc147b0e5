"""Speech synthesis with espeak-ng (the `espeakng-loader` wheel) through ctypes, with phoneme timing.

espeak-ng keeps global state, so each worker process owns one engine (created on first use). Its native rate is
22.05 kHz; audio is resampled with a polyphase filter (scipy) to 16 kHz (LibriSpeech layout) or 48 kHz (VCTK layout).
Each utterance also yields its phoneme sequence with start times (espeak's PHONEME/WORD events), kept as a json
sidecar: a cheap alignment for teaching a tiny speech tokenizer semantic units.
"""

from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

ESPEAK_RATE = 22050
MIN_SECONDS, MAX_SECONDS = 1.0, 4.0

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


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


# Speakers of the LibriSpeech-style tree: all appear in train; dev/test hold out utterances (new sentences).
LIBRISPEECH_VOICES = (
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
# Speakers of the VCTK-style tree, none of them in the LibriSpeech tree (zero-shot TTS evaluation needs unseen voices).
VCTK_VOICES = (
    Voice("p225", "en-gb-x-rp+f2", 64, 55, 165, "F", "English"),
    Voice("p226", "en+m6", 40, 45, 170, "M", "English"),
    Voice("p227", "en-gb-scotland+f4", 60, 50, 160, "F", "Scottish"),
    Voice("p228", "en-us+m2", 47, 60, 175, "M", "American"),
    Voice("p229", "en-029+m3", 50, 50, 170, "M", "Caribbean"),
    Voice("p230", "en-us-nyc+f5", 68, 55, 175, "F", "American"),
    Voice("p231", "en-gb-x-gbclan+f1", 57, 45, 165, "F", "English"),
    Voice("p232", "en+m1", 36, 40, 160, "M", "English"),
)
# The assistant's voice in spoken dialogues (one consistent voice, like AnyInstruct's synthesized answers).
ASSISTANT_VOICE = Voice("assistant", "en-us+f3", 60, 55, 175, "F", "American")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """Synchronous espeak-ng synthesis returning (int16 samples at 22.05 kHz, phoneme events, word events)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise ImportError("the demo corpus needs the `espeakng-loader` wheel: pip install espeakng-loader") from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected sample rate {ESPEAK_RATE}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: espeak calls it from C
        self.lib.espeak_SetSynthCallback(self._callback)
        self._voice: Voice | None = None

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                self._events.append(
                    (e.type, e.sample, e.text_position, e.length, e.id.string.decode("utf-8", "replace"))
                )
            elif e.type == _EVENT_WORD:
                self._events.append((e.type, e.sample, e.text_position, e.length, ""))
            i += 1
        return 0

    def set_voice(self, voice: Voice, rate: int | None = None) -> None:
        if self._voice is None or voice.name != self._voice.name:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice.name!r} (see espeak-ng-data/voices and lang/)")
        self.lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate or voice.rate), 0)
        self._voice = voice

    def synth(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} on {text!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events

    def ipa(self, text: str) -> str:
        """The IPA transcription of ``text`` in the current voice."""
        ptr = ctypes.c_char_p(text.encode("utf-8"))
        parts = []
        while ptr.value:  # espeak returns one clause per call and advances the pointer
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, 0x02)
            if out:
                parts.append(out.decode("utf-8", "replace").strip())
        return " ".join(p for p in parts if p)


_ENGINE: Espeak | None = None


def engine() -> Espeak:
    """The process's espeak engine (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


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
    tts = engine()
    rate = int(item.voice.rate * (1 + rng.uniform(-item.rate_jitter, item.rate_jitter)))
    for _ in range(4):  # speak faster until the utterance fits MAX_SECONDS (trimmed)
        tts.set_voice(item.voice, rate)
        audio, events = tts.synth(item.text)
        start, end = _speech_bounds(audio)
        seconds = (end - start) / ESPEAK_RATE
        if seconds <= MAX_SECONDS - 0.05 or rate >= 440:
            break
        rate = min(450, int(rate * seconds / (MAX_SECONDS - 0.2)) + 5)
    ipa = tts.ipa(item.text)
    audio = audio[start:end].astype(np.float32) / 32768.0
    pad = max(0, int(MIN_SECONDS * ESPEAK_RATE) - len(audio))
    audio = np.pad(audio, (pad // 2, pad - pad // 2))
    offset = start - pad // 2  # sample index in espeak's output where the written audio begins
    wav = resample(audio, ESPEAK_RATE, item.sample_rate)
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak > 0.99:
        wav *= 0.99 / peak
    Path(item.path).parent.mkdir(parents=True, exist_ok=True)
    if item.path.endswith(".flac"):
        sf.write(item.path, wav, item.sample_rate, subtype="PCM_16", format="FLAC")
    else:
        sf.write(item.path, wav, item.sample_rate, subtype="PCM_16", format="WAV")
    phonemes, words = [], []
    for kind, sample, pos, length, name in events:
        t = round(max(0.0, (sample - offset) / ESPEAK_RATE), 3)
        if kind == _EVENT_PHONEME and name:
            phonemes.append([name, t])
        elif kind == _EVENT_WORD and length > 0:
            words.append([item.text[pos - 1 : pos - 1 + length], t])
    return {
        "index": item.index,
        "duration": round(len(wav) / item.sample_rate, 4),
        "rate_wpm": rate,
        "voice": asdict(item.voice),
        "ipa": ipa,
        "phonemes": phonemes,
        "words": words,
    }


def _speech_bounds(audio: np.ndarray, threshold: int = 200, margin: float = 0.08) -> tuple[int, int]:
    """First and last loud sample, widened by ``margin`` seconds of silence on each side."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > threshold)
    if len(loud) == 0:
        return 0, len(audio)
    m = int(margin * ESPEAK_RATE)
    return max(0, int(loud[0]) - m), min(len(audio), int(loud[-1]) + m)
