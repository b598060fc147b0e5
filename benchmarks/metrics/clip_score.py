"""CLIP score (text-to-image): cosine between open_clip image and text embeddings, averaged over pairs.

Memory stays bounded at any scale: images are preprocessed and embedded ``batch_size`` at a time, and the metric keeps
only the embeddings (a few hundred floats per pair), never pixels. Images may be given as file paths, so a caller can
stream a folder of generated images through `update` without holding them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from anygpt.media import read_image
from benchmarks.metrics.base import ObjectStateMetric

ImageLike = Tensor | np.ndarray | Image.Image | str | Path


def to_pil(image: ImageLike) -> Image.Image:
    """A PIL RGB image from a PIL image, an image file, a uint8 tensor (C,H,W) in [0, 255] or a float tensor (C,H,W)
    in [0, 1]."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        return read_image(image)
    t = torch.as_tensor(image).detach().cpu()
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor of shape (C, H, W) with C in (1, 3), got {tuple(t.shape)}")
    if t.is_floating_point():
        if t.min() < 0 or t.max() > 1:
            raise ValueError("float images must lie in [0, 1] (use uint8 for [0, 255])")
        t = (t * 255).round().to(torch.uint8)
    elif t.dtype != torch.uint8:
        raise ValueError(f"integer images must be uint8, got {t.dtype}")
    t = t.expand(3, -1, -1) if t.shape[0] == 1 else t
    return Image.fromarray(t.permute(1, 2, 0).numpy(), mode="RGB")


class CLIPScore(ObjectStateMetric):
    """Mean cosine similarity of open_clip embeddings of (image, caption) pairs.

    The AnyGPT paper reports the plain mean cosine (0.65 with CLIP ViT-L); `scale="torchmetrics"` gives torchmetrics'
    convention 100 * max(mean cosine, 0) instead. The backbone is either an open_clip model name plus a local
    checkpoint (`pretrained=None` builds random weights; nothing is downloaded), or an already-built open_clip model
    with its eval `preprocess` and `tokenizer` (e.g. a tiny judge trained on the demo corpus).
    Images are PIL images, image files or (C,H,W) tensors (uint8, or float in [0, 1]); they are resized by the model's
    preprocess. States: the L2-normalised image and text embeddings of every pair (gathered across ranks).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, model: str | nn.Module = "ViT-L-14", pretrained: str | None = None,
                 preprocess: Callable[[Image.Image], Tensor] | None = None,
                 tokenizer: Callable[[list[str]], Tensor] | None = None, scale: str = "cosine", batch_size: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if scale not in ("cosine", "torchmetrics"):
            raise ValueError(f"scale must be 'cosine' or 'torchmetrics', got {scale!r}")
        import open_clip

        if isinstance(model, str):
            built, _, val_preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained)
            preprocess = preprocess or val_preprocess
            tokenizer = tokenizer or open_clip.get_tokenizer(model)
            model = built
        elif preprocess is None or tokenizer is None:
            raise ValueError("CLIPScore(model=<nn.Module>) also needs its eval `preprocess` and `tokenizer`")
        self.model = model.eval().requires_grad_(False)
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.scale, self.batch_size = scale, batch_size
        # lists of [B, D] CPU tensors, gathered as objects (a rank that scored nothing has an empty list)
        self.add_object_state("image_features")
        self.add_object_state("text_features")

    @torch.inference_mode()
    def embed_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """L2-normalised embeddings [N, D] (float32); only ``batch_size`` preprocessed images exist at a time."""
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack([self.preprocess(to_pil(im)) for im in images[start : start + self.batch_size]])
            out.append(self.model.encode_image(pixels.to(self.device), normalize=True).float())
        return torch.cat(out)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return torch.cat([self.model.encode_text(b, normalize=True).float() for b in tokens.split(self.batch_size)])

    def update(self, images: Sequence[ImageLike] | Tensor, texts: str | Sequence[str]) -> None:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if isinstance(images, Tensor) and images.ndim == 3:
            images = images.unsqueeze(0)
        if len(images) != len(texts):
            raise ValueError(f"CLIPScore.update: {len(images)} images but {len(texts)} texts")
        if not texts:
            return
        self.append_rows("image_features", self.embed_images(images).cpu())
        self.append_rows("text_features", self.embed_texts(texts).cpu())

    def compute(self) -> Tensor:
        if not self.text_features:
            raise ValueError("CLIPScore.compute: no pairs were added (call update first)")
        cos = (torch.cat(self.image_features) * torch.cat(self.text_features)).sum(-1)
        mean = cos.double().mean()
        return 100 * mean.clamp(min=0) if self.scale == "torchmetrics" else mean
