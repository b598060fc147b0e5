"""Run the metrics on 2 gloo CPU processes with an uneven split of the data; rank 0 writes the results as JSON.

python tests/benchmarks/metrics/ddp_script.py OUT.json
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from benchmarks.metrics import CIDEr, CLIPScore, WordErrorRate  # noqa: E402

WORLD = 2
SPLITS = ([7, 4], [11, 0])  # items per rank: uneven on purpose, and a rank without data
WORDS = "A man, dog's cat riding sitting on the red blue big table street car two Mr. it's (left) don't".split()


def make_data(n: int = 11) -> dict:
    rng = random.Random(0)

    def sentence(lo: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, 12))) + rng.choice(["", "."])

    g = torch.Generator().manual_seed(0)
    return {
        "captions": [sentence(0) for _ in range(n)],
        "references": [[sentence(1) for _ in range(rng.randint(1, 5))] for _ in range(n)],
        "transcripts": [sentence(1) for _ in range(n)],
        "images": [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(n)],
    }


def build_metrics() -> dict:
    import open_clip

    torch.manual_seed(0)  # identical tiny CLIP on every rank
    vision = open_clip.CLIPVisionCfg(image_size=32, layers=1, width=32, head_width=16, patch_size=8)
    text = open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)
    clip = open_clip.CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text)
    return {
        "cider": CIDEr(tokenizer="python"),
        "wer": WordErrorRate(),
        "clip": CLIPScore(
            clip,
            preprocess=open_clip.image_transform(32, is_train=False),
            tokenizer=open_clip.get_tokenizer("ViT-B-32"),
        ),
    }


def run(metrics: dict, data: dict, lo: int, hi: int) -> dict:
    for i in range(lo, hi, 3):  # several updates per rank
        j = min(i + 3, hi)
        metrics["cider"].update(data["captions"][i:j], data["references"][i:j])
        metrics["wer"].update(data["captions"][i:j], data["transcripts"][i:j])
        metrics["clip"].update(data["images"][i:j], data["captions"][i:j])
    return {name: m.compute().item() for name, m in metrics.items()}


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    result = {}
    for split in SPLITS:
        lo = sum(split[:rank])
        result[str(split)] = run(build_metrics(), make_data(), lo, lo + split[rank])
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
    import open_clip  # noqa: F401  (imported once here: the forked ranks inherit every module)

    mp.start_processes(worker, args=(free_port(), sys.argv[1]), nprocs=WORLD, join=True, start_method="fork")
