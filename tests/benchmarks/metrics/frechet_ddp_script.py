"""`frechet_block` on 2 gloo CPU processes, items dealt round-robin (an uneven count, and a case where one process has
no items); rank 0 writes every rank's block as JSON.

python tests/benchmarks/metrics/frechet_ddp_script.py OUT.json
"""

from __future__ import annotations

import json
import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from benchmarks.metrics.frechet import frechet_block  # noqa: E402

WORLD, D = 2, 6
SIZES = (23, 1)  # items: uneven over 2 ranks; and a single item, so rank 1 has none (the sums still reduce)
FAILED = {4, 9}


def make_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    mix = rng.normal(size=(D, D))
    return {k: rng.normal(size=(n, D)) @ mix + shift for k, shift in (("real", 0.0), ("gen", 0.7), ("train", 0.1))}


def block(n: int, rank: int, world: int) -> dict:
    data, mine = make_data(n), range(rank, n, world)
    return frechet_block("FD", "test features", D, {i: data["real"][i] for i in mine},
                         {i: data["gen"][i] for i in mine if i not in FAILED},
                         {"train": ("training items", {i: data["train"][i] for i in mine})},
                         n, n_failed=len(FAILED & set(range(n))), seed=3)


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    result = {}
    for n in SIZES:
        result[n] = block(n, rank, WORLD)
    gathered = [None] * WORLD
    dist.all_gather_object(gathered, result)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"ranks": gathered}, f)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    mp.start_processes(worker, args=(free_port(), sys.argv[1]), nprocs=WORLD, join=True, start_method="fork")
