"""How the LLaMA decoder is wrapped for training: activation checkpointing and ``torch.compile`` per block, then FSDP2
(``fully_shard`` per block, then the root), the order FSDP2 expects. The training module calls `parallelize` and never
walks the blocks itself."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import checkpoint

from anygpt.model.llama.model import LLaMA


def checkpoint_block(block: nn.Module) -> None:
    """Recompute ``block``'s forward in backward. The parameters keep their names (no wrapper module), so
    checkpoints load with or without activation checkpointing."""
    forward = block.forward

    def checkpointed(*args: Any, **kwargs: Any) -> Tensor:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed


def parallelize(model: LLaMA, mesh: DeviceMesh | None = None, *, activation_checkpointing: bool = False,
                compile: bool = False, reshard_after_forward: bool = True, bf16: bool = False) -> None:
    """Wrap ``model`` in place.

    Args:
        mesh: the data-parallel device mesh to shard over with FSDP2; None leaves the model unsharded.
        activation_checkpointing: recompute each block in backward.
        compile: ``torch.compile`` each block in place (parameter names and state-dict keys stay those of the plain
            block).
        reshard_after_forward: FSDP2 frees the gathered parameters after each block's forward (ZeRO-3 style).
        bf16: gather and compute in bf16, reduce gradients in fp32; the sharded master weights stay fp32.
    """
    for block in model.blocks:
        if activation_checkpointing:
            checkpoint_block(block)
        if compile:
            block.compile()
    if mesh is None:
        return
    kwargs: dict[str, Any] = {"mesh": mesh}
    if bf16:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, reshard_after_forward=reshard_after_forward, **kwargs)
    fully_shard(model, **kwargs)


def fill_from_rank0(model: nn.Module, device: torch.device, full_state: dict[str, Tensor]) -> None:
    """Materialise a sharded meta-device ``model`` on ``device`` and copy rank 0's whole state dict into it, shard by
    shard (the other ranks pass an empty dict)."""
    model.to_empty(device=device)
    for module in model.modules():
        if isinstance(module, LLaMA):
            module.reset_rope_cache()  # non-persistent tables, rebuilt on first use
    set_model_state_dict(model, full_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
