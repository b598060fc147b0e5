"""Shared fixtures for the speech tests: a tiny LibriSpeech-style tree written on the fly (sine 'phones')."""

import json

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def write_utterance(folder, utt_id, seconds, seed, rate=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phones, wav, start = [], np.zeros_like(t), 0.0
    names = ["a", "s", "n", "t"]
    while start < seconds:
        dur = rng.uniform(0.08, 0.2)
        k = int(rng.integers(len(names)))
        seg = (t >= start) & (t < start + dur)
        tone = 0.3 * np.sin(2 * np.pi * (150 + 120 * k) * t[seg])
        wav[seg] = tone if names[k] != "s" else rng.normal(0, 0.1, seg.sum())
        phones.append([names[k], round(start, 3)])
        start += dur
    sf.write(folder / f"{utt_id}.flac", wav.astype(np.float32), rate)
    return {"duration": seconds, "phonemes": phones}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("librispeech")
    for split, n in (("train-clean-100", 6), ("dev-clean", 2)):
        folder = root / split / "103" / "1240"
        folder.mkdir(parents=True)
        align = {f"103-1240-{i:04d}": write_utterance(folder, f"103-1240-{i:04d}", 1.0 + 0.25 * i, i) for i in range(n)}
        (folder / "103-1240.alignment.json").write_text(json.dumps(align))
        (folder / "103-1240.trans.txt").write_text("".join(f"{u} HELLO\n" for u in align))
    return root
