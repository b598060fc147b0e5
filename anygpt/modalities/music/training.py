"""Training SEANet codecs: waveform L1 + multi-scale log-mel + commitment, optionally Encodec's STFT discriminator.

``anygpt fit --config experiments/tokenizers/demo_music.yaml`` trains the tiny demo codec on one CPU core; the codec is
written to ``{default_root_dir}/pretrained`` when training ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.music.codec import SEANetCodec
from anygpt.modalities.music.losses import MultiScaleMelLoss
from anygpt.modalities.training import TokenizerTrainer, code_perplexity


class SEANetTrainer(TokenizerTrainer):
    """Trains a `SEANetCodec` on ``{"audio": [B, T]}`` batches (`MusicDataModule`), generator and (optional)
    discriminator steps alternating (manual optimization).

    Args:
        codec: the codec to train.
        lr: Adam's rate (betas 0.5, 0.9), for the codec and the discriminator.
        time_weight, mel_weight, commit_weight: weights of the waveform L1, multi-scale log-mel and commitment losses.
        vq_warmup_steps: train as a plain autoencoder for this many steps before quantizing (avoids the collapse of a
            codebook initialised on uninformative latents).
        adversarial_weight: > 0 adds Encodec's multi-scale STFT discriminator (hinge loss + feature matching,
            weighted by ``feature_weight``).
        grad_clip: gradient-norm clipping of the codec's step.
    """

    def __init__(self, codec: SEANetCodec | Mapping[str, Any], lr: float = 3e-4, time_weight: float = 0.1,
                 mel_weight: float = 1.0, commit_weight: float = 1.0, adversarial_weight: float = 0.0,
                 feature_weight: float = 3.0, vq_warmup_steps: int = 0, grad_clip: float = 1.0) -> None:
        super().__init__(codec)
        self.save_hyperparameters(ignore=["codec"])
        self.automatic_optimization = False  # generator and (optional) discriminator steps alternate
        self.discriminator = None
        if adversarial_weight > 0:
            from encodec.msstftd import MultiScaleSTFTDiscriminator

            self.discriminator = MultiScaleSTFTDiscriminator(filters=32)

    def _losses(self, wav: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        codec = self.codec
        mel_loss = self.__dict__.get("_mel_loss")  # kept out of the module tree: its filterbanks are not weights
        if mel_loss is None or mel_loss.mels[0].mel_scale.fb.device != wav.device:
            mel_loss = self.__dict__["_mel_loss"] = MultiScaleMelLoss(codec.sample_rate).to(wav.device)
        emb = codec.encoder(wav)
        if self.global_step < self.hparams.vq_warmup_steps:  # plain autoencoder first: informative latents to quantize
            quantized, codes, penalty = emb, None, emb.new_zeros(())
        else:  # the first quantized batch runs the k-means initialisation of the codebooks
            q = codec.quantizer(emb, codec.sample_rate)
            quantized, codes, penalty = q.quantized, q.codes, q.penalty
        recon = codec.decoder(quantized)[..., : wav.shape[-1]]
        losses = {"time_l1": F.l1_loss(recon, wav), "mel": mel_loss(recon, wav), "commit": penalty}
        return losses, recon, codes

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        wav = _batch_audio(batch)
        optimizers = self.optimizers()
        opt_g = optimizers[0] if isinstance(optimizers, list) else optimizers
        losses, recon, codes = self._losses(wav)
        h = self.hparams
        loss = h.time_weight * losses["time_l1"] + h.mel_weight * losses["mel"] + h.commit_weight * losses["commit"]
        if self.discriminator is not None:
            logits_fake, fmaps_fake = self.discriminator(recon)
            _, fmaps_real = self.discriminator(wav)
            losses["adv_g"] = sum(F.relu(1 - lf).mean() for lf in logits_fake) / len(logits_fake)
            losses["feature"] = sum(F.l1_loss(f, r.detach()) / (r.detach().abs().mean() + 1e-6)
                                    for fs, rs in zip(fmaps_fake, fmaps_real, strict=True)
                                    for f, r in zip(fs, rs, strict=True)) / sum(len(fs) for fs in fmaps_fake)
            loss = loss + h.adversarial_weight * losses["adv_g"] + h.feature_weight * losses["feature"]
        opt_g.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt_g, gradient_clip_val=h.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        if self.discriminator is not None:
            opt_d = optimizers[1]
            logits_fake, _ = self.discriminator(recon.detach())
            logits_real, _ = self.discriminator(wav)
            losses["disc"] = sum(F.relu(1 + lf).mean() + F.relu(1 - lr).mean()
                                 for lf, lr in zip(logits_fake, logits_real, strict=True)) / len(logits_fake)
            opt_d.zero_grad()
            self.manual_backward(losses["disc"])
            opt_d.step()
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, batch_size=wav.shape[0])
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=wav.shape[0])
        if codes is not None:
            self.log_dict({f"train/{k}": v for k, v in self.codebook_usage(codes).items()}, batch_size=wav.shape[0])
        return loss.detach()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

        wav = _batch_audio(batch)
        losses, recon, codes = self._losses(wav)
        losses["si_snr"] = scale_invariant_signal_noise_ratio(recon, wav).mean()
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=wav.shape[0])
        if codes is not None:
            self.log_dict({f"val/{k}": v for k, v in self.codebook_usage(codes).items()}, batch_size=wav.shape[0])

    @torch.no_grad()
    def codebook_usage(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per codebook: perplexity of the batch's codes, and the fraction of entries alive by EMA usage."""
        out = {}
        for q in range(codes.shape[0]):
            out[f"perplexity_q{q}"] = code_perplexity(torch.bincount(codes[q].reshape(-1), minlength=self.codec.bins))
            cluster = self.codec.quantizer.vq.layers[q]._codebook.cluster_size
            out[f"used_q{q}"] = (cluster >= 1.0).float().mean()
        return out

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.codec.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))
        if self.discriminator is None:
            return opt_g
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))]


def _batch_audio(batch: Any) -> torch.Tensor:
    wav = batch["audio"] if isinstance(batch, dict) else batch
    return wav.unsqueeze(1) if wav.dim() == 2 else wav
