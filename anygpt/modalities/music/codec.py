"""SEANet + residual VQ codecs (Encodec's architecture) as a `Modality`, with their training recipe.

The networks are the `encodec` package's own modules (SEANetEncoder/Decoder, ResidualVectorQuantizer), assembled by
hand so that any width, stride and codebook size can be built; state-dict names are therefore those of Encodec and
audiocraft (``encoder.model.0.conv.conv.weight_g`` ...). The paper's Encodec-32k and the tiny demo codec are two
configurations of this class (`anygpt.modalities.music.encodec32k`, `anygpt.modalities.music.tiny`).

Token layout (the release's): codes ``[n_q, frames]`` are flattened frame-major, ``t0q0 t0q1 ... t1q0 ...``, with
local id ``code + bins * q``, so a span cycles through ``n_q`` id ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.base import Modality, SpanStructure
from anygpt.modalities.music.audio import load_audio, save_audio
from anygpt.modalities.music.losses import MultiScaleMelLoss
from anygpt.modalities.vq import enable_dead_code_restarts


class SEANetCodec(Modality):
    """A waveform codec: SEANet encoder -> residual VQ (``n_q`` codebooks of ``bins``) -> SEANet decoder.

    Args:
        sample_rate: rate of the waveforms the codec reads and writes; `load` resamples files to it.
        n_filters, ratios, dimension, n_residual_layers, lstm, compress, pad_mode, true_skip, causal, norm: the SEANet
            settings (``ratios`` are the decoder's upsampling ratios; their product is the hop length).
        n_q, bins: number of residual codebooks and entries per codebook.
        decay, kmeans_init, kmeans_iters, threshold_ema_dead_code: codebook training (EMA updates, k-means init on the
            first batch, restart of codes whose EMA usage falls below the threshold).
        lr, time_weight, mel_weight, commit_weight: the training recipe (L1 waveform + multi-scale log-mel +
            commitment).
        vq_warmup_steps: train as a plain autoencoder for this many steps before quantizing (avoids the collapse of a
            codebook initialised on uninformative latents).
        adversarial_weight: > 0 adds Encodec's multi-scale STFT discriminator (hinge loss + feature matching).
        architecture: "seanet" (Encodec's waveform encoder/decoder) or "spectral" (`anygpt.modalities.spectral`: a
            log-mel encoder and an inverse-STFT decoder of width ``n_filters``, with a BiLSTM of ``lstm`` layers in the
            encoder; the hop length is ``stft_hop * prod(ratios)``).
        stft_hop, n_fft, n_mels, blocks: the spectral network's STFT hop and size, mel bands, ConvNeXt blocks per stage.
    """

    name = "music"
    markers = ("<somu>", "<eomu>")
    token_format = "<🎶{}>"

    def __init__(
        self,
        sample_rate: int = 32000,
        n_filters: int = 64,
        ratios: Sequence[int] = (8, 5, 4, 4),
        dimension: int = 128,
        n_q: int = 4,
        bins: int = 2048,
        n_residual_layers: int = 1,
        lstm: int = 2,
        compress: int = 2,
        pad_mode: str = "reflect",
        true_skip: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        decay: float = 0.99,
        kmeans_init: bool = True,
        threshold_ema_dead_code: float = 2.0,
        kmeans_iters: int = 50,
        lr: float = 3e-4,
        time_weight: float = 0.1,
        mel_weight: float = 1.0,
        commit_weight: float = 1.0,
        adversarial_weight: float = 0.0,
        feature_weight: float = 3.0,
        vq_warmup_steps: int = 0,
        grad_clip: float = 1.0,
        architecture: str = "seanet",
        stft_hop: int = 160,
        n_fft: int = 1024,
        n_mels: int = 80,
        blocks: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from encodec.modules import SEANetDecoder, SEANetEncoder
        from encodec.quantization import ResidualVectorQuantizer

        from anygpt.modalities.spectral import SpectralDecoder, SpectralEncoder

        seanet = dict(
            channels=1,
            dimension=dimension,
            n_filters=n_filters,
            n_residual_layers=n_residual_layers,
            ratios=list(ratios),
            norm=norm,
            causal=causal,
            pad_mode=pad_mode,
            true_skip=true_skip,
            compress=compress,
            lstm=lstm,
        )
        if architecture == "spectral":
            self.encoder = SpectralEncoder(sample_rate, stft_hop, n_fft, n_mels, n_filters, dimension, ratios, blocks,
                                           lstm)
            self.decoder = SpectralDecoder(dimension, n_filters, stft_hop, n_fft, ratios, blocks)
        elif architecture == "seanet":
            self.encoder = SEANetEncoder(**seanet)
            self.decoder = SEANetDecoder(**seanet, trim_right_ratio=1.0)
        else:
            raise ValueError(f"architecture must be 'seanet' or 'spectral', got {architecture!r}")
        self.quantizer = ResidualVectorQuantizer(
            dimension=dimension,
            n_q=n_q,
            bins=bins,
            decay=decay,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
        )
        enable_dead_code_restarts(self.quantizer)  # encodec's own restarts are undone by its EMA update
        self.hop_length = math.prod(ratios) * (stft_hop if architecture == "spectral" else 1)
        self.automatic_optimization = False  # generator and (optional) discriminator steps alternate
        self.discriminator = None
        if adversarial_weight > 0:
            from encodec.msstftd import MultiScaleSTFTDiscriminator

            self.discriminator = MultiScaleSTFTDiscriminator(filters=32)

    # -- identity --------------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.hparams.sample_rate)

    @property
    def n_q(self) -> int:
        return int(self.hparams.n_q)

    @property
    def bins(self) -> int:
        return int(self.hparams.bins)

    @property
    def codebook_size(self) -> int:
        return self.n_q * self.bins

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(cycle=tuple((q * self.bins, (q + 1) * self.bins) for q in range(self.n_q)))

    # -- raw I/O ---------------------------------------------------------------------------------------------------
    def load(self, source: str | Path | bytes) -> torch.Tensor:
        """Any audio file -> mono ``[T]`` float waveform at `sample_rate` (at least one frame long)."""
        return load_audio(source, self.sample_rate, min_samples=self.hop_length)

    def save(self, data: torch.Tensor, path: str | Path) -> None:
        save_audio(data, path, self.sample_rate)

    # -- networks --------------------------------------------------------------------------------------------------
    def encode_waveform(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T]`` -> codes ``[B, n_q, ceil(T / hop)]``."""
        codes = self.quantizer.encode(self.encoder(wav), self.sample_rate)  # [n_q, B, F]
        return codes.transpose(0, 1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` -> waveform ``[B, 1, F * hop]``."""
        return self.decoder(self.quantizer.decode(codes.transpose(0, 1)))

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Mono waveforms (``[T]`` or ``[1, T]``, at `sample_rate`) -> codes ``[n_q, ceil(T / hop)]`` each.

        Items of different lengths are zero-padded to the longest; each keeps the frames its own samples cover (the
        non-causal convolutions let the padding touch the last frame's receptive field, as in Encodec's own batching).
        """
        wavs = [_as_mono(x) for x in items]
        if not wavs:
            return []
        lengths = [w.numel() for w in wavs]
        if min(lengths) < self.hop_length:
            raise ValueError(
                f"Audio shorter than one frame ({min(lengths)} < {self.hop_length} samples); use load(), "
                "which rejects clips too short to tokenize."
            )
        batch = torch.zeros(len(wavs), 1, max(lengths), device=self.device)
        for i, w in enumerate(wavs):
            batch[i, 0, : w.numel()] = w.to(self.device, torch.float32)
        codes = self.encode_waveform(batch)
        return [codes[i, :, : math.ceil(n / self.hop_length)].clone() for i, n in enumerate(lengths)]

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Codes ``[n_q, F]`` -> mono waveforms ``[F * hop]`` (batched by zero-padding to the longest)."""
        codes = [c.reshape(self.n_q, -1) for c in codes]
        if not codes:
            return []
        frames = [c.shape[1] for c in codes]
        batch = torch.zeros(len(codes), self.n_q, max(frames), dtype=torch.long, device=self.device)
        for i, c in enumerate(codes):
            if c.numel() and (c.min() < 0 or c.max() >= self.bins):
                raise ValueError(f"Music codes must lie in [0, {self.bins}), got [{int(c.min())}, {int(c.max())}]")
            batch[i, :, : c.shape[1]] = c.to(self.device)
        wav = self.decode_codes(batch)
        return [wav[i, 0, : n * self.hop_length].float().clone() for i, n in enumerate(frames)]

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """``[n_q, F]`` -> frame-major ids ``code + bins * q``: t0q0 t0q1 ... t1q0 ..."""
        codes = codes.reshape(self.n_q, -1).long()
        offsets = torch.arange(self.n_q, device=codes.device).unsqueeze(1) * self.bins
        return (codes + offsets).t().reshape(-1)

    def unflatten(self, ids: torch.Tensor) -> torch.Tensor:
        """Frame-major ids -> ``[n_q, F]``; an incomplete last frame is dropped, ids are taken modulo ``bins``."""
        ids = ids.reshape(-1).long()
        frames = ids.numel() // self.n_q
        return (ids[: frames * self.n_q] % self.bins).reshape(frames, self.n_q).t().contiguous()

    # -- training --------------------------------------------------------------------------------------------------
    def _losses(self, wav: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        mel_loss = self.__dict__.get("_mel_loss")  # kept out of the module tree: its filterbanks are not weights
        if mel_loss is None or mel_loss.mels[0].mel_scale.fb.device != wav.device:
            mel_loss = self.__dict__["_mel_loss"] = MultiScaleMelLoss(self.sample_rate).to(wav.device)
        emb = self.encoder(wav)
        if self.global_step < self.hparams.vq_warmup_steps:  # plain autoencoder first: informative latents to quantize
            quantized, codes, penalty = emb, None, emb.new_zeros(())
        else:  # the first quantized batch runs the k-means initialisation of the codebooks
            q = self.quantizer(emb, self.sample_rate)
            quantized, codes, penalty = q.quantized, q.codes, q.penalty
        recon = self.decoder(quantized)[..., : wav.shape[-1]]
        losses = {"time_l1": F.l1_loss(recon, wav), "mel": mel_loss(recon, wav), "commit": penalty}
        return losses, recon, codes

    def _generator_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.hparams
        return h.time_weight * losses["time_l1"] + h.mel_weight * losses["mel"] + h.commit_weight * losses["commit"]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        wav = _batch_audio(batch)
        optimizers = self.optimizers()
        opt_g = optimizers[0] if isinstance(optimizers, list) else optimizers
        losses, recon, codes = self._losses(wav)
        loss = self._generator_loss(losses)
        if self.discriminator is not None:
            logits_fake, fmaps_fake = self.discriminator(recon)
            _, fmaps_real = self.discriminator(wav)
            losses["adv_g"] = sum(F.relu(1 - lf).mean() for lf in logits_fake) / len(logits_fake)
            losses["feature"] = sum(
                F.l1_loss(f, r.detach()) / (r.detach().abs().mean() + 1e-6)
                for fs, rs in zip(fmaps_fake, fmaps_real, strict=True)
                for f, r in zip(fs, rs, strict=True)
            ) / sum(len(fs) for fs in fmaps_fake)
            loss = (
                loss
                + self.hparams.adversarial_weight * losses["adv_g"]
                + self.hparams.feature_weight * losses["feature"]
            )
        opt_g.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt_g, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        if self.discriminator is not None:
            opt_d = optimizers[1]
            logits_fake, _ = self.discriminator(recon.detach())
            logits_real, _ = self.discriminator(wav)
            losses["disc"] = sum(
                F.relu(1 + lf).mean() + F.relu(1 - lr).mean() for lf, lr in zip(logits_fake, logits_real, strict=True)
            ) / len(logits_fake)
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
            counts = torch.bincount(codes[q].reshape(-1), minlength=self.bins).float()
            p = counts / counts.sum()
            out[f"perplexity_q{q}"] = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
            cluster = self.quantizer.vq.layers[q]._codebook.cluster_size
            out[f"used_q{q}"] = (cluster >= 1.0).float().mean()
        return out

    def configure_optimizers(self):
        gen = [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]
        opt_g = torch.optim.Adam(gen, lr=self.hparams.lr, betas=(0.5, 0.9))
        if self.discriminator is None:
            return opt_g
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))]


def _as_mono(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(
            f"Expected a mono waveform [T] or [1, T], got shape {tuple(x.shape)}; load() mixes "
            "multi-channel files to mono."
        )
    return x


def _batch_audio(batch: Any) -> torch.Tensor:
    wav = batch["audio"] if isinstance(batch, dict) else batch
    return wav.unsqueeze(1) if wav.dim() == 2 else wav
