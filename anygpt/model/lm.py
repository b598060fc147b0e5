"""`AnyGPTLM`: the LightningModule that trains the LLaMA decoder on unified token sequences.

- The model is built in ``configure_model`` through its `anygpt.model.spec.ModelSpec`: a named size or an HF LLaMA
  checkpoint (``pretrained``) grown to the unified vocabulary, wrapped by the architecture's parallelization plan
  (FSDP2 when Lightning's `ModelParallelStrategy` provides a device mesh). Sharded, only rank 0 builds the whole
  model: the others shard an empty meta-device skeleton and receive their shards from it.
- Loss: next-token cross-entropy over the tokens the loss mask selects, normalised by the number of such tokens in the
  whole data-parallel batch (an all-reduce of one count), so a sharded run computes the same update as one process
  with the same global batch. Per-modality losses and perplexities (text, image, speech, music tokens) are logged.
- AdamW, linear warmup then cosine decay, tokens/s on the progress bar. Gradients are clipped in the module
  (``grad_clip``; ``clip_grad_norm_`` handles FSDP2's DTensor gradients) so clipping is the same under every strategy
  and the norm is logged; leave the Trainer's ``gradient_clip_val`` unset (Lightning 2.6 also accepts it under
  ModelParallelStrategy, but clipping twice is pointless).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.lora import LoraOptions, apply_lora, trainable_summary
from anygpt.model.schedule import warmup_cosine
from anygpt.model.spec import LLAMA, build_model, check_pretrained, resolve_config
from anygpt.vocab import UnifiedVocab

# The checkpoint entry holding what `AnyGPTLM.configure_model` resolved (architecture, modality id ranges).
BUILT_KEY = "anygpt_built"


class TokenLoss(Metric):
    """Token-weighted cross-entropy per group (text, then each modality), summed over steps and ranks."""

    full_state_update = False

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.zeros(groups, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, loss_sum: Tensor, count: Tensor) -> None:
        self.loss_sum += loss_sum.detach().double()
        self.count += count.detach().double()

    def compute(self) -> Tensor:
        return self.loss_sum / self.count.clamp(min=1)


class AnyGPTLM(L.LightningModule):
    """Next-token training of the LLaMA decoder on unified (text + modality) token sequences.

    Args:
        model: a named size from `anygpt.model.llama.config` (ignored for the architecture when ``pretrained`` is set).
        model_config: overrides of that size's fields (``{"n_layer": 2}``).
        pretrained: local HF LLaMA checkpoint directory to start from (LLaMA-2 7B in the paper).
        vocab: the unified vocabulary; ``anygpt fit`` links the data module's (see `anygpt.cli`), so it is configured
            once. It sizes the embeddings and names the per-modality losses.
        vocab_size: the vocabulary size when no ``vocab`` is given (a model trained on raw id batches).
        vocab_init: new embedding rows: ``mean`` of the old rows or ``random``.
        learning_rate, weight_decay, betas, eps: AdamW (no decay on norms).
        warmup: warmup length, a fraction of the run (< 1) or a number of steps (>= 1).
        min_lr_ratio: the cosine decays to ``learning_rate * min_lr_ratio``.
        max_steps: schedule length; None uses the Trainer's ``max_steps`` / estimated stepping batches.
        grad_clip: clip the gradient norm to this (None: no clipping).
        activation_checkpointing: recompute each block in backward (saves memory at 7B scale).
        compile: ``torch.compile`` each decoder block (after activation checkpointing, before FSDP2 sharding, the
            order FSDP2 expects); the first steps pay the compilation. Checkpoints are the same with or without it.
        reshard_after_forward: FSDP2 frees the gathered parameters after each block's forward (ZeRO-3 style).
        lora: fine-tune low-rank adapters (and the added-token rows) instead of every weight; see
            `anygpt.model.lora.LoraOptions`. None trains the whole model.
    """

    def __init__(self, model: str = "tiny", model_config: dict[str, Any] | None = None, pretrained: str | None = None,
                 vocab: UnifiedVocab | None = None, vocab_size: int | None = None, vocab_init: str = "mean",
                 learning_rate: float = 6e-5,
                 weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 warmup: float = 0.03, min_lr_ratio: float = 0.1, max_steps: int | None = None,
                 grad_clip: float | None = 1.0, activation_checkpointing: bool = False,
                 reshard_after_forward: bool = True, compile: bool = False, lora: LoraOptions | None = None) -> None:
        super().__init__()
        if vocab_init not in ("mean", "random"):
            raise ValueError(f"vocab_init must be 'mean' or 'random', got {vocab_init!r}")
        if pretrained is not None:
            check_pretrained(pretrained)
        Config.from_name(model)  # unknown names fail now, listing the known ones
        if vocab is not None and vocab_size is not None and vocab_size != len(vocab):
            raise ValueError(f"model vocab_size {vocab_size} differs from the data module's vocabulary ({len(vocab)} "
                             "ids); drop vocab_size from the model config or fix the modalities")
        if isinstance(lora, dict):  # `load_from_checkpoint` passes the saved hyper-parameters back as plain dicts
            lora = LoraOptions(**lora)
        self.save_hyperparameters(ignore=["vocab"])
        self.hparams["lora"] = asdict(lora) if lora is not None else None  # plain types: checkpoints load weights-only
        self.vocab = vocab
        self.lora = lora
        self.model: LLaMA | None = None
        # what configure_model resolved (architecture, modality id ranges), saved as the checkpoint's BUILT_KEY entry
        self.built: dict[str, Any] = {}
        self.group_names: list[str] = ["text"]
        self._last_time: float | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[BUILT_KEY] = self.built

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        hp = checkpoint.get("hyper_parameters") or {}  # checkpoints written before BUILT_KEY kept these there
        self.built = checkpoint.get(BUILT_KEY) or {k: hp[k] for k in ("resolved_config", "modality_ranges") if k in hp}

    # -- building ------------------------------------------------------------------------------------------------------
    def _group_ranges(self) -> list[tuple[str, int, int]]:
        if self.vocab is not None:
            return [(r.name, r.first_id, r.end_id) for r in self.vocab.modalities.values()]
        return [tuple(r) for r in self.built.get("modality_ranges", [])]

    def _group_table(self, size: int) -> Tensor:
        """Token id -> loss group (0 text, 1 + i the i-th modality), from the vocabulary or, for a checkpoint loaded
        without one, from the id ranges it recorded."""
        if self.vocab is not None:
            return self.vocab.modality_id_table()
        table = torch.zeros(size, dtype=torch.long)
        for i, (_, first, last) in enumerate(self._group_ranges()):
            table[first: last + 1] = i + 1
        return table

    def configure_model(self) -> None:
        if self.model is not None:
            return
        hp = self.hparams
        target = len(self.vocab) if self.vocab is not None else hp.vocab_size
        config = resolve_config(hp.model, hp.model_config, hp.pretrained, target)
        if self.device_mesh is None:
            model = self._adapted(build_model(config, hp.pretrained, hp.vocab_init))
        else:
            # Only rank 0 holds the whole model (loaded or initialised); every rank builds an empty skeleton, shards
            # it, and receives its shards from rank 0. At 7B that is ~28 GB on one rank instead of on each.
            if self.lora is not None and self.lora.quantize:
                raise ValueError("QLoRA (lora.quantize) runs on one GPU; it does not combine with FSDP2 sharding. Use "
                                 "experiments/finetune/lora.yaml for LoRA under FSDP2.")
            with torch.device("meta"):
                model = self._adapted(LLAMA.build(config))
        # Remember what checkpoint loading (without a data module) needs to rebuild the model. Not hyper-parameters:
        # those are __init__'s arguments, which `anygpt fit --ckpt_path FILE` parses back from the checkpoint.
        self.hparams["vocab_size"] = model.config.vocab_size
        ranges = self._group_ranges()
        self.built = {"resolved_config": asdict(model.config), "modality_ranges": [list(r) for r in ranges]}
        self.group_names = ["text", *[name for name, _, _ in ranges]]
        self.register_buffer("token_groups", self._group_table(model.config.vocab_size), persistent=False)
        self.val_loss = TokenLoss(len(self.group_names))

        mesh = self._dp_mesh()
        LLAMA.parallelize(model, mesh, activation_checkpointing=hp.activation_checkpointing, compile=hp.compile,
                          reshard_after_forward=hp.reshard_after_forward,
                          bf16=str(getattr(self.trainer, "precision", "")).startswith("bf16") if mesh else False)
        if mesh is not None:
            full = self._adapted(build_model(config, hp.pretrained, hp.vocab_init)).state_dict() \
                if self.trainer.global_rank == 0 else {}
            LLAMA.fill_from_rank0(model, self.trainer.strategy.root_device, full)
        self.model = model

    def _adapted(self, model: LLaMA) -> LLaMA:
        """``model`` with the LoRA adapters injected (unchanged for full fine-tuning)."""
        if self.lora is None:
            return model
        if self.lora.added_rows and self.vocab is None:
            raise ValueError("lora.added_rows trains the rows of the added tokens, which the vocabulary names: train "
                             "with AnyGPTDataModule (or pass vocab=) or set lora.added_rows: false")
        added = range(self.vocab.text.vocab_size, len(self.vocab)) if self.vocab is not None else range(0)
        return apply_lora(model, self.lora, added)

    def on_fit_start(self) -> None:
        trainable, total, fraction = trainable_summary(self.model)
        if self.trainer.is_global_zero:
            print(f"[finetune] trainable parameters: {trainable:,} of {total:,} ({100 * fraction:.3f}%)")

    # -- loss ----------------------------------------------------------------------------------------------------------
    def _dp_mesh(self) -> Any:
        """The data-parallel dimension of the device mesh (the whole mesh when it has no such name; None: no mesh)."""
        if self.device_mesh is None or "data_parallel" not in (self.device_mesh.mesh_dim_names or ()):
            return self.device_mesh
        return self.device_mesh["data_parallel"]

    def _dp_size(self) -> int:
        if self.device_mesh is not None:
            return self._dp_mesh().size()
        return self.trainer.world_size if self._trainer is not None else 1

    def _dp_sum(self, value: Tensor) -> Tensor:
        if self._dp_size() > 1 and dist.is_initialized():
            value = value.clone()
            named = self.device_mesh is not None and "data_parallel" in (self.device_mesh.mesh_dim_names or ())
            # over the data-parallel ranks when the mesh names them (a 1-D mesh may not span the job), else all ranks
            dist.all_reduce(value, group=self._dp_mesh().get_group() if named else None)
        return value

    def _log_groups(self, stage: str, losses: Tensor, counts: Tensor, **flags: Any) -> None:
        """Loss and perplexity of each group that had tokens."""
        for i, name in enumerate(self.group_names):
            if counts[i] > 0:
                self.log(f"{stage}/loss_{name}", losses[i].float(), prog_bar=stage == "train", **flags)
                self.log(f"{stage}/ppl_{name}", torch.exp(losses[i]).float(), **flags)

    def losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Summed cross-entropy (for backward), and per-group loss sums and token counts."""
        ids, mask = batch["input_ids"], batch["loss_mask"]
        targets, target_mask = ids[:, 1:], mask[:, 1:].bool()
        logits = self.model(ids[:, :-1])
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        ce = ce.view_as(targets) * target_mask
        groups = self.token_groups[targets][target_mask]
        selected = ce[target_mask]
        n = len(self.group_names)
        sums = torch.zeros(n, device=ce.device, dtype=torch.float32).index_add_(0, groups, selected.detach())
        counts = torch.bincount(groups, minlength=n).to(torch.float32)
        return ce.sum(), sums, counts

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, sums, counts = self.losses(batch)
        global_sums, global_counts = self._dp_sum(torch.cat([sums, counts])).chunk(2)
        tokens = global_counts.sum().clamp(min=1)
        # Data-parallel gradients are averaged over ranks, so scale by their number: the update is that of the mean
        # over every selected token of the global batch.
        loss = total * self._dp_size() / tokens
        mean = global_sums.sum() / tokens
        self.log("train/loss", mean, prog_bar=True, rank_zero_only=True)
        self._log_groups("train", global_sums / global_counts, global_counts, rank_zero_only=True)
        self._tokens = batch["input_ids"].numel() * self._dp_size()
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last_time is not None:
            self.log("train/tokens_per_s", self._tokens / max(now - self._last_time, 1e-9), prog_bar=True,
                     rank_zero_only=True)
        self._last_time = now

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        _, sums, counts = self.losses(batch)
        self.val_loss.update(sums, counts)

    def on_validation_epoch_end(self) -> None:
        per_group = self.val_loss.compute()
        counts = self.val_loss.count
        if counts.sum() == 0:
            return
        total = self.val_loss.loss_sum.sum() / counts.sum().clamp(min=1)
        self.log("val/loss", total.float(), prog_bar=True, sync_dist=False)
        self._log_groups("val", per_group, counts)
        self.val_loss.reset()

    # -- optimisation --------------------------------------------------------------------------------------------------
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.hparams.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hparams.grad_clip)
            if hasattr(norm, "full_tensor"):
                norm = norm.full_tensor()
            self.log("train/grad_norm", norm, rank_zero_only=True)

    def _schedule_steps(self) -> int:
        if self.hparams.max_steps:
            return int(self.hparams.max_steps)
        if self.trainer.max_steps and self.trainer.max_steps > 0:
            return int(self.trainer.max_steps)
        return int(self.trainer.estimated_stepping_batches)

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue  # frozen base weights (LoRA)
            (decay if param.dim() >= 2 and "norm" not in name else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.learning_rate, betas=tuple(self.hparams.betas), eps=self.hparams.eps)
        total = self._schedule_steps()
        warmup = self.hparams.warmup
        warmup_steps = int(round(warmup * total)) if warmup < 1 else int(warmup)
        scheduler = warmup_cosine(optimizer, warmup_steps, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

