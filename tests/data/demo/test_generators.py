"""The demo corpus's generators on their own: grammar, espeak voices, images and music from parameters."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from anygpt.data.demo import images, music, sentences, speech


def test_grammar_has_several_hundred_words():
    rng = np.random.default_rng(0)
    words = {w for _ in range(4000) for w in sentences.sentence(rng).split()}
    assert len(words) >= 300


@pytest.mark.parametrize(
    "n,words",
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (312, "three hundred and twelve"),
        (2005, "two thousand and five"),
        (1984, "one thousand nine hundred and eighty four"),
    ],
)
def test_number_to_words(n, words):
    assert sentences.number_to_words(n) == words


def test_question_answers_are_correct():
    rng = np.random.default_rng(1)
    for _ in range(200):
        q, a = sentences.question_answer(rng)
        if " plus " in q:
            x, y = (s.strip() for s in q.removeprefix("what is ").split(" plus "))
            total = next(n for n in range(200) if sentences.number_to_words(n) == a.rsplit(" is ", 1)[1])
            values = {sentences.number_to_words(n): n for n in range(100)}
            assert values[x] + values[y] == total


def test_voices_are_distinct_speakers_and_synthesis_is_reproducible():
    digests = set()
    text = "the quick brown fox jumps over the lazy dog"
    voices = [v for split in speech.LIBRISPEECH_VOICES.values() for v in split] + list(speech.VCTK_VOICES)
    for voice in voices:
        audio, events, ipa = speech.speak(voice, text, seed=3)
        assert len(audio) > speech.ESPEAK_RATE and any(e[0] == speech.EVENT_PHONEME for e in events)
        assert "ˈ" in ipa  # stressed syllables
        digests.add(hashlib.sha256(audio.tobytes()).hexdigest())
    assert len(digests) == len(voices)
    # espeak keeps hidden state between calls and seeds its noise from the clock: the server must hide both
    breathy = speech.TRAIN_VOICES[1]
    first = speech.speak(breathy, text, seed=3)[0]
    speech.speak(speech.VCTK_VOICES[0], "something else entirely", rate=300, seed=9)
    assert np.array_equal(first, speech.speak(breathy, text, seed=3)[0])
    with pytest.raises(RuntimeError, match="no voice"):
        speech.speak(speech.Voice("x", "xx-notalanguage"), text)
    speech.close_client()


def test_resampler_keeps_a_tone():
    t = np.arange(speech.ESPEAK_RATE) / speech.ESPEAK_RATE
    out = speech.resample(np.sin(2 * np.pi * 440 * t), speech.ESPEAK_RATE, 16000)
    assert len(out) == 16000
    assert abs(np.argmax(np.abs(np.fft.rfft(out))) - 440) <= 1


def test_music_follows_its_key_and_is_reproducible():
    rng = np.random.default_rng([0, 3, 5])
    params = music.sample_music(rng)
    params |= {
        "key": "A",
        "mode": "minor",
        "drums": "none",
        "melody_instrument": "flute",
        "bass": False,
        "accompaniment_instrument": "organ",
        "accompaniment_style": "sustained chords",
    }
    a = music.render_music(params, np.random.default_rng(7))
    b = music.render_music(params, np.random.default_rng(7))
    assert np.array_equal(a, b) and a.shape == (int(music.DURATION * music.SAMPLE_RATE),)
    # energy per pitch class: the notes of A minor carry most of it
    spectrum = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(len(a), 1 / music.SAMPLE_RATE)
    keep = (freqs > 100) & (freqs < 1500)
    pitch_class = np.round(12 * np.log2(freqs[keep] / 440.0)).astype(int) % 12  # 0 = A
    energy = np.bincount(pitch_class, weights=spectrum[keep], minlength=12)
    in_scale = [(0 + s) % 12 for s in music.SCALES["minor"]]
    assert energy[in_scale].sum() / energy.sum() > 0.8


def test_scene_rendering_is_reproducible():
    a = images.make_image((3, 11, "/dev/null"))
    b = images.make_image((3, 11, "/dev/null"))
    assert a == b and len(a["captions"]) == 5
