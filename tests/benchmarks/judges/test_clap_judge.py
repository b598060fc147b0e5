import math

import pytest
import torch

from benchmarks.judges.clap import TinyClap, build_vocab, words
from benchmarks.judges.registry import load_judge


def _model():
    torch.manual_seed(0)
    return TinyClap(build_vocab(["A slow piano melody in C major.", "A fast guitar piece at 120 BPM."])).eval()


def test_vocab_and_tokenize():
    assert words("A slow, piano-led melody at 120 BPM.") == ["a", "slow", "piano", "led", "melody", "at", "120", "bpm"]
    model = _model()
    ids = model.tokenize(["slow piano", "an unseen word"])
    assert ids.shape == (2, 3)
    assert ids[0, 2] == 0  # padding
    assert (ids[1] == model.index["<unk>"]).all()


def test_embedder_interface_shapes_and_normalisation():
    model = _model()
    t = torch.arange(48000 * 2) / 48000
    wavs = [torch.sin(2 * math.pi * 440 * t), torch.randn(2, 48000) * 0.1]  # mono and stereo, different lengths
    audio = model.embed_audio(wavs, 48000)
    text = model.embed_text(["a slow piano melody", "fast guitar"])
    assert audio.shape == text.shape == (2, 128)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    # resampling happens inside: the same tone given at 16 kHz embeds (nearly) the same
    same = model.embed_audio([torch.sin(2 * math.pi * 440 * torch.arange(16000 * 2) / 16000)], 16000)
    assert (same[0] @ audio[0]).item() > 0.99
    # batching with a longer clip barely changes a clip's embedding (padding is masked after pooling)
    one = model.embed_audio([wavs[1]], 48000)
    assert (one[0] @ audio[1]).item() > 0.98
    # a clip shorter than the CNN's pooling (a few generated music frames) is judged, padded with silence
    short = model.embed_audio([torch.randn(200)], 48000)
    assert short.shape == (1, 128) and torch.isfinite(short).all()


def test_save_load_round_trip(tmp_path):
    model = _model()
    model.save(tmp_path, extra={"trained_on": "nothing (test)"})
    judge = load_judge("clap", tmp_path)
    assert judge.description.startswith("tiny CLAP judge from") and "nothing (test)" in judge.description
    wav = torch.randn(32000) * 0.1
    torch.testing.assert_close(judge.embed_audio([wav], 32000), model.embed_audio([wav], 32000))
    torch.testing.assert_close(judge.embed_text(["slow piano"]), model.embed_text(["slow piano"]))


def test_bad_input_is_named(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="clip 1"):
        model.embed_audio([torch.randn(100), torch.zeros(0)], 16000)
    with pytest.raises(FileNotFoundError, match="config.json"):
        TinyClap.load(tmp_path)
    with pytest.raises(ValueError, match="roberta"):
        (tmp_path / "clap.pt").touch()
        load_judge("clap", tmp_path / "clap.pt")
