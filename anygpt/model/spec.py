"""What training needs to know about an architecture, in one record, and the model building that uses it.

`ModelSpec` ties an architecture's pieces together (its config class and named sizes, the module, the parallelization
plan, the HF adapter); `AnyGPTLM` builds through it instead of importing the pieces. LLaMA is the only architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anygpt.model.llama import hf_adapter
from anygpt.model.llama.config import NAMED_CONFIGS, Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.llama.parallelize import fill_from_rank0, parallelize


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: ``build(config)`` makes the module, ``parallelize`` wraps it for training (see
    `anygpt.model.llama.parallelize.parallelize`), ``fill_from_rank0`` materialises a sharded skeleton,
    ``load_hf``/``hf_config`` read HF checkpoints, ``sizes`` are its named configs."""

    name: str
    build: Callable[[Config], nn.Module]
    parallelize: Callable[..., None]
    fill_from_rank0: Callable[[nn.Module, torch.device, dict[str, Any]], None]
    load_hf: Callable[..., nn.Module]
    hf_config: Callable[[str | Path], Config]
    sizes: dict[str, Config]


LLAMA = ModelSpec("llama", LLaMA, parallelize, fill_from_rank0, hf_adapter.load_hf,
                  lambda path: hf_adapter.config_from_hf(hf_adapter.read_hf_config(path), name=Path(path).name),
                  NAMED_CONFIGS)


def check_pretrained(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist: give the local directory of an HF "
                                "LLaMA checkpoint (config.json + *.safetensors or pytorch_model*.bin)")
    return path


def resolve_config(size: str, overrides: dict[str, Any] | None, pretrained: str | None, vocab_size: int | None,
                   spec: ModelSpec = LLAMA) -> Config:
    """The architecture, from the pretrained checkpoint's config.json or the named size, at the final vocabulary
    size. Every rank checks it, so a bad configuration fails everywhere instead of hanging the others."""
    if pretrained:
        config = spec.hf_config(check_pretrained(pretrained))
        old = config.vocab_size
        if vocab_size is not None and vocab_size < old:
            raise ValueError(f"{pretrained} has {old} embedding rows but the configured vocabulary has only "
                             f"{vocab_size} ids; configure the modalities the checkpoint was trained with")
        return replace(config, vocab_size=max(vocab_size or old, old))
    if vocab_size is None:
        raise ValueError("the model needs a vocabulary size: set vocab_size or use AnyGPTDataModule (whose vocabulary "
                         "`anygpt fit` links to the model)")
    return replace(Config.from_name(size, **(overrides or {})), vocab_size=vocab_size)


def load_pretrained(path: str | Path, spec: ModelSpec = LLAMA) -> nn.Module:
    """An HF checkpoint directory -> the model (float32, CPU), with every tensor materialised.

    Lightning's ModelParallelStrategy treats any meta tensor as "not initialised yet" and would re-initialise the whole
    module (wiping the loaded weights), so a tensor the checkpoint lacks is an error here."""
    path = check_pretrained(path)
    model = spec.load_hf(path, dtype=torch.float32)
    missing = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:
        raise ValueError(f"{path}: the checkpoint has no weights for {missing[:5]} ({len(missing)} tensors)")
    return model


def build_model(config: Config, pretrained: str | None = None, vocab_init: str = "mean",
                spec: ModelSpec = LLAMA) -> nn.Module:
    """The whole model on the CPU: the pretrained weights with the vocabulary grown to ``config``, or a fresh
    initialisation."""
    if not pretrained:
        return spec.build(config)
    model = load_pretrained(pretrained, spec)
    if config.vocab_size > model.config.vocab_size:
        generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63)
        model.resize_token_embeddings(config.vocab_size, init=vocab_init, generator=generator)
    return model
