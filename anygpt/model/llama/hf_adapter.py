"""Import and export HF ``LlamaForCausalLM`` checkpoints with an explicit key map.

A checkpoint directory holds ``config.json`` plus weights in one of these layouts (first match wins):
``model.safetensors``, ``model.safetensors.index.json`` (sharded safetensors), ``pytorch_model.bin``,
``pytorch_model.bin.index.json`` (sharded bins, read with ``weights_only=True``). Weights are streamed shard by shard
and tensor by tensor, so a 7B checkpoint loads into a model built on the meta device (``assign=True``) without a
second copy in memory.

    model = load_hf("/ckpt/llama-2-7b-hf", dtype=torch.bfloat16)   # Config from config.json, meta init, assign
    save_hf(model, "out/", max_shard_size=5 * 2**30)               # config.json + (sharded) safetensors
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA

# HF name -> our name. Per-layer names are relative to ``model.layers.{i}.`` / ``blocks.{i}.``.
GLOBAL_KEYS: dict[str, str] = {
    "model.embed_tokens.weight": "embed_tokens.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}
LAYER_KEYS: dict[str, str] = {
    "input_layernorm.weight": "input_norm.weight",
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.o_proj.weight": "attn.o_proj.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
}
# Buffers some older HF checkpoints saved; they are recomputed, never loaded.
IGNORED_HF_KEYS = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_OUR_LAYER = re.compile(r"blocks\.(\d+)\.(.+)")
_OUR_TO_HF_LAYER = {v: k for k, v in LAYER_KEYS.items()}
_OUR_TO_HF_GLOBAL = {v: k for k, v in GLOBAL_KEYS.items()}

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """An HF checkpoint that does not fit the model: missing/unexpected keys, wrong shapes, unsupported features."""


# ----------------------------------------------------------------------------------------------------------------------
# Key and config maps
# ----------------------------------------------------------------------------------------------------------------------
def hf_to_ours(key: str) -> str | None:
    """Our parameter name for an HF key, or None if the key is not part of the LLaMA layout we know."""
    if key in GLOBAL_KEYS:
        return GLOBAL_KEYS[key]
    match = _HF_LAYER.fullmatch(key)
    if match and match.group(2) in LAYER_KEYS:
        return f"blocks.{match.group(1)}.{LAYER_KEYS[match.group(2)]}"
    return None


def ours_to_hf(key: str) -> str:
    if key in _OUR_TO_HF_GLOBAL:
        return _OUR_TO_HF_GLOBAL[key]
    match = _OUR_LAYER.fullmatch(key)
    if match and match.group(2) in _OUR_TO_HF_LAYER:
        return f"model.layers.{match.group(1)}.{_OUR_TO_HF_LAYER[match.group(2)]}"
    raise KeyError(f"{key!r} has no HF LlamaForCausalLM name")


def config_from_hf(hf: dict[str, Any], name: str = "hf") -> Config:
    """Our `Config` from an HF LLaMA ``config.json`` dict; variants we do not implement raise `CheckpointError`."""
    model_type = hf.get("model_type")
    architectures = hf.get("architectures") or []
    if model_type != "llama" and "LlamaForCausalLM" not in architectures:
        raise CheckpointError(f"config.json describes model_type={model_type!r} architectures={architectures}; "
                              "only LLaMA (LlamaForCausalLM) checkpoints can be imported.")
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if scaling or rope_type != "default":
        raise CheckpointError(f"config.json uses RoPE scaling ({scaling or rope}); only plain RoPE is implemented. "
                              "Remove rope_scaling only if the checkpoint was trained without it.")
    for flag in ("attention_bias", "mlp_bias"):
        if hf.get(flag):
            raise CheckpointError(f"config.json sets {flag}=true; the LLaMA here has no biases.")
    if hf.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"config.json sets hidden_act={hf['hidden_act']!r}; only SwiGLU (silu) is implemented.")
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * n_head != n_embd:
        raise CheckpointError(f"config.json sets head_dim={head_dim} != hidden_size/num_attention_heads="
                              f"{n_embd // n_head}; decoupled head sizes are not implemented.")
    n_kv = hf.get("num_key_value_heads") or n_head
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    return Config(
        name=name,
        vocab_size=hf["vocab_size"],
        block_size=hf.get("max_position_embeddings", 2048),
        n_layer=hf["num_hidden_layers"],
        n_head=n_head,
        n_kv_head=None if n_kv == n_head else n_kv,
        n_embd=n_embd,
        intermediate_size=hf["intermediate_size"],
        rope_theta=float(theta),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        init_std=hf.get("initializer_range", 0.02),
    )


def config_to_hf(config: Config, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """An HF ``config.json`` dict that transformers' ``LlamaConfig`` reads back to the same architecture."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_size,
        "hidden_act": "silu",
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": config.init_std,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------
def read_hf_config(directory: str | Path) -> dict[str, Any]:
    directory = _check_dir(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: an HF checkpoint directory needs config.json next to its weights.")
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err


def weight_files(directory: str | Path) -> list[Path]:
    """The weight files of a checkpoint directory, in shard order."""
    directory = _check_dir(directory)
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        index = json.loads(path.read_text("utf-8"))
        shards = sorted(set(index.get("weight_map", {}).values()))
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} names shards that are missing from {directory}: {missing}")
        return [directory / s for s in shards]
    raise FileNotFoundError(f"No weights in {directory}: expected one of {list(WEIGHT_FILES)}.")


