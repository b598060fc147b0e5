"""Modules saved as plain constructor arguments + safetensors, and the classes a saved folder may name.

A `Pretrained` module records the arguments it was built with (no Lightning involved), so `save_pretrained` writes
``config.json`` = ``{"class_path": ..., "init_args": {...}}`` and ``model.safetensors``, and `from_pretrained` rebuilds
it. The class named in ``config.json`` is checked before anything is imported (`saved_class`): only classes of anygpt,
registered plugins or classes already imported qualify, unless the user passes ``trust_code``.

Folders written before codecs and their training were split (their ``config.json`` has no ``format``) name the old
classes, with their training settings among the constructor arguments; `LEGACY_CLASSES` maps each to the class that
loads it now, and the arguments that class does not take (the training settings, now the trainer's) are dropped.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from anygpt.assets import asset_path
from anygpt.resolve import normalize, resolve_trusted_class

P = TypeVar("P", bound="Pretrained")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 2  # config.json's "format": 2 since codecs keep no training settings; absent before
# Providers of further class names a saved folder may name (the modality registry adds its codecs at import), so this
# module needs no import of the registry: the registry builds on it, not the other way round.
TRUSTED_CLASS_PROVIDERS: list[Callable[[], Iterable[str]]] = []


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _recording(init: Any) -> Any:
    """Wrap ``init`` so that the outermost constructor call of an instance records its arguments (defaults applied,
    ``**kwargs`` merged) before running; inner ``super().__init__`` calls leave the record alone."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Pretrained, *args: Any, **kwargs: Any) -> None:
        if "_init_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise TypeError(f"{type(self).__name__} takes keyword arguments only (saved by name)")
                else:
                    recorded[name] = value
            self.__dict__["_init_args"] = {k: _plain(v) for k, v in recorded.items()}
        init(self, *args, **kwargs)

    return __init__


