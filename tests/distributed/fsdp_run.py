"""Standalone 2-process run (launched by test_fsdp.py): FSDP2 through ModelParallelStrategy on CPU/gloo.

Modes (argv[1]):
  parity OUT DEVICES [CKPT]  fixed batches, global batch 4 (4 / DEVICES per rank), losses per step ->
                OUT/parity_<devices>.json; with CKPT (an HF LLaMA directory) also the vocabulary expansion of that
                checkpoint under FSDP2 -> OUT/expand.json
  lora OUT DEVICES  parity's batches with LoRA (adapters + added-token rows) -> OUT/lora_<devices>.json: losses, which
                weights changed, whether the adapters were sharded, the trainable fraction
  resume OUT    shards from the data module: 8 steps straight; 4 steps + checkpoint; resume to 8 -> OUT/resume.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.utils.data import DataLoader, IterableDataset

from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.tiny import TINY_MODALITIES
from anygpt.modalities.spec import ModalitySpec
from anygpt.model import lm as lm_module
from anygpt.model.lm import AnyGPTLM
from anygpt.model.lora import LoraOptions, trainable_summary
from anygpt.vocab import UnifiedVocab

MODEL = {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_kv_head": 2, "intermediate_size": 64}


class Losses(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.batches: list[int] = []  # a fingerprint of each step's batch on this rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss"]))
        self.batches.append(int((batch["input_ids"] * torch.arange(batch["input_ids"].size(1))).sum()))


class GlobalBatchSlice(IterableDataset):
    """Step k's global batch is rows 4k..4k+3 for any number of ranks; each rank takes its contiguous slice."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, global_batch: int) -> None:
        self.ids, self.mask, self.global_batch = ids, mask, global_batch

    def __iter__(self):
        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        per_rank = self.global_batch // world
        for start in range(0, len(self.ids), self.global_batch):
            rows = slice(start + rank * per_rank, start + (rank + 1) * per_rank)
            yield {"input_ids": self.ids[rows], "loss_mask": self.mask[rows]}


def trainer(devices: int, steps: int, callbacks, root: Path, checkpointing: bool = False) -> L.Trainer:
    strategy = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1) if devices > 1 else "auto"
    return L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=steps, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                     enable_checkpointing=checkpointing, num_sanity_val_steps=0, default_root_dir=root)


def parity(out: Path, devices: int) -> None:
    L.seed_everything(0)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 200, (24, 33), generator=g)
    mask = torch.rand(24, 33, generator=g) > 0.3  # uneven token counts per rank: the loss must weight them globally
    loader = DataLoader(GlobalBatchSlice(ids, mask, global_batch=4), batch_size=None)
    model = AnyGPTLM("tiny", model_config=MODEL, vocab_size=200, learning_rate=1e-2, warmup=2, max_steps=6,
                     grad_clip=0.5, activation_checkpointing=devices > 1)
    record = Losses()
    t = trainer(devices, 6, [record], out)
    t.fit(model, loader)
    if t.global_rank == 0:
        (out / f"parity_{devices}.json").write_text(json.dumps(record.losses))


class ByteText:
    """A 160-id text tokenizer stand-in (only its size matters here)."""

    vocab_size, bos_id, eos_id = 160, None, None

    def encode(self, text):
        return [b % 160 for b in text.encode()]

    def decode(self, ids):
        return ""


class WeightChanges(Callback):
    """The full state dict before and after training (gathered from the shards): which entries changed."""

    def on_fit_start(self, trainer, pl_module) -> None:
        full = get_model_state_dict(pl_module.model, options=StateDictOptions(full_state_dict=True))
        self.before = {k: v.clone() for k, v in full.items()}  # unsharded, these are the parameters themselves
        self.sharded = any(hasattr(p, "full_tensor") for n, p in pl_module.model.named_parameters() if "lora_" in n)
        self.summary = trainable_summary(pl_module.model)

    def on_fit_end(self, trainer, pl_module) -> None:
        after = get_model_state_dict(pl_module.model, options=StateDictOptions(full_state_dict=True))
        self.changed = sorted(k for k in after if not torch.equal(after[k], self.before[k]))


