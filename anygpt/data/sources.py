"""Raw datasets as the items ``anygpt prepare`` tokenizes: one `RawSource` per layout of the paper's data mix.

A source says what each future shard sample holds (`RawItem`: json metadata + media files, or codes already made) and
how its items are cut into chunks, one shard per chunk. Chunks never hold a whole dataset in memory:
- file-list sources (COCO, LibriSpeech, MLS, Common Voice, GigaSpeech, VCTK, MusicCaps, csv, AnyInstruct, JourneyDB)
  stream their records once, writing each chunk's items to a small json-lines plan file that the loader worker
  reads back (`spool`);
- sources whose parts are files or line ranges (LAION-style tars, MMC4 document files, the release's pre-tokenized
  jsonl) hand out the part itself (`LazyChunk`); the worker reads it and reports its bad rows.

Media references in a dataset's rows must stay inside its root folder unless ``allow_outside_root`` is set (by
``anygpt prepare --allow_outside_root``), see `anygpt.data.readers.resolve_inside`.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anygpt.data import readers
from anygpt.data.readers import AudioSegment
from anygpt.data.shards import ReaderStats, expand_shards, iter_raw
from anygpt.data.templates import layout_unflatten
from anygpt.modalities.registry import media_pattern

# A media item's content as prepare receives it: a file path, the file's bytes (tar members), a time range of a long
# recording, or codes already made (the release's token strings).
MediaSource = str | bytes | AudioSegment | np.ndarray


@dataclass
class RawItem:
    """One future shard sample: its json metadata and, per media item, its modality and content."""

    key: str
    meta: dict[str, Any]
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
            raise readers.DatasetError(f"no {what} found for {str(item)!r}: give a file, a glob or a list of them")
        files.extend(found)
    return files


class RawSource:
    """A raw dataset in a standard layout. Subclasses implement `items` (streamed records) or `chunks` (their own
    parts); `chunks` must be deterministic: it decides the shard layout, and reruns resume by it.

    ``allow_outside_root`` and ``spool_root`` are run options `prepare` sets on every source.
    """

    name: str = "raw"
    allow_outside_root: bool = False
    spool_root: str | None = None  # where plan files go (default: the system's temporary folder)

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        """The dataset's items in a fixed order; bad rows go to ``report``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither items() nor chunks()")

    def chunks(self, chunk_size: int, report: readers.SkipReport) -> list[Sequence[RawItem]]:
        """The items cut into ordered chunks of ``chunk_size`` (written to plan files, read back by the workers)."""
        self._spool = tempfile.TemporaryDirectory(prefix=f".anygpt-plan-{self.name}-", dir=self.spool_root)
        return spool(self.items(report), chunk_size, Path(self._spool.name))

    def codebook_sizes(self) -> dict[str, int]:
        """Code-book sizes of media this source brings as codes (pre-tokenized data); tokenizers give the rest."""
        return {}

    @staticmethod
    def split_list(items: list[RawItem], chunk_size: int) -> list[Sequence[RawItem]]:
        return [items[i: i + chunk_size] for i in range(0, len(items), chunk_size)]


# ----------------------------------------------------------------------------------------------------------------------
# Chunks that never hold a dataset in memory
# ----------------------------------------------------------------------------------------------------------------------
def _encode_media(source: MediaSource) -> Any:
    if isinstance(source, str):
        return source
    if isinstance(source, AudioSegment):
        return {"segment": [str(source.path), source.begin, source.end]}
    raise TypeError(f"a plan file holds paths and segments, not {type(source).__name__} (use a LazyChunk)")


def _decode_media(value: Any) -> MediaSource:
    if isinstance(value, str):
        return value
    path, begin, end = value["segment"]
    return AudioSegment(path, float(begin), float(end))


class SpooledChunk(Sequence):
    """A chunk's items in a json-lines plan file, read back lazily (in the loader worker)."""

    def __init__(self, path: str, count: int) -> None:
        self.path, self.count = path, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> RawItem:
        raise TypeError("plan chunks are iterated, not indexed")

    def __iter__(self) -> Iterator[RawItem]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                yield RawItem(row["key"], row["meta"], {n: (m, _decode_media(v)) for n, (m, v) in row["media"].items()})


