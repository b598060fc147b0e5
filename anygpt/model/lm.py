"""`AnyGPTLM`: the LightningModule that trains the LLaMA decoder on unified token sequences.

- The model is built in ``configure_model``: a named size (``tiny``, ``llama2-7b``) or an HF LLaMA checkpoint
  (``pretrained``), its embeddings grown to the unified vocabulary (old rows kept bit-identical, new rows the mean of
  the old ones or random), then sharded with FSDP2 (``fully_shard`` per block, then the root) when Lightning's
  `ModelParallelStrategy` provides a device mesh; plain otherwise (single device, DDP). Sharded, only rank 0 builds
  the whole model: the others shard an empty meta-device skeleton and receive their shards from it.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from anygpt.model.configs import Config
from anygpt.model.llama import LLaMA
from anygpt.model.schedule import warmup_cosine

# The checkpoint entry holding what `AnyGPTLM.configure_model` resolved (architecture, modality id ranges).
BUILT_KEY = "anygpt_built"


def load_pretrained(path: str | Path) -> LLaMA:
    """An HF ``LlamaForCausalLM`` checkpoint directory -> our `LLaMA` (float32, CPU).

    The one place the training code loads base weights; the conversion itself lives in `anygpt.model.hf`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pretrained checkpoint {path} does not exist: give the local directory of an HF "
                                "LLaMA checkpoint (config.json + *.safetensors or pytorch_model*.bin)")
    from anygpt.model.hf import load_hf

    model = load_hf(path, dtype=torch.float32)
    # load_hf builds on the meta device; its non-persistent caches (RoPE tables, rebuilt lazily) may stay there.
    # Lightning's ModelParallelStrategy treats any meta tensor as "not initialised yet" and would re-initialise the
    # whole module (to_empty + reset_parameters), wiping the loaded weights, so no meta tensor may survive here.
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_meta:
                module._buffers[name] = torch.empty(buffer.shape, dtype=buffer.dtype)
    if hasattr(model, "rope_len"):
        model.rope_len = 0
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"{path}: the checkpoint has no weights for {missing[:5]} ({len(missing)} tensors)")
    return model


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
        model: a named size from `anygpt.model.configs` (ignored for the architecture when ``pretrained`` is set).
        model_config: overrides of that size's fields (``{"n_layer": 2}``).
        pretrained: local HF LLaMA checkpoint directory to start from (LLaMA-2 7B in the paper).
        vocab_size: the unified vocabulary size; None reads it from the data module's ``vocab``.
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
    """

    def __init__(self, model: str = "tiny", model_config: dict[str, Any] | None = None, pretrained: str | None = None,
                 vocab_size: int | None = None, vocab_init: str = "mean", learning_rate: float = 6e-5,
                 weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                 warmup: float = 0.03, min_lr_ratio: float = 0.1, max_steps: int | None = None,
                 grad_clip: float | None = 1.0, activation_checkpointing: bool = False,
                 reshard_after_forward: bool = True, compile: bool = False) -> None:
        super().__init__()
        if vocab_init not in ("mean", "random"):
            raise ValueError(f"vocab_init must be 'mean' or 'random', got {vocab_init!r}")
        if pretrained is not None and not Path(pretrained).exists():
            raise FileNotFoundError(f"pretrained checkpoint {pretrained} does not exist: give the local directory of "
                                    "an HF LLaMA checkpoint (config.json + *.safetensors or pytorch_model*.bin)")
        Config.from_name(model)  # unknown names fail now, listing the known ones
        self.save_hyperparameters()
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
    def _vocab(self):
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        return getattr(datamodule, "vocab", None)

    def _group_ranges(self) -> list[tuple[str, int, int]]:
        vocab = self._vocab()
        if vocab is not None:
            return [(r.name, r.first_id, r.end_id) for r in vocab.modalities.values()]
        return [tuple(r) for r in self.built.get("modality_ranges", [])]

    def configure_model(self) -> None:
        if self.model is not None:
            return
        vocab = self._vocab()
        target = self.hparams.vocab_size
        if vocab is not None:
            if target is not None and target != len(vocab):
                raise ValueError(f"model vocab_size {target} differs from the data module's vocabulary "
                                 f"({len(vocab)} ids); drop vocab_size from the model config or fix the modalities")
            target = len(vocab)
        config = self._config(target)
        if self.device_mesh is None:
            model = self._build(config)
        else:
            # Only rank 0 holds the whole model (loaded or initialised); every rank builds an empty skeleton, shards
            # it, and receives its shards from rank 0. At 7B that is ~28 GB on one rank instead of on each.
            with torch.device("meta"):
                model = LLaMA(config)
        # Remember what checkpoint loading (without a data module) needs to rebuild the model. Not hyper-parameters:
        # those are __init__'s arguments, which `anygpt fit --ckpt_path FILE` parses back from the checkpoint.
        self.hparams["vocab_size"] = model.config.vocab_size
        ranges = self._group_ranges()
        self.built = {"resolved_config": model.config.to_dict(), "modality_ranges": [list(r) for r in ranges]}
        self.group_names = ["text", *[name for name, _, _ in ranges]]
        table = torch.zeros(model.config.vocab_size, dtype=torch.long)
        for i, (_, first, last) in enumerate(ranges):
            table[first: last + 1] = i + 1
        self.register_buffer("group_table", table, persistent=False)
        self.val_loss = TokenLoss(len(self.group_names))

        if self.hparams.activation_checkpointing:
            for block in model.blocks:
                _checkpoint_block(block)
        if self.hparams.compile:
            for block in model.blocks:
                block.compile()  # in place: parameter names and state-dict keys stay those of the plain block
        if self.device_mesh is not None:
            self._shard(model)
            self._fill_from_rank0(model, config)
        self.model = model

    def _config(self, target: int | None) -> Config:
        """The architecture, from the pretrained checkpoint's config.json or the named size, at the final vocabulary
        size. Every rank checks it, so a bad configuration fails everywhere instead of hanging the others."""
        if self.hparams.pretrained:
            from anygpt.model.hf import config_from_hf, read_hf_config

            path = Path(self.hparams.pretrained)
            if not path.exists():
                raise FileNotFoundError(f"pretrained checkpoint {path} does not exist: give the local directory of an "
                                        "HF LLaMA checkpoint (config.json + *.safetensors or pytorch_model*.bin)")
            config = config_from_hf(read_hf_config(path), name=path.name)
            old = config.vocab_size
            if target is not None and target < old:
                raise ValueError(f"{self.hparams.pretrained} has {old} embedding rows but the configured vocabulary "
                                 f"has only {target} ids; configure the modalities the checkpoint was trained with")
            return replace(config, vocab_size=max(target or old, old))
        if target is None:
            raise ValueError("the model needs a vocabulary size: set vocab_size or use AnyGPTDataModule")
        config = Config.from_name(self.hparams.model, **(self.hparams.model_config or {}))
        return replace(config, vocab_size=target)

    def _build(self, config: Config) -> LLaMA:
        """The whole model on the CPU: the pretrained weights with the vocabulary grown to ``config``, or a fresh
        initialisation."""
        if not self.hparams.pretrained:
            return LLaMA(config)
        model = load_pretrained(self.hparams.pretrained)
        if config.vocab_size > model.config.vocab_size:
            generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63)
            model.resize_token_embeddings(config.vocab_size, init=self.hparams.vocab_init, generator=generator)
        return model

    def _fill_from_rank0(self, model: LLaMA, config: Config) -> None:
        """Materialise the sharded meta-device ``model`` and copy rank 0's whole model into it, shard by shard."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        model.to_empty(device=self.trainer.strategy.root_device)
        model.rope_cos, model.rope_sin = torch.empty(0), torch.empty(0)  # non-persistent tables, rebuilt on first use
        full = {}
        if self.trainer.global_rank == 0:
            full = self._build(config).state_dict()
        set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

    def _shard(self, model: LLaMA) -> None:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = self.device_mesh["data_parallel"] if "data_parallel" in (self.device_mesh.mesh_dim_names or ()) \
            else self.device_mesh
        kwargs: dict[str, Any] = {"mesh": mesh}
        precision = str(getattr(self.trainer, "precision", ""))
        if precision.startswith("bf16"):
            # Gather and compute in bf16, reduce gradients in fp32; the sharded master weights stay fp32.
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in model.blocks:
            fully_shard(block, reshard_after_forward=self.hparams.reshard_after_forward, **kwargs)
        fully_shard(model, **kwargs)

    # -- loss ----------------------------------------------------------------------------------------------------------
    def _dp_size(self) -> int:
        if self.device_mesh is not None:
            names = self.device_mesh.mesh_dim_names or ()
            return self.device_mesh["data_parallel"].size() if "data_parallel" in names else self.device_mesh.size()
        return self.trainer.world_size if self._trainer is not None else 1

    def _dp_sum(self, value: Tensor) -> Tensor:
        if self._dp_size() > 1 and dist.is_initialized():
            value = value.clone()
            group = self.device_mesh["data_parallel"].get_group() if self.device_mesh is not None and \
                "data_parallel" in (self.device_mesh.mesh_dim_names or ()) else None
            dist.all_reduce(value, group=group)
        return value

    def losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Summed cross-entropy (for backward), and per-group loss sums and token counts."""
        ids, mask = batch["input_ids"], batch["loss_mask"]
        targets, target_mask = ids[:, 1:], mask[:, 1:].bool()
        logits = self.model(ids[:, :-1])
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        ce = ce.view_as(targets) * target_mask
        groups = self.group_table[targets][target_mask]
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
        for i, name in enumerate(self.group_names):
            if global_counts[i] > 0:
                group_loss = global_sums[i] / global_counts[i]
                self.log(f"train/loss_{name}", group_loss, prog_bar=True, rank_zero_only=True)
                self.log(f"train/ppl_{name}", torch.exp(group_loss), rank_zero_only=True)
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
        for i, name in enumerate(self.group_names):
            if counts[i] > 0:
                self.log(f"val/loss_{name}", per_group[i].float())
                self.log(f"val/ppl_{name}", torch.exp(per_group[i]).float())
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
            (decay if param.dim() >= 2 and "norm" not in name else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.learning_rate, betas=tuple(self.hparams.betas), eps=self.hparams.eps)
        total = self._schedule_steps()
        warmup = self.hparams.warmup
        warmup_steps = int(round(warmup * total)) if warmup < 1 else int(warmup)
        scheduler = warmup_cosine(optimizer, warmup_steps, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _checkpoint_block(block: nn.Module) -> None:
    """Recompute ``block``'s forward in backward. The parameters keep their names (no wrapper module), so
    checkpoints load with or without activation checkpointing."""
    from torch.utils.checkpoint import checkpoint

    forward = block.forward

    def checkpointed(*args: Any, **kwargs: Any) -> Tensor:
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed
