"""Tiny image tokenizer: file loading edge cases, batched encode/decode, training loop, checkpoints."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from anygpt.modalities.base import Modality
from anygpt.modalities.image import TinyImageTokenizer
from anygpt.modalities.image.data import ImageDataModule
from anygpt.modalities.image.io import ImageLoadError
from anygpt.modalities.image.tiny import ASSET_DIR

SMALL = dict(image_size=32, grid=4, groups=2, codebook_size=16, code_dim=8, channels=(8, 8, 16))


def _scene(rng: np.random.Generator, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(12, size - 12, 2))
    r = int(rng.integers(5, 12))
    draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def test_load_handles_modes_and_rejects_bad_files(tmp_path):
    model = TinyImageTokenizer(**SMALL)
    Image.new("RGBA", (40, 20), (0, 0, 255, 0)).save(tmp_path / "clear.png")  # fully transparent -> white
    assert torch.allclose(model.load(tmp_path / "clear.png"), torch.ones(3, 32, 32), atol=1e-3)
    deep = np.full((10, 10), 65535, dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit white, not clipped to grey
    assert model.load(tmp_path / "deep.png").min() > 0.99
    Image.new("L", (32, 32), 0).save(tmp_path / "gray.jpg")
    assert model.load(tmp_path / "gray.jpg").shape == (3, 32, 32)
    assert model.load((tmp_path / "gray.jpg").read_bytes()).shape == (3, 32, 32)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageLoadError, match="broken.png"):
        model.load(tmp_path / "broken.png")
    with pytest.raises(ImageLoadError, match="missing.png"):
        model.load(tmp_path / "missing.png")


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
    model = TinyImageTokenizer(**SMALL)
    trainer = L.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=4,
    )
    trainer.fit(model, data)
    assert len(data.train_set.skipped) == 1 and "bad.png" in data.train_set.skipped[0]
    metrics = trainer.callback_metrics
    assert {"val/psnr", "val/used_fraction", "val/set_perplexity", "train/loss"} <= set(metrics)
    assert 0 < metrics["val/used_fraction"] <= 1

    model.save_pretrained(tmp_path / "tok")
    again = Modality.from_pretrained(tmp_path / "tok")
    assert isinstance(again, TinyImageTokenizer)
    x = [data.val_set[i]["image"] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(model.eval().encode(x), again.encode(x), strict=True))


@pytest.mark.skipif(not (ASSET_DIR / "model.safetensors").exists(), reason="tiny image checkpoint not shipped yet")
def test_shipped_checkpoint_reconstructs_scenes():
    model = TinyImageTokenizer.from_pretrained()
    assert model.tokens_per_image == 32
    rng = np.random.default_rng(1)
    images = [model.load(_to_png(_scene(rng))) for _ in range(8)]
    recon = model.decode(model.encode(images))
    mse = torch.stack([((a - b) ** 2).mean() for a, b in zip(images, recon, strict=True)]).mean()
    psnr = 10 * torch.log10(1 / mse)
    assert psnr > 15, psnr  # a flat mean-colour guess scores about 10 dB on these


def _to_png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