def _plain(value: Any) -> Any:
    """Tuples as lists, as they read back from ``config.json``."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Pretrained(nn.Module):
    """An `nn.Module` that remembers its constructor arguments and saves/loads itself as config + safetensors.

    Subclasses just define ``__init__``; every argument must be JSON-serialisable (numbers, strings, lists, dicts).
    ``default_checkpoint`` names the weights `from_pretrained` loads without a path (the shipped tiny tokenizers).
    """

    default_checkpoint: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__dict__["__init__"])

    @property
    def init_args(self) -> dict[str, Any]:
        """The arguments this module was built with (what `save_pretrained` records)."""
        return dict(self.__dict__.get("_init_args", {}))

    def pretrained_config(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what ``config.json`` holds, and a LightningCLI-style class spec."""
        return {"class_path": qualified_name(type(self)), "init_args": self.init_args}

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.get_default_dtype()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (class and constructor arguments) and ``model.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({**self.pretrained_config(), "format": FORMAT}, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        return directory

    @classmethod
    def from_pretrained(cls: type[P], path: str | Path | None = None, trust_code: bool = False,
                        **overrides: Any) -> P:
        """Load a `save_pretrained` folder (or an ``anygpt-assets:`` name); without ``path``, ``default_checkpoint``.

        The folder's class must be ``cls`` or a subclass, checked before import (`saved_class`); ``overrides`` replace
        constructor arguments. Subclasses with release formats override this and fall back to it for such folders.
        """
        from safetensors.torch import load_file

        if path is None:
            if cls.default_checkpoint is None:
                raise TypeError(f"{cls.__name__} ships no default weights; give the checkpoint path")
            path = cls.default_checkpoint
        path = asset_path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for needed in (config_file, weights_file):
            if not needed.exists():
                raise FileNotFoundError(f"{needed} is missing: {path} is not a folder written by save_pretrained "
                                        f"(expected {CONFIG_FILE} + {WEIGHTS_FILE}).")
        target, init_args, legacy = saved_class(read_pretrained_config(config_file), cls, str(config_file), trust_code)
        model = target(**{**init_args, **overrides})
        state = load_file(str(weights_file))
        if legacy is not None:
            state = {k: v for k, v in state.items() if not k.startswith(legacy.dropped_weights)}
        model.load_state_dict(state)
        return model.eval()


def read_pretrained_config(config_file: Path) -> dict[str, Any]:
    """A ``config.json`` of `save_pretrained`: ``class_path`` and ``init_args`` (LightningCLI's ``_``-keys dropped);
    a malformed file is named in the error."""
    try:
        config = json.loads(Path(config_file).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {config_file}: {err}") from err
    if not isinstance(config, dict) or not isinstance(config.get("class_path"), str) \
            or not isinstance(config.get("init_args", {}), dict):
        raise ValueError(f"{config_file} is not a tokenizer config: expected {{\"class_path\": ..., "
                         "\"init_args\": {...}}")
    init_args = {k: v for k, v in config.get("init_args", {}).items() if not k.startswith("_")}
    return {"class_path": config["class_path"], "init_args": init_args, "format": config.get("format")}


# -- Classes named by files on disk ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LegacyClass:
    """How a folder saved before the codec/training split loads now.

    Args:
        class_path: the class that loads it (arguments it does not take are dropped: they were training settings).
        dropped_weights: state-dict prefixes of training-only modules (e.g. a GAN discriminator).
    """

    class_path: str
    dropped_weights: tuple[str, ...] = ()


LEGACY_CLASSES: dict[str, LegacyClass] = {
    "anygpt.modalities.image.tiny.TinyImageTokenizer": LegacyClass("anygpt.modalities.image.tiny.TinyImageTokenizer"),
    "anygpt.modalities.music.codec.SEANetCodec": LegacyClass(
        "anygpt.modalities.music.codec.SEANetCodec", ("discriminator.",)),
    "anygpt.modalities.music.tiny.TinyMusicCodec": LegacyClass(
        "anygpt.modalities.music.tiny.TinyMusicCodec", ("discriminator.",)),
    "anygpt.modalities.music.encodec32k.EncodecMusicTokenizer": LegacyClass(
        "anygpt.modalities.music.encodec32k.EncodecMusicTokenizer", ("discriminator.",)),
    "anygpt.modalities.speech.modality.SpeechTokenizerModality": LegacyClass(
        "anygpt.modalities.speech.codec.SpeechTokenizerCodec"),
    "anygpt.modalities.speech.modality.TinySpeechModality": LegacyClass(
        "anygpt.modalities.speech.tiny.TinySpeechCodec"),
    "anygpt.modalities.speech.soundstorm.SoundStormModule": LegacyClass(
        "anygpt.modalities.speech.soundstorm.SoundStorm"),
}


def accepted_arguments(cls: type) -> set[str] | None:
    """Constructor argument names of ``cls``, following ``**kwargs`` passed up the class hierarchy (None: any)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in list(params.items())[1:]
                  if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return names
    return None


def saved_class(config: dict[str, Any], base: type[P], source: str, trust_code: bool = False
                ) -> tuple[type[P], dict[str, Any], LegacyClass | None]:
    """The class a saved config names (a subclass of ``base``), its constructor arguments, and the legacy entry that
    applied (if any). Refused before import unless the class is anygpt's, a registered plugin's or already imported,
    or ``trust_code`` is given: opening a checkpoint must never run code it names."""
    name, init_args = config["class_path"], dict(config["init_args"])
    legacy = None if config.get("format") else LEGACY_CLASSES.get(normalize(name))
    if legacy is not None:
        name = legacy.class_path
    if normalize(name) == qualified_name(base):
        target = base
    else:
        allowed = [n for provide in TRUSTED_CLASS_PROVIDERS for n in provide()]
        target = resolve_trusted_class(name, base, source, allowed=allowed, trust_code=trust_code,
                                       what=f"a registered codec or {base.__name__} subclass")
    if legacy is not None and (accepted := accepted_arguments(target)) is not None:
        init_args = {k: v for k, v in init_args.items() if k in accepted}
    return target, init_args, legacy
