"""AnyInstruct-style dialogues with media placeholders of any registered modality."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from anygpt.data.checks import UnknownMediaWord
from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import (
    DatasetError,
    MediaRef,
    MediaSource,
    OutsideRootError,
    RawItem,
    SkipReport,
    bad_record,
    iter_jsonl,
    parse_media,
    require_file,
    sample_key,
)
from anygpt.data.sources.raw import RawSource
from anygpt.modalities.registry import media_pattern


@dataclass
class Dialogue:
    id: str
    turns: list[tuple[str, str]]  # (user message, assistant message) per exchange
    media: list[MediaRef]
    extra: dict = field(default_factory=dict)  # other keys of the row (the demo's "media" texts and "task")


def read_anyinstruct(path: Path, media_root: Path | None = None, report: SkipReport | None = None,
                     check_files: bool = True, root: Path | None = None,
                     allow_outside_root: bool = False) -> Iterator[Dialogue]:
    """Rows ``{"id", "conversation": [[{"role": "user", "message"}, {"role": "assistant", "message"}], ...]}`` from a
    ``.jsonl`` file (streamed line by line) or a ``.json`` list. Media placeholders resolve against ``media_root``
    (default: the file's folder) and must stay inside the dataset ``root`` (default: ``media_root``)."""
    path = require_file(Path(path), "AnyInstruct")
    media_root = Path(media_root) if media_root is not None else path.parent
    root = Path(root) if root is not None else media_root
    for where, row in _json_rows(path, report):
        try:
            dialogue = _parse_dialogue(row, media_root, root, allow_outside_root)
        except (OutsideRootError, UnknownMediaWord) as e:
            bad_record(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            bad_record(report, where, f"malformed dialogue ({e}); expected conversation: [[user, assistant], ...]")
            continue
        if check_files:
            absent = [m.ref for m in dialogue.media if not m.path.is_file()]
            if absent:
                bad_record(report, where, f"media file(s) not found under {media_root}: {', '.join(absent)}")
                continue
        yield dialogue


def _json_rows(path: Path, report: SkipReport | None) -> Iterator[tuple[str, object]]:
    if path.suffix == ".jsonl":
        yield from iter_jsonl(path, report)
        return
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid json ({e}); use .jsonl for one dialogue per line") from e
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: expected a json list of dialogues")
    for k, row in enumerate(rows):
        yield f"{path}[{k}]", row


def _parse_dialogue(row: object, media_root: Path, root: Path, allow_outside_root: bool) -> Dialogue:
    if not isinstance(row, dict):
        raise TypeError(f"row is a {type(row).__name__}, not an object")
    conversation = row["conversation"]
    if not isinstance(conversation, list) or not conversation:
        raise ValueError("empty or non-list conversation")
    turns, media = [], []
    for exchange in conversation:
        # both the nested form [[user, assistant], ...] and a flat list of messages are accepted
        messages = exchange if isinstance(exchange, list) else [exchange]
        for msg in messages:
            if msg["role"] not in ("user", "assistant") or not isinstance(msg["message"], str):
                raise ValueError(f"bad message {msg!r}")
            media += parse_media(msg["message"], media_root, root, allow_outside_root)
            if msg["role"] == "user":
                turns.append([msg["message"], None])
            elif turns and turns[-1][1] is None:
                turns[-1][1] = msg["message"]
            else:
                raise ValueError("assistant message without a preceding user message")
    if any(a is None for _, a in turns):
        raise ValueError("user message without an assistant reply")
    return Dialogue(str(row.get("id", "")), [(u, a) for u, a in turns], media,
                    {k: v for k, v in row.items() if k not in ("id", "conversation")})


class AnyInstruct(RawSource):
    """AnyInstruct-style dialogues; media placeholders of any registered modality (``[image: path]``,
    ``[depth: scan.npy]``) become ``<media:mN>`` references.

    Paths resolve against ``media_root`` (default: the file's folder) and must stay inside ``root`` (the dataset's
    root folder, default ``media_root``)."""

    name = "anyinstruct"

    def __init__(self, path: str, media_root: str | None = None, root: str | None = None) -> None:
        self.path, self.media_root, self.root = path, media_root, root

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for dialogue in read_anyinstruct(Path(self.path), self.media_root and Path(self.media_root), report=report,
                                         root=self.root and Path(self.root),
                                         allow_outside_root=self.allow_outside_root):
            names: dict[str, str] = {}
            media: dict[str, tuple[str, MediaSource]] = {}
            for ref in dialogue.media:
                if ref.ref not in names:
                    names[ref.ref] = f"m{len(names)}"
                    media[names[ref.ref]] = (ref.modality, str(ref.path))

            def replace(message: str, names: dict[str, str] = names) -> str:
                return media_pattern().sub(lambda m: f"<media:{names[m.group(2).strip()]}>", message)

            conversation = []
            for user, assistant in dialogue.turns:
                conversation.append({"role": "user", "message": replace(user)})
                if assistant is not None:
                    conversation.append({"role": "assistant", "message": replace(assistant)})
            sample = ShardSample("conversation", turns=conversation, source=self.name, id=dialogue.id)
            yield RawItem(sample_key(self.name, dialogue.id), sample, media)
