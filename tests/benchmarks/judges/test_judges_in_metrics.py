"""The shipped judges plug into the benchmark metrics as they are: a true pairing scores above a shuffled one."""

import pytest
import soundfile as sf
import torch
from PIL import Image

from anygpt.data.demo import images, music
from benchmarks.judges import load_judge
from benchmarks.metrics.clap_score import CLAPScore
from benchmarks.metrics.clip_score import CLIPScore

SEED = 4343  # a seed the demo corpus does not use


def test_clip_score_with_the_tiny_clip_judge(tmp_path):
    metas = [images.make_image((SEED, i, str(tmp_path / f"{i}.png"))) for i in range(6)]
    pictures = [Image.open(tmp_path / f"{i}.png").convert("RGB") for i in range(6)]
    captions = [m["captions"][0] for m in metas]
    judge = load_judge("clip")
    scores = []
    for texts in (captions, captions[1:] + captions[:1]):
        metric = CLIPScore(model=judge.model, preprocess=judge.preprocess, tokenizer=judge.tokenizer)
        metric.update(pictures, texts)
        scores.append(metric.compute().item())
    assert scores[0] > scores[1] + 0.2, scores


@pytest.mark.slow
def test_clap_score_with_the_tiny_clap_judge(tmp_path):
    metas = [music.make_music((SEED, i, str(tmp_path / f"{i}.wav"))) for i in range(4)]
    wavs = [torch.from_numpy(sf.read(tmp_path / f"{i}.wav", dtype="float32")[0]) for i in range(4)]
    captions = [m["caption"] for m in metas]
    scores = []
    for texts in (captions, captions[1:] + captions[:1]):
        metric = CLAPScore(load_judge("clap"))
        metric.update(wavs, texts, sample_rate=music.SAMPLE_RATE)
        scores.append(metric.compute().item())
    assert scores[0] > scores[1] + 0.2, scores
