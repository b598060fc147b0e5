"""LoRA and QLoRA fine-tuning of the decoder through `peft`, with the added-token rows of the embedding and LM head
trainable.

A new domain lands mostly on the added tokens (modality codes and markers, ids from the text vocabulary's size up), so
besides the low-rank adapters on the attention and MLP projections, those rows of ``embed_tokens`` and ``lm_head``
train as peft "trainable tokens" (a delta parameter holding only those rows, so it shards under FSDP2 like any
parameter, and the other rows stay bit-identical). Adapters are written in PEFT's own format (``adapter_config.json``
+ ``adapter_model.safetensors``), small, and merged into the plain model for export.

    apply_lora(model, LoraOptions(rank=16), added_ids=range(32000, len(vocab)))
    save_adapter(model, "runs/ft/adapter"); merged = merge_lora(model)
    load_adapter(base_model, "runs/ft/adapter")   # applies and merges a saved adapter
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from torch import nn

# The attention and MLP projections of `anygpt.model.llama.model` (the names peft matches as module-name suffixes).
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


@dataclass
class LoraOptions:
    """What a LoRA run trains.

    Args:
        rank, alpha, dropout: the low-rank update ``alpha / rank * B A`` and the dropout on its input.
        targets: module names (suffixes) that get adapters; the LLaMA attention and MLP projections by default.
        added_rows: train the embedding and LM-head rows of the added tokens (modality codes and markers).
        embeddings: train the whole embedding and LM head instead (large: two vocab x width matrices).
        quantize: ``"nf4"`` quantizes the frozen base projections to 4 bits with bitsandbytes (QLoRA; CUDA only).
    """

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    added_rows: bool = True
    embeddings: bool = False
    quantize: str | None = None

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if self.quantize not in (None, "nf4"):
            raise ValueError(f"quantize must be null or 'nf4' (QLoRA), got {self.quantize!r}")
        if self.quantize:
            require_cuda()  # at configuration time, before a trainer or a model is built
        if not self.targets:
            raise ValueError(f"LoRA needs target modules, e.g. {list(LLAMA_PROJECTIONS)}")


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("QLoRA (lora.quantize: nf4) needs a CUDA GPU: bitsandbytes' 4-bit layers have no CPU "
                           "kernels. On a CPU use experiments/finetune/lora.yaml (LoRA on a bf16/fp32 base) instead.")


def quantize_nf4(model: nn.Module, targets: Sequence[str]) -> None:
    """Replace the target projections by bitsandbytes 4-bit (NF4) layers on the GPU, frozen; the rest of the model
    moves to the GPU in bf16. Needs CUDA: bitsandbytes' 4-bit kernels do not run on a CPU."""
    require_cuda()
    try:
        import bitsandbytes as bnb  # optional: pip install 'anygpt[qlora]'
    except ImportError as err:
        raise RuntimeError("QLoRA needs bitsandbytes: pip install 'anygpt[qlora]'") from err
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rpartition(".")[2] in targets:
            layer = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=False,
                                      compute_dtype=torch.bfloat16, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(module.weight.data.to(torch.bfloat16), requires_grad=False,
                                             quant_type="nf4")
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer)
    model.to(device="cuda", dtype=torch.bfloat16)  # Params4bit quantize when they reach the GPU


def apply_lora(model: nn.Module, options: LoraOptions, added_ids: Sequence[int]) -> nn.Module:
    """Freeze ``model`` and inject the adapters in place (the module keeps its type and attribute names, so the
    parallelization plan and the decoder treat it as before). Returns ``model``. ``added_ids`` are the rows trained
    when ``options.added_rows``."""
    if options.quantize:
        quantize_nf4(model, options.targets)
    ids = list(added_ids)
    rows = {"embed_tokens": ids, "lm_head": ids} if options.added_rows and ids and not options.embeddings else None
    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.targets), trainable_token_indices=rows,
                        modules_to_save=["embed_tokens", "lm_head"] if options.embeddings else None)
    inject_adapter_in_model(config, model)
    return model


def inject_like(model: nn.Module, reference: nn.Module) -> nn.Module:
    """Give ``model`` the same (freshly initialised) adapters as ``reference``, e.g. a plain copy to load a gathered
    LoRA state dict into."""
    inject_adapter_in_model(copy.deepcopy(reference.peft_config["default"]), model)
    return model


def is_lora(model: nn.Module) -> bool:
    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def trainable_summary(model: nn.Module) -> tuple[int, int, float]:
    """(trainable parameters, all parameters, fraction); a 4-bit weight counts its unpacked size."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel() * (2 if getattr(param, "quant_type", None) else 1)  # Params4bit packs two values a byte
        total += n
        trainable += n if param.requires_grad else 0
    return trainable, total, trainable / max(total, 1)


def save_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Write the adapter of ``model`` in PEFT format (``PeftModel.from_pretrained`` reads it too)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = get_peft_model_state_dict(model)
    # peft's own on-disk key prefix, so that peft's loaders find the weights
    save_file({f"base_model.model.{k}": v.detach().to("cpu").contiguous() for k, v in weights.items()},
              str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    model.peft_config["default"].save_pretrained(str(directory))
    return directory


def load_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Apply a saved adapter to a base model and merge it (``--loading.adapter`` of chat, generate, benchmark)."""
    return merge_lora(attach_adapter(model, directory))


def attach_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Inject a saved adapter into ``model``, unmerged (for continued training or comparison)."""
    directory = Path(directory)
    if not (directory / ADAPTER_CONFIG).is_file() or not (directory / ADAPTER_WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory} is not a PEFT adapter folder: expected {ADAPTER_CONFIG} and "
                                f"{ADAPTER_WEIGHTS} (written by `anygpt fit` with a LoRA recipe, next to the export)")
    kind = json.loads((directory / ADAPTER_CONFIG).read_text()).get("peft_type")
    if kind != "LORA":
        raise ValueError(f"{directory / ADAPTER_CONFIG}: peft_type {kind!r}; only LoRA adapters are supported")
    inject_adapter_in_model(LoraConfig.from_pretrained(str(directory)), model)
    state = {k.removeprefix("base_model.model."): v for k, v in load_file(str(directory / ADAPTER_WEIGHTS)).items()}
    result = set_peft_model_state_dict(model, state)
    missing = [k for k in result.missing_keys if "lora_" in k or "trainable_tokens" in k or "modules_to_save" in k]
    if missing or result.unexpected_keys:
        raise ValueError(f"{directory}: the adapter does not fit this model (missing {missing[:5]}, unexpected "
                         f"{list(result.unexpected_keys)[:5]}); was it trained on this base checkpoint?")
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and remove the peft wrappers, in place: the plain model, with
    ``W + alpha / rank * B A`` in the projections and the trained rows in the embedding and LM head."""
    done: list[str] = []  # replaced modules: everything below them is gone with them
    for name, module in list(model.named_modules()):
        parent_name, _, child = name.rpartition(".")
        if not name or any(name.startswith(d + ".") for d in done):
            continue
        if hasattr(module, "unload_and_optionally_merge_module"):  # trainable tokens, modules_to_save
            new = module.unload_and_optionally_merge_module(merge=True, safe_merge=True, adapter_names=None)
        elif isinstance(module, BaseTunerLayer):
            module.merge(safe_merge=True)
            new = module.get_base_layer()
        else:
            continue
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        done.append(name)
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model
