"""Checks at the data boundaries, where a plugin's (or a dataset's) mistake would otherwise pass silently.

- A media placeholder whose word names no registered modality (``[motoin: m.npy]``, or a plugin that was not
  imported) would stay in the text as literal characters: `check_media_words` makes it a bad item instead, with a
  "did you mean" when a registered word is close.
- Codes a codec returns are checked against its own contract (integers in ``[0, codebook_size)``, its
  `SpanStructure`) before they are written, so a broken codec is reported at ``anygpt prepare`` naming its class
  (`code_problem`), not discovered as skipped samples while training.
- ``fit`` refuses a configured modality whose every item ``prepare`` had to skip (`check_usable_modalities`), rather
  than training on the text alone while looking successful.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import torch

from anygpt.data.shards import MANIFEST
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import media_words

PREPARE_REPORT = "prepare_report.json"

# Anything shaped like a placeholder: ``[word: something]``.
_PLACEHOLDER = re.compile(r"\[([A-Za-z][\w-]*): ([^\]\n]+?)\]")
_FILE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,6}$")


class UnknownMediaWord(ValueError):
    """A message names a media placeholder of no registered modality."""


class UnusableModalityError(ValueError):
    """Training data holds no usable sample of a configured modality (prepare skipped every one)."""


def unknown_media_words(message: str) -> list[str]:
    """Why each placeholder-like ``[word: path]`` of ``message`` names no registered modality (empty: all fine).

    A ``[word: path]`` counts as a media placeholder when ``word`` is close to a registered name or alias, or when it
    is a lowercase word and ``path`` ends in a file suffix (``[motion: m.npy]``); prose such as ``[Note: see above]``
    is left alone.
    """
    words = media_words()
    problems = []
    for match in _PLACEHOLDER.finditer(message):
        word, path = match.group(1), match.group(2).strip()
        if word in words:
            continue
        close = difflib.get_close_matches(word.lower(), list(words), n=1, cutoff=0.6)
        if not close and not (word.islower() and _FILE_SUFFIX.search(path)):
            continue
        hint = f"did you mean [{close[0]}: ...]? " if close else ""
        problems.append(f"media placeholder [{word}: {path}] names no registered modality; {hint}registered: "
                        f"{sorted(words)}. A plugin's modality is known once its module is imported or installed "
                        "under the 'anygpt.modalities' entry-point group")
    return problems


def check_media_words(message: str) -> None:
    """Raise `UnknownMediaWord` for the first placeholder of ``message`` that names no registered modality."""
    problems = unknown_media_words(message)
    if problems:
        raise UnknownMediaWord(problems[0])


def codec_name(codec: Codec) -> str:
    """``module.Class`` of a codec, how reports name it."""
    return f"{type(codec).__module__}.{type(codec).__qualname__}"


def code_problem(codec: Codec, codes: Any, all_levels: bool = False) -> str | None:
    """What is wrong with ``codes`` as one item's output of ``codec.encode`` (None: they obey its contract).

    The contract: a tensor of integer codes whose flattened form (`Codec.flatten`) is non-empty, lies in
    ``[0, codebook_size)`` and follows ``codec.structure`` (fixed length, per-position ranges, maximum length).
    ``all_levels`` codes (every RVQ level, ``encode_all_levels``) are only range-checked.
    """
    who = codec_name(codec)
    if not isinstance(codes, torch.Tensor):
        return f"{who}.encode returned a {type(codes).__name__} for an item, not a tensor of codes"
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        return f"{who}.encode returned {codes.dtype} codes, not integers"
    size = int(codec.codebook_size)
    flat = codes.reshape(-1).long() if all_levels else codec.flatten(codes)
    if flat.numel() == 0:
        return f"{who}.encode returned no codes (shape {list(codes.shape)}) for an item"
    low, high = int(flat.min()), int(flat.max())
    if low < 0 or high >= size:
        return f"{who}.encode returned codes in [{low}, {high}], outside its codebook [0, {size})"
    if all_levels:
        return None
    structure = codec.structure
    n = flat.numel()
    if structure.fixed_length is not None and n != structure.fixed_length:
        return f"{who}.encode returned {n} codes for an item, but its structure says exactly {structure.fixed_length}"
    if structure.max_length is not None and n > structure.max_length:
        return f"{who}.encode returned {n} codes for an item, over its structure's max_length {structure.max_length}"
    if structure.cycle:
        period = len(structure.cycle)
        ranges = torch.tensor(structure.cycle, dtype=torch.long).repeat((n + period - 1) // period, 1)[:n]
        bad = ((flat < ranges[:, 0]) | (flat >= ranges[:, 1])).nonzero().flatten()
        if len(bad):
            i = int(bad[0])
            return (f"{who}.encode returned code {int(flat[i])} at position {i}, outside the range "
                    f"{tuple(structure.cycle[i % period])} its structure allows there")
        if n % period:
            return f"{who}.encode returned {n} codes, not whole cycles of {period} as its structure says"
    return None


def _skipped_of(directory: str, modality: str) -> list[dict[str, Any]]:
    path = os.path.join(directory, PREPARE_REPORT)
    if not os.path.exists(path):
        return []
    try:
        skipped = json.loads(open(path, encoding="utf-8").read()).get("skipped") or []
    except (json.JSONDecodeError, AttributeError):
        return []
    return [s for s in skipped if isinstance(s, dict) and s.get("modality") == modality]


def check_usable_modalities(modalities: Iterable[str], directories: Iterable[str]) -> None:
    """Refuse to train when ``prepare`` skipped items of a configured modality and kept none: the shards in
    ``directories`` (folders with a ``manifest.json``) then hold no usable sample of it, and training would fit the
    text alone. The error repeats prepare's reason for the first skipped item (it names the codec class)."""
    directories = [d for d in directories if os.path.exists(os.path.join(d, MANIFEST))]
    if not directories:
        return
    counts: dict[str, int] = {}
    for directory in directories:
        try:
            manifest = json.loads(open(os.path.join(directory, MANIFEST), encoding="utf-8").read())
        except json.JSONDecodeError:
            continue
        for name, count in (manifest.get("modalities") or {}).items():
            counts[name] = counts.get(name, 0) + int(count)
    for name in modalities:
        if counts.get(name, 0):
            continue
        skipped = [(d, s) for d in directories for s in _skipped_of(d, name)]
        if skipped:
            directory, first = skipped[0]
            raise UnusableModalityError(
                f"no usable {name!r} sample in the training shards: prepare skipped {len(skipped)} {name} item(s) "
                f"and kept none, e.g. {first.get('item')}: {first.get('reason')} "
                f"(see {os.path.join(directory, PREPARE_REPORT)}). Fix the cause and rerun anygpt prepare into a "
                f"fresh folder, or drop {name!r} from the configured modalities.")


__all__ = ["UnknownMediaWord", "UnusableModalityError", "check_media_words", "check_usable_modalities",
           "code_problem", "codec_name", "unknown_media_words"]
