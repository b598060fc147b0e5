"""The one place where a dotted name becomes a Python object.

Two doors, because names come from two kinds of places:

- `resolve` is for names the *user* wrote: YAML configs and command lines they run (LightningCLI's ``class_path``),
  and anygpt's own tables (subcommands, benchmark tasks). Those are the user's own code choices.
- `resolve_trusted_class` is for names read from a *file on disk* that may have come from anywhere: a checkpoint's
  ``anygpt.json``, a tokenizer folder's ``config.json``, the hyperparameters inside a Lightning ``.ckpt``. Such a
  name is resolved only to a class the caller accepts (e.g. a registered modality or a `Modality` subclass) and this
  is decided *before* anything is imported or called: importing an arbitrary module runs its code. Anything else
  raises `UntrustedCodeError` naming the file and the ``--trust_code`` flag that allows it.

What counts as accepted without ``--trust_code``: a class that is already imported (found among the subclasses of
the expected base class), a module inside the ``anygpt`` package, or one of the ``allowed`` names (registered plugins:
entry points or the modality registry).
"""

from __future__ import annotations

import pkgutil
from collections.abc import Collection
from typing import Any

TRUSTED_PACKAGES = ("anygpt",)


class UntrustedCodeError(PermissionError):
    """A file on disk names code that anygpt will not import without the user's explicit ``--trust_code``."""


def resolve(name: str) -> Any:
    """``package.module:attr`` or ``package.module.attr`` -> the object (for names the user wrote)."""
    try:
        return pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ImportError(f"cannot resolve {name!r}: {err}. Give 'package.module.Class' of an installed module.") \
            from err


def normalize(name: str) -> str:
    """``a.b:C`` and ``a.b.C`` name the same object; compare names in the dotted form."""
    return name.replace(":", ".")


def _all_subclasses(base: type) -> list[type]:
    return [cls for sub in base.__subclasses__() for cls in (sub, *_all_subclasses(sub))]


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def is_trusted_name(name: str, base: type, allowed: Collection[str] = ()) -> bool:
    """Would `resolve_trusted_class` accept ``name`` without ``trust_code``? Decided without importing anything."""
    dotted = normalize(name)
    if dotted in {normalize(a) for a in allowed}:
        return True
    if dotted == _qualified(base) or any(_qualified(c) == dotted for c in _all_subclasses(base)):
        return True
    module = dotted.rpartition(".")[0]
    return any(module == pkg or module.startswith(pkg + ".") for pkg in TRUSTED_PACKAGES)


def resolve_trusted_class(name: str, base: type, source: str, allowed: Collection[str] = (),
                          trust_code: bool = False, what: str | None = None) -> type:
    """Resolve ``name`` (read from the file ``source``) to a subclass of ``base``, refusing foreign code.

    Args:
        name: the dotted class name found in the file.
        base: the class the result must be (or derive from), e.g. `Modality`.
        source: the file the name was read from (named in errors).
        allowed: further names accepted without ``trust_code`` (registered plugins).
        trust_code: the user's explicit permission to import the module ``name`` lives in (``--trust_code``).
        what: how to call the expected kind in messages (default: ``base``'s name).
    """
    what = what or f"a {base.__name__} subclass"
    if not isinstance(name, str) or not name.strip():
        raise UntrustedCodeError(f"{source} names {name!r} where {what} is expected")
    if not trust_code and not is_trusted_name(name, base, allowed):
        raise UntrustedCodeError(
            f"{source} names {name!r}, which is not {what} known to anygpt (registered, part of anygpt, or already "
            "imported). Opening a checkpoint never imports or runs code it names. If you trust this folder, install "
            "and register its plugin (entry-point group 'anygpt.modalities') or pass --loading.trust_code true "
            "(anygpt serve: --trust_code true).")
    target = resolve(name)
    if not (isinstance(target, type) and issubclass(target, base)):
        raise UntrustedCodeError(f"{source} names {name!r}, which is {type(target).__name__} {target!r}, not {what}; "
                                 "refusing to call it.")
    return target