def iter_hf_tensors(directory: str | Path) -> Iterator[tuple[str, Tensor]]:
    """(HF key, tensor) pairs, one shard at a time; safetensors are read lazily tensor by tensor."""
    for path in weight_files(directory):
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) torch.save files cannot be memory-mapped
                state = torch.load(path, map_location="cpu", weights_only=True)
            yield from state.items()
            del state


@torch.no_grad()
def load_hf_weights(model: LLaMA, directory: str | Path, assign: bool = False, dtype: torch.dtype | None = None
                    ) -> None:
    """Load the weights of an HF LLaMA checkpoint directory into ``model`` (strict: every key must match).

    Args:
        assign: replace the parameters by the loaded tensors instead of copying into them; required when ``model``
            was built on the meta device, and it avoids a second copy of the weights.
        dtype: cast while loading (default: the model's dtype when copying, the checkpoint's when assigning).
    """
    directory = Path(directory)
    params = dict(model.named_parameters(remove_duplicate=False))
    tied = model.config.tie_embeddings
    expected = set(params) - ({"lm_head.weight"} if tied else set())
    loaded: set[str] = set()
    unexpected: list[str] = []
    for hf_key, tensor in iter_hf_tensors(directory):
        if IGNORED_HF_KEYS.fullmatch(hf_key):
            continue
        key = hf_to_ours(hf_key)
        if key is None or key not in expected:
            if tied and key == "lm_head.weight":
                continue  # tied checkpoints sometimes carry a copy of the embedding; the tie wins
            unexpected.append(hf_key)
            continue
        param = params[key]
        if tuple(tensor.shape) != tuple(param.shape):
            raise CheckpointError(f"{directory}: {hf_key} has shape {tuple(tensor.shape)} but the model expects "
                                  f"{tuple(param.shape)} for {key}; the config.json and the weights disagree.")
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name)
        if assign:
            target_dtype = dtype or tensor.dtype
            device = param.device if param.device.type != "meta" else torch.device("cpu")
            setattr(module, attr, nn.Parameter(tensor.to(device=device, dtype=target_dtype),
                                               requires_grad=param.requires_grad))
        else:
            param.copy_(tensor)
        loaded.add(key)
    missing = sorted(expected - loaded)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys {[ours_to_hf(k) for k in missing][:10]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys {unexpected[:10]}")
        raise CheckpointError(f"{directory} does not match the model ({model.config.n_layer} layers): "
                              f"{'; '.join(parts)}. Is it a LlamaForCausalLM checkpoint of this size?")
    if tied:
        model.lm_head.weight = model.embed_tokens.weight
    if dtype is not None and not assign:
        model.to(dtype)


def load_hf(directory: str | Path, *, dtype: torch.dtype | None = None) -> LLaMA:
    """Build a `LLaMA` from an HF checkpoint directory: config from ``config.json``, weights streamed onto a model
    created on the meta device (no random init, one copy of the weights in memory)."""
    directory = _check_dir(directory)
    with torch.device("meta"):
        model = LLaMA(config_from_hf(read_hf_config(directory), name=directory.name))
    load_hf_weights(model, directory, assign=True, dtype=dtype)
    model.reset_rope_cache()  # non-persistent tables, rebuilt on first use
    return model


# ----------------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------------
def hf_state_dict(model: LLaMA) -> dict[str, Tensor]:
    """The model's weights under HF names (the tied output layer is left out, as HF does)."""
    skip = "lm_head.weight" if model.config.tie_embeddings else None
    return {ours_to_hf(key): value for key, value in model.state_dict().items() if key != skip}


@torch.no_grad()
def save_hf(model: LLaMA, directory: str | Path, max_shard_size: int = 5 * 2**30, dtype: torch.dtype | None = None
            ) -> list[Path]:
    """Write ``config.json`` and safetensors weights that ``LlamaForCausalLM.from_pretrained`` loads.

    Above ``max_shard_size`` bytes the weights are split into ``model-0000i-of-0000n.safetensors`` files with a
    ``model.safetensors.index.json``. Returns the weight files written. (For an FSDP-sharded model gather a full state
    dict first; this writes what ``model.state_dict()`` returns.)
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = hf_state_dict(model)
    dtype = dtype or next(iter(state.values())).dtype
    shards: list[list[str]] = [[]]
    size = 0
    for key, value in state.items():
        nbytes = value.numel() * dtype.itemsize
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map = {}
    for name, keys in zip(names, shards, strict=True):
        tensors = {k: state[k].detach().to(device="cpu", dtype=dtype).contiguous() for k in keys}
        save_file(tensors, str(directory / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, name))
        del tensors
    if len(shards) > 1:
        total = sum(v.numel() * dtype.itemsize for v in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (directory / "config.json").write_text(json.dumps(config_to_hf(model.config, dtype), indent=2))
    return [directory / n for n in names]


def _check_dir(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"HF checkpoint directory {directory} does not exist (expected config.json and "
                                "model.safetensors or pytorch_model.bin inside).")
    return directory