def spool(items: Iterator[RawItem], chunk_size: int, directory: Path) -> list[Sequence[RawItem]]:
    """Write ``items`` into one plan file per ``chunk_size`` items under ``directory``; memory stays flat."""
    chunks: list[Sequence[RawItem]] = []
    handle, count = None, 0
    try:
        for item in items:
            if handle is None:
                path = directory / f"chunk-{len(chunks):06d}.jsonl"
                handle, count = open(path, "w", encoding="utf-8"), 0
            media = {n: [m, _encode_media(v)] for n, (m, v) in item.media.items()}
            handle.write(json.dumps({"key": item.key, "meta": item.meta, "media": media}, ensure_ascii=False) + "\n")
            count += 1
            if count == chunk_size:
                handle.close()
                chunks.append(SpooledChunk(str(path), count))
                handle = None
    finally:
        if handle is not None:
            handle.close()
            chunks.append(SpooledChunk(str(path), count))
    return chunks


class LazyChunk(Sequence):
    """One part of a source (a tar, a document file, a line range) read in the loader worker by the source's
    ``read_part``; the bad rows it met are in ``bad`` afterwards (prepare reports them with the chunk)."""

    def __init__(self, source: RawSource, part: Any) -> None:
        self.source, self.part = source, part
        self.bad: list[tuple[str, str]] = []

    def __len__(self) -> int:  # unknown until read; the writer counts what arrives
        return 0

    def __getitem__(self, index: int) -> RawItem:
        raise TypeError("lazy chunks are iterated, not indexed")

    def __iter__(self) -> Iterator[RawItem]:
        report = readers.SkipReport()
        try:
            yield from self.source.read_part(self.part, report)  # type: ignore[attr-defined]
        finally:
            self.bad = list(report.skipped)


@dataclass(frozen=True)
class LineRange:
    """Lines ``first_line .. first_line + count - 1`` of a text file, starting at byte ``offset``."""

    path: str
    offset: int
    first_line: int
    count: int


def line_ranges(path: str, lines_per_part: int) -> list[LineRange]:
    """Cut a (large) line file into ranges of ``lines_per_part`` lines by one streaming pass over its bytes."""
    parts, offset, first, count = [], 0, 1, 0
    position = 0
    with open(path, "rb") as f:
        for line in f:
            count += 1
            position += len(line)
            if count == lines_per_part:
                parts.append(LineRange(path, offset, first, count))
                offset, first, count = position, first + count, 0
    if count:
        parts.append(LineRange(path, offset, first, count))
    return parts


def read_line_range(part: LineRange) -> Iterator[tuple[str, str]]:
    """(``file:line``, line) of a `LineRange`."""
    with open(part.path, "rb") as f:
        f.seek(part.offset)
        for k in range(part.count):
            line = f.readline()
            if not line:
                return
            yield f"{part.path}:{part.first_line + k}", line.decode("utf-8")


# ----------------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------------
class CocoKarpathy(RawSource):
    """COCO Karpathy json + images: one sample per image with all its captions (the template draws one)."""

    name = "coco"

    def __init__(self, json_path: str, image_root: str | None = None, split: str | list[str] = "train") -> None:
        self.json_path, self.image_root, self.split = json_path, image_root, split

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for rec in readers.read_coco_karpathy(Path(self.json_path), self.image_root and Path(self.image_root),
                                              self.split, report=report, allow_outside_root=self.allow_outside_root):
            meta: dict[str, Any] = {"task": "caption", "text": rec.captions, "source": self.name, "id": rec.image_id}
            yield RawItem(f"{self.name}-{rec.image_id}", meta, {"image0": ("image", str(rec.path))})


class JourneyDB(RawSource):
    """JourneyDB annotations + extracted images (text-to-image data of the paper's mix)."""

    name = "journeydb"

    def __init__(self, json_path: str, image_dir: str | None = None, text: str = "caption") -> None:
        self.json_path, self.image_dir, self.text = json_path, image_dir, text

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for rec in readers.read_journeydb(Path(self.json_path), self.image_dir and Path(self.image_dir), self.text,
                                          report=report, allow_outside_root=self.allow_outside_root):
            ref = rec.meta["img_path"]
            meta: dict[str, Any] = {"task": "caption", "text": rec.captions[0], "source": self.name, "id": ref}
            folder, name = os.path.split(os.path.normpath(ref))
            yield RawItem(sample_key(self.name, os.path.basename(folder), os.path.splitext(name)[0]), meta,
                          {"image0": ("image", str(rec.path))})


