"""The tiny CLIP judge: a real open_clip ``CLIP`` (small ViT on 64x64, small text transformer, open_clip's BPE
tokenizer) trained contrastively on the demo corpus's image/caption pairs.

It is saved the way open_clip publishes models (``open_clip_config.json`` with ``model_cfg`` + ``preprocess_cfg``, and
``open_clip_model.safetensors``), so ``open_clip.create_model_and_transforms("local-dir:<dir>")`` loads it unchanged
and any open_clip model (a name + checkpoint path) can stand in for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from benchmarks.judges.training import JudgeTrainer, contrastive_loss, retrieval_at_1

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# ViT-8/64 image tower (64 patches, width 64) + 3-layer text transformer; the 49408 x 64 token table is 3.2M of the
# 3.5M parameters (kept frozen at its random init by default: only the few hundred BPE ids of the captions matter)
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 64, "layers": 3, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3},
}


def image_transform(image_size: int, mean: tuple = OPENAI_MEAN, std: tuple = OPENAI_STD):
    """open_clip's own evaluation transform (resize, center crop, normalize): training sees what judging sees."""
    from open_clip.transform import image_transform as oc_transform

    return oc_transform(image_size, is_train=False, mean=mean, std=std)


def build_clip(model_cfg: dict[str, Any]) -> torch.nn.Module:
    from open_clip.model import CLIP

    return CLIP(**model_cfg)


def save_tiny_clip(model: torch.nn.Module, model_cfg: dict[str, Any], directory: str | Path,
                   extra: dict[str, Any] | None = None, half: bool = True) -> Path:
    """Write an open_clip ``local-dir`` checkpoint (fp16 safetensors by default: half the size, same judgements)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic",
                                 "resize_mode": "shortest"}}
    if extra:
        config["anygpt_judge"] = extra
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def load_tiny_clip(directory: str | Path, device: str | torch.device = "cpu"):
    """(model, preprocess, tokenizer) of an open_clip checkpoint folder, via open_clip's own ``local-dir:`` loader."""
    import open_clip

    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{directory / CONFIG_NAME} not found: a CLIP judge folder holds {CONFIG_NAME} and "
                                f"{WEIGHTS_NAME} (write one with benchmarks.judges.clip.save_tiny_clip)")
    if not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{directory / WEIGHTS_NAME} not found (weights of the CLIP judge)")
    name = f"local-dir:{directory.resolve()}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


class TinyClipTrainer(JudgeTrainer):
    """Contrastive training of the tiny open_clip model; exports the judge folder when fit ends.

    Args:
        model_cfg: open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``); default `TINY_CLIP_CONFIG`.
        freeze_token_embedding: keep the 49408-row BPE table at its random init (a CPU saving: no dense gradient and
            optimizer update of 3M parameters per step); random 64-d rows are already distinct.
        export_dir: where `on_fit_end` writes the open_clip checkpoint folder (None: no export).
    """

    def __init__(self, model_cfg: dict[str, Any] | None = None, lr: float = 2e-3, weight_decay: float = 0.1,
                 warmup_steps: int = 50, freeze_token_embedding: bool = True, export_dir: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg = model_cfg or TINY_CLIP_CONFIG
        self.model = build_clip(self.model_cfg)
        self.model.token_embedding.requires_grad_(not freeze_token_embedding)
        import open_clip

        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.model_cfg["text_cfg"]["context_length"])
        self._val: list[tuple[Tensor, Tensor]] = []

    def _embed(self, images: Tensor, texts: list[str]) -> tuple[Tensor, Tensor]:
        tokens = self.tokenizer(texts).to(images.device)
        return (F.normalize(self.model.encode_image(images), dim=-1),
                F.normalize(self.model.encode_text(tokens), dim=-1))

    def training_step(self, batch: tuple[Tensor, list[str]], batch_idx: int) -> Tensor:
        image_emb, text_emb = self._embed(*batch)
        loss = contrastive_loss(image_emb, text_emb, self.model.logit_scale.exp().clamp(max=100))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch[-1]))
        return loss

    def validation_step(self, batch: tuple[Tensor, list[str]], batch_idx: int) -> None:
        self._val.append(self._embed(*batch))

    def on_validation_epoch_end(self) -> None:
        image_emb, text_emb = (torch.cat(x) for x in zip(*self._val, strict=True))
        self._val.clear()
        r1 = retrieval_at_1(image_emb, text_emb)
        self.log("val/i2t_r1", r1, prog_bar=True)
        if not self.trainer.sanity_checking:
            rank_zero_info(f"epoch {self.current_epoch}: val image->text R@1 {r1:.3f} over {len(image_emb)} images")
        self.log("val/t2i_r1", retrieval_at_1(text_emb, image_emb))
        self.log("val/cos_pos", (image_emb * text_emb).sum(-1).mean())

    def configure_optimizers(self):
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
        other = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
        return super().configure_optimizers([{"params": decay}, {"params": other, "weight_decay": 0.0}])

    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            save_tiny_clip(self.model, self.model_cfg, self.hparams.export_dir,
                           extra=self.record("demo corpus train split (Karpathy json)"))

