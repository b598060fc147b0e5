"""Tiny music codec and audio I/O: resampling, channel mixing, bad files, batching, training loop, checkpoints."""

import math

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch

from anygpt.assets import asset_path
from anygpt.media import MediaError
from anygpt.modalities.codec import Codec
from anygpt.modalities.music import TinyMusicCodec
from anygpt.modalities.music.data import MusicDataModule
from anygpt.modalities.music.training import SEANetTrainer
from anygpt.modalities.registry import modality_for

ASSET_DIR = asset_path(TinyMusicCodec.default_checkpoint)

SMALL = dict(n_filters=2, ratios=(4, 4, 4, 4), dimension=8, bins=16, lstm=0)


def _tones(seconds: float, rate: int, freqs=(440.0, 660.0)) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32)


def test_read_resamples_mixes_and_rejects(tmp_path):
    music = modality_for(TinyMusicCodec(**SMALL))
    sf.write(tmp_path / "stereo.wav", _tones(0.5, 44100), 44100, subtype="PCM_16")
    wav = music.read(tmp_path / "stereo.wav")
    assert wav.shape[0] == 1 and abs(wav.shape[1] - 8000) <= 1  # 0.5 s at 16 kHz, channels averaged
    assert music.read((tmp_path / "stereo.wav").read_bytes()).shape == wav.shape
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(MediaError, match="empty.wav.*no samples"):
        music.read(tmp_path / "empty.wav")
    sf.write(tmp_path / "short.wav", np.zeros((100, 1), np.float32), 16000)
    with pytest.raises(MediaError, match="short.wav.*shorter than one token frame"):
        music.read(tmp_path / "short.wav")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC not audio")
    with pytest.raises(MediaError, match="corrupt.flac"):
        music.read(tmp_path / "corrupt.flac")


def test_batched_encode_decode_and_layout():
    model = TinyMusicCodec(**SMALL).eval()
    assert model.hop_length == 256 and model.codebook_size == 32
    items = [torch.randn(1000) * 0.1, torch.randn(2600) * 0.1]
    codes = model.encode(items)
    assert [c.shape for c in codes] == [(2, math.ceil(1000 / 256)), (2, math.ceil(2600 / 256))]
    flat = model.flatten(codes[1])
    assert flat.numel() == 22 and bool((flat[1::2] >= 16).all()) and bool((flat[0::2] < 16).all())
    assert torch.equal(model.unflatten(flat[:-1]), codes[1][:, :-1])
    assert model.structure.valid_prefix(flat, 32) == 22
    audio = model.decode(codes)
    assert [a.numel() for a in audio] == [4 * 256, 11 * 256]
    with pytest.raises(ValueError, match="mono"):
        model.encode([torch.randn(2, 1000)])


@pytest.mark.slow
def test_trains_with_lightning_and_round_trips(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(24):
        sf.write(root / f"clip{i}.wav", _tones(0.6, 16000, (220.0 * (1 + i % 5),))[:, 0], 16000)
    (root / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    data = MusicDataModule(
        str(root), csv_file=None, sample_rate=16000, segment_seconds=0.25, batch_size=4, crops_per_clip=1
    )
    model = SEANetTrainer(TinyMusicCodec(**SMALL), vq_warmup_steps=2)  # 2 plain autoencoder steps, then quantized
    trainer = L.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        val_check_interval=2,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert len(data.train_set.skipped) == 1 and "bad.wav" in data.train_set.skipped[0]
    assert {"train/mel", "train/time_l1", "train/perplexity_q0", "val/si_snr"} <= set(trainer.callback_metrics)

    again = Codec.from_pretrained(tmp_path / "pretrained")  # written when training ended
    assert isinstance(again, TinyMusicCodec) and again.bins == 16
    x = [data.val_set[0]["audio"]]
    assert torch.equal(model.codec.eval().encode(x)[0], again.encode(x)[0])


@pytest.mark.skipif(not (ASSET_DIR / "model.safetensors").exists(), reason="tiny music checkpoint not shipped yet")
def test_shipped_checkpoint_round_trip():
    model = TinyMusicCodec.from_pretrained()
    assert model.frame_rate * model.n_q == 50  # tokens per second of audio
    wav = torch.from_numpy(_tones(1.0, model.sample_rate, (330.0,))[:, 0])
    codes = model.encode([wav])[0]
    assert codes.shape == (model.n_q, 25)
    out = model.decode([codes])[0]
    assert out.shape == (16000,) and torch.isfinite(out).all()