class ImageTextTars(RawSource):
    """Image-text webdataset tars as img2dataset writes them (LAION-2B, LAION-COCO, CC): per sample ``KEY.jpg``
    (or ``.png``/``.webp``) with its caption in ``KEY.txt`` or in ``KEY.json``'s ``caption_key`` field.

    Each input tar becomes one chunk, read lazily in the worker, so billions of pairs never sit in memory.
    """

    name = "image_text"
    IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

    def __init__(self, tars: str | list[str], caption_key: str = "caption") -> None:
        self.tars, self.caption_key = tars, caption_key

    def chunks(self, chunk_size: int, report: readers.SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, url) for url in expand_shards(self.tars)]

    def read_part(self, url: str, report: readers.SkipReport) -> Iterator[RawItem]:
        stats = ReaderStats()
        for raw in iter_raw(url, stats):
            key = raw["__key__"]
            image = next((raw[e] for e in self.IMAGE_EXTENSIONS if e in raw), None)
            caption = raw.get("txt", b"").decode("utf-8", "replace").strip()
            if not caption and "json" in raw:
                try:
                    caption = str(json.loads(raw["json"]).get(self.caption_key) or "").strip()
                except (json.JSONDecodeError, AttributeError):
                    pass
            if image is None or not caption:
                missing = "image (.jpg/.png/.webp)" if image is None else f"caption (.txt or json {self.caption_key})"
                report.add(f"{url}:{key}", f"no {missing}; the sample is skipped (re-download it with img2dataset)")
                continue
            meta: dict[str, Any] = {"task": "caption", "text": caption, "source": self.name, "id": key}
            yield RawItem(sample_key(self.name, Path(url).name.split(".")[0], key), meta,
                          {"image0": ("image", image)})
        for message in stats.messages:
            report.add(url, message)


class MMC4(RawSource):
    """MMC4(-core) documents with their downloaded images, as interleaved documents (images placed before the
    sentence each is matched to); one shard per document file."""

    name = "mmc4"

    def __init__(self, docs: str | list[str], image_dir: str, min_images: int = 1) -> None:
        self.docs, self.image_dir, self.min_images = docs, image_dir, min_images

    def chunks(self, chunk_size: int, report: readers.SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, path) for path in expand_files(self.docs, "MMC4 document files")]

    def read_part(self, path: str, report: readers.SkipReport) -> Iterator[RawItem]:
        for doc in readers.read_mmc4([Path(path)], Path(self.image_dir), report, self.min_images,
                                     self.allow_outside_root):
            at: dict[int, list[str]] = {}
            media: dict[str, tuple[str, MediaSource]] = {}
            for index, file in doc.images:
                name = f"image{len(media)}"
                media[name] = ("image", str(file))
                at.setdefault(index, []).append(f"<media:{name}>")
            text = " ".join(p for i, sentence in enumerate(doc.sentences) for p in [*at.get(i, []), sentence])
            meta = {"task": "interleaved", "text": text, "source": self.name, "id": doc.id, "url": doc.url}
            yield RawItem(sample_key(self.name, doc.id), meta, media)


# ----------------------------------------------------------------------------------------------------------------------
# Speech
# ----------------------------------------------------------------------------------------------------------------------
class _Speech(RawSource):
    """Utterance sources: ``all_levels`` keeps every RVQ level of the speech tokenizer (SoundStorm's training data;
    the LLM still reads level 1 of them)."""

    task = "asr"

    def _item(self, utt_id: str, text: str, audio: MediaSource, speaker: str, lowercase: bool,
              all_levels: bool) -> RawItem:
        meta: dict[str, Any] = {"task": self.task, "text": text.lower() if lowercase else text, "source": self.name,
                                "id": utt_id, "speaker": speaker}
        if all_levels:
            meta["all_levels"] = ["speech0"]
        return RawItem(sample_key(self.name, utt_id), meta, {"speech0": ("speech", audio)})


