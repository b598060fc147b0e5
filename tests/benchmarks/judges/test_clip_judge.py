import json

import open_clip
import pytest
import torch
from PIL import Image

from benchmarks.judges.clip import (
    CONFIG_NAME,
    TINY_CLIP_CONFIG,
    WEIGHTS_NAME,
    build_clip,
    load_tiny_clip,
    save_tiny_clip,
)
from benchmarks.judges.registry import load_judge


def _small_cfg():
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["text_cfg"].update(layers=1)
    cfg["vision_cfg"].update(layers=1)
    return cfg


def test_save_load_round_trip_through_open_clip(tmp_path):
    torch.manual_seed(0)
    cfg = _small_cfg()
    model = build_clip(cfg).eval()
    save_tiny_clip(model, cfg, tmp_path, extra={"trained_on": "nothing (test)"}, half=False)
    assert (tmp_path / CONFIG_NAME).is_file() and (tmp_path / WEIGHTS_NAME).is_file()

    loaded, preprocess, tokenizer = load_tiny_clip(tmp_path)
    image = Image.new("RGB", (80, 64), (200, 30, 30))
    pixels = preprocess(image).unsqueeze(0)
    assert pixels.shape == (1, 3, 64, 64)
    tokens = tokenizer(["two red circles on the left"])
    assert tokens.shape == (1, cfg["text_cfg"]["context_length"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(pixels), model.encode_image(pixels))
        torch.testing.assert_close(loaded.encode_text(tokens), model.encode_text(tokens))

    # plain open_clip, no anygpt code involved, reads the same folder
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path}")
    with torch.no_grad():
        torch.testing.assert_close(plain.encode_text(tokens), model.encode_text(tokens))


def test_fp16_export_keeps_judgements(tmp_path):
    torch.manual_seed(1)
    cfg = _small_cfg()
    model = build_clip(cfg).eval()
    save_tiny_clip(model, cfg, tmp_path)  # fp16 on disk
    judge = load_judge("clip", tmp_path)
    assert "open_clip model from" in judge.description
    images = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    texts = ["a red image", "a green image", "a blue image"]
    emb_i, emb_t = judge.embed_images(images), judge.embed_texts(texts)
    assert emb_i.shape == emb_t.shape == (3, cfg["embed_dim"])
    torch.testing.assert_close(emb_i.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_text(judge.tokenizer(texts)), dim=-1)
    assert (emb_t * ref).sum(-1).min() > 0.999


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        load_tiny_clip(tmp_path)
    (tmp_path / "ckpt.pt").touch()
    with pytest.raises(ValueError, match="model_name"):
        load_judge("clip", tmp_path / "ckpt.pt")
