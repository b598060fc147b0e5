"""Tiny image tokenizer: file reading edge cases, batched encode/decode, training loop, checkpoints."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from anygpt.assets import asset_path
from anygpt.media import MediaError
from anygpt.modalities.codec import Codec
from anygpt.modalities.image import TinyImageTokenizer
from anygpt.modalities.image.data import ImageDataModule
from anygpt.modalities.image.training import ImageTokenizerTrainer
from anygpt.modalities.registry import modality_for

ASSET_DIR = asset_path(TinyImageTokenizer.default_checkpoint)

SMALL = dict(image_size=32, grid=4, groups=2, codebook_size=16, code_dim=8, channels=(8, 8, 16))


def _scene(rng: np.random.Generator, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(12, size - 12, 2))
    r = int(rng.integers(5, 12))
    draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def test_read_handles_modes_and_rejects_bad_files(tmp_path):
    model = modality_for(TinyImageTokenizer(**SMALL))
    Image.new("RGBA", (40, 20), (0, 0, 255, 0)).save(tmp_path / "clear.png")  # fully transparent -> white
    assert torch.allclose(model.read(tmp_path / "clear.png"), torch.ones(3, 32, 32), atol=1e-3)
    deep = np.full((10, 10), 65535, dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit white, not clipped to grey
    assert model.read(tmp_path / "deep.png").min() > 0.99
    Image.new("L", (32, 32), 0).save(tmp_path / "gray.jpg")
    assert model.read(tmp_path / "gray.jpg").shape == (3, 32, 32)
    assert model.read((tmp_path / "gray.jpg").read_bytes()).shape == (3, 32, 32)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(MediaError, match="broken.png"):
        model.read(tmp_path / "broken.png")
    with pytest.raises(MediaError, match="missing.png"):
        model.read(tmp_path / "missing.png")


def test_encode_decode_layout():
    model = TinyImageTokenizer(**SMALL).eval()
    images = [torch.rand(3, 32, 32) for _ in range(3)]
    codes = model.encode(images)
    assert len(codes) == 3 and codes[0].shape == (32,) and codes[0].max() < 16
    assert model.structure.fixed_length == 32 and model.structure.can_end(32) and not model.structure.can_end(31)
    assert torch.equal(model.unflatten(model.flatten(codes[0])), codes[0])
    out = model.decode(codes)
    assert out[0].shape == (3, 32, 32) and 0 <= out[0].min() and out[0].max() <= 1
    assert torch.equal(model.encode(images[:1])[0], codes[0])  # batch-independent
    with pytest.raises(ValueError, match="exactly 32"):
        model.decode([codes[0][:31]])
    with pytest.raises(ValueError, match=r"\[3, 32, 32\]"):
        model.encode([torch.rand(3, 64, 64)])


@pytest.mark.slow
def test_trains_with_lightning_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "coco"
    entries = []
    for i in range(40):
        (root / "images").mkdir(parents=True, exist_ok=True)
        _scene(rng).save(root / "images" / f"{i}.png")
        entries.append({"filepath": "images", "filename": f"{i}.png", "split": "val" if i < 8 else "train"})
    (root / "images" / "bad.png").write_bytes(b"garbage")
    entries.append({"filepath": "images", "filename": "bad.png", "split": "train"})
    (root / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    data = ImageDataModule(str(root), image_size=32, batch_size=8)
    model = ImageTokenizerTrainer(TinyImageTokenizer(**SMALL))
    trainer = L.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=4,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert len(data.train_set.skipped) == 1 and "bad.png" in data.train_set.skipped[0]
    metrics = trainer.callback_metrics
    assert {"val/psnr", "val/used_fraction", "val/set_perplexity", "train/loss"} <= set(metrics)
    assert 0 < metrics["val/used_fraction"] <= 1

    codec = model.codec.eval()
    again = Codec.from_pretrained(tmp_path / "pretrained")  # written when training ended
    assert isinstance(again, TinyImageTokenizer) and again.init_args == codec.init_args
    x = [data.val_set[i]["image"] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(codec.encode(x), again.encode(x), strict=True))
    resumed = ImageTokenizerTrainer.load_from_checkpoint(_save_checkpoint(trainer, tmp_path))
    assert resumed.codec.init_args == codec.init_args and resumed.hparams.commit_weight == 0.02


@pytest.mark.skipif(not (ASSET_DIR / "model.safetensors").exists(), reason="tiny image checkpoint not shipped yet")
def test_shipped_checkpoint_reconstructs_scenes():
    model = TinyImageTokenizer.from_pretrained()
    assert model.tokens_per_image == 32
    rng = np.random.default_rng(1)
    images = [modality_for(model).read(_to_png(_scene(rng))) for _ in range(8)]
    recon = model.decode(model.encode(images))
    mse = torch.stack([((a - b) ** 2).mean() for a, b in zip(images, recon, strict=True)]).mean()
    psnr = 10 * torch.log10(1 / mse)
    assert psnr > 15, psnr  # a flat mean-colour guess scores about 10 dB on these


def _save_checkpoint(trainer: L.Trainer, tmp_path) -> str:
    path = str(tmp_path / "last.ckpt")
    trainer.save_checkpoint(path)
    return path


def _to_png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_anygpt_fit_trains_the_codec_of_the_shipped_config(tmp_path, monkeypatch):
    """``anygpt fit --config experiments/tokenizers/demo_image.yaml``: LightningCLI builds the trainer around the codec
    named inside it, and the trained codec is written for use when training ends."""
    from pathlib import Path

    from anygpt.cli import main

    rng = np.random.default_rng(0)
    (tmp_path / "coco" / "images").mkdir(parents=True)
    for i in range(24):
        _scene(rng).save(tmp_path / "coco" / "images" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parents[3] / "experiments/tokenizers/demo_image.yaml"
    main(["fit", "--config", str(config), "--data.init_args.root", str(tmp_path / "coco"),
          "--data.init_args.batch_size", "4", "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.logger", "false",
          "--trainer.default_root_dir", str(tmp_path / "run")])
    codec = Codec.from_pretrained(tmp_path / "run" / "pretrained")
    assert isinstance(codec, TinyImageTokenizer) and codec.codebook_size == 512
    assert "lr" not in codec.init_args  # training settings stay with the trainer
