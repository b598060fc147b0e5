"""What every raw-source module shares: the dataset errors, root containment of media references, the skip report,
file checks, line iteration, media placeholders and the record a source yields (`RawItem`).

Media references read from a dataset (a path in a json/csv/tsv row or a dialogue) must stay inside the dataset's root
folder: ``../../etc/passwd`` or an absolute path is a bad row, never opened, unless the caller passes
``allow_outside_root=True`` (``anygpt prepare --allow_outside_root``). The check is on the path as written, so
symlinks that the dataset's owner placed inside the root are followed.

Readers stream simple dataclass records. Bad input: a missing root/folder/file raises `DatasetError` naming the path
and what was expected; a bad row raises too, unless a `SkipReport` is passed: then the record is skipped and the report
lists it (file + line or entry, and what is wrong), so nothing is dropped silently.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anygpt.data.checks import check_media_words
from anygpt.data.schema import ShardSample
from anygpt.modalities.registry import media_pattern, media_words

AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".opus")


class DatasetError(ValueError):
    """Raised for input that does not have the expected layout; the message names the path and the fix."""


class OutsideRootError(DatasetError):
    """A media reference of a dataset row points outside the dataset's root folder."""


def resolve_inside(root: str | Path, ref: str | Path, allow_outside_root: bool = False,
                   base: str | Path | None = None) -> str:
    """``base / ref`` (``base`` defaults to ``root``) with ``..`` collapsed; refuses (`OutsideRootError`) an absolute
    ``ref`` or one that lands outside ``root``, unless ``allow_outside_root``.

    Strings, not `Path`: Python interns every component of every `Path` it builds, a table that would grow with each
    of the millions of file names a large corpus has."""
    ref = os.fspath(ref)
    path = os.path.normpath(os.path.join(os.fspath(base if base is not None else root), ref))
    if allow_outside_root:
        return path
    top = os.path.normpath(os.path.abspath(root))
    if os.path.isabs(ref) or os.path.commonpath([top, os.path.abspath(path)]) != top:
        raise OutsideRootError(f"media reference {ref!r} leaves the dataset root {root}: not read. Move the file "
                               "under the root, or pass --allow_outside_root (prepare) if you trust this dataset")
    return path


@dataclass
class SkipReport:
    """Collects records a reader skipped: pass one to a reader to skip bad records instead of raising."""

    skipped: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)

    def add(self, location: str, reason: str) -> None:
        self.skipped.append((location, reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self, limit: int = 20) -> str:
        lines = [f"{len(self.skipped)} skipped record(s)"] + [f"  {loc}: {why}" for loc, why in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def bad_record(report: SkipReport | None, location: str, reason: str) -> None:
    """Record a bad record in ``report`` or raise if the caller asked for strict reading."""
    if report is None:
        raise DatasetError(f"{location}: {reason} (pass a SkipReport to skip and count bad records instead)")
    report.add(location, reason)


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{what} folder not found: {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} file not found: {path}")
    return path


def as_splits(split: str | Sequence[str] | None) -> set[str] | None:
    if split is None:
        return None
    return {split} if isinstance(split, str) else set(split)


def find_audio(stem: str | Path) -> str | Path | None:
    """``stem`` + the first audio extension that names a file, as the type of ``stem`` (large corpora pass strings:
    no `Path` per file)."""
    for ext in AUDIO_EXTENSIONS:
        if os.path.isfile(f"{stem}{ext}"):
            return f"{stem}{ext}" if isinstance(stem, str) else Path(f"{stem}{ext}")
    return None


def iter_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(location ``file:line``, line) of a text file, or of the single member of a ``.zip`` (MMC4 ships
    ``docs_*.jsonl.zip``), streamed."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise DatasetError(f"{path}: expected one file inside the zip, found {members[:5]}")
            with archive.open(members[0]) as raw:
                for line_no, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), 1):
                    yield f"{path}!{members[0]}:{line_no}", line
        return
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            yield f"{path}:{line_no}", line


def iter_jsonl(path: Path, report: SkipReport | None) -> Iterator[tuple[str, object]]:
    """(location, parsed row) of a jsonl file; blank lines are skipped, unparsable ones are bad rows."""
    for where, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            bad_record(report, where, f"not valid json ({e})")


@dataclass
class MediaRef:
    """A media placeholder of a message: its modality, the resolved file and the reference as written."""

    modality: str
    path: Path  # resolved against media_root
    ref: str  # as written in the message


def parse_media(message: str, media_root: Path, root: Path | None = None,
                allow_outside_root: bool = False) -> list[MediaRef]:
    """Media placeholders of a message (``[image: cat.png]``, any registered modality or alias), in order; an alias
    (``[audio: x.wav]``) is reported as its modality (music). Paths resolve against ``media_root`` and must stay inside
    ``root`` (default: ``media_root``), else `OutsideRootError`. A placeholder of no registered modality raises
    `UnknownMediaWord` (it would otherwise stay in the text as literal characters)."""
    check_media_words(message)
    words = media_words()
    return [
        MediaRef(words[m.group(1)], Path(resolve_inside(root if root is not None else media_root, m.group(2).strip(),
                                                        allow_outside_root, base=media_root)), m.group(2).strip())
        for m in media_pattern().finditer(message)
    ]


@dataclass
class AudioSegment:
    """A time range of a long recording (GigaSpeech podcasts and videos); ``prepare`` cuts it out when loading."""

    path: str
    begin: float  # seconds
    end: float


# A media item's content as prepare receives it: a file path, the file's bytes (tar members), a time range of a long
# recording, or codes already made (the release's token strings).
MediaSource = str | bytes | AudioSegment | np.ndarray


@dataclass
class RawItem:
    """One future shard sample: its record (`ShardSample`, whose ``media`` prepare fills) and, per media item, its
    modality and content."""

    key: str
    sample: ShardSample
    media: dict[str, tuple[str, MediaSource]]  # item name -> (modality, content)


def sample_key(*parts: object) -> str:
    """A webdataset-safe sample key: webdataset cuts a file name at its first dot, so keys hold no dots or slashes."""
    return re.sub(r"[^\w\-]", "_", "-".join(str(p) for p in parts))


def expand_files(spec: str | Sequence[str], what: str) -> list[str]:
    """Files named by a path, a glob or a list of them (sorted per pattern); FileNotFoundError names the pattern."""
    files: list[str] = []
    for item in [spec] if isinstance(spec, str) else list(spec):
        found = sorted(glob.glob(str(item), recursive=True))
        if not found:
            raise DatasetError(f"no {what} found for {str(item)!r}: give a file, a glob or a list of them")
        files.extend(found)
    return files
