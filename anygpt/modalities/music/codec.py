"""SEANet + residual VQ codecs (Encodec's architecture); their training recipe is `anygpt.modalities.music.training`.

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
from typing import Any

import torch

from anygpt.modalities.codec import Codec, frame_major_flatten, frame_major_unflatten
from anygpt.modalities.spec import SpanStructure, frame_cycle
from anygpt.modalities.spectral import SpectralDecoder, SpectralEncoder
from anygpt.modalities.vq import enable_dead_code_restarts


class SEANetCodec(Codec):
    """A waveform codec: SEANet encoder -> residual VQ (``n_q`` codebooks of ``bins``) -> SEANet decoder.

    Args:
        sample_rate: rate of the waveforms the codec reads and writes; `Modality.read` resamples files to it.
        n_filters, ratios, dimension, n_residual_layers, lstm, compress, pad_mode, true_skip, causal, norm: the SEANet
            settings (``ratios`` are the decoder's upsampling ratios; their product is the hop length).
        n_q, bins: number of residual codebooks and entries per codebook.
        decay, kmeans_init, kmeans_iters, threshold_ema_dead_code: codebook learning (EMA updates, k-means init on the
            first batch, restart of codes whose EMA usage falls below the threshold).
        architecture: "seanet" (Encodec's waveform encoder/decoder) or "spectral" (`anygpt.modalities.spectral`: a
            log-mel encoder and an inverse-STFT decoder of width ``n_filters``, with a BiLSTM of ``lstm`` layers in the
            encoder; the hop length is ``stft_hop * prod(ratios)``).
        stft_hop, n_fft, n_mels, blocks: the spectral network's STFT hop and size, mel bands, ConvNeXt blocks per stage.
    """

    modality = "music"

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
        architecture: str = "seanet",
        stft_hop: int = 160,
        n_fft: int = 1024,
        n_mels: int = 80,
        blocks: int = 2,
    ) -> None:
        super().__init__()
        from encodec.modules import SEANetDecoder, SEANetEncoder
        from encodec.quantization import ResidualVectorQuantizer

        if architecture == "spectral":
            self.encoder = SpectralEncoder(sample_rate, stft_hop, n_fft, n_mels, n_filters, dimension, ratios, blocks,
                                           lstm)
            self.decoder = SpectralDecoder(dimension, n_filters, stft_hop, n_fft, ratios, blocks)
        elif architecture == "seanet":
            seanet = dict(channels=1, dimension=dimension, n_filters=n_filters, n_residual_layers=n_residual_layers,
                          ratios=list(ratios), norm=norm, causal=causal, pad_mode=pad_mode, true_skip=true_skip,
                          compress=compress, lstm=lstm)
            self.encoder = SEANetEncoder(**seanet)
            self.decoder = SEANetDecoder(**seanet, trim_right_ratio=1.0)
        else:
            raise ValueError(f"architecture must be 'seanet' or 'spectral', got {architecture!r}")
        self.quantizer = ResidualVectorQuantizer(dimension=dimension, n_q=n_q, bins=bins, decay=decay,
                                                 kmeans_init=kmeans_init, kmeans_iters=kmeans_iters,
                                                 threshold_ema_dead_code=threshold_ema_dead_code)
        enable_dead_code_restarts(self.quantizer)  # encodec's own restarts are undone by its EMA update
        self.hop_length = math.prod(ratios) * (stft_hop if architecture == "spectral" else 1)
        self.sample_rate, self.n_q, self.bins = int(sample_rate), int(n_q), int(bins)

    @property
    def codebook_size(self) -> int:
        return self.n_q * self.bins

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def structure(self) -> SpanStructure:
        return frame_cycle(self.n_q, self.bins)

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
            raise ValueError(f"Audio shorter than one frame ({min(lengths)} < {self.hop_length} samples); "
                             "Modality.read rejects clips too short to tokenize.")
        batch = torch.zeros(len(wavs), 1, max(lengths), device=self.device)
        for i, w in enumerate(wavs):
            batch[i, 0, : w.numel()] = w.to(self.device, torch.float32)
        codes = self.encode_waveform(batch)
        return [codes[i, :, : math.ceil(n / self.hop_length)].clone() for i, n in enumerate(lengths)]

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        """Codes ``[n_q, F]`` -> mono waveforms ``[F * hop]`` (batched by zero-padding to the longest; no context)."""
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
        return frame_major_flatten(codes.reshape(self.n_q, -1), self.n_q, self.bins)

    def unflatten(self, ids: torch.Tensor) -> torch.Tensor:
        """Frame-major ids -> ``[n_q, F]``; an incomplete last frame is dropped, ids are taken modulo ``bins``."""
        return frame_major_unflatten(ids, self.n_q, self.bins)


def _as_mono(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(f"Expected a mono waveform [T] or [1, T], got shape {tuple(x.shape)}; Modality.read mixes "
                         "multi-channel files to mono.")
    return x

