"""The Modality API: what a tokenizer must provide so the LLM, the data pipeline and generation can use it.

A modality is a LightningModule so that its tokenizer trains with ``anygpt fit`` like anything else. Concrete modalities
register under a name (``@register_modality``) or through the ``anygpt.modalities`` entry-point group; YAML configs may
also name them directly by ``class_path``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

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


@contextmanager
def own_hyperparameters() -> Iterator[None]:
    """Let modules built here record their own hyperparameters.

    While LightningCLI instantiates a class, Lightning hands *that* class's hyperparameters to every
    ``save_hyperparameters`` call (a context variable), so a tokenizer loaded inside a data module's ``__init__`` would
    record the data module's arguments and lose its own. Lightning offers no public switch; this resets the variable.
    """
    from lightning.pytorch.core.mixins import hparams_mixin

    token = hparams_mixin._given_hyperparameters.set(None)
    try:
        yield
    finally:
        hparams_mixin._given_hyperparameters.reset(token)


class Modality(L.LightningModule, ABC):
    """A discrete tokenizer for one modality, plus its raw I/O.

    Subclasses set the class attributes, implement ``codebook_size``, `load`, `save`, `encode` and `decode`, and
    override `flatten`/`unflatten` when their codes are not already 1-D (music: frames x codebooks).
    """

    name: ClassVar[str]
    markers: ClassVar[tuple[str, str]]
    token_format: ClassVar[str]

    def save_hyperparameters(self, *args: Any, ignore: Sequence[str] | str | None = None, frame: Any = None,
                             logger: bool = True) -> None:
        """Record this tokenizer's own constructor arguments, also when it is built while LightningCLI instantiates
        another class (a data module's modalities), where Lightning would substitute that class's arguments."""
        import inspect

        frame = frame or inspect.currentframe().f_back
        with own_hyperparameters():
            super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of ids this modality adds to the LLM vocabulary (excluding its two markers)."""

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure()

    @property
    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, self.codebook_size, tuple(self.markers), self.token_format)

    # -- raw I/O ------------------------------------------------------------------------------------------------------
    @abstractmethod
    def load(self, source: str | Path | bytes) -> torch.Tensor:
        """Decode a file (or its bytes) into the tensor `encode` takes: resampled/resized as the tokenizer needs."""

    @abstractmethod
    def save(self, data: torch.Tensor, path: str | Path) -> None:
        """Write one decoded item (image, waveform) to ``path``."""

    # -- tokens --------------------------------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Batch of loaded items -> their codes in the tokenizer's native layout (under ``torch.inference_mode``)."""

    @abstractmethod
    def decode(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Codes in native layout -> items `save` can write."""

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """Native codes -> the 1-D sequence of local ids in ``[0, codebook_size)`` the LLM sees."""
        return codes.reshape(-1).long()

    def unflatten(self, ids: torch.Tensor) -> torch.Tensor:
        """Inverse of `flatten`; must tolerate a truncated tail by dropping the incomplete part."""
        return ids.long()

    def enhance(self, decoded: torch.Tensor, **context: Any) -> torch.Tensor:
        """Optional second stage after `decode` (e.g. voice cloning); the default returns ``decoded`` unchanged."""
        return decoded

    # -- checkpoints --------------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` (constructor arguments) and ``model.safetensors`` for `from_pretrained`."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # Keys starting with "_" are LightningCLI bookkeeping (_class_path, _instantiator), not constructor arguments.
        init_args = {k: v for k, v in dict(self.hparams).items() if not k.startswith("_")}
        config = {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": init_args}
        (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_code: bool = False, **overrides: Any) -> Modality:
        """Load a directory written by `save_pretrained`. Modalities with release formats override this.

        Called on `Modality` itself, the class comes from the folder's ``config.json`` and must be a registered
        modality or an already known `Modality` subclass (`trusted_modality_class`); ``trust_code`` lifts that.
        """
        from safetensors.torch import load_file

        path = Path(path)
        config_file, weights_file = path / "config.json", path / "model.safetensors"
        for needed in (config_file, weights_file):
            if not needed.exists():
                raise FileNotFoundError(f"{needed} is missing: {path} is not a directory written by "
                                        f"{cls.__name__}.save_pretrained (expected config.json + model.safetensors).")
        config = read_pretrained_config(config_file)
        target = cls
        if cls is Modality or config["class_path"] != _qualified_name(cls):
            target = trusted_modality_class(config["class_path"], str(config_file), trust_code)
            if cls is not Modality and not issubclass(target, cls):
                raise TypeError(f"{config_file} holds a {target.__name__}, not a {cls.__name__}")
        model = target(**{**config["init_args"], **overrides})
        model.load_state_dict(load_file(str(weights_file)))
        return model.eval()


# ----------------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, str | type[Modality]] = {}
ENTRY_POINT_GROUP = "anygpt.modalities"


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: make ``cls`` available as ``modality_class(cls.name)``."""
    _REGISTRY[cls.name] = cls
    return cls


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def read_pretrained_config(config_file: Path) -> dict[str, Any]:
    """A `save_pretrained` ``config.json``: ``class_path`` and constructor ``init_args`` (LightningCLI's ``_``-keys
    dropped); a malformed file is named in the error."""
    try:
        config = json.loads(Path(config_file).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {config_file}: {err}") from err
    if not isinstance(config, dict) or not isinstance(config.get("class_path"), str) \
            or not isinstance(config.get("init_args", {}), dict):
        raise ValueError(f"{config_file} is not a tokenizer config: expected {{\"class_path\": ..., "
                         "\"init_args\": {...}}")
    init_args = {k: v for k, v in config.get("init_args", {}).items() if not k.startswith("_")}
    return {"class_path": config["class_path"], "init_args": init_args}


def trusted_modality_class(class_path: str, source: str, trust_code: bool = False) -> type[Modality]:
    """The `Modality` subclass a file on disk names, refused before import unless it is registered, part of anygpt or
    already imported (or ``trust_code`` is given): opening a checkpoint must never run code it names."""
    from anygpt.resolve import resolve_trusted_class

    allowed = [v if isinstance(v, str) else _qualified_name(v) for v in _registered().values()]
    return resolve_trusted_class(class_path, Modality, source, allowed=allowed, trust_code=trust_code,
                                 what="a registered modality or Modality subclass")


def _registered() -> dict[str, str | type[Modality]]:
    found: dict[str, str | type[Modality]] = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(_REGISTRY)
    return found


def available_modalities() -> list[str]:
    return sorted(_registered())


def modality_class(name: str) -> type[Modality]:
    """The class registered as ``name`` (decorator or entry point); unknown names list what exists."""
    registered = _registered()
    if name not in registered:
        raise KeyError(f"Unknown modality {name!r}. Registered: {sorted(registered)}. Register a Modality subclass "
                       f"with @register_modality, the '{ENTRY_POINT_GROUP}' entry-point group, or name it by "
                       "class_path.")
    target = registered[name]
    if isinstance(target, str):
        from anygpt.resolve import resolve

        target = resolve(target)
    return target


def load_modality(path: str | Path, class_path: str | type[Modality] | None = None, trust_code: bool = False,
                  **overrides: Any) -> Modality:
    """Load a tokenizer checkpoint: ``class_path``'s ``from_pretrained(path)`` (release formats), or by default a
    directory written by `Modality.save_pretrained` (its config.json names the class, checked before import).

    ``class_path`` is the caller's choice (a user's config or command line); a name read from a file must be checked
    with `trusted_modality_class` first and passed as the class.
    """
    if class_path is None:
        target: type[Modality] = Modality
    elif isinstance(class_path, str):
        from anygpt.resolve import resolve

        target = resolve(class_path)
    else:
        target = class_path
    if not (isinstance(target, type) and issubclass(target, Modality)):
        raise TypeError(f"{class_path} is not a Modality subclass")
    with own_hyperparameters():  # helper modules a tokenizer loads (e.g. SoundStorm) record their own arguments too
        return target.from_pretrained(path, trust_code=trust_code, **overrides)
