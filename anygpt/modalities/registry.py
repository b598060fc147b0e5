"""Which modalities exist, and how a tokenizer checkpoint becomes a `Modality`.

A modality is registered once under its name with its vocabulary identity (markers, token format), its media kind (one
of `anygpt.media.MEDIA_KINDS`), the paper's codec for it and the other words datasets use for it (``audio`` for music).
The front end reads this table: media placeholders in datasets and chat messages (``[depth: scan.npy]``), chat's
``/depth`` command, output file suffixes and HTML cells all follow the registered modalities, so a plugin reaches them
by registering (``register_modality`` in its module, found through the ``anygpt.modalities`` entry-point group or by
importing it).

A tokenizer is named the same way everywhere (prepare, checkpoints, chat, benchmarks): a `TokenizerRef`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from anygpt import hub
from anygpt.assets import asset_path, portable_path
from anygpt.media import MediaKind, media_kind
from anygpt.modalities.base import Codec, Modality
from anygpt.modalities.pretrained import qualified_name, saved_class
from anygpt.vocab import RELEASE_MODALITIES, ModalitySpec

ENTRY_POINT_GROUP = "anygpt.modalities"


@dataclass(frozen=True)
class ModalityType:
    """A registered modality: everything about it except the codec's weights.

    Args:
        name: the modality's name (vocabulary slot, dataset placeholder, chat command).
        markers: start and end marker tokens of its spans.
        token_format: how its code tokens are written (``"<👀{}>"``).
        media: the media kind its files are (``image``, ``audio`` or ``array``).
        codec: the codec built for it by name (its ``class_path``, or the class), None if there is no default.
        aliases: other words datasets use for it in placeholders (``[audio: x.wav]`` for music).
    """

    name: str
    markers: tuple[str, str]
    token_format: str
    media: str
    codec: str | type[Codec] | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def media_kind(self) -> MediaKind:
        return media_kind(self.media)

    def spec(self, codebook_size: int) -> ModalitySpec:
        return ModalitySpec(self.name, int(codebook_size), tuple(self.markers), self.token_format)


_REGISTRY: dict[str, ModalityType] = {}


def register_modality(name: str, markers: tuple[str, str], token_format: str, media: str,
                      codec: str | type[Codec] | None = None, aliases: tuple[str, ...] = ()) -> ModalityType:
    """Make ``name`` a modality anygpt knows (call it at import of the module defining the codec)."""
    media_kind(media)  # an unknown kind fails here, naming the known ones
    entry = ModalityType(name, tuple(markers), token_format, media, codec, tuple(aliases))
    _REGISTRY[name] = entry
    return entry


_PAPER_CODECS = {
    "image": ("image", "anygpt.modalities.image.seed.SEEDImageTokenizer", ()),
    "speech": ("audio", "anygpt.modalities.speech.codec.SpeechTokenizerCodec", ()),
    "music": ("audio", "anygpt.modalities.music.encodec32k.EncodecMusicTokenizer", ("audio",)),
}
for _spec in RELEASE_MODALITIES:
    _media, _codec, _aliases = _PAPER_CODECS[_spec.name]
    register_modality(_spec.name, _spec.markers, _spec.token_format, _media, _codec, _aliases)


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_plugin(name: str) -> None:
    """Import the entry point registered as ``name`` (the user installed it); its module registers the modality, or
    the entry point names the `ModalityType` itself."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded = ep.load()
            if isinstance(loaded, ModalityType):
                _REGISTRY.setdefault(name, loaded)


