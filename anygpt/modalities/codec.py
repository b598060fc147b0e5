"""The codec API: a modality is an identity (`anygpt.modalities.spec.ModalitySpec`, registered once per name in
`anygpt.modalities.registry`) + a `Codec` (items <-> codes, like audiocraft's ``CompressionModel``).

`Modality` joins the two for the data pipeline and generation. Training a codec is a separate LightningModule that
wraps one (e.g. `anygpt.modalities.image.training.ImageTokenizerTrainer`). `frame_major_flatten` /
`frame_major_unflatten` are the one implementation of the release's music token layout; codecs and the data templates
call them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from anygpt.media import MediaKind, Source, media_kind, read_media, write_media
from anygpt.modalities.pretrained import Pretrained
from anygpt.modalities.spec import ModalitySpec, SpanStructure


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
        """Native codes (a tensor, or a shard's array) -> the 1-D sequence of local ids in ``[0, codebook_size)`` the
        LLM sees."""
        return torch.as_tensor(codes).reshape(-1).long()

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
    """One modality as the LLM, the data pipeline and generation use it: identity + codec.

    Build one with `anygpt.modalities.registry.modality_for` (from a codec) or `load_modality` (from a checkpoint).
    """

    spec: ModalitySpec
    codec: Codec

    @property
    def media(self) -> MediaKind:
        """The media kind its files are read and written as."""
        return media_kind(self.spec.media)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    @property
    def structure(self) -> SpanStructure:
        return self.spec.structure

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


# -- The frame-major layout (the release's music tokens) ---------------------------------------------------------------
def frame_major_flatten(codes: torch.Tensor | np.ndarray, codebooks: int, bins: int) -> torch.Tensor:
    """Codes ``[Q, T]`` -> ids ``t0q0 t0q1 ... t1q0 ...`` with codebook ``q`` shifted by ``q * bins`` (Encodec music: 4
    codebooks of 2048 in one 8192-id range). Codes outside ``[0, bins)`` or another shape raise ValueError.

    CPU codes (a tensor or a shard's array) go through NumPy: the training data path flattens every sample, and
    torch's per-operation cost dominates at this size. Codes on an accelerator stay there."""
    if isinstance(codes, torch.Tensor) and codes.device.type != "cpu":
        array, offsets = codes.long(), torch.arange(codebooks, device=codes.device)[:, None] * bins
    else:
        array = np.asarray(codes.detach() if isinstance(codes, torch.Tensor) else codes).astype(np.int64)
        offsets = np.arange(codebooks, dtype=np.int64)[:, None] * bins
    if array.ndim != 2 or array.shape[0] != codebooks:
        raise ValueError(f"expected codes of shape [{codebooks}, T], got {list(array.shape)}")
    if array.size and (array.min() < 0 or array.max() >= bins):
        raise ValueError(f"codes must lie in [0, {bins}) per codebook, got [{int(array.min())}, {int(array.max())}]")
    if isinstance(array, torch.Tensor):
        return (array + offsets).t().reshape(-1)
    return torch.from_numpy(np.ascontiguousarray((array + offsets).T).reshape(-1))


def frame_major_unflatten(ids: torch.Tensor, codebooks: int, bins: int, strict: bool = False) -> torch.Tensor:
    """The inverse of `frame_major_flatten`: ids -> codes ``[Q, T]``.

    ``strict`` (data read from files): ids that are not whole frames, or an id in another codebook's range than its
    position says, raise ValueError. Otherwise (generated spans) an incomplete last frame is dropped and ids are taken
    modulo ``bins``.
    """
    ids = torch.as_tensor(ids).long().reshape(-1)
    if not strict:
        frames = ids.numel() // codebooks
        return (ids[: frames * codebooks] % bins).reshape(frames, codebooks).t().contiguous()
    if ids.numel() % codebooks:
        raise ValueError(f"{ids.numel()} codes are not whole frames of {codebooks}")
    frames = ids.view(-1, codebooks)
    books = torch.arange(codebooks, device=ids.device)
    wrong = (frames // bins != books).nonzero()
    if len(wrong):
        t, q = (int(x) for x in wrong[0])
        raise ValueError(f"code {int(frames[t, q])} at frame {t}, position {q} is not in codebook {q}'s range "
                         f"[{q * bins}, {(q + 1) * bins})")
    return (frames - books * bins).t().contiguous()
