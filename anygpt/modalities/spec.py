"""A modality's identity, as plain data: the one type the vocabulary, the registry, configs and checkpoints share.

`ModalitySpec` says what a modality is (its name, how many codes its codec adds to the vocabulary, its markers and
token format, the media kind of its files, what a valid span looks like); `SpanStructure` is that last part. Neither
holds weights or imports the rest of anygpt, so the vocabulary (`anygpt.vocab`) and the registry both build on them
without a cycle. A registered modality's spec has ``codebook_size=None`` until a codec sizes it
(`anygpt.modalities.registry.spec_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays out of the import: the CLI reads this module before it needs torch
    import torch


class ModalitySpecError(ValueError):
    """A modality identity that cannot be used: it clashes with another modality's (name, alias, marker, token format)
    or with anygpt's own tokens, or is malformed. The message names both sides; front ends show it without a trace."""


class UnknownModalityError(ModalitySpecError, KeyError):
    """A modality name nothing registered (a typo, or a plugin that was not imported); the message lists what is."""

    __str__ = ValueError.__str__  # the message as written, not KeyError's quoted repr


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

    def violation(self, codes: torch.Tensor, codebook_size: int) -> str | None:
        """Why a whole span of flattened ``codes`` breaks this structure (None when it is valid)."""
        values = codes.reshape(-1).tolist() if hasattr(codes, "reshape") else list(codes)
        for i, code in enumerate(values):
            lo, hi = self.allowed_codes(i, codebook_size)
            if not lo <= code < hi:
                return f"code {code} at position {i} is outside [{lo}, {hi})"
        if self.fixed_length is not None and len(values) != self.fixed_length:
            return f"{len(values)} codes, the structure fixes {self.fixed_length}"
        if self.max_length is not None and len(values) > self.max_length:
            return f"{len(values)} codes, more than the structure's {self.max_length}"
        if self.cycle and len(values) % len(self.cycle):
            return f"{len(values)} codes are not whole cycles of {len(self.cycle)}"
        return None

    @classmethod
    def from_dict(cls, value: SpanStructure | Mapping[str, Any] | None) -> SpanStructure:
        """From what a checkpoint's plain hyperparameters hold (lists for tuples)."""
        if value is None:
            return cls()
        if isinstance(value, SpanStructure):
            return value
        cycle = value.get("cycle")
        return cls(value.get("fixed_length"), tuple(tuple(int(x) for x in c) for c in cycle) if cycle else None,
                   value.get("max_length"))


@dataclass(frozen=True)
class ModalitySpec:
    """One modality's identity. Equality (and the vocabulary) looks at the first four fields only.

    Args:
        name: the vocabulary slot, dataset placeholder word and chat command (``image``).
        codebook_size: ids its codec adds to the vocabulary (markers excluded); None until a codec sizes it.
        markers: start and end marker tokens of its spans (``("<soim>", "<eoim>")``).
        token_format: how a code is written as a token, holding ``{}`` (``"<👀{}>"``, for HF-tokenizer interop).
        media: the media kind its files are (`anygpt.media.media_kind`: ``image``, ``audio``, ``array`` or a plugin's).
        structure: what a valid span of its codes looks like (constrained decoding, prepare's checks).
        aliases: other words datasets use for it in placeholders (``audio`` for music).
        codec: the class path of the codec a bare name builds (the paper's), None if there is no default.
    """

    name: str
    codebook_size: int | None
    markers: tuple[str, str]
    token_format: str
    media: str = field(default="array", compare=False)
    structure: SpanStructure = field(default_factory=SpanStructure, compare=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    codec: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        rest = self.token_format.replace("{}", "", 1)
        if "{}" not in self.token_format or "{" in rest or "}" in rest:
            raise ModalitySpecError(f"modality {self.name!r}: token_format {self.token_format!r} must hold exactly one "
                                    f"'{{}}' where the code goes, e.g. '<{self.name}{{}}>'")
        if len(self.markers) != 2 or self.markers[0] == self.markers[1]:
            raise ModalitySpecError(f"modality {self.name!r}: markers {self.markers!r} must be two different tokens "
                                    "(start, end)")

    def code_token(self, code: int) -> str:
        return self.token_format.format(code)

    def sized(self, codebook_size: int, structure: SpanStructure | None = None) -> ModalitySpec:
        """This identity with a codec's size (and structure)."""
        return replace(self, codebook_size=int(codebook_size), structure=structure or self.structure)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for checkpoints and exports (``torch.load(weights_only=True)`` reads them)."""
        return {"name": self.name, "codebook_size": self.codebook_size, "markers": list(self.markers),
                "token_format": self.token_format, "media": self.media}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], source: str = "a modality entry") -> ModalitySpec:
        """From `to_dict`'s output or an older checkpoint's ``{name, codebook_size, markers, token_format}``."""
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        missing = {"name", "codebook_size", "markers", "token_format"} - set(value)
        if unknown or missing:
            raise ValueError(f"{source} {dict(value)}: " + (f"unknown keys {sorted(unknown)}" if unknown else
                             f"lacks {sorted(missing)}") + "; give name, codebook_size, markers, token_format "
                             "(or name the codec: a registered modality name or {class_path, init_args})")
        args = dict(value)
        args["markers"] = tuple(args["markers"])
        args["codebook_size"] = None if args["codebook_size"] is None else int(args["codebook_size"])
        args["structure"] = SpanStructure.from_dict(args.get("structure"))
        args["aliases"] = tuple(args.get("aliases", ()))
        return cls(**args)


def frame_cycle(codebooks: int, bins: int) -> SpanStructure:
    """Spans of whole frames of ``codebooks`` codes, codebook ``q`` at ids ``[q * bins, (q + 1) * bins)`` (music)."""
    return SpanStructure(cycle=tuple((q * bins, (q + 1) * bins) for q in range(codebooks)))


# The released AnyGPT checkpoints' modalities, in vocabulary order, with the paper's codecs.
RELEASE_MODALITIES: tuple[ModalitySpec, ...] = (
    ModalitySpec("image", 8192, ("<soim>", "<eoim>"), "<👀{}>", "image", SpanStructure(fixed_length=32),
                 codec="anygpt.modalities.image.seed.SEEDImageTokenizer"),
    ModalitySpec("speech", 1024, ("<sosp>", "<eosp>"), "<🗣️{}>", "audio",
                 codec="anygpt.modalities.speech.codec.SpeechTokenizerCodec"),
    ModalitySpec("music", 8192, ("<somu>", "<eomu>"), "<🎶{}>", "audio", frame_cycle(4, 2048), aliases=("audio",),
                 codec="anygpt.modalities.music.encodec32k.EncodecMusicTokenizer"),
)
