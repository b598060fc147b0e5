"""`ShardSample`: the one typed record of a training sample, from the raw source that yields it, through the shard
that stores it, to the template that renders it (`anygpt.prompts.TemplateRenderer`).

A shard stores `ShardSample.to_json` as its ``.json`` member; `ShardSample.from_json` reads that and the layout an
older ``anygpt prepare`` wrote (``task``/``conversation`` keys, per-sample ``x2text_prob``), so old shards keep
training unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("pair", "conversation", "interleaved")


@dataclass
class ShardSample:
    """One sample: which template renders it and what that template reads.

    Args:
        kind: ``pair`` (one media item + its text, rendered in a random direction), ``conversation`` (chat turns) or
            ``interleaved`` (a document of text with media placeholders, trained on every token).
        text: a pair's text (a list: several references, one drawn per use, e.g. COCO's captions) or a document.
        turns: a conversation's ``{"role", "message"}`` turns (AnyInstruct's nesting ``[[...]]`` accepted).
        system: a conversation's own system prompt (None: none, or the training config's).
        media: media item name -> modality; each item's codes are ``codes[name]`` and placeholders ``<media:NAME>``.
        all_levels: media items stored with every RVQ level (SoundStorm's data; the LLM reads level 1).
        source: the raw source's name; ``id``: the item's id in it (tracing a sample back to its raw row).
        key / codes / shard: the shard sample's key, its native codes per media item, and the shard it came from.
        stale_direction: the shard stored a per-sample ``x2text_prob`` (an older prepare); it is not read.
    """

    kind: str
    text: str | list[str] = ""
    turns: list[Any] = field(default_factory=list)
    system: str | None = None
    media: dict[str, str] = field(default_factory=dict)
    all_levels: list[str] = field(default_factory=list)
    source: str = ""
    id: str | int | None = None
    key: str = ""
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    shard: str = ""
    stale_direction: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sample {self.key or self.id!r}: kind {self.kind!r} is none of {KINDS}")

    def to_json(self) -> dict[str, Any]:
        """What a shard's ``.json`` member stores (no key holds a default value)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "conversation":
            out["turns"] = self.turns
        else:
            out["text"] = self.text
        if self.system is not None:
            out["system"] = self.system
        out["media"] = self.media
        if self.all_levels:
            out["all_levels"] = self.all_levels
        if self.source:
            out["source"] = self.source
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], key: str = "", codes: dict[str, np.ndarray] | None = None,
                  shard: str = "") -> ShardSample:
        """A shard's ``.json`` member (this layout or an older prepare's) -> the sample; ValueError/TypeError/KeyError
        when it is no sample."""
        if "kind" in meta:
            kind = meta["kind"]
        elif "conversation" in meta:  # an older prepare: the template was picked by these keys
            kind = "conversation"
        else:
            kind = "interleaved" if meta.get("task") == "interleaved" else "pair"
        turns = meta["turns"] if "turns" in meta else meta.get("conversation", [])
        if kind == "conversation" and not isinstance(turns, list):
            raise TypeError(f"turns is a {type(turns).__name__}, not a list")
        return cls(kind, meta.get("text", ""), turns, meta.get("system"), dict(meta.get("media") or {}),
                   list(meta.get("all_levels") or ()), meta.get("source", ""), meta.get("id"), key,
                   codes if codes is not None else {}, shard, "x2text_prob" in meta)
