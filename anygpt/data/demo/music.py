"""Procedural music: melody + accompaniment (+ bass, + drums) with synthesized timbres, and MusicCaps-like captions.

Every audible property a caption names (instrument, tempo, key, mode, dynamics, rhythm, accompaniment style, drums)
is a sampled parameter, so captions are true by construction. Timbres are wavetables (a bright and a dull harmonic
spectrum crossfaded by a decaying brightness curve, for plucked and struck sounds) or two-operator FM, with ADSR
envelopes; this is cheap enough to render 1000 clips of 5 s in well under a minute on one core.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 32000  # the music codec's rate (Encodec 32 kHz)
DURATION = 5.0
TABLE = 2048

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEY_NAMES = {"C#": "C sharp", "Eb": "E flat", "F#": "F sharp", "Ab": "A flat", "Bb": "B flat"}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 4), (0, 4, 0, 3)),
}
RHYTHMS = {"steady": (1.0, 1.0, 1.0, 1.0), "flowing": (0.5,) * 8, "dotted": (1.5, 0.5, 1.5, 0.5),
           "syncopated": (0.5, 1.0, 0.5, 1.0, 1.0), "lilting": (1.0, 0.5, 0.5, 1.0, 0.5, 0.5)}
RHYTHM_WORDS = {
    "steady": "a steady, even rhythm",
    "flowing": "flowing eighth notes",
    "dotted": "a dotted rhythm",
    "syncopated": "a syncopated rhythm",
    "lilting": "a lilting rhythm",
}
ACCOMPANIMENTS = ("block chords", "arpeggios", "sustained chords", "broken chords")
DRUMS = ("none", "rock beat", "dance beat", "half-time beat")
DRUM_WORDS = {
    "none": "There are no drums.",
    "rock beat": "A simple rock drum beat keeps time.",
    "dance beat": "A four-on-the-floor dance beat drives it forward.",
    "half-time beat": "A laid-back half-time drum groove sits underneath.",
}
DYNAMICS = {"soft": 0.25, "moderate": 0.5, "loud": 0.85}  # peak amplitude of the mix
DYNAMIC_WORDS = {"soft": ("soft", "gentle", "quiet"), "moderate": ("moderate", "mellow", "relaxed"),
                 "loud": ("loud", "powerful", "bold")}


def _table(amps: dict[int, float]) -> np.ndarray:
    phase = np.arange(TABLE) / TABLE
    wave = sum(a * np.sin(2 * np.pi * k * phase) for k, a in amps.items())
    return (wave / np.abs(wave).max()).astype(np.float32)


# name -> bright and dull spectra (crossfaded over ``fade`` s) or two-operator FM (ratio, index, index decay s), the
# ADSR envelope, vibrato depth, noise, chorus
INSTRUMENTS: dict[str, dict] = {
    "piano": dict(bright={k: 1 / k**1.3 for k in range(1, 12)}, dull={1: 1, 2: 0.3, 3: 0.1}, fade=0.35,
                  adsr=(0.004, 0.9, 0.0, 0.12)),
    "organ": dict(bright={1: 1, 2: 0.6, 3: 0.5, 4: 0.3, 6: 0.25, 8: 0.2}, adsr=(0.01, 0.05, 0.9, 0.06)),
    "flute": dict(bright={1: 1, 2: 0.25, 3: 0.12, 4: 0.04}, adsr=(0.06, 0.1, 0.8, 0.08), vibrato=0.004, noise=0.04),
    "violin": dict(bright={k: 1 / k for k in range(1, 14)}, adsr=(0.09, 0.1, 0.85, 0.12), vibrato=0.006),
    "clarinet": dict(bright={k: 1 / k for k in range(1, 14, 2)}, adsr=(0.03, 0.1, 0.85, 0.06), vibrato=0.002),
    "guitar": dict(bright={k: 1 / k for k in range(1, 16)}, dull={1: 1, 2: 0.4, 3: 0.15}, fade=0.12,
                   adsr=(0.002, 1.2, 0.0, 0.08)),
    "marimba": dict(bright={1: 1, 4: 0.5, 10: 0.15}, dull={1: 1}, fade=0.05, adsr=(0.002, 0.45, 0.0, 0.05)),
    "synth lead": dict(bright={k: 1 / k for k in range(1, 24)}, dull={k: 1 / k for k in range(1, 5)}, fade=0.6,
                       adsr=(0.01, 0.2, 0.7, 0.05), vibrato=0.003),
    "bell": dict(fm=(3.5, 2.5, 0.8), adsr=(0.002, 1.6, 0.0, 0.3)),
    "electric piano": dict(fm=(1.0, 1.8, 0.25), adsr=(0.003, 1.1, 0.0, 0.1)),
    "brass": dict(fm=(1.0, 3.0, None), adsr=(0.05, 0.1, 0.8, 0.08), vibrato=0.003),
    "strings": dict(bright={k: 1 / k for k in range(1, 12)}, dull={1: 1, 2: 0.5, 3: 0.3}, adsr=(0.25, 0.2, 0.9, 0.3),
                    vibrato=0.004, chorus=True),
    "synth pad": dict(bright={k: 1 / k**1.5 for k in range(1, 10)}, adsr=(0.3, 0.3, 0.8, 0.4), chorus=True),
    "bass": dict(bright={1: 1, 2: 0.35, 3: 0.1}, adsr=(0.005, 0.3, 0.6, 0.05)),
}
MELODY_INSTRUMENTS = ("piano", "organ", "flute", "violin", "clarinet", "guitar", "marimba", "synth lead", "bell",
                      "electric piano", "brass")
ACCOMPANIMENT_INSTRUMENTS = ("piano", "strings", "organ", "guitar", "synth pad", "electric piano")


@lru_cache(maxsize=512)
def _tables(name: str, max_harmonic: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Bright and dull wavetables of an instrument without harmonics above ``max_harmonic`` (no aliasing)."""
    spec = INSTRUMENTS[name]

    def limited(amps: dict[int, float]) -> dict[int, float]:
        return {k: a for k, a in amps.items() if k <= max_harmonic} or {1: 1.0}

    return _table(limited(spec["bright"])), _table(limited(spec["dull"])) if spec.get("dull") else None


