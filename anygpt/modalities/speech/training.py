"""Training the speech tokenizer and SoundStorm.

`SpeechTokenizerTrainer` follows SpeechTokenizer minus the adversarial part: waveform L1 + multi-scale log-mel L1 + RVQ
commitment + semantic distillation of RVQ level 1 through ``transform``. The teacher is either HuBERT features
(``semantic_teacher="hubert"``, a local HuBERT checkpoint, the paper's recipe) or frame-level phone identities from the
corpus' alignments (``"phones"``: ``transform`` then outputs phone logits and the loss is cross-entropy; the demo's
choice, see `anygpt.modalities.speech.tiny`). `SoundStormTrainer` trains `SoundStorm` on all-level codes. Both write
their module with ``save_pretrained`` to ``{default_root_dir}/pretrained`` when training ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.speech.codec import SpeechTokenizerCodec
from anygpt.modalities.speech.data import IGNORE_INDEX
from anygpt.modalities.speech.soundstorm import SoundStorm
from anygpt.modalities.training import TokenizerTrainer


class SpeechTokenizerTrainer(TokenizerTrainer):
    """Trains a `SpeechTokenizerCodec` on ``{"audio": [B, 1, T], "phones": [B, F]}`` batches (`SpeechDataModule`).

    Args:
        codec: the tokenizer to train.
        semantic_teacher: ``hubert`` (distil HuBERT features, needs ``hubert_path``) or ``phones`` (frame phone
            labels; ``len(phones)`` must equal the codec's ``semantic_dimension``).
        phones: the phone classes, in the order of the data module's labels.
        hubert_path: a local HuBERT checkpoint folder (transformers ``HubertModel``).
        lr, betas: Adam (SpeechTokenizer's GAN-style betas 0.5, 0.9 by default).
        min_lr_ratio: the rate follows a cosine from ``lr`` down to ``lr * min_lr_ratio`` at the trainer's
            ``max_steps``, or at ``decay_steps`` when set (ratio 1: constant, SpeechTokenizer's recipe).
        loss_weights: weights of ``wave``, ``mel``, ``commit`` and ``semantic`` (1 each by default).
        mel_scales: STFT sizes of the multi-scale log-mel loss.
    """

    def __init__(self, codec: SpeechTokenizerCodec | Mapping[str, Any], semantic_teacher: str = "hubert",
                 phones: Sequence[str] = (), hubert_path: str | None = None, lr: float = 1e-4,
                 loss_weights: dict[str, float] | None = None,
                 mel_scales: Sequence[int] = (256, 512, 1024, 2048), betas: Sequence[float] = (0.5, 0.9),
                 min_lr_ratio: float = 1.0, decay_steps: int = 0) -> None:
        super().__init__(codec)
        self.save_hyperparameters(ignore=["codec"])
        config = self.codec.config
        if semantic_teacher not in ("phones", "hubert"):
            raise ValueError(f"semantic_teacher must be 'phones' or 'hubert', got {semantic_teacher!r}")
        if semantic_teacher == "phones" and len(phones) != config.semantic_dimension:
            raise ValueError(f"semantic_teacher='phones' needs semantic_dimension == len(phones) "
                             f"({config.semantic_dimension} != {len(phones)}): transform outputs phone logits.")
        self.weights = {"wave": 1.0, "mel": 1.0, "commit": 1.0, "semantic": 1.0, **(loss_weights or {})}
        self._hubert: list[torch.nn.Module] = []

    def _mel_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF

        rate = self.codec.sample_rate
        total = x.new_zeros(())
        for n_fft in self.hparams.mel_scales:
            window = torch.hann_window(n_fft, device=x.device)
            n_mels = min(80, n_fft // 8)
            fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, rate / 2, n_mels, rate).to(x.device)
            logmels = [(torch.stft(w.reshape(-1, w.shape[-1]), n_fft, n_fft // 4, window=window, return_complex=True)
                        .abs().pow(2).transpose(1, 2) @ fb).clamp(min=1e-5).log() for w in (x, y)]
            total = total + F.l1_loss(*logmels)
        return total / len(self.hparams.mel_scales)

    def _semantic_loss(self, semantic: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        if self.hparams.semantic_teacher == "phones":
            labels = batch["phones"][:, : semantic.shape[1]]
            logits = semantic[:, : labels.shape[1]]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
            valid = labels != IGNORE_INDEX
            accuracy = (logits.argmax(-1)[valid] == labels[valid]).float().mean() if valid.any() else None
            return loss, accuracy
        teacher = self._teacher_features(batch["audio"], semantic.shape[1])
        # SpeechTokenizer's "D-axis" distillation: -log sigmoid(cosine) per frame
        return -F.logsigmoid(F.cosine_similarity(semantic, teacher, dim=-1)).mean(), None

    @torch.no_grad()
    def _teacher_features(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        """The average of all HuBERT layers' outputs (SpeechTokenizer's ``hubert_avg`` teacher), ``[B, frames, D]``."""
        if not self._hubert:
            if not self.hparams.hubert_path:
                raise ValueError("semantic_teacher='hubert' needs hubert_path: a local HuBERT checkpoint directory "
                                 "(transformers HubertModel, e.g. facebook/hubert-base-ls960) -- or use 'phones'.")
            from transformers import HubertModel

            self._hubert.append(HubertModel.from_pretrained(self.hparams.hubert_path).eval().to(self.device))
        out = self._hubert[0](audio[:, 0], output_hidden_states=True)
        feats = torch.stack(out.hidden_states[1:]).mean(0)
        if feats.shape[1] < frames:
            feats = F.pad(feats, (0, 0, 0, frames - feats.shape[1]), mode="replicate")
        return feats[:, :frames]

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        audio = batch["audio"]
        out = self.codec.model(audio)
        recon = out["audio"][..., : audio.shape[-1]]
        losses = {"wave": F.l1_loss(recon, audio), "mel": self._mel_loss(recon, audio),
                  "commit": out["commit_loss"]}
        losses["semantic"], accuracy = self._semantic_loss(out["semantic"], batch)
        loss = sum(self.weights[k] * v for k, v in losses.items())
        bs = audio.shape[0]
        for k, v in losses.items():
            self.log(f"{stage}/{k}", v, batch_size=bs)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs)
        if accuracy is not None:
            self.log(f"{stage}/phone_accuracy", accuracy, prog_bar=True, batch_size=bs)
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.codec.model.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        return opt if self.hparams.min_lr_ratio == 1.0 else self.with_schedule(
            opt, 1, self.hparams.min_lr_ratio, self.hparams.decay_steps)


class SoundStormTrainer(TokenizerTrainer):
    """Trains `SoundStorm` on all-level codes ``{"codes": [B, N, 1 + Q], "lengths": [B]}`` (`SoundStormDataModule`).

    Args:
        soundstorm: the model to train.
        lr, weight_decay: AdamW (betas 0.9, 0.98); the rate warms up over ``warmup_steps``, then follows a cosine
            down to ``lr * min_lr_ratio`` at the trainer's ``max_steps``, or at ``decay_steps`` when set (ratio 1:
            constant).
    """

    trained = "soundstorm"

    def __init__(self, soundstorm: SoundStorm | Mapping[str, Any], lr: float = 3e-4, weight_decay: float = 0.01,
                 warmup_steps: int = 100, min_lr_ratio: float = 1.0,
                 decay_steps: int = 0) -> None:
        super().__init__(soundstorm)
        self.save_hyperparameters(ignore=["soundstorm"])

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        codes = batch["codes"]  # [B, N, 1 + Q]
        loss, accuracy = self.soundstorm.loss(codes[..., 1:], codes[..., 0], batch.get("lengths"))
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=codes.shape[0])
        self.log(f"{stage}/accuracy", accuracy, prog_bar=stage == "val", batch_size=codes.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                betas=(0.9, 0.98))
        return self.with_schedule(opt, self.hparams.warmup_steps, self.hparams.min_lr_ratio, self.hparams.decay_steps)
