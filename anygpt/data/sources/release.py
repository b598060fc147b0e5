"""The release's pre-tokenized jsonl (token strings such as ``<soim><👀12>...<eoim>``): pairs, instruction dialogues
and interleaved documents, parsed against a vocabulary layout without any tokenizer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import DatasetError, RawItem, SkipReport, expand_files, sample_key
from anygpt.data.sources.raw import LazyChunk, LineRange, RawSource, line_ranges, read_line_range
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import configured_codec
from anygpt.modalities.spec import RELEASE_MODALITIES, ModalitySpec


@dataclass(frozen=True)
class SpanLayout:
    """How one modality's codes are spelled in the release's token strings (``<soim><👀12>...<eoim>``): its sized
    spec (markers, token format, codebook size, structure) and its codec, whose `unflatten` turns a span's local ids
    into the native codes a shard stores (None: a modality without codec, 1-D codes)."""

    spec: ModalitySpec
    codec: Codec | None

    def native(self, ids: list[int]) -> torch.Tensor:
        """A whole span's local ids -> native codes; ValueError when the ids break the modality's structure."""
        flat = torch.tensor(ids, dtype=torch.long)
        problem = self.spec.structure.violation(flat, int(self.spec.codebook_size))
        if problem is not None:
            raise ValueError(problem)
        return flat if self.codec is None else self.codec.unflatten(flat)


class TokenStrings:
    """Parse the release's marker-wrapped token strings against a vocabulary layout (no tokenizer needed).

    Every span must open and close with its own markers and hold only its modality's code tokens, each within the
    codebook and valid for the layout (music: frames of 4 codes, code ``q`` of a frame in ``[2048 q, 2048 (q+1))``).
    """

    def __init__(self, layouts: Sequence[SpanLayout]) -> None:
        self.layouts = {layout.spec.name: layout for layout in layouts}
        self.by_start = {layout.spec.markers[0]: layout for layout in layouts}
        markers = [re.escape(m) for layout in layouts for m in layout.spec.markers]
        codes = [re.escape(layout.spec.token_format).replace(re.escape("{}"), r"(\d+)") for layout in layouts]
        self._token = re.compile("|".join([f"({m})" for m in markers] + [f"(?:{c})" for c in codes]))
        # regex group index -> the modality of a code token (the marker groups come first)
        self._code_groups = {len(markers) + 1 + k: layout.spec.name for k, layout in enumerate(layouts)}

    def split(self, text: str) -> tuple[str, list[tuple[str, list[int]]]]:
        """``text`` with every span replaced by ``<media:K>`` (K = its index), and the (modality, local ids) spans.

        Raises `DatasetError` describing the first bad span (unclosed, a foreign code inside, a stray code or end
        marker, text between codes, an id outside the codebook or the layout)."""
        out, spans, position = [], [], 0
        current: SpanLayout | None = None
        ids: list[int] = []
        for match in self._token.finditer(text):
            token = match.group(0)
            if current is None:
                if token in self.by_start:
                    out.append(text[position:match.start()])
                    current, ids, position = self.by_start[token], [], match.end()
                    continue
                raise DatasetError(f"{token} outside a modality span (at character {match.start()})")
            name, end_marker, size = current.spec.name, current.spec.markers[1], int(current.spec.codebook_size)
            if match.start() != position:
                raise DatasetError(f"{name} span {len(spans)} holds text {text[position:match.start()][:20]!r} between "
                                   "its tokens")
            position = match.end()
            if token == end_marker:
                try:
                    current.native(ids)
                except ValueError as e:
                    raise DatasetError(f"{name} span {len(spans)}: {e}") from None
                spans.append((name, ids))
                out.append(f"<media:{len(spans) - 1}>")
                current = None
                continue
            group = next((g for g in self._code_groups if match.group(g) is not None), None)
            if group is None:
                raise DatasetError(f"{name} span {len(spans)} holds {token} before its end marker {end_marker}")
            if self._code_groups[group] != name:
                raise DatasetError(f"{name} span {len(spans)} holds {token}, a {self._code_groups[group]} token")
            value = int(match.group(group))
            if value >= size:
                raise DatasetError(f"{name} span {len(spans)} holds {token}, outside its {size} codes")
            ids.append(value)
        if current is not None:
            raise DatasetError(f"{current.spec.name} span {len(spans)} is not closed with {current.spec.markers[1]}")
        out.append(text[position:])
        return "".join(out), spans

    def codes(self, modality: str, ids: list[int]):
        """Local ids of a span -> the native codes a shard stores (an int16/int32 numpy array)."""
        native = self.layouts[modality].native(ids).numpy()
        return native.astype(np.int16 if int(self.layouts[modality].spec.codebook_size) <= 2**15 else np.int32)

    def extract(self, text: str, media: dict[str, tuple[str, Any]]) -> str:
        """`split` ``text``, adding its spans' codes to ``media`` as ``mN`` (N counting on from ``len(media)``); returns
        the text with ``<media:mN>`` placeholders."""
        rest, found = self.split(text)
        for index, (modality, ids) in enumerate(found):
            rest = rest.replace(f"<media:{index}>", f"<media:m{len(media)}>", 1)
            media[f"m{len(media)}"] = (modality, self.codes(modality, ids))
        return rest


RELEASE_LAYOUT: tuple[str, ...] = tuple(spec.name for spec in RELEASE_MODALITIES)  # the paper's codecs


def token_strings(modalities: Sequence[Any] | None) -> TokenStrings:
    """The span parser of a vocabulary layout: modalities as configs name them (a registered name, ``{class_path,
    init_args}`` of a codec, or a spec dict for a modality without codec; default: the released checkpoints'), each
    spelled and laid out by its codec (`anygpt.modalities.registry.configured_codec`)."""
    layouts = []
    for item in modalities or RELEASE_LAYOUT:
        try:
            spec, codec = configured_codec(item)
        except (KeyError, TypeError, ValueError, ImportError) as err:
            raise ValueError(f"release jsonl modality {item!r}: {err}") from None
        if spec.codebook_size is None:
            raise ValueError(f"release jsonl modality {item!r} has no codebook size: name its codec or give "
                             "codebook_size")
        layouts.append(SpanLayout(spec, codec))
    return TokenStrings(layouts)


class _ReleaseJsonl(RawSource):
    """Line ranges of the release's jsonl files, parsed in the workers; every span checked against its modality."""

    def __init__(self, paths: str | list[str], modalities: list[str | dict[str, Any]] | None = None) -> None:
        """``modalities``: the vocabulary's modalities as the training config names them (default: the release's
        image, speech and music codecs)."""
        self.paths, self.modalities = paths, modalities
        self._spans: TokenStrings | None = token_strings(modalities)  # a bad layout fails now

    @property
    def spans(self) -> TokenStrings:
        if self._spans is None:  # built once per process (not pickled into loader workers)
            self._spans = token_strings(self.modalities)
        return self._spans

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_spans": None}

    def codebook_sizes(self) -> dict[str, int]:
        return {name: int(layout.spec.codebook_size) for name, layout in self.spans.layouts.items()}

    def chunks(self, chunk_size: int, report: SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, part) for path in expand_files(self.paths, f"{self.name} jsonl files")
                for part in line_ranges(path, chunk_size)]

    def read_part(self, part: LineRange, report: SkipReport) -> Iterator[RawItem]:
        spans = self.spans
        stem = Path(part.path).name.split(".")[0]
        for where, line in read_line_range(part):
            if not line.strip():
                continue
            try:
                item = self._item(self._row(line), spans, sample_key(self.name, stem, where.rsplit(":", 1)[1]))
            except json.JSONDecodeError as err:
                report.add(where, f"not valid json ({err})")
                continue
            except (DatasetError, KeyError, TypeError, ValueError) as err:
                report.add(where, f"{err}; fix or drop the line")
                continue
            item.sample.id = where
            yield item

    def _row(self, line: str) -> Any:
        return json.loads(line)

    def _item(self, row: Any, spans: TokenStrings, key: str) -> RawItem:
        raise NotImplementedError


