"""SEED embeddings -> pixels with Stable Diffusion 2.1 unCLIP (``anygpt[diffusion]``, a local pipeline directory).

SEED's decoder side predicts an image embedding in the space of CLIP ViT-H/14; SD 2.1 unCLIP (``stable-diffusion-2-1-
unclip``) conditions on such embeddings. The settings are SEED's: an empty prompt, noise level 0, guidance 10, 20 steps.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from anygpt.resolve import UntrustedCodeError

# Libraries whose classes a pipeline's model_index.json may name: diffusers imports whatever module a component names.
PIPELINE_LIBRARIES = ("diffusers", "transformers")


def check_pipeline_index(index_file: Path) -> None:
    """Refuse a ``model_index.json`` whose components name classes outside diffusers/transformers (or custom pipeline
    code) before diffusers imports them: opening a pipeline folder must not run code it names."""
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {index_file}: {err}") from err
    if not isinstance(index, dict):
        raise ValueError(f"{index_file} is not a diffusers pipeline index (expected a JSON object)")
    for key, value in index.items():
        if key.startswith("_"):
            if key == "_class_name" and value != "StableUnCLIPImg2ImgPipeline":
                raise ValueError(f"{index_file} describes a {value}, not a StableUnCLIPImg2ImgPipeline (SD 2.1 unCLIP)")
            continue
        if isinstance(value, list) and value and value[0] is not None and not _known_library(value[0]):
            raise UntrustedCodeError(f"{index_file}: component {key!r} names {value!r}, outside "
                                     f"{'/'.join(PIPELINE_LIBRARIES)} and diffusers' pipelines; refusing to import it")


def _known_library(name: object) -> bool:
    """diffusers/transformers themselves, or a pipeline module of diffusers (``stable_diffusion``: where diffusers
    keeps e.g. ``StableUnCLIPImageNormalizer``)."""
    if name in PIPELINE_LIBRARIES:
        return True
    return isinstance(name, str) and name.isidentifier() and \
        importlib.util.find_spec(f"diffusers.pipelines.{name}") is not None


class UnCLIPDecoder:
    """A diffusers ``StableUnCLIPImg2ImgPipeline`` driven by image embeddings alone."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> UnCLIPDecoder:
        try:
            from diffusers import StableUnCLIPImg2ImgPipeline
        except ImportError as err:
            raise ImportError("Decoding SEED images to pixels needs diffusers: pip install "
                              "'anygpt[diffusion]'") from err
        directory = Path(directory)
        if not (directory / "model_index.json").exists():
            raise FileNotFoundError(f"{directory} is not a diffusers pipeline directory (no model_index.json); pass a "
                                    "local copy of stabilityai/stable-diffusion-2-1-unclip.")
        check_pipeline_index(directory / "model_index.json")
        pipeline = StableUnCLIPImg2ImgPipeline.from_pretrained(str(directory), torch_dtype=dtype, local_files_only=True)
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline.to(device))

    @torch.inference_mode()
    def __call__(self, embeds: Sequence[torch.Tensor] | torch.Tensor, num_inference_steps: int = 20,
                 guidance_scale: float = 10.0, noise_level: int = 0, height: int | None = None,
                 width: int | None = None, seed: int | None = None, prompt: str = "") -> list[torch.Tensor]:
        """Embeddings ``[B, D]`` (or a list of ``[D]``) -> images ``[3, H, W]`` in [0, 1]."""
        embeds = torch.stack(list(embeds)) if not isinstance(embeds, torch.Tensor) else embeds
        pipe = self.pipeline
        generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        out = pipe(prompt=[prompt] * embeds.shape[0], image_embeds=embeds.to(pipe.device, pipe.unet.dtype),
                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, noise_level=noise_level,
                   height=height, width=width, generator=generator, output_type="pt")
        return [image.float().cpu().clamp(0, 1) for image in out.images]
