"""Training the tiny image tokenizer: L1 + MSE reconstruction plus the commitment loss, AdamW with a short warmup.

``anygpt fit --config experiments/tokenizers/demo_image.yaml`` (minutes on a CPU); the codec is written to
``{default_root_dir}/pretrained`` when training ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.image.tiny import TinyImageTokenizer
from anygpt.modalities.training import TokenizerTrainer, code_perplexity
from anygpt.model.schedule import warmup_cosine


class ImageTokenizerTrainer(TokenizerTrainer):
    """Trains a `TinyImageTokenizer` on ``{"image": [B, 3, S, S]}`` batches (`ImageDataModule`).

    Args:
        codec: the tokenizer to train.
        lr, weight_decay: AdamW; the rate warms up over ``warmup_steps`` and then stays constant.
        commit_weight: weight of the commitment loss next to L1 + MSE.
    """

    def __init__(self, codec: TinyImageTokenizer | Mapping[str, Any], lr: float = 2e-3, weight_decay: float = 0.0,
                 commit_weight: float = 0.02, warmup_steps: int = 100) -> None:
        super().__init__(codec)
        self.save_hyperparameters(ignore=["codec"])

    def step(self, batch: Any, stage: str) -> torch.Tensor:
        images = batch["image"] if isinstance(batch, dict) else batch
        recon, codes, commit = self.codec(images)
        l1, mse = F.l1_loss(recon, images), F.mse_loss(recon, images)
        loss = l1 + mse + self.hparams.commit_weight * commit
        psnr = 10 * torch.log10(1.0 / F.mse_loss(recon.clamp(0, 1), images, reduction="none").mean((1, 2, 3)))
        counts = torch.bincount(codes.reshape(-1), minlength=self.codec.codebook_size)
        stats = {"loss": loss, "l1": l1, "mse": mse, "commit": commit, "psnr": psnr.mean(),
                 "perplexity": code_perplexity(counts)}
        if stage == "val":
            self._val_counts = self._val_counts + counts
        self.log_dict({f"{stage}/{k}": v.detach() for k, v in stats.items()}, prog_bar=stage == "val",
                      batch_size=images.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(self.codec.codebook_size, dtype=torch.long, device=self.device)

    def on_validation_epoch_end(self) -> None:
        """Codebook usage over the whole validation set: perplexity and fraction of entries used at least once."""
        counts = self.trainer.strategy.reduce(self._val_counts.float(), reduce_op="sum")
        self.log_dict({"val/set_perplexity": code_perplexity(counts), "val/used_fraction": (counts > 0).float().mean()})

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = warmup_cosine(opt, self.hparams.warmup_steps, min_ratio=1.0)  # warmup, then constant
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
