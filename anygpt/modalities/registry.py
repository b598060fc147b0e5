"""Which modalities exist: one `ModalitySpec` per name, checked when it is registered, and how codecs get sized.

A plugin calls `register_modality` at import of its codec's module, or names that module (or the returned spec) in
the ``anygpt.modalities`` entry-point group (docs/plugins.md). A name, alias, marker or token format that clashes with
a registered modality's is refused with a `ModalitySpecError` naming both modalities and the modules that registered
them; an unknown name is an `UnknownModalityError` with a "did you mean"; registering the same thing twice (a
re-imported module) is harmless. A new media kind is registered with `anygpt.media.register_media_kind` first;
`anygpt.testing.check_codec` tests a codec.

The front end (dataset and chat placeholders such as ``[motion: m.npy]``, chat commands, output suffixes, HTML cells)
follows this table. A codec is sized without building its weights (`spec_of` constructs it on the meta device), so
configs name codecs instead of retyping markers and sizes (`configured_modality`). A tokenizer is named the same way
everywhere (prepare, checkpoints, chat, benchmarks): a `TokenizerRef`.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from anygpt import hub
from anygpt.assets import SCHEME as ASSETS_SCHEME
from anygpt.assets import asset_path, portable_path
from anygpt.media import MediaKind, media_kind
from anygpt.modalities.codec import Codec, Modality
from anygpt.modalities.pretrained import TRUSTED_CLASS_PROVIDERS, qualified_name, saved_class
from anygpt.modalities.spec import (
    RELEASE_MODALITIES,
    ModalitySpec,
    ModalitySpecError,
    SpanStructure,
    UnknownModalityError,
)
from anygpt.resolve import resolve
from anygpt.vocab import INSTRUCTION_TOKENS, SPECIAL_TOKENS

ENTRY_POINT_GROUP = "anygpt.modalities"
Flatten = Callable[[torch.Tensor], torch.Tensor]

_REGISTRY: dict[str, ModalitySpec] = {}
_ORIGIN: dict[str, str] = {}  # name -> the module that registered it (named in clash messages)
_CLASSES: dict[str, type[Codec]] = {}  # name -> codec class registered as an object (no import by path needed)


def register_modality(name: str | ModalitySpec, markers: tuple[str, str] | None = None,
                      token_format: str | None = None, media: str = "array",
                      codec: str | type[Codec] | None = None, aliases: tuple[str, ...] = ()) -> ModalitySpec:
    """Make ``name`` a modality anygpt knows (call it at import of the module defining the codec); returns its spec.

    Pass the fields, or a whole `ModalitySpec` as ``name``. Raises `ModalitySpecError` when the name, an alias, a
    marker or the token format clashes with a registered modality, or the token format lacks ``{}``; `KeyError` for an
    unknown media kind.
    """
    origin = sys._getframe(1).f_globals.get("__name__", "?")
    if isinstance(name, ModalitySpec):
        spec = name
    else:
        if markers is None or token_format is None:
            raise ModalitySpecError(f"registering modality {name!r} (from {origin}) needs markers and token_format")
        try:
            spec = ModalitySpec(name, None, tuple(markers), token_format, media, aliases=tuple(aliases))
        except ModalitySpecError as err:
            raise ModalitySpecError(f"{err} (registered by {origin})") from None
    if codec is not None:
        spec = replace(spec, codec=codec if isinstance(codec, str) else qualified_name(codec))
    media_kind(spec.media)  # an unknown kind fails here, naming the known ones
    existing = _REGISTRY.get(spec.name)
    if existing is not None and _same_registration(existing, spec):
        return existing  # the same plugin imported twice: harmless
    _check_clashes(spec, origin)
    _REGISTRY[spec.name], _ORIGIN[spec.name] = spec, origin
    if isinstance(codec, type):
        _CLASSES[spec.name] = codec
    return spec


def _same_registration(a: ModalitySpec, b: ModalitySpec) -> bool:
    """Equal identities; codecs equal, or the same class reached under another module name (a re-import)."""
    def last(path: str | None) -> str | None:
        return path.rsplit(".", 1)[-1] if path else None

    identity = (a.name, a.markers, a.token_format, a.media, a.aliases)
    return identity == (b.name, b.markers, b.token_format, b.media, b.aliases) and last(a.codec) == last(b.codec)


def _format_matches(token_format: str, token: str) -> bool:
    before, _, after = token_format.partition("{}")
    return re.fullmatch(re.escape(before) + r"\d+" + re.escape(after), token) is not None


def _formats_overlap(a: str, b: str) -> bool:
    """Can two token formats write the same token (``<x{}>`` and ``<x1{}>`` both write ``<x12>``)?"""
    (pa, _, sa), (pb, _, sb) = a.partition("{}"), b.partition("{}")
    return any(p1.startswith(p2) and (p1[len(p2):].isdigit() or p1 == p2)
               and (s1.endswith(s2) and (s1[: len(s1) - len(s2)].isdigit() or s1 == s2))
               for (p1, s1), (p2, s2) in (((pa, sa), (pb, sb)), ((pb, sb), (pa, sa))))


def _check_clashes(spec: ModalitySpec, origin: str) -> None:
    me = f"modality {spec.name!r} (registered by {origin})"
    fmt = spec.token_format  # one '{}' and two distinct markers: ModalitySpec checked them when it was made
    if spec.name in spec.aliases:
        raise ModalitySpecError(f"{me}: its alias {spec.name!r} is its own name")
    for token in spec.markers:
        if token in SPECIAL_TOKENS + INSTRUCTION_TOKENS:
            raise ModalitySpecError(f"{me}: marker {token!r} is one of anygpt's special tokens; choose another")
        if _format_matches(fmt, token):
            raise ModalitySpecError(f"{me}: marker {token!r} is also one of its own code tokens ({fmt!r})")
    words = {spec.name, *spec.aliases}
    for other in _REGISTRY.values():
        them = f"the registered modality {other.name!r} (registered by {_ORIGIN.get(other.name, '?')})"
        if other.name == spec.name:
            raise ModalitySpecError(f"{me} clashes with {them}: the name is taken. Choose another name, or register "
                                    "exactly the same markers, token format, media and codec")
        taken = words & {other.name, *other.aliases}
        if taken:
            raise ModalitySpecError(f"{me} clashes with {them}: the word {sorted(taken)[0]!r} already names it in "
                                    "datasets and chat; choose another name or alias")
        for token in spec.markers:
            if token in other.markers:
                raise ModalitySpecError(f"{me} clashes with {them}: marker {token!r} is already its marker")
            if _format_matches(other.token_format, token):
                raise ModalitySpecError(f"{me} clashes with {them}: marker {token!r} is one of its code tokens "
                                        f"({other.token_format!r})")
        for token in other.markers:
            if _format_matches(fmt, token):
                raise ModalitySpecError(f"{me} clashes with {them}: its marker {token!r} would be one of this "
                                        f"modality's code tokens ({fmt!r})")
        if fmt == other.token_format or _formats_overlap(fmt, other.token_format):
            raise ModalitySpecError(f"{me} clashes with {them}: token format {fmt!r} writes the same tokens as its "
                                    f"{other.token_format!r}; choose another")


for _spec in RELEASE_MODALITIES:
    register_modality(replace(_spec, codebook_size=None, structure=SpanStructure()))


def _plugins() -> dict[str, str]:
    """The installed modality entry points, name -> target. Read once per ``sys.path``: scanning every installed
    distribution takes milliseconds, and media placeholders are parsed once per message of every dataset row."""
    return dict(_installed_plugins(tuple(sys.path)))


@functools.lru_cache(maxsize=16)
def _installed_plugins(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def _load_plugin(name: str) -> None:
    """Import the entry point registered as ``name`` (the user installed it); its module registers the modality, or
    the entry point names the `ModalitySpec` itself."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded = ep.load()
            if isinstance(loaded, ModalitySpec):
                register_modality(loaded)