def _max_harmonic(freq: float, sr: int) -> int:
    """Highest harmonic of ``freq`` that stays below 0.45 * sr (vibrato and chorus detune included)."""
    return max(1, int(0.45 * sr / (freq * 1.01)))


# Notes of one clip share a few durations, so time axes and envelopes are cached (read-only arrays).
@lru_cache(maxsize=64)
def _time(n: int, sr: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    t.flags.writeable = False
    return t


@lru_cache(maxsize=128)
def _decay(n: int, tau: float, sr: int) -> np.ndarray:
    out = np.exp(-_time(n, sr) / tau)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=128)
def _envelope(n: int, hold: int, adsr: tuple[float, float, float, float], sr: int) -> np.ndarray:
    """ADSR: attack to 1, exponential decay towards sustain while held, then exponential release."""
    a, d, s, r = adsr
    t = _time(n, sr)
    attack = min(n, int(np.ceil(a * sr)))
    env = np.empty(n, np.float32)
    env[:attack] = t[:attack] / max(a, 1e-4)
    env[attack:] = s + (1 - s) * np.exp(-(t[attack:] - a) / max(d, 1e-4))
    if hold < n:
        level = env[hold - 1] if hold > 0 else 0.0
        env[hold:] = level * _decay(n - hold, max(r, 1e-4), sr)
    env.flags.writeable = False
    return env


def render_note(name: str, freq: float, seconds: float, velocity: float, rng: np.random.Generator,
                sr: int = SAMPLE_RATE) -> np.ndarray:
    """One note of an instrument: ``seconds`` held, plus its release tail."""
    spec = INSTRUMENTS[name]
    hold = max(1, int(seconds * sr))
    n = hold + int(spec["adsr"][3] * 4 * sr)
    t = _time(n, sr)
    vib = spec.get("vibrato", 0.0)
    inst_freq = freq * (1 + vib * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 6.28))) if vib else freq
    phase = np.cumsum(np.broadcast_to(inst_freq, t.shape)) / sr if vib else freq * t
    env = _envelope(n, hold, spec["adsr"], sr)
    if "fm" in spec:
        ratio, index, index_decay = spec["fm"]
        idx = index * (_decay(n, index_decay, sr) if index_decay else env)  # brass: brighter when louder
        wave = np.sin(2 * np.pi * phase + idx * np.sin(2 * np.pi * ratio * phase))
    else:
        bright, dull = _tables(name, _max_harmonic(freq, sr))
        pos = ((phase % 1.0) * TABLE).astype(np.int64)
        wave = bright[pos]
        if dull is not None and spec.get("fade"):
            mix = _decay(n, spec["fade"], sr)
            wave = wave * mix + dull[pos] * (1 - mix)
        if spec.get("chorus"):  # a slightly detuned second voice thickens pads and string sections
            wave = 0.6 * wave + 0.4 * bright[((phase * 1.004 % 1.0) * TABLE).astype(np.int64)]
        if spec.get("noise"):
            wave = wave + spec["noise"] * rng.standard_normal(n).astype(np.float32)
    return (velocity * env * wave).astype(np.float32)


