"""Image preprocessing is a recorded choice of the image codec: released SEED-2 checkpoints read files as the original
code does (``Image.open(f).convert("RGB")``, bicubic resize, no EXIF rotation), anygpt-trained tokenizers as anygpt
does (EXIF rotation, transparency over white). Expected pixels are computed with PIL applied each way by hand."""

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from anygpt.media import MediaError, read_image
from anygpt.modalities.image import SEEDImageTokenizer, TinyImageTokenizer
from anygpt.modalities.registry import modality_for
from tests.modalities.image.test_seed import SMALL, _reference, _release_checkpoint

SIDE = SMALL["image_size"]


def _pixels(image: Image.Image) -> torch.Tensor:
    """The release's torchvision pipeline after opening: Resize((S, S), BICUBIC) on the PIL image, then ToTensor."""
    image = image.resize((SIDE, SIDE), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.fixture
def transparent_png(tmp_path):
    """Colours under transparent pixels differ from white: the two ways of reading give different pixels."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(40, 60, 4), dtype=np.uint8)
    rgba[:, :30, 3] = 0  # left half fully transparent, with colours stored underneath
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture
def rotated_jpeg(tmp_path):
    """A JPEG with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    image = Image.new("RGB", (64, 32), (20, 40, 60))
    image.paste((250, 10, 10), (0, 0, 32, 32))  # red on the left: rotation moves it to the top
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, quality=95, exif=exif)
    return path


def test_release_reads_transparent_png_as_convert_rgb(transparent_png):
    release = modality_for(SEEDImageTokenizer(**SMALL)).read(transparent_png)
    assert torch.equal(release, _pixels(Image.open(transparent_png).convert("RGB")))

    ours = modality_for(SEEDImageTokenizer(**SMALL, preprocess="anygpt")).read(transparent_png)
    rgba = Image.open(transparent_png).convert("RGBA")
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    assert torch.equal(ours, _pixels(on_white))
    assert not torch.equal(ours, release)


def test_release_ignores_exif_orientation(rotated_jpeg):
    release = modality_for(SEEDImageTokenizer(**SMALL)).read(rotated_jpeg)
    assert torch.equal(release, _pixels(Image.open(rotated_jpeg).convert("RGB")))

    ours = modality_for(SEEDImageTokenizer(**SMALL, preprocess="anygpt")).read(rotated_jpeg)
    assert torch.equal(ours, _pixels(ImageOps.exif_transpose(Image.open(rotated_jpeg)).convert("RGB")))
    assert not torch.equal(ours, release)


def test_the_choice_is_saved_and_defaults_by_origin(tmp_path):
    assert SEEDImageTokenizer(**SMALL).image_preprocess == "release"  # released weights: the original's reading
    assert TinyImageTokenizer(image_size=16, grid=4, channels=(8, 8)).image_preprocess == "anygpt"
    saved = SEEDImageTokenizer(**SMALL, preprocess="anygpt").save_pretrained(tmp_path / "seed")
    assert SEEDImageTokenizer.from_pretrained(saved).image_preprocess == "anygpt"
    with pytest.raises(ValueError, match="unknown preprocess 'rgb'"):
        SEEDImageTokenizer(**SMALL, preprocess="rgb")
    with pytest.raises(ValueError, match="unknown image preprocessing"):
        read_image(io.BytesIO(b""), preprocess="bgr")


def test_release_reading_still_names_bad_files(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\\x89PNG not really")
    with pytest.raises(MediaError, match="broken.png"):
        modality_for(SEEDImageTokenizer(**SMALL)).read(bad)


def test_quantizer_file_vit_weights_win_over_eva_file(tmp_path, caplog):
    """The release loads eva_vit_g.pth first and seed_quantizer.pt last: the quantizer file's ViT weights win."""
    vision, qformer = _reference()
    seed = _release_checkpoint(vision, qformer, tmp_path)
    eva = torch.load(tmp_path / "eva_vit_g.pth", weights_only=True)
    own = {f"visual_encoder.{k}": v + 1.0 for k, v in eva.items()}  # the quantizer file's own, different, ViT
    torch.save({**seed, **own}, tmp_path / "seed_quantizer.pt")
    with caplog.at_level(logging.WARNING):
        model = SEEDImageTokenizer.from_pretrained(tmp_path / "seed_quantizer.pt", tmp_path / "eva_vit_g.pth", **SMALL)
    assert "the quantizer file's win" in caplog.text
    state = model.state_dict()
    assert torch.equal(state["visual.patch_embed.weight"], own["visual_encoder.patch_embed.proj.weight"])
    assert not torch.equal(state["visual.patch_embed.weight"], eva["patch_embed.proj.weight"])