def modality_type(name: str) -> ModalityType:
    """The registered modality ``name`` (or one it is an alias of); unknown names list what exists."""
    if name not in _REGISTRY and name in _plugins():
        _load_plugin(name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    for entry in _REGISTRY.values():
        if name in entry.aliases:
            return entry
    raise KeyError(f"Unknown modality {name!r}. Registered: {available_modalities()}. Register one with "
                   f"anygpt.modalities.registry.register_modality (in the module of its codec) or the "
                   f"'{ENTRY_POINT_GROUP}' entry-point group, or name its codec by class_path.")


def available_modalities() -> list[str]:
    return sorted(set(_REGISTRY) | set(_plugins()))


def media_kind_of(modality: str) -> MediaKind:
    """The media kind of a registered modality's files (what a report or transcript shows them with)."""
    return modality_type(modality).media_kind


def media_words() -> dict[str, str]:
    """Word used in media placeholders -> modality name: every registered name and alias."""
    words = {name: name for name in available_modalities()}
    for entry in _REGISTRY.values():
        words.update({alias: entry.name for alias in entry.aliases})
    return words


def media_pattern() -> re.Pattern[str]:
    """The media placeholders of AnyInstruct-style messages, ``[image: cat.png]``, for every registered modality:
    group 1 is the word (a name or alias, see `media_words`), group 2 the path."""
    words = sorted(media_words(), key=len, reverse=True)
    return _compile(tuple(words))


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compile(words: tuple[str, ...]) -> re.Pattern[str]:
    if words not in _PATTERNS:
        _PATTERNS[words] = re.compile(r"\[(" + "|".join(map(re.escape, words)) + r"): ([^\]\n]+?)\]")
    return _PATTERNS[words]


def codec_class(name: str) -> type[Codec]:
    """The codec registered as the default of modality ``name`` (the paper's tokenizer)."""
    entry = modality_type(name)
    if entry.codec is None:
        raise KeyError(f"modality {name!r} has no default codec; name one by class_path")
    target = entry.codec
    if isinstance(target, str):
        from anygpt.resolve import resolve

        target = resolve(target)
    if not (isinstance(target, type) and issubclass(target, Codec)):
        raise TypeError(f"modality {name!r} registers {target!r} as its codec, which is not a Codec subclass")
    return target


def registered_codec_paths() -> list[str]:
    """Class names a checkpoint may name without ``trust_code``, beyond anygpt's own: the codecs of the registered
    modalities, installed plugins' included (their entry points are loaded: the user installed them)."""
    plugins = _plugins()
    for name in set(plugins) - set(_REGISTRY):
        _load_plugin(name)
    names = list(plugins.values())
    for entry in _REGISTRY.values():
        if entry.codec is not None:
            names.append(entry.codec if isinstance(entry.codec, str) else qualified_name(entry.codec))
    return names


def modality_for(codec: Codec, name: str | None = None) -> Modality:
    """The `Modality` of a codec: its registered identity and media kind (``name`` defaults to ``codec.modality``)."""
    own = getattr(codec, "modality", None)
    name = name or own
    if name is None:
        raise TypeError(f"{type(codec).__name__} does not say which modality it tokenizes: set the class attribute "
                        "`modality` to a registered modality name")
    if own is not None and own != name:
        raise ValueError(f"a {own!r} codec ({type(codec).__name__}) was given for the {name!r} modality; key it by "
                         f"its modality name ({own!r})")
    entry = modality_type(name)
    return Modality(entry.spec(codec.codebook_size), codec, entry.media_kind)


def load_codec(path: str | Path | None, class_path: str | type[Codec] | None = None, trust_code: bool = False,
               **options: Any) -> Codec:
    """``class_path``'s ``from_pretrained(path, **options)`` (release formats), or by default a `save_pretrained`
    folder whose ``config.json`` names the codec class (checked before import).

    ``class_path`` is the caller's choice (a user's config or command line); a name read from a file must be checked
    with `trusted_codec_class` first and passed as the class.
    """
    if class_path is None:
        target: type[Codec] = Codec
    elif isinstance(class_path, str):
        from anygpt.resolve import resolve

        target = resolve(class_path)
    else:
        target = class_path
    if not (isinstance(target, type) and issubclass(target, Codec)):
        raise TypeError(f"{class_path} is not a Codec subclass")
    if path is None and target is Codec:
        raise ValueError("give a tokenizer checkpoint path or a codec class_path")
    return target.from_pretrained(path, trust_code=trust_code, **options)


def trusted_codec_class(class_path: str, source: str, trust_code: bool = False) -> type[Codec]:
    """The `Codec` subclass a file on disk names, refused before import unless it is anygpt's, registered or already
    imported (or ``trust_code`` is given). Names of classes from before the codec/training split are mapped."""
    target, _, _ = saved_class({"class_path": class_path, "init_args": {}}, Codec, source, trust_code)
    return target


def load_modality(path: str | Path | None, class_path: str | type[Codec] | None = None, trust_code: bool = False,
                  name: str | None = None, **options: Any) -> Modality:
    """`load_codec` + its registered identity and media kind (`modality_for`)."""
    return modality_for(load_codec(path, class_path, trust_code, **options), name)


# ----------------------------------------------------------------------------------------------------------------------
# Naming a tokenizer
# ----------------------------------------------------------------------------------------------------------------------
_CLASS_THEN_PATH = re.compile(r"^([A-Za-z_][\w.]*[.:][A-Za-z_]\w*)=(.*)$")


@dataclass
class TokenizerRef:
    """Where a modality's tokenizer lives, the one way anygpt names one (prepare, checkpoints, chat, benchmarks).

    Args:
        path: a checkpoint folder or file, or ``anygpt-assets:tokenizers/NAME`` (the shipped tiny tokenizers); None
            loads the class's shipped weights.
        class_path: the codec class whose ``from_pretrained`` reads ``path`` (release formats); None: ``path`` is a
            `save_pretrained` folder whose ``config.json`` names the class, or without a path the modality's default.
        options: further ``from_pretrained`` arguments (e.g. SEED's ``eva_vit`` path).

    On a command line a reference is a path, or ``package.module.Class=path``.
    """

    path: str | None = None
    class_path: str | None = None
    options: dict[str, Any] | None = None

    @classmethod
    def of(cls, value: TokenizerRef | str | Path | Mapping[str, Any] | None) -> TokenizerRef:
        """A reference from what configs, command lines and ``anygpt.json`` hold."""
        if isinstance(value, TokenizerRef):
            return value
        if value is None:
            return cls()
        if isinstance(value, (str, Path)):
            match = _CLASS_THEN_PATH.match(str(value))
            if match:
                return cls(path=match[2] or None, class_path=match[1])
            return cls(path=str(value))
        unknown = set(value) - {"path", "class_path", "options"}
        if unknown:
            raise ValueError(f"tokenizer reference {dict(value)} has unknown keys {sorted(unknown)}; give path, "
                             "class_path and/or options")
        return cls(**dict(value))

    def load(self, modality: str | None = None, trust_code: bool = False, source: str | None = None) -> Modality:
        """Load the tokenizer as the `Modality` ``modality`` (default: the one its codec tokenizes).

        Args:
            trust_code: let files name classes that are neither registered nor part of anygpt (imports them).
            source: the file this reference was read from (an ``anygpt.json``, a ``.ckpt``). Its ``class_path`` is
                then checked like any name from disk; None means the user wrote the reference (config, command line).
        """
        cls: type[Codec] | None = None
        if self.class_path is not None:
            if source is None:
                from anygpt.resolve import resolve

                cls = resolve(self.class_path)
            else:
                cls = trusted_codec_class(self.class_path, source, trust_code)
        if self.path is None and cls is None:
            if modality is None:
                raise ValueError("an empty tokenizer reference needs the modality name to load its default")
            cls = codec_class(modality)
        path, options = self.path, dict(self.options or {})
        if hub.is_hub_id(path):  # org/name[@revision]: the repository's snapshot (only the files the codec reads)
            allow = next((c.allow for c in hub.RELEASE if c.name == path), None)
            path = str(hub.local(path, f"{modality or 'the'} tokenizer", allow))
        for key, value in options.items():  # a file published by URL (BLIP-2's EVA ViT): fetched once, then cached
            if isinstance(value, str) and value.startswith("https://"):
                options[key] = str(hub.fetch_url(value, f"{modality or 'the'} tokenizer's {key}"))
        try:
            codec = load_codec(path, cls, trust_code, **options)
        except TypeError as err:
            if self.path is None:
                raise ValueError(f"{err}: pass the {modality or ''} tokenizer checkpoint explicitly "
                                 "(tokenizers={modality: path})") from None
            raise
        return modality_for(codec, modality)

    def portable(self) -> TokenizerRef:
        """The same reference with a path inside anygpt's shipped assets written as ``anygpt-assets:...``, so an export
        that uses the shipped tiny tokenizers opens on any machine with anygpt installed."""
        if not self.path:
            return self
        return TokenizerRef(portable_path(self.path), self.class_path, self.options)

    @property
    def resolved_path(self) -> Path | None:
        return asset_path(self.path) if self.path else None