def _drum(kind: str, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    if kind == "kick":
        t = np.arange(int(0.25 * sr)) / sr
        f = 45 + 90 * np.exp(-t / 0.03)
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.08)).astype(np.float32)
    if kind == "snare":
        t = np.arange(int(0.2 * sr)) / sr
        noise = rng.standard_normal(len(t)) * np.exp(-t / 0.05)
        return (0.6 * noise + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.03)).astype(np.float32)
    t = np.arange(int(0.06 * sr)) / sr  # closed hi-hat: high-passed noise burst
    noise = np.diff(rng.standard_normal(len(t) + 1))
    return (0.35 * noise * np.exp(-t / 0.015)).astype(np.float32)


_DRUM_PATTERNS = {  # per eighth note of a 4/4 bar
    "rock beat": {"kick": (0, 4, 5), "snare": (2, 6), "hat": tuple(range(8))},
    "dance beat": {"kick": (0, 2, 4, 6), "snare": (2, 6), "hat": (1, 3, 5, 7)},
    "half-time beat": {"kick": (0, 3), "snare": (4,), "hat": (0, 2, 4, 6)},
}


def sample_music(rng: np.random.Generator) -> dict:
    """Draw the parameters of one clip."""
    mode = str(rng.choice(list(SCALES)))
    melody = str(rng.choice(MELODY_INSTRUMENTS))
    accomp = str(rng.choice([a for a in ACCOMPANIMENT_INSTRUMENTS if a != melody]))
    return {
        "key": str(rng.choice(KEYS)),
        "mode": mode,
        "tempo_bpm": int(rng.integers(60, 161)),
        "melody_instrument": melody,
        "accompaniment_instrument": accomp,
        "accompaniment_style": str(rng.choice(ACCOMPANIMENTS)),
        "bass": bool(rng.random() < 0.6),
        "drums": str(rng.choice(DRUMS, p=(0.35, 0.25, 0.2, 0.2))),
        "dynamics": str(rng.choice(list(DYNAMICS))),
        "rhythm": str(rng.choice(list(RHYTHMS))),
        "progression": [int(d) for d in PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]],
    }


def tempo_word(bpm: int) -> str:
    return "slow" if bpm < 80 else "moderate" if bpm < 110 else "upbeat" if bpm < 135 else "fast"


def mood(params: dict) -> str:
    fast = params["tempo_bpm"] >= 110
    if params["mode"] == "major":
        return "happy and energetic" if fast else "calm and peaceful"
    return "tense and dramatic" if fast else "sad and melancholic"


