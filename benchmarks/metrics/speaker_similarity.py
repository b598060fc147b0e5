"""Speaker similarity: cosine of speaker embeddings of (generated, reference) utterances, averaged over pairs.

The speaker encoder is pluggable (any object with `embed(wav, sample_rate) -> Tensor[D]`). Two are provided:
`ResemblyzerEncoder` (GE2E encoder whose weights ship inside the `resemblyzer` wheel: works offline, the default) and
`WavLMSpeakerEncoder` (transformers `WavLMForXVector` from a local directory, e.g. a copy of
microsoft/wavlm-base-plus-sv; the paper used a WavLM-TDNN verification model). Inputs at any rate are resampled to the
encoder's rate (16 kHz for both).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from anygpt.media import resample, to_mono


@runtime_checkable
class SpeakerEncoder(Protocol):
    """Maps a mono waveform (T,) at `sample_rate` to a speaker embedding (D,)."""

    sample_rate: int

    def embed(self, wav: Tensor, sample_rate: int) -> Tensor: ...


def _mono(wav: Tensor | Any) -> Tensor:
    """[T] or [C, T] -> [T] float32 on the CPU (anygpt.media mixes the channels)."""
    return to_mono(torch.as_tensor(wav).cpu())[0]


class ResemblyzerEncoder:
    """resemblyzer's `VoiceEncoder` (256-d GE2E) with its preprocessing (volume norm, VAD silence trimming)."""

    sample_rate = 16000

    def __init__(self, device: str | torch.device = "cpu") -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device=device, verbose=False)

    @torch.inference_mode()
    def embed(self, wav: Tensor, sample_rate: int) -> Tensor:
        from resemblyzer import preprocess_wav

        wav = resample(_mono(wav), sample_rate, self.sample_rate).numpy()
        if not wav.any():  # silence: nothing to normalise (its volume is -inf dBFS) or trim
            return torch.from_numpy(self.encoder.embed_utterance(wav)).float()
        trimmed = preprocess_wav(wav)
        if len(trimmed) < self.sample_rate // 10:  # VAD removed (nearly) everything: keep the raw signal
            trimmed = wav
        return torch.from_numpy(self.encoder.embed_utterance(trimmed)).float()


class WavLMSpeakerEncoder:
    """x-vector of transformers `WavLMForXVector` loaded from a local directory (config.json + weights)."""

    sample_rate = 16000

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        from transformers import AutoFeatureExtractor, Wav2Vec2FeatureExtractor, WavLMForXVector

        if not os.path.isdir(path):
            raise FileNotFoundError(f"WavLM speaker model directory not found: {path}")
        self.model = WavLMForXVector.from_pretrained(path, local_files_only=True).eval().to(device)
        if os.path.exists(os.path.join(path, "preprocessor_config.json")):
            self.features = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        else:  # the settings of microsoft/wavlm-base-plus-sv
            self.features = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
        self.device = torch.device(device)

    @torch.inference_mode()
    def embed(self, wav: Tensor, sample_rate: int) -> Tensor:
        wav = resample(_mono(wav), sample_rate, self.sample_rate)
        inputs = self.features(wav.numpy(), sampling_rate=self.sample_rate, return_tensors="pt")
        out = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        return out.embeddings[0].float().cpu()


class SpeakerSimilarity(Metric):
    """Mean cosine similarity between speaker embeddings of generated and reference utterances.

    update(preds, target, sample_rate): two equally long sequences of waveforms ((T,) or (C, T), or a batch tensor
    (B, T)); they are mixed to mono and resampled to the encoder's rate. States are sums, reduced across ranks.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, encoder: SpeakerEncoder | str = "resemblyzer", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if encoder == "resemblyzer":
            encoder = ResemblyzerEncoder()
        elif isinstance(encoder, (str, os.PathLike)):
            encoder = WavLMSpeakerEncoder(encoder)
        if not isinstance(encoder, SpeakerEncoder):
            raise TypeError(f"encoder must have `sample_rate` and `embed(wav, sample_rate)`, got {type(encoder)}")
        self.encoder = encoder
        self.add_state("sum_cos", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def embed(self, wavs: Sequence[Tensor] | Tensor, sample_rate: int) -> Tensor:
        rate = getattr(self.encoder, "sample_rate", 16000)
        out = []
        for i, wav in enumerate(wavs):
            wav = _mono(wav)
            if wav.numel() == 0:
                raise ValueError(f"SpeakerSimilarity: waveform {i} is empty")
            out.append(self.encoder.embed(resample(wav, sample_rate, rate), rate).flatten())
        return torch.stack(out)

    def update(self, preds: Sequence[Tensor] | Tensor, target: Sequence[Tensor] | Tensor, sample_rate: int) -> None:
        if len(preds) != len(target):
            raise ValueError(f"SpeakerSimilarity.update: {len(preds)} generated but {len(target)} reference waveforms")
        if len(preds) == 0:
            return
        cos = F.cosine_similarity(self.embed(preds, sample_rate), self.embed(target, sample_rate), dim=-1).double()
        self.sum_cos += cos.sum().to(self.sum_cos.device)
        self.count += len(cos)

    def compute(self) -> Tensor:
        if self.count == 0:
            raise ValueError("SpeakerSimilarity.compute: no pairs were added (call update first)")
        return self.sum_cos / self.count
