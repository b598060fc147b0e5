"""Deterministic stand-in codecs with the paper's vocabulary sizes, for pipeline and checkpoint tests."""

from typing import Any

import torch

from anygpt.modalities.codec import Codec, Modality
from anygpt.modalities.registry import modality_for
from anygpt.modalities.spec import SpanStructure


class _Stub(Codec):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("scale", torch.tensor(float(size)))

    @property
    def codebook_size(self) -> int:
        return self.size


class StubImageCodec(_Stub):
    """Mean brightness of 32 horizontal strips of a 32x32 image -> 32 codes."""

    modality = "image"
    image_size = 32

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=32)

    @torch.inference_mode()
    def encode(self, items):
        return [(x.mean(0).mean(1) * (self.codebook_size - 1)).round().long() for x in items]

    @torch.inference_mode()
    def decode(self, codes, **context: Any):
        return [(c.float() / (self.codebook_size - 1)).view(1, 32, 1).expand(3, 32, 32).contiguous() for c in codes]


class _StubAudio(_Stub):
    sample_rate = 16000
    frame_rate = 50.0

    @torch.inference_mode()
    def encode(self, items):
        return [(x.reshape(-1)[: x.numel() // 320 * 320].view(-1, 320).abs().mean(1) * 4 * self.codebook_size).clamp(
            0, self.codebook_size - 1).long() for x in items]

    @torch.inference_mode()
    def decode(self, codes, **context: Any):
        return [(c.float() / self.codebook_size).repeat_interleave(320) for c in codes]


class StubSpeechCodec(_StubAudio):
    modality = "speech"


class StubMusicCodec(_StubAudio):
    modality = "music"

    @property
    def structure(self) -> SpanStructure:
        q = self.codebook_size // 4
        return SpanStructure(cycle=tuple((i * q, (i + 1) * q) for i in range(4)))

    @torch.inference_mode()
    def encode(self, items):
        level = super().encode(items)
        return [torch.stack([c % (self.codebook_size // 4)] * 4) for c in level]

    def flatten(self, codes):
        q = self.codebook_size // 4
        return (codes + torch.arange(4).unsqueeze(1) * q).T.reshape(-1)

    def unflatten(self, ids):
        q = self.codebook_size // 4
        ids = ids[: ids.numel() // 4 * 4]
        return (ids.view(-1, 4) % q).T

    @torch.inference_mode()
    def decode(self, codes, **context: Any):
        return super().decode([c[0] for c in codes])


def stub_image(size: int) -> Modality:
    return modality_for(StubImageCodec(size))


def stub_speech(size: int) -> Modality:
    return modality_for(StubSpeechCodec(size))


def stub_music(size: int) -> Modality:
    return modality_for(StubMusicCodec(size))
