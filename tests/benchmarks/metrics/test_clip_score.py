import json

import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.metrics import CLIPScore

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TEXTS = ["a red square on a blue background", "a cat", "two green circles", "an empty white image", "a dog"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = open_clip.CLIP(
        **{
            **TINY,
            "vision_cfg": open_clip.CLIPVisionCfg(**TINY["vision_cfg"]),
            "text_cfg": open_clip.CLIPTextCfg(**TINY["text_cfg"]),
        }
    )
    return model.eval(), open_clip.image_transform(32, is_train=False), open_clip.get_tokenizer("ViT-B-32")


def images():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (3, 40 + 7 * i, 50 - 3 * i), dtype=torch.uint8, generator=g) for i in range(5)]


def by_hand(model, preprocess, tokenizer, imgs, texts):
    with torch.no_grad():
        pil = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in imgs]
        a = F.normalize(model.encode_image(torch.stack([preprocess(p) for p in pil])), dim=-1)
        b = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    return (a * b).sum(-1).mean().item()


def test_equals_hand_computation_with_the_same_open_clip_model(tiny):
    model, preprocess, tokenizer = tiny
    metric = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer, batch_size=2)
    imgs = images()
    metric.update(imgs[:2], TEXTS[:2])
    metric.update(torch.stack([torch.nn.functional.pad(im, (0, 0, 0, 0)) for im in imgs[2:3]]), TEXTS[2:3])
    metric.update(imgs[3:], TEXTS[3:])
    expected = by_hand(model, preprocess, tokenizer, imgs, TEXTS)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)

    scaled = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer, scale="torchmetrics")
    scaled.update(imgs, TEXTS)
    assert scaled.compute().item() == pytest.approx(100 * max(expected, 0.0), abs=1e-4)


def test_float_images_equal_uint8(tiny):
    model, preprocess, tokenizer = tiny
    imgs = images()
    a = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer)
    b = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer)
    a.update(imgs, TEXTS)
    b.update([im.float() / 255 for im in imgs], TEXTS)
    assert a.compute().item() == pytest.approx(b.compute().item(), abs=1e-6)


def test_model_name_and_local_checkpoint(tiny, tmp_path):
    model, preprocess, tokenizer = tiny
    (tmp_path / "anygpt-tiny-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(tmp_path / "anygpt-tiny-clip.json")
    ckpt = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    metric = CLIPScore("anygpt-tiny-clip", pretrained=str(ckpt))
    imgs = images()
    metric.update(imgs, TEXTS)
    assert metric.compute().item() == pytest.approx(by_hand(model, preprocess, tokenizer, imgs, TEXTS), abs=1e-5)
    random_weights = CLIPScore("anygpt-tiny-clip", pretrained=None)  # builds, downloads nothing
    random_weights.update(imgs, TEXTS)
    assert random_weights.compute().item() != pytest.approx(metric.compute().item(), abs=1e-6)


def test_bad_input(tiny):
    model, preprocess, tokenizer = tiny
    metric = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        metric.update(images()[:2], ["a"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric.update([torch.full((3, 8, 8), 2.0)], ["a"])
    with pytest.raises(ValueError, match="preprocess"):
        CLIPScore(model)
    with pytest.raises(ValueError, match="no pairs"):
        metric.compute()


def test_image_files_stream_through_and_only_embeddings_are_kept(tiny, tmp_path):
    model, preprocess, tokenizer = tiny
    imgs = images()
    paths = []
    for i, im in enumerate(imgs):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(paths[-1])
    from_files = CLIPScore(model, preprocess=preprocess, tokenizer=tokenizer, batch_size=2)
    from_files.update(paths, TEXTS)
    assert from_files.compute().item() == pytest.approx(by_hand(model, preprocess, tokenizer, imgs, TEXTS), abs=1e-6)
    assert [tuple(t.shape) for t in from_files.image_features] == [(5, 16)]  # embeddings, not pixels
