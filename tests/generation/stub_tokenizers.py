"""Deterministic stand-in tokenizers with the paper's vocabulary sizes, for pipeline and checkpoint tests."""

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from anygpt.modalities.base import Modality, SpanStructure


class _Stub(Modality):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("scale", torch.tensor(float(size)))

    @property
    def codebook_size(self) -> int:
        return self.hparams.size


class StubImage(_Stub):
    """Mean colour of 32 horizontal strips of a 32x32 image -> 32 codes."""

    name, markers, token_format = "image", ("<soim>", "<eoim>"), "<👀{}>"

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=32)

    def load(self, source):
        image = Image.open(source).convert("L").resize((32, 32))
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)

    def save(self, data, path):
        Image.fromarray((data.clamp(0, 1) * 255).byte().numpy()).save(path)

    @torch.inference_mode()
    def encode(self, items):
        return [(x.mean(1) * (self.codebook_size - 1)).round().long() for x in items]

    @torch.inference_mode()
    def decode(self, codes):
        return [(c.float() / (self.codebook_size - 1)).unsqueeze(1).expand(32, 32).contiguous() for c in codes]


class _StubAudio(_Stub):
    rate = 16000

    def load(self, source):
        wav, rate = sf.read(str(source), dtype="float32")
        if rate != self.rate:
            raise ValueError(f"{source}: {rate} Hz, expected {self.rate}")
        return torch.from_numpy(wav)

    def save(self, data, path):
        sf.write(str(path), data.numpy(), self.rate)

    @torch.inference_mode()
    def encode(self, items):
        return [(x[: x.numel() // 320 * 320].view(-1, 320).abs().mean(1) * 4 * self.codebook_size).clamp(
            0, self.codebook_size - 1).long() for x in items]

    @torch.inference_mode()
    def decode(self, codes, **kwargs):
        return [(c.float() / self.codebook_size).repeat_interleave(320) for c in codes]


class StubSpeech(_StubAudio):
    name, markers, token_format = "speech", ("<sosp>", "<eosp>"), "<🗣️{}>"


class StubMusic(_StubAudio):
    name, markers, token_format = "music", ("<somu>", "<eomu>"), "<🎶{}>"

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
    def decode(self, codes, **kwargs):
        return super().decode([c[0] for c in codes])
