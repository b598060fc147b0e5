"""A torchmetrics `Metric` whose list states may hold Python objects (strings, lists of strings).

torchmetrics gathers list states with `all_gather` on tensors, which fails on strings; here such states are
gathered with `torch.distributed.all_gather_object` (rank-major order);
tensor states go through torchmetrics as usual.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torchmetrics import Metric


class ObjectStateMetric(Metric):
    """Base class: list states declared with `add_object_state` are synced with `all_gather_object`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._object_states: list[str] = []

    def add_object_state(self, name: str) -> None:
        self.add_state(name, default=[], dist_reduce_fx=None)
        self._object_states.append(name)

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
