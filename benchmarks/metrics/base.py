"""A torchmetrics `Metric` whose list states may hold Python objects (strings, lists of strings, tensors of any
shape, or nothing on a rank that saw no data).

torchmetrics gathers list states with `all_gather` on tensors, which fails on strings and on ranks with empty lists;
here such states are gathered with `torch.distributed.all_gather_object` (rank-major order); tensor states go through
torchmetrics as usual. `append_rows` keeps growing tensor states (embeddings) in a few preallocated blocks.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric

BLOCK_ROWS = 4096


class ObjectStateMetric(Metric):
    """Base class: list states declared with `add_object_state` are synced with `all_gather_object`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._object_states: list[str] = []
        self._blocks: dict[str, tuple[Tensor, int]] = {}

    def add_object_state(self, name: str) -> None:
        self.add_state(name, default=[], dist_reduce_fx=None)
        self._object_states.append(name)

    def reset(self) -> None:
        super().reset()
        self._blocks.clear()

    def append_rows(self, name: str, rows: Tensor) -> None:
        """Append ``rows`` to the list state ``name`` as views of blocks of ``BLOCK_ROWS`` preallocated rows.

        Keeping one small tensor per batch alive between the large transient buffers of each batch fragments the
        heap, and resident memory creeps up with the number of batches although the data kept is small; a few
        large blocks keep it flat. The state holds full blocks and a view of the filled part of the last one.
        """
        parts = getattr(self, name)
        block, filled = self._blocks.get(name, (None, 0))
        if block is not None and (not parts or parts[-1].data_ptr() != block.data_ptr()):
            block = None  # the state was reset or replaced since: start a new block
        rows = rows.detach()
        start = 0
        while start < len(rows):
            if block is None or filled == len(block):
                block, filled = rows.new_empty((BLOCK_ROWS, *rows.shape[1:])), 0
                parts.append(block[:0])
            take = min(len(block) - filled, len(rows) - start)
            block[filled:filled + take] = rows[start:start + take]
            filled, start = filled + take, start + take
            parts[-1] = block[:filled]
        if block is not None:
            self._blocks[name] = (block, filled)

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        group = process_group or self.process_group
        for name in self._object_states:
            gathered: list[list[Any] | None] = [None] * dist.get_world_size(group)
            dist.all_gather_object(gathered, list(getattr(self, name)), group=group)
            setattr(self, name, [item for part in gathered for item in part])
        tensor_reductions = {k: v for k, v in self._reductions.items() if k not in self._object_states}
        if not tensor_reductions:
            return
        saved = self._reductions
        self._reductions = tensor_reductions
        try:
            if dist_sync_fn is None:
                super()._sync_dist(process_group=process_group)
            else:
                super()._sync_dist(dist_sync_fn, process_group=process_group)
        finally:
            self._reductions = saved