def lora(out: Path, devices: int) -> None:
    L.seed_everything(0)
    vocab = UnifiedVocab(ByteText(), [ModalitySpec("image", 34, ("<soim>", "<eoim>"), "<i{}>")])
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, len(vocab), (24, 33), generator=g)
    mask = torch.rand(24, 33, generator=g) > 0.3
    loader = DataLoader(GlobalBatchSlice(ids, mask, global_batch=4), batch_size=None)
    model = AnyGPTLM("tiny", model_config=MODEL, vocab=vocab, learning_rate=1e-2, warmup=2, max_steps=6,
                     grad_clip=0.5, activation_checkpointing=devices > 1,
                     lora=LoraOptions(rank=4, alpha=8, dropout=0.0))
    record, changes = Losses(), WeightChanges()
    t = trainer(devices, 6, [record, changes], out)
    t.fit(model, loader)
    if t.global_rank == 0:
        trainable, total, fraction = changes.summary
        (out / f"lora_{devices}.json").write_text(json.dumps({
            "losses": record.losses, "changed": changes.changed, "sharded": changes.sharded,
            "trainable": trainable, "total": total, "fraction": fraction}))


class CheckExpansion(Callback):
    """After sharding: gather the embedding and output rows and compare them with the HF checkpoint's."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.result: dict = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        from anygpt.model.llama.hf_adapter import load_hf

        base = load_hf(self.checkpoint)
        old = base.config.vocab_size
        for name, ours, theirs in (("embed", pl_module.model.embed_tokens.weight, base.embed_tokens.weight),
                                   ("head", pl_module.model.lm_head.weight, base.lm_head.weight)):
            sharded = hasattr(ours, "full_tensor")
            full = ours.full_tensor() if sharded else ours
            self.result[name] = {
                "sharded": sharded, "rows": full.size(0),
                "old_rows_identical": bool(torch.equal(full[:old], theirs)),
                "new_rows_mean": bool(torch.allclose(full[old:], theirs.mean(0, keepdim=True).expand_as(full[old:]),
                                                     atol=1e-6)),
            }


def expand(out: Path, checkpoint: Path) -> None:
    L.seed_everything(0)
    builds: list[int] = []  # whole-model builds (checkpoint load + growth) on this rank: rank 0 only, once
    build = lm_module.build_model
    lm_module.build_model = lambda config, *args: builds.append(config.vocab_size) or build(config, *args)
    model = AnyGPTLM("tiny", pretrained=str(checkpoint), vocab_size=320, learning_rate=0.0, max_steps=1)
    check = CheckExpansion(checkpoint)
    ids = torch.randint(0, 320, (4, 17))
    loader = DataLoader(GlobalBatchSlice(ids, torch.ones_like(ids, dtype=torch.bool), global_batch=2), batch_size=None)
    t = trainer(2, 1, [check], out)
    t.fit(model, loader)
    (out / f"builds-{t.global_rank}.json").write_text(json.dumps(builds))
    if t.global_rank == 0:
        (out / "expand.json").write_text(json.dumps(check.result))


def resume(out: Path, shards: Path) -> None:
    def datamodule() -> AnyGPTDataModule:
        return AnyGPTDataModule(str(shards / "tokenizer"), TINY_MODALITIES,
                                [Source(str(shards / "shards" / m), w) for m, w in
                                 (("image", 0.4), ("speech", 0.3), ("music", 0.3))],
                                max_length=64, batch_size=2, batches_per_epoch=3, seed=5)

    def model(data: AnyGPTDataModule) -> AnyGPTLM:
        return AnyGPTLM("tiny", model_config=MODEL, vocab=data.vocab, learning_rate=1e-2, warmup=2, max_steps=8)

    results = {}
    L.seed_everything(0)
    straight = Losses()
    data = datamodule()
    trainer(2, 8, [straight], out).fit(model(data), data)
    results["straight"] = straight.losses
    results["straight_batches"] = straight.batches

    L.seed_everything(0)
    first = Losses()
    # Saved during training, as in real runs (after fit returns, Lightning has torn the loader's iterator down).
    save = ModelCheckpoint(dirpath=out, filename="step4", every_n_train_steps=4, save_top_k=-1)
    t = trainer(2, 5, [first, save], out, checkpointing=True)
    data = datamodule()
    t.fit(model(data), data)
    results["first"] = first.losses

    L.seed_everything(123)  # resuming must not depend on the global seed
    second = Losses()
    t = trainer(2, 8, [second], out)
    data = datamodule()
    t.fit(model(data), data, ckpt_path=out / "step4.ckpt")
    results["resumed"] = second.losses
    results["resumed_batches"] = second.batches
    results["checkpoint_is_dir"] = (out / "step4.ckpt").is_dir()
    if t.global_rank == 0:
        (out / "resume.json").write_text(json.dumps(results))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "parity":  # parity OUT DEVICES [HF_CHECKPOINT: also check vocabulary expansion, in the same launch]
        parity(out, int(sys.argv[3]))
        if len(sys.argv) > 4:
            expand(out, Path(sys.argv[4]))
    elif mode == "lora":
        lora(out, int(sys.argv[3]))
    else:
        resume(out, Path(sys.argv[3]))