def modality_spec(name: str) -> ModalitySpec:
    """The registered modality ``name`` (or one it is an alias of), unsized; unknown names list what exists."""
    if name not in _REGISTRY and name in _plugins():
        _load_plugin(name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    for entry in _REGISTRY.values():
        if name in entry.aliases:
            return entry
    close = difflib.get_close_matches(name, list(media_words()), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownModalityError(f"Unknown modality {name!r}.{hint} Registered: {available_modalities()}. Register one "
                               "with anygpt.modalities.registry.register_modality (in the module of its codec) or the "
                               f"'{ENTRY_POINT_GROUP}' entry-point group, or name its codec by class_path.")


def available_modalities() -> list[str]:
    return sorted(set(_REGISTRY) | set(_plugins()))


def media_kind_of(modality: str) -> MediaKind:
    """The media kind of a registered modality's files (what a report or transcript shows them with)."""
    return media_kind(modality_spec(modality).media)


def media_words() -> dict[str, str]:
    """Word used in media placeholders -> modality name: every registered name and alias."""
    words = {name: name for name in available_modalities()}
    for entry in _REGISTRY.values():
        words.update({alias: entry.name for alias in entry.aliases})
    return words


def media_pattern() -> re.Pattern[str]:
    """The media placeholders of AnyInstruct-style messages, ``[image: cat.png]``, for every registered modality:
    group 1 is the word (a name or alias, see `media_words`), group 2 the path."""
    return _compile(tuple(sorted(media_words(), key=len, reverse=True)))


@functools.lru_cache(maxsize=16)
def _compile(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\[(" + "|".join(map(re.escape, words)) + r"): ([^\]\n]+?)\]")


def codec_class(name: str) -> type[Codec]:
    """The codec registered as the default of modality ``name`` (the paper's tokenizer)."""
    entry = modality_spec(name)
    if entry.codec is None:
        raise KeyError(f"modality {name!r} has no default codec; name one by class_path")
    target = _CLASSES.get(entry.name) or resolve(entry.codec)
    return _codec_subclass(target, f"modality {name!r} registers {target!r} as its codec, which")


def _codec_subclass(target: Any, what: str) -> type[Codec]:
    """``target`` if it is a `Codec` subclass; else a TypeError saying ``what`` is not one."""
    if not (isinstance(target, type) and issubclass(target, Codec)):
        raise TypeError(f"{what} is not a Codec subclass")
    return target


def registered_codec_paths() -> list[str]:
    """Class names a checkpoint may name without ``trust_code``, beyond anygpt's own: the codecs of the registered
    modalities, installed plugins' included (their entry points are loaded: the user installed them)."""
    plugins = _plugins()
    for name in set(plugins) - set(_REGISTRY):
        _load_plugin(name)
    return list(plugins.values()) + [entry.codec for entry in _REGISTRY.values() if entry.codec is not None]


TRUSTED_CLASS_PROVIDERS.append(registered_codec_paths)


# -- Sizing: a codec's identity without its weights --------------------------------------------------------------------
def meta_codec(cls: type[Codec], **init_args: Any) -> Codec:
    """``cls(**init_args)`` on the meta device: its sizes, structure and flatten without allocating weights (a
    release-size codec costs nothing to size)."""
    with torch.device("meta"):
        return cls(**init_args)


def spec_of(codec: Codec | type[Codec], name: str | None = None, **init_args: Any) -> ModalitySpec:
    """The registered identity of a codec (or codec class, built on the meta device with ``init_args``), sized by it:
    its ``codebook_size`` and ``structure``. ``name`` defaults to the codec's ``modality``."""
    if isinstance(codec, type):
        codec = meta_codec(codec, **init_args)
    own = getattr(codec, "modality", None)
    name = name or own
    if name is None:
        raise TypeError(f"{type(codec).__name__} does not say which modality it tokenizes: set the class attribute "
                        "`modality` to a registered modality name")
    if own is not None and own != name:
        raise ValueError(f"a {own!r} codec ({type(codec).__name__}) was given for the {name!r} modality; key it by "
                         f"its modality name ({own!r})")
    return modality_spec(name).sized(codec.codebook_size, codec.structure)


def modality_for(codec: Codec, name: str | None = None) -> Modality:
    """The `Modality` of a codec: its registered identity, sized by it (``name`` defaults to ``codec.modality``)."""
    return Modality(spec_of(codec, name), codec)


def configured_modality(item: Any) -> tuple[ModalitySpec, Flatten | None]:
    """A modality as configs name it -> its sized spec and flatten (None: codes are already 1-D); see
    `configured_codec`."""
    spec, codec = configured_codec(item)
    return spec, None if codec is None else codec.flatten


def configured_codec(item: Any) -> tuple[ModalitySpec, Codec | None]:
    """A modality as configs name it -> its sized spec and its codec (None: a spec without codec, 1-D codes); the
    codec's `flatten`/`unflatten` are the one code layout of the modality.

    Accepted: a registered modality name (its default codec, sized on the meta device), ``{class_path, init_args}``
    of a `Codec` subclass (also sized on the meta device), a `Codec` or `Modality` object, a `ModalitySpec`, or a
    spec dict ``{name, codebook_size, markers, token_format}`` for a modality without a codec (1-D codes); for a
    registered name ``{name, codebook_size}`` is enough (markers, token format and media kind are the registered).
    """
    if isinstance(item, str):
        item = meta_codec(codec_class(item))  # KeyError naming the unknown modality and the registered ones
    elif isinstance(item, Mapping) and "class_path" in item:  # a codec named in the user's own config
        target = _codec_subclass(resolve(item["class_path"]), f"modality class_path {item['class_path']}")
        item = meta_codec(target, **(item.get("init_args") or {}))
    if isinstance(item, Modality):
        return item.spec, item.codec
    if isinstance(item, Codec):
        return spec_of(item), item
    if isinstance(item, ModalitySpec):
        return item, None
    if isinstance(item, Mapping):
        if "layout" in item:
            raise ValueError(f"modality {dict(item)}: 'layout' is gone; name the codec instead (a registered name such "
                             "as music, or {class_path: ..., init_args: {...}}): its flatten lays out the codes")
        known = _REGISTRY.get(item.get("name"))  # a registered modality sized by hand: its identity fills the rest
        given = {**({k: v for k, v in known.to_dict().items() if k != "codebook_size"} if known else {}), **item}
        return ModalitySpec.from_dict(given, "modality spec"), None
    raise TypeError(f"cannot use {item!r} as a modality: give a name, {{class_path, init_args}}, a spec dict, a Codec "
                    "or a Modality")


# -- Loading codecs ----------------------------------------------------------------------------------------------------
def load_codec(path: str | Path | None, class_path: str | type[Codec] | None = None, trust_code: bool = False,
               **options: Any) -> Codec:
    """``class_path``'s ``from_pretrained(path, **options)`` (release formats), or by default a `save_pretrained`
    folder whose ``config.json`` names the codec class (checked before import).

    ``class_path`` is the caller's choice (a user's config or command line); a name read from a file must be checked
    with `trusted_codec_class` first and passed as the class.
    """
    target = Codec if class_path is None else _codec_subclass(
        resolve(class_path) if isinstance(class_path, str) else class_path, str(class_path))
    if path is None and target is Codec:
        raise ValueError("give a tokenizer checkpoint path or a codec class_path")
    return target.from_pretrained(path, trust_code=trust_code, **options)


def _weightless(target: type[Codec], options: Mapping[str, Any]) -> Codec:
    """A codec named by its class alone (``{class_path: motion.MotionCodec}``): built from ``options``, which is
    only right when it has no weights to load."""
    name = qualified_name(target)
    try:
        codec = target(**options)
    except TypeError as err:
        raise ValueError(f"cannot build {name} from its class alone ({err}): give its constructor arguments as "
                         "init_args, or the path of a folder it saved with save_pretrained") from None
    weights = list(codec.state_dict())
    if weights:
        raise ValueError(f"{name} has {len(weights)} weight tensor(s) ({', '.join(weights[:3])}, ...) and ships no "
                         "default checkpoint: give the path of a folder it saved with save_pretrained")
    return codec.eval()


def trusted_codec_class(class_path: str, source: str, trust_code: bool = False) -> type[Codec]:
    """The `Codec` subclass a file on disk names, refused before import unless it is anygpt's, registered or already
    imported (or ``trust_code`` is given). Names of classes from before the codec/training split are mapped."""
    target, _, _ = saved_class({"class_path": class_path, "init_args": {}}, Codec, source, trust_code)
    return target


def load_modality(path: str | Path | None, class_path: str | type[Codec] | None = None, trust_code: bool = False,
                  name: str | None = None, **options: Any) -> Modality:
    """`load_codec` + its registered identity and media kind (`modality_for`)."""
    return modality_for(load_codec(path, class_path, trust_code, **options), name)


# -- Naming a tokenizer ------------------------------------------------------------------------------------------------
_CLASS_THEN_PATH = re.compile(r"^([A-Za-z_][\w.]*[.:][A-Za-z_]\w*)=(.*)$")


@dataclass
class TokenizerRef:
    """Where a modality's tokenizer lives, the one way anygpt names one (prepare, checkpoints, chat, benchmarks).

    Args:
        path: a checkpoint folder or file, or ``anygpt-assets:tokenizers/NAME`` (the shipped tiny tokenizers); None
            loads the class's shipped weights, or builds a codec without weights from its class alone. In an
            export's ``anygpt.json`` a relative path is relative to the export folder.
        class_path: the codec class whose ``from_pretrained`` reads ``path`` (release formats); None: ``path`` is a
            `save_pretrained` folder whose ``config.json`` names the class, or without a path the modality's default.
        options: further ``from_pretrained`` arguments (e.g. SEED's ``eva_vit`` path), or the constructor arguments
            of a codec without weights; ``init_args`` is accepted for it (``{class_path: ..., init_args: ...}``).

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
        fields = dict(value)
        if "init_args" in fields:  # LightningCLI's spelling of a class's arguments: {class_path, init_args}
            if fields.get("options"):
                raise ValueError(f"tokenizer reference {fields} gives both init_args and options; give one")
            fields["options"] = fields.pop("init_args")
        unknown = set(fields) - {"path", "class_path", "options"}
        if unknown:
            raise ValueError(f"tokenizer reference {dict(value)} has unknown keys {sorted(unknown)}; give path, "
                             "class_path and/or options (init_args)")
        return cls(**fields)

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
                cls = resolve(self.class_path)
                cls = _codec_subclass(cls, f"tokenizer class_path {self.class_path} ({cls!r})")
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
            if self.path is None and self.class_path is not None and cls is not None \
                    and cls.default_checkpoint is None:  # a codec named by its class alone
                codec = _weightless(cls, options)
            else:
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

    def anchored(self, folder: str | Path) -> TokenizerRef:
        """The reference as recorded in ``folder/anygpt.json``: a relative path that exists inside ``folder`` (a
        tokenizer copied into an export) is made absolute, so the export loads from any working directory."""
        if not self.path or self.path.startswith(ASSETS_SCHEME) or Path(self.path).is_absolute():
            return self
        inside = Path(folder) / self.path
        return TokenizerRef(str(inside.resolve()), self.class_path, self.options) if inside.exists() else self

    @property
    def resolved_path(self) -> Path | None:
        return asset_path(self.path) if self.path else None


# What configs and command lines may give for a tokenizer (read by `TokenizerRef.of`): a path, a reference, or a
# mapping such as ``{class_path: motion.MotionCodec, init_args: {...}}`` (a codec without weights).
TokenizerSpec = str | TokenizerRef | dict[str, Any]