class ReleasePairs(_ReleaseJsonl):
    """The release's pretraining pairs (``data/pretrain/<modality>/*.jsonl``): ``{"text": caption or transcript,
    "image" | "speech" | "music": "<soim><👀12>...<eoim>"}``, one modality field per line. No tokenizer is needed: the
    token strings become the codes a shard stores. The direction of a pair is the training config's (`Source`
    ``x2text_prob``; the release used 1.0 for caption sets, 0.0 for its other image sets, 0.5 otherwise)."""

    name = "release_pairs"

    def _item(self, row: Any, spans: TokenStrings, key: str) -> RawItem:
        if not isinstance(row, dict):
            raise TypeError(f"a line holds a {type(row).__name__}, not an object")
        fields = [k for k in row if k in spans.layouts]
        if len(fields) != 1:
            raise ValueError(f"expected one modality field of {sorted(spans.layouts)}, found {fields or 'none'}")
        modality = fields[0]
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("no text field")
        media: dict[str, tuple[str, Any]] = {}
        rest = spans.extract(str(row[modality]), media)
        if len(media) != 1 or media["m0"][0] != modality or rest.strip() != "<media:m0>":
            raise DatasetError(f"the {modality} field must hold exactly one {modality} span and nothing else")
        return RawItem(key, ShardSample("pair", text=text.strip(), source=self.name), {f"{modality}0": media["m0"]})


class ReleaseConversations(_ReleaseJsonl):
    """The release's instruction data (``data/instruction/*.jsonl``): AnyInstruct rows ``{"id", "conversation":
    [[{"role": "user", "message"}, {"role": "assistant", "message"}, ...]]}`` whose messages hold token strings and
    ``<-Ins->``/``<-Res->`` (speech dialogues). Leading assistant messages are dropped, as the release's SFT script
    does; the roles must then alternate."""

    name = "release_instruct"

    def _item(self, row: Any, spans: TokenStrings, key: str) -> RawItem:
        messages = [m for turn in row["conversation"] for m in (turn if isinstance(turn, list) else [turn])]
        while messages and messages[0].get("role") != "user":
            messages = messages[1:]
        if not messages:
            raise ValueError("no user message")
        conversation, media = [], {}
        for k, message in enumerate(messages):
            role, text = message["role"], message["message"]
            if role != ("user", "assistant")[k % 2] or not isinstance(text, str):
                raise ValueError(f"message {k} has role {role!r}; roles must alternate user, assistant")
            conversation.append({"role": role, "message": spans.extract(text, media)})
        sample = ShardSample("conversation", turns=conversation, source=self.name)
        if "id" in row:
            key = sample_key(self.name, row["id"])
        return RawItem(key, sample, media)


class ReleaseDocuments(_ReleaseJsonl):
    """Interleaved documents as the release trains them (its MMC4 file is read as plain text, one document per
    line, image spans inline): each line becomes a document sample trained on every token."""

    name = "release_documents"

    def _row(self, line: str) -> Any:
        return line.rstrip("\n")

    def _item(self, row: Any, spans: TokenStrings, key: str) -> RawItem:
        media: dict[str, tuple[str, Any]] = {}
        text = spans.extract(row, media)
        return RawItem(key, ShardSample("interleaved", text=text, source=self.name), media)