def _midi_to_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def render_music(params: dict, rng: np.random.Generator, sr: int = SAMPLE_RATE,
                 seconds: float = DURATION) -> np.ndarray:
    """Render the clip described by ``params`` to mono float32 in [-1, 1]."""
    n = int(seconds * sr)
    out = np.zeros(n + sr * 3, np.float32)  # room for release tails, cut at the end
    beat = 60.0 / params["tempo_bpm"]
    root = KEYS.index(params["key"])
    scale = SCALES[params["mode"]]

    def pitch(degree: int, octave_midi: int) -> int:  # scale degree (any integer) -> MIDI note
        return octave_midi + root + scale[degree % 7] + 12 * (degree // 7)

    def add(wave: np.ndarray, start_s: float, gain: float) -> None:
        i = int(start_s * sr)
        if i < n:
            j = min(len(out), i + len(wave))
            out[i:j] += gain * wave[: j - i]

    bar = 4 * beat
    n_bars = int(np.ceil(seconds / bar))
    prog = params["progression"]
    degree = int(rng.choice((0, 2, 4))) + 7
    for b in range(n_bars):
        chord = prog[b % len(prog)]
        triad = [chord, chord + 2, chord + 4]
        t0 = b * bar
        # melody: a random walk on the scale that lands on chord tones on strong beats
        pos = 0.0
        for dur in RHYTHMS[params["rhythm"]]:
            strong = pos in (0.0, 2.0)
            if strong:
                target = [d + 7 * k for d in triad for k in (1, 2)]
                degree = min(target, key=lambda d: abs(d - degree) + rng.random())
            else:
                degree += int(rng.choice((-2, -1, -1, 1, 1, 2)))
                degree = int(np.clip(degree, 5, 16))
            if rng.random() > 0.08 or strong:  # occasional rests
                vel = 0.9 if strong else 0.75
                note = render_note(params["melody_instrument"], _midi_to_hz(pitch(degree, 60)), dur * beat * 0.92, vel,
                                   rng, sr)
                add(note, t0 + pos * beat, 0.5)
            pos += dur
        # accompaniment
        style, inst = params["accompaniment_style"], params["accompaniment_instrument"]
        notes = [pitch(d, 48) for d in triad]
        if style == "block chords":
            events = [(p, s, 1.9) for s in (0.0, 2.0) for p in notes]
        elif style == "sustained chords":
            events = [(p, 0.0, 3.95) for p in notes]
        elif style == "arpeggios":
            seq = notes + [notes[0] + 12] + notes[::-1][1:] + [notes[1]]
            events = [(p, 0.5 * k, 0.5) for k, p in enumerate(seq[:8])]
        else:  # broken chords (Alberti-like: low, high, middle, high)
            seq = [notes[0], notes[2], notes[1], notes[2]] * 2
            events = [(p, 0.5 * k, 0.5) for k, p in enumerate(seq)]
        for p, s, d in events:
            add(render_note(inst, _midi_to_hz(p), d * beat, 0.6, rng, sr), t0 + s * beat, 0.3)
        if params["bass"]:
            for s in (0.0, 2.0):
                add(render_note("bass", _midi_to_hz(pitch(chord, 36)), 1.8 * beat, 0.9, rng, sr), t0 + s * beat, 0.4)
        if params["drums"] != "none":
            for kind, steps in _DRUM_PATTERNS[params["drums"]].items():
                for step in steps:
                    add(_drum(kind, rng, sr), t0 + step * beat / 2, 0.35)
    out = out[:n]
    fade = int(0.05 * sr)
    out[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return (out * (DYNAMICS[params["dynamics"]] / max(float(np.abs(out).max()), 1e-6))).astype(np.float32)


def caption_music(params: dict, rng: np.random.Generator) -> tuple[str, list[str]]:
    """MusicCaps-like prose caption and aspect list, both derived from the parameters."""
    key = f"{KEY_NAMES.get(params['key'], params['key'])} {params['mode']}"
    tempo, dyn = tempo_word(params["tempo_bpm"]), str(rng.choice(DYNAMIC_WORDS[params["dynamics"]]))
    melody, accomp = params["melody_instrument"], params["accompaniment_instrument"]
    style = params["accompaniment_style"]
    article = "An" if tempo[0] in "aeiou" else "A"
    first = str(rng.choice((f"{article} {tempo}, {dyn} {melody} melody in {key}",
                            f"This is a {tempo} {dyn} piece in {key} led by a {melody} melody",
                            f"{article} {tempo} instrumental in {key} where a {dyn} {melody} plays the melody")))
    second = (f" with {accomp} {style} in the accompaniment" if rng.random() < 0.5
              else f", accompanied by {accomp} playing {style}")
    parts = [first + second + "."]
    parts.append(f"The melody moves in {RHYTHM_WORDS[params['rhythm']]} at about {params['tempo_bpm']} BPM."
                 if rng.random() < 0.7 else f"The tempo is {tempo}, around {params['tempo_bpm']} beats per minute.")
    if params["bass"]:
        parts.append(str(rng.choice(("A bass line follows the chords.", "A round bass line supports the harmony."))))
    parts.append(DRUM_WORDS[params["drums"]])
    parts.append(f"The mood is {mood(params)}.")
    aspects = [f"{melody} melody", f"{accomp} {style}", f"{tempo} tempo", params["dynamics"], f"{key} key",
               "bass line" if params["bass"] else "no bass",
               "no drums" if params["drums"] == "none" else params["drums"], *mood(params).split(" and "),
               "instrumental"]
    return " ".join(parts), aspects


def make_music(args: tuple[int, int, str]) -> dict:
    """Worker: synthesize clip ``index`` (seeded by (seed, index)) into ``path``; returns params and caption."""
    seed, index, path = args
    rng = np.random.default_rng([seed, 3, index])
    params = sample_music(rng)
    audio = render_music(params, rng)
    caption, aspects = caption_music(params, rng)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC" if path.endswith(".flac") else "WAV")
    return {"index": index, "params": params, "caption": caption, "aspects": aspects}
