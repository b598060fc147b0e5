"""The modality API: a modality is a vocabulary identity (`ModalitySpec`) + a `Codec` + a media kind.

- The **codec** is all about codes, like audiocraft's ``CompressionModel``: ``codebook_size``, `encode`, `decode`,
  `flatten`/`unflatten`, ``structure``, and ``sample_rate``/``frame_rate`` (audio) or ``image_size`` (images) where
  they apply. A second decoding stage (SoundStorm voice cloning, unCLIP) is part of `decode`. Codecs are plain
  `nn.Module`s that save themselves as constructor arguments + safetensors (`Pretrained`); training them is a separate
  LightningModule that wraps one (e.g. `anygpt.modalities.image.training.ImageTokenizerTrainer`).
- The **identity** (name, markers, token format) and the **media kind** (which reader/writer of `anygpt.media` files
  go through) are registered once per modality name (`anygpt.modalities.registry`).
- `Modality` joins the three for the data pipeline and generation: ``read`` a file into what ``codec.encode`` takes,
  ``write`` what ``codec.decode`` returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from anygpt.media import MediaKind, Source, read_media, write_media
from anygpt.modalities.pretrained import Pretrained
from anygpt.vocab import ModalitySpec


@dataclass(frozen=True)
class SpanStructure:
    """What a valid span of one modality looks like, in local code ids ``[0, codebook_size)``.

    Constrained decoding asks two things at each position of a span: which codes may come next
    (`allowed_codes`) and whether the end marker may come now (`can_end`).

    Args:
        fixed_length: the span has exactly this many codes (SEED images: 32).
        cycle: per-position code ranges, repeating; position ``i`` may use ``cycle[i % len(cycle)]`` (music frames of
            4 codebooks). A span may only end after a whole cycle.
        max_length: an upper bound for open-ended spans (None: unbounded).
    """

    fixed_length: int | None = None
    cycle: tuple[tuple[int, int], ...] | None = None
    max_length: int | None = None

    def allowed_codes(self, position: int, codebook_size: int) -> tuple[int, int]:
        """The half-open local code range allowed at ``position`` (0-based within the span)."""
        if self.cycle:
            return self.cycle[position % len(self.cycle)]
        return 0, codebook_size

    def can_end(self, length: int) -> bool:
        """May the end marker follow a span of ``length`` codes?"""
        if self.fixed_length is not None:
            return length == self.fixed_length
        if length == 0:
            return False
        return not self.cycle or length % len(self.cycle) == 0

    def must_end(self, length: int) -> bool:
        """Is the span complete, so that only the end marker may follow?"""
        limit = self.fixed_length if self.fixed_length is not None else self.max_length
        return limit is not None and length >= limit

    def valid_prefix(self, codes: torch.Tensor, codebook_size: int) -> int:
        """Length of the longest prefix of ``codes`` that obeys the structure and may end (0 if none)."""
        best = 0
        for i, code in enumerate(codes.tolist()):
            lo, hi = self.allowed_codes(i, codebook_size)
            if not lo <= code < hi or (self.fixed_length is not None and i >= self.fixed_length):
                break
            if self.can_end(i + 1):
                best = i + 1
        return best


class Codec(Pretrained, ABC):
    """A discrete tokenizer: items <-> codes. Subclasses set ``modality`` (the registered modality name they tokenize),
    implement ``codebook_size``, `encode` and `decode`, and override `flatten`/`unflatten` when their codes are not
    already 1-D (music: codebooks x frames).

    Audio codecs also define ``sample_rate`` (of the waveforms `encode` takes and `decode` returns) and
    ``frame_rate`` (code frames per second); image codecs define ``image_size`` (the square side `encode` takes) and
    ``image_preprocess`` (how a file becomes pixels, `anygpt.media.IMAGE_PREPROCESSING`: a codec trained elsewhere
    must read files as its trainers did). `Modality.read` uses them to resample, resize and read files.
    """

    modality: ClassVar[str]
    sample_rate: int | None = None
    frame_rate: float | None = None
    image_size: int | None = None
    image_preprocess: str = "anygpt"

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of ids this codec adds to the LLM vocabulary (excluding the modality's two markers)."""

    @property
    def structure(self) -> SpanStructure:
        """What a valid span of flattened codes looks like (constrained decoding follows it)."""
        return SpanStructure()

    @abstractmethod
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Batch of items (as `Modality.read` returns them) -> their codes in the codec's native layout."""

    @abstractmethod
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        """Codes in native layout -> items the media writer takes (image ``[3, H, W]`` in [0, 1], waveform).

        ``context`` carries optional inputs of a second decoding stage, each documented by the codec that uses it
        (speech: ``voice``, a waveform or file whose voice to clone); a codec ignores keys it does not use.
        """

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """Native codes -> the 1-D sequence of local ids in ``[0, codebook_size)`` the LLM sees."""
        return codes.reshape(-1).long()

    def unflatten(self, ids: torch.Tensor) -> torch.Tensor:
        """Inverse of `flatten`; must tolerate a truncated tail by dropping the incomplete part."""
        return ids.long()

    @property
    def samples_per_frame(self) -> int:
        """Audio samples one code frame covers (the shortest clip worth encoding); 1 for codecs without audio."""
        if self.sample_rate and self.frame_rate:
            return max(1, round(self.sample_rate / self.frame_rate))
        return 1


@dataclass(eq=False)
class Modality:
    """One modality as the LLM, the data pipeline and generation use it: identity + codec + media kind.

    Build one with `anygpt.modalities.registry.modality_for` (from a codec) or `load_modality` (from a checkpoint).
    """

    spec: ModalitySpec
    codec: Codec
    media: MediaKind

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    @property
    def structure(self) -> SpanStructure:
        return self.codec.structure

    def read(self, source: Source) -> torch.Tensor:
        """A file (or its bytes) -> what ``codec.encode`` takes: audio resampled to the codec's rate and at least one
        frame long, images resized to its side. Raises `anygpt.media.MediaError` naming the file."""
        codec = self.codec
        return read_media(self.media, source, sample_rate=codec.sample_rate, min_samples=codec.samples_per_frame,
                          image_size=codec.image_size, image_preprocess=codec.image_preprocess)

    def write(self, data: torch.Tensor, path: str | Path) -> Path:
        """Write one decoded item (``codec.decode`` output) with this modality's media writer."""
        return write_media(self.media, data, path, sample_rate=self.codec.sample_rate)

    def to(self, device: str | torch.device) -> Modality:
        self.codec.to(device)
        return self