class LibriSpeech(_Speech):
    """A LibriSpeech tree: ``split/speaker/chapter/*.flac`` + ``*.trans.txt``."""

    name = "librispeech"

    def __init__(self, root: str, split: str | list[str] = "train-clean-100", lowercase: bool = True,
                 all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for utt in readers.read_librispeech(Path(self.root), self.split, report=report, with_alignment=False):
            yield self._item(utt.utt_id, utt.text, str(utt.path), utt.speaker, self.lowercase, self.all_levels)


class MLS(_Speech):
    """Multilingual LibriSpeech (English in the paper): ``split/transcripts.txt`` + ``split/audio/SPK/BOOK/*``."""

    name = "mls"

    def __init__(self, root: str, split: str = "train", lowercase: bool = True, all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for utt in readers.read_mls(Path(self.root), self.split, report=report):
            yield self._item(utt.utt_id, utt.text, str(utt.path), utt.speaker, self.lowercase, self.all_levels)


class CommonVoice(_Speech):
    """Common Voice: ``<split>.tsv`` + ``clips/`` of one language folder."""

    name = "commonvoice"

    def __init__(self, root: str, split: str = "train", lowercase: bool = False, all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for utt in readers.read_common_voice(Path(self.root), self.split, report=report,
                                             allow_outside_root=self.allow_outside_root):
            yield self._item(utt.utt_id, utt.text, str(utt.path), utt.speaker, self.lowercase, self.all_levels)


class GigaSpeech(_Speech):
    """GigaSpeech: ``GigaSpeech.json`` + the long ``.opus`` recordings; each segment of the chosen subsets is cut out
    of its recording when loaded. ``subsets``: ``XS``, ``S``, ``M``, ``L``, ``XL`` (train), ``DEV``, ``TEST``."""

    name = "gigaspeech"

    def __init__(self, json_path: str, subsets: str | list[str] = "XL", lowercase: bool = True,
                 all_levels: bool = False) -> None:
        self.json_path, self.subsets, self.lowercase, self.all_levels = json_path, subsets, lowercase, all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for utt in readers.read_gigaspeech(Path(self.json_path), self.subsets, report=report,
                                           allow_outside_root=self.allow_outside_root):
            yield self._item(utt.utt_id, utt.text, utt.audio, utt.speaker, self.lowercase, self.all_levels)


class VCTK(_Speech):
    """A VCTK-style tree (``wav48/pXXX/*.wav`` + ``txt/pXXX/*.txt``)."""

    name = "vctk"
    task = "tts"

    def __init__(self, root: str, lowercase: bool = False, all_levels: bool = False) -> None:
        self.root, self.lowercase, self.all_levels = root, lowercase, all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for utt in readers.read_vctk(Path(self.root), report=report):
            yield self._item(utt.utt_id, utt.text, str(utt.path), utt.speaker, self.lowercase, self.all_levels)


# ----------------------------------------------------------------------------------------------------------------------
# Music and generic audio
# ----------------------------------------------------------------------------------------------------------------------
class MusicCaps(RawSource):
    """A MusicCaps-style csv with one audio file per row."""

    name = "musiccaps"

    def __init__(self, csv_path: str, audio_dir: str | None = None, split: str | list[str] | None = "train") -> None:
        self.csv_path, self.audio_dir, self.split = csv_path, audio_dir, split

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for clip in readers.read_musiccaps(Path(self.csv_path), self.audio_dir and Path(self.audio_dir), self.split,
                                           report=report, allow_outside_root=self.allow_outside_root):
            meta = {"task": "caption", "text": clip.caption, "source": self.name, "id": clip.ytid}
            yield RawItem(sample_key(self.name, clip.ytid), meta, {"music0": ("music", str(clip.path))})


class AudioCaptionCsv(RawSource):
    """Any csv of (audio file, caption) rows, e.g. a music-caption or speech-transcript list; audio paths are
    relative to ``audio_root`` (default: the csv's folder) and must stay inside it."""

    name = "audio_csv"

    def __init__(self, csv_path: str, modality: str = "music", audio_column: str = "audio",
                 text_column: str = "caption", audio_root: str | None = None, task: str = "caption",
                 all_levels: bool = False) -> None:
        self.csv_path, self.modality = Path(csv_path), modality
        self.audio_column, self.text_column, self.task = audio_column, text_column, task
        self.audio_root = Path(audio_root) if audio_root else self.csv_path.parent
        if all_levels and modality != "speech":
            raise ValueError("all_levels keeps every RVQ level of speech; it needs modality: speech")
        self.all_levels = all_levels

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        if not self.csv_path.is_file():
            raise readers.DatasetError(f"audio-caption csv not found: {self.csv_path}")
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f)
            missing = {self.audio_column, self.text_column} - set(rows.fieldnames or [])
            if missing:
                raise readers.DatasetError(f"{self.csv_path}: missing column(s) {sorted(missing)}; found "
                                           f"{rows.fieldnames}. Set audio_column/text_column.")
            for row in rows:
                where = f"{self.csv_path}:{rows.line_num}"
                audio, text = (row[self.audio_column] or "").strip(), (row[self.text_column] or "").strip()
                if not audio or not text:
                    report.add(where, "empty audio path or caption")
                    continue
                try:
                    path = readers.resolve_inside(self.audio_root, audio, self.allow_outside_root)
                except readers.OutsideRootError as err:
                    report.add(where, str(err))
                    continue
                if not os.path.isfile(path):
                    report.add(where, f"audio file not found: {path}")
                    continue
                meta: dict[str, Any] = {"task": self.task, "text": text, "source": self.name, "id": audio}
                if self.all_levels:
                    meta["all_levels"] = [f"{self.modality}0"]
                yield RawItem(f"{self.name}-{rows.line_num}", meta, {f"{self.modality}0": (self.modality, str(path))})


# ----------------------------------------------------------------------------------------------------------------------
# Dialogues
# ----------------------------------------------------------------------------------------------------------------------
class AnyInstruct(RawSource):
    """AnyInstruct-style dialogues; media placeholders of any registered modality (``[image: path]``,
    ``[depth: scan.npy]``) become ``<media:mN>`` references.

    Paths resolve against ``media_root`` (default: the file's folder) and must stay inside ``root`` (the dataset's
    root folder, default ``media_root``)."""

    name = "anyinstruct"

    def __init__(self, path: str, media_root: str | None = None, root: str | None = None) -> None:
        self.path, self.media_root, self.root = path, media_root, root

    def items(self, report: readers.SkipReport) -> Iterator[RawItem]:
        for dialogue in readers.read_anyinstruct(Path(self.path), self.media_root and Path(self.media_root),
                                                 report=report, root=self.root and Path(self.root),
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
            meta = {"task": "conversation", "conversation": conversation, "source": self.name, "id": dialogue.id}
            yield RawItem(sample_key(self.name, dialogue.id), meta, media)


# ----------------------------------------------------------------------------------------------------------------------
# The release's pre-tokenized data
# ----------------------------------------------------------------------------------------------------------------------
RELEASE_LAYOUT: list[dict[str, Any]] = [
    {"name": "image", "codebook_size": 8192, "markers": ["<soim>", "<eoim>"], "token_format": "<👀{}>"},
    {"name": "speech", "codebook_size": 1024, "markers": ["<sosp>", "<eosp>"], "token_format": "<🗣️{}>"},
    {"name": "music", "codebook_size": 8192, "markers": ["<somu>", "<eomu>"], "token_format": "<🎶{}>",
     "layout": "frame_major:4"},
]


def token_strings(modalities: Sequence[dict[str, Any]] | None) -> readers.TokenStrings:
    """The span parser of a vocabulary layout: spec dicts ``{name, codebook_size, markers, token_format, layout}``
    (default: the released checkpoints' layout)."""
    layouts = []
    for spec in modalities or RELEASE_LAYOUT:
        try:
            layouts.append(readers.SpanLayout(spec["name"], int(spec["codebook_size"]), tuple(spec["markers"]),
                                              spec["token_format"],
                                              layout_unflatten(spec.get("layout", "identity"),
                                                               int(spec["codebook_size"]))))
        except KeyError as err:
            raise ValueError(f"modality layout {spec} lacks {err}: give name, codebook_size, markers, token_format "
                             "(and layout: identity or frame_major:Q)") from None
    return readers.TokenStrings(layouts)


class _ReleaseJsonl(RawSource):
    """Line ranges of the release's jsonl files, parsed in the workers; every span checked against the layout."""

    def __init__(self, paths: str | list[str], modalities: list[dict[str, Any]] | None = None) -> None:
        self.paths, self.modalities = paths, modalities
        token_strings(modalities)  # a bad layout fails now

    def codebook_sizes(self) -> dict[str, int]:
        return {name: layout.codebook_size for name, layout in token_strings(self.modalities).layouts.items()}

    def chunks(self, chunk_size: int, report: readers.SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, part) for path in expand_files(self.paths, f"{self.name} jsonl files")
                for part in line_ranges(path, chunk_size)]

    def read_part(self, part: LineRange, report: readers.SkipReport) -> Iterator[RawItem]:
        spans = token_strings(self.modalities)
        stem = Path(part.path).name.split(".")[0]
        for where, line in read_line_range(part):
            if not line.strip():
                continue
            try:
                item = self._item(json.loads(line), spans, sample_key(self.name, stem, where.rsplit(":", 1)[1]))
            except json.JSONDecodeError as err:
                report.add(where, f"not valid json ({err})")
                continue
            except (readers.DatasetError, KeyError, TypeError, ValueError) as err:
                report.add(where, f"{err}; fix or drop the line")
                continue
            item.meta["id"] = where
            yield item

    def _item(self, row: Any, spans: readers.TokenStrings, key: str) -> RawItem:
        raise NotImplementedError


class ReleasePairs(_ReleaseJsonl):
    """The release's pretraining pairs (``data/pretrain/<modality>/*.jsonl``): ``{"text": caption or transcript,
    "image" | "speech" | "music": "<soim><👀12>...<eoim>"}``, one modality field per line. No tokenizer is needed: the
    token strings become the codes a shard stores. The direction of a pair is the training config's (`Source`
    ``x2text_prob``; the release used 1.0 for caption sets, 0.0 for its other image sets, 0.5 otherwise)."""

    name = "release_pairs"

    def _item(self, row: Any, spans: readers.TokenStrings, key: str) -> RawItem:
        if not isinstance(row, dict):
            raise TypeError(f"a line holds a {type(row).__name__}, not an object")
        fields = [k for k in row if k in spans.layouts]
        if len(fields) != 1:
            raise ValueError(f"expected one modality field of {sorted(spans.layouts)}, found {fields or 'none'}")
        modality = fields[0]
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("no text field")
        rest, found = spans.split(str(row[modality]))
        if len(found) != 1 or found[0][0] != modality or rest.strip() != "<media:0>":
            raise readers.DatasetError(f"the {modality} field must hold exactly one {modality} span and nothing else")
        meta: dict[str, Any] = {"task": "pair", "text": text.strip(), "source": self.name}
        return RawItem(key, meta, {f"{modality}0": (modality, spans.codes(modality, found[0][1]))})


class ReleaseConversations(_ReleaseJsonl):
    """The release's instruction data (``data/instruction/*.jsonl``): AnyInstruct rows ``{"id", "conversation":
    [[{"role": "user", "message"}, {"role": "assistant", "message"}, ...]]}`` whose messages hold token strings and
    ``<-Ins->``/``<-Res->`` (speech dialogues). Leading assistant messages are dropped, as the release's SFT script
    does; the roles must then alternate."""

    name = "release_instruct"

    def _item(self, row: Any, spans: readers.TokenStrings, key: str) -> RawItem:
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
            rest, found = spans.split(text)
            for index, (modality, ids) in enumerate(found):
                rest = rest.replace(f"<media:{index}>", f"<media:m{len(media)}>", 1)
                media[f"m{len(media)}"] = (modality, spans.codes(modality, ids))
            conversation.append({"role": role, "message": rest})
        meta = {"task": "conversation", "conversation": conversation, "source": self.name}
        if "id" in row:
            key = sample_key(self.name, row["id"])
        return RawItem(key, meta, media)


class ReleaseDocuments(_ReleaseJsonl):
    """Interleaved documents as the release trains them (its MMC4 file is read as plain text, one document per
    line, image spans inline): each line becomes a document sample trained on every token."""

    name = "release_documents"

    def read_part(self, part: LineRange, report: readers.SkipReport) -> Iterator[RawItem]:
        spans = token_strings(self.modalities)
        stem = Path(part.path).name.split(".")[0]
        for where, line in read_line_range(part):
            if not line.strip():
                continue
            try:
                text, found = spans.split(line.rstrip("\n"))
            except readers.DatasetError as err:
                report.add(where, f"{err}; fix or drop the line")
                continue
            media = {f"m{k}": (modality, spans.codes(modality, ids)) for k, (modality, ids) in enumerate(found)}
            for k in range(len(found)):
                text = text.replace(f"<media:{k}>", f"<media:m{k}>", 1)
            yield RawItem(sample_key(self.name, stem, where.rsplit(":", 1)[1]),
                          {"task": "interleaved", "text": text, "source": self.name, "id": where}, media)
