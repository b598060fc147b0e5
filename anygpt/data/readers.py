"""Readers for the raw dataset layouts of the paper's data: COCO Karpathy json, LibriSpeech and MLS trees, VCTK,
Common Voice tsv + clips, GigaSpeech json + opus, MusicCaps csv, MMC4 documents + downloaded images, JourneyDB
annotations + images, AnyInstruct dialogues, and the release's pre-tokenized jsonl (token strings such as
``<soim><👀12>...<eoim>``).

Each reader streams simple dataclass records (files are opened lazily; trees are walked folder by folder; line files
are read line by line) so the same code serves the demo corpus and the real datasets. Bad input:
- a missing root/folder/file raises :class:`DatasetError` naming the path and what was expected;
- a bad row or a record whose media file is missing raises too, unless a :class:`SkipReport` is passed: then the
  record is skipped and the report lists it (file + line or entry, and what is wrong), so nothing is dropped silently.

Media references read from a dataset (a path in a json/csv/tsv row or a dialogue) must stay inside the dataset's root
folder: ``../../etc/passwd`` or an absolute path is a bad row, never opened, unless the caller passes
``allow_outside_root=True`` (``anygpt prepare --allow_outside_root``). The check is on the path as written, so
symlinks that the dataset's owner placed inside the root are followed.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anygpt.data.checks import UnknownMediaWord, check_media_words
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


def _bad(report: SkipReport | None, location: str, reason: str) -> None:
    """Record a bad record in ``report`` or raise if the caller asked for strict reading."""
    if report is None:
        raise DatasetError(f"{location}: {reason} (pass a SkipReport to skip and count bad records instead)")
    report.add(location, reason)


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{what} folder not found: {path}")
    return path


def _require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} file not found: {path}")
    return path


def _as_splits(split: str | Sequence[str] | None) -> set[str] | None:
    if split is None:
        return None
    return {split} if isinstance(split, str) else set(split)


# --------------------------------------------------------------------------------------------------- COCO Karpathy
@dataclass
class CaptionedImage:
    image_id: int  # Karpathy "imgid" (or "cocoid" when imgid is absent)
    path: Path | str  # str from the JourneyDB reader (millions of files): see `resolve_inside`
    split: str
    captions: list[str]
    cocoid: int | None = None
    meta: dict = field(default_factory=dict)  # any extra keys of the entry (the demo's "scene")


def read_coco_karpathy(
    json_path: Path,
    image_root: Path | None = None,
    split: str | Sequence[str] | None = None,
    report: SkipReport | None = None,
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> Iterator[CaptionedImage]:
    """Images of a Karpathy-split json (``dataset_coco.json``); path = image_root / filepath / filename.

    ``image_root`` defaults to the json's folder; ``split`` filters ("train", "val", "test", "restval").
    The json is one object, so it is parsed once; records are produced lazily from it.
    """
    json_path = _require_file(Path(json_path), "Karpathy split json")
    root = Path(image_root) if image_root is not None else json_path.parent
    _require_dir(root, "COCO image root")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path}: not valid json ({e})") from e
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"{json_path}: expected an object with an 'images' list (Karpathy dataset_coco.json)")
    wanted = _as_splits(split)
    known = {"filepath", "filename", "imgid", "split", "sentences", "sentids", "cocoid"}
    for k, entry in enumerate(entries):
        where = f"{json_path}:images[{k}]"
        try:
            entry_split = entry["split"]
            if wanted is not None and entry_split not in wanted:
                continue
            captions = [s["raw"].strip() for s in entry["sentences"]]
            path = Path(resolve_inside(root, os.path.join(entry.get("filepath", ""), entry["filename"]),
                                       allow_outside_root))
            image_id = int(entry["imgid"] if "imgid" in entry else entry["cocoid"])
        except OutsideRootError as e:
            _bad(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            _bad(report, where, f"malformed entry ({type(e).__name__}: {e}); needs split, filename, sentences[].raw")
            continue
        if not captions:
            _bad(report, where, "no captions")
            continue
        if check_files and not path.is_file():
            _bad(report, where, f"image file not found: {path}")
            continue
        cocoid = entry.get("cocoid")
        yield CaptionedImage(
            image_id,
            path,
            entry_split,
            captions,
            int(cocoid) if cocoid is not None else None,
            {k2: v for k2, v in entry.items() if k2 not in known},
        )


# --------------------------------------------------------------------------------------------------- LibriSpeech
@dataclass
class Utterance:
    utt_id: str
    speaker: str
    path: Path | str  # str from the readers of the large corpora (MLS, Common Voice): see `resolve_inside`
    text: str
    chapter: str | None = None
    split: str | None = None
    alignment: dict | None = None  # demo corpus sidecar: phonemes/words with start times (seconds)


def read_librispeech(
    root: Path, split: str | Sequence[str], report: SkipReport | None = None, with_alignment: bool = True
) -> Iterator[Utterance]:
    """Utterances of ``root/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (+ the audio beside it).

    ``root`` is the folder holding the split folders (e.g. ``LibriSpeech/``); ``split`` e.g. "test-clean".
    Speakers, chapters and lines are visited in sorted order, one chapter at a time.
    """
    root = _require_dir(Path(root), "LibriSpeech root")
    for name in [split] if isinstance(split, str) else list(split):
        split_dir = root / name
        if not split_dir.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DatasetError(f"LibriSpeech split folder not found: {split_dir} (found: {', '.join(found) or 'none'})")
        n_trans = 0
        for trans in sorted(split_dir.glob("*/*/*.trans.txt")):
            n_trans += 1
            speaker, chapter = trans.parent.parent.name, trans.parent.name
            alignment = (
                _load_sidecar(trans.with_name(trans.name.replace(".trans.txt", ".alignment.json")), report)
                if with_alignment
                else None
            )
            with open(trans, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    utt_id, _, text = line.partition(" ")
                    where = f"{trans}:{line_no}"
                    if not text.strip():
                        _bad(report, where, f"line has no transcript after the utterance id {utt_id!r}")
                        continue
                    audio = _find_audio(trans.parent / utt_id)
                    if audio is None:
                        _bad(report, where, f"transcript without audio: no {utt_id}.flac (or .wav) in {trans.parent}")
                        continue
                    yield Utterance(
                        utt_id,
                        speaker,
                        audio,
                        text.strip(),
                        chapter,
                        name,
                        alignment.get(utt_id) if alignment else None,
                    )
        if n_trans == 0:
            raise DatasetError(f"no <speaker>/<chapter>/*.trans.txt files under {split_dir}: not a LibriSpeech split")


def _find_audio_file(stem: str) -> str | None:
    """`_find_audio` on strings (large corpora: no `Path` per file)."""
    for ext in AUDIO_EXTENSIONS:
        if os.path.isfile(stem + ext):
            return stem + ext
    return None


def _find_audio(stem: Path) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        path = stem.with_name(stem.name + ext)
        if path.is_file():
            return path
    return None


def _load_sidecar(path: Path, report: SkipReport | None) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        _bad(report, str(path), f"alignment sidecar is not valid json ({e})")
        return None


# --------------------------------------------------------------------------------------------------- VCTK
def read_vctk(
    root: Path, speakers: Sequence[str] | None = None, report: SkipReport | None = None, mic: str = "mic1"
) -> Iterator[Utterance]:
    """Utterances of a VCTK tree: ``txt/<spk>/<spk>_<n>.txt`` with audio in ``wav48/<spk>/<spk>_<n>.wav``
    (VCTK 0.80) or ``wav48_silence_trimmed/<spk>/<spk>_<n>_<mic>.flac`` (VCTK 0.92). Audio is 48 kHz: resample."""
    root = _require_dir(Path(root), "VCTK root")
    txt_root = _require_dir(root / "txt", "VCTK transcript (txt/)")
    audio_roots = [d for d in (root / "wav48", root / "wav48_silence_trimmed") if d.is_dir()]
    if not audio_roots:
        raise DatasetError(
            f"VCTK audio folder not found: expected {root / 'wav48'} or {root / 'wav48_silence_trimmed'}"
        )
    wanted = set(speakers) if speakers is not None else None
    alignments = root / "alignment"
    for spk_dir in sorted(p for p in txt_root.iterdir() if p.is_dir()):
        speaker = spk_dir.name
        if wanted is not None and speaker not in wanted:
            continue
        alignment = _load_sidecar(alignments / f"{speaker}.json", report)
        for txt in sorted(spk_dir.glob("*.txt")):
            utt_id = txt.stem
            text = txt.read_text(encoding="utf-8", errors="replace").strip()
            if not text:
                _bad(report, str(txt), "empty transcript")
                continue
            audio = None
            for audio_root in audio_roots:
                audio = _find_audio(audio_root / speaker / utt_id) or _find_audio(
                    audio_root / speaker / f"{utt_id}_{mic}"
                )
                if audio is not None:
                    break
            if audio is None:
                _bad(
                    report,
                    str(txt),
                    f"transcript without audio: no {utt_id} audio under {', '.join(map(str, audio_roots))}",
                )
                continue
            yield Utterance(utt_id, speaker, audio, text, None, None, alignment.get(utt_id) if alignment else None)


# --------------------------------------------------------------------------------------------------- MusicCaps
@dataclass
class MusicClip:
    ytid: str
    path: Path
    caption: str
    aspects: list[str]
    start_s: float
    end_s: float
    split: str | None = None
    extra: dict = field(default_factory=dict)  # other csv columns (the demo's synthesis parameters)


def read_musiccaps(
    csv_path: Path,
    audio_dir: Path | None = None,
    split: str | Sequence[str] | None = None,
    report: SkipReport | None = None,
    check_files: bool = True,
    allow_outside_root: bool = False,
) -> Iterator[MusicClip]:
    """Rows of a MusicCaps-style csv (ytid, start_s, end_s, aspect_list, caption, ...) with audio
    ``<audio_dir>/<ytid>.*`` (default ``audio/`` beside the csv). Files hold the clip itself (start_s/end_s say
    where it came from).

    ``split`` filters on a ``split`` column, or for the original csv on ``is_audioset_eval`` ("test" = True).
    """
    csv_path = _require_file(Path(csv_path), "MusicCaps csv")
    audio_dir = _require_dir(Path(audio_dir) if audio_dir is not None else csv_path.parent / "audio", "MusicCaps audio")
    wanted = _as_splits(split)
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"ytid", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{csv_path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            try:
                row_split = row.get("split") or (
                    ("test" if row["is_audioset_eval"].strip().lower() == "true" else "train")
                    if row.get("is_audioset_eval")
                    else None
                )
                if wanted is not None and row_split not in wanted:
                    continue
                ytid, caption = row["ytid"].strip(), (row["caption"] or "").strip()
                if not ytid or not caption:
                    raise ValueError("empty ytid or caption")
                aspects = ast.literal_eval(row["aspect_list"]) if row.get("aspect_list") else []
                if not isinstance(aspects, list):
                    raise ValueError(f"aspect_list is not a list: {row['aspect_list']!r}")
                start, end = float(row.get("start_s") or 0), float(row.get("end_s") or 0)
            except (ValueError, SyntaxError, KeyError, AttributeError) as e:
                _bad(report, where, f"malformed row ({e})")
                continue
            try:
                resolve_inside(audio_dir, ytid, allow_outside_root)
            except OutsideRootError as e:
                _bad(report, where, f"ytid: {e}")
                continue
            if check_files:
                # common names of downloaded clips: YTID.wav, YTID_START.wav, YTID-START-END.wav
                names = (ytid, f"{ytid}_{int(start)}", f"{ytid}-{int(start)}-{int(end)}")
                audio = next((a for a in (_find_audio(audio_dir / n) for n in names) if a is not None), None)
            else:
                audio = audio_dir / f"{ytid}.wav"
            if audio is None:
                _bad(report, where, f"no audio file for ytid {ytid!r} in {audio_dir}")
                continue
            known = {"ytid", "caption", "aspect_list", "start_s", "end_s", "split"}
            yield MusicClip(
                ytid,
                audio,
                caption,
                [str(a) for a in aspects],
                start,
                end,
                row_split,
                {k: v for k, v in row.items() if k not in known},
            )


# --------------------------------------------------------------------------------------------------- AnyInstruct
@dataclass
class MediaRef:
    modality: str
    path: Path  # resolved against media_root
    ref: str  # as written in the message


@dataclass
class Dialogue:
    id: str
    turns: list[tuple[str, str]]  # (user message, assistant message) per exchange
    media: list[MediaRef]
    extra: dict = field(default_factory=dict)  # other keys of the row (the demo's "media" texts and "task")


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


def read_anyinstruct(
    path: Path, media_root: Path | None = None, report: SkipReport | None = None, check_files: bool = True,
    root: Path | None = None, allow_outside_root: bool = False,
) -> Iterator[Dialogue]:
    """Rows ``{"id", "conversation": [[{"role": "user", "message"}, {"role": "assistant", "message"}], ...]}`` from a
    ``.jsonl`` file (streamed line by line) or a ``.json`` list. Media placeholders resolve against ``media_root``
    (default: the file's folder) and must stay inside the dataset ``root`` (default: ``media_root``)."""
    path = _require_file(Path(path), "AnyInstruct")
    media_root = Path(media_root) if media_root is not None else path.parent
    root = Path(root) if root is not None else media_root
    for where, row in _json_rows(path, report):
        try:
            dialogue = _parse_dialogue(row, media_root, root, allow_outside_root)
        except (OutsideRootError, UnknownMediaWord) as e:
            _bad(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            _bad(report, where, f"malformed dialogue ({e}); expected conversation: [[user, assistant], ...]")
            continue
        if check_files:
            absent = [m.ref for m in dialogue.media if not m.path.is_file()]
            if absent:
                _bad(report, where, f"media file(s) not found under {media_root}: {', '.join(absent)}")
                continue
        yield dialogue


def _json_rows(path: Path, report: SkipReport | None) -> Iterator[tuple[str, object]]:
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{line_no}", json.loads(line)
                except json.JSONDecodeError as e:
                    _bad(report, f"{path}:{line_no}", f"not valid json ({e})")
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
    return Dialogue(
        str(row.get("id", "")),
        [(u, a) for u, a in turns],
        media,
        {k: v for k, v in row.items() if k not in ("id", "conversation")},
    )


# --------------------------------------------------------------------------------------------------- line files
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
            _bad(report, where, f"not valid json ({e})")


# --------------------------------------------------------------------------------------------------- MLS
MLS_ID = re.compile(r"^(\d+)_(\d+)_(\d+)$")


def read_mls(root: Path, split: str = "train", report: SkipReport | None = None) -> Iterator[Utterance]:
    """Multilingual LibriSpeech: ``root/<split>/transcripts.txt`` (``SPEAKER_BOOK_SEGMENT<tab>text`` per line) with
    audio ``root/<split>/audio/SPEAKER/BOOK/SPEAKER_BOOK_SEGMENT.flac`` (or ``.opus`` in the opus release)."""
    root = _require_dir(Path(root), "MLS root")
    split_dir = _require_dir(root / split, f"MLS split '{split}'")
    transcripts = _require_file(split_dir / "transcripts.txt", "MLS transcripts")
    audio_root = os.path.join(split_dir, "audio")
    for where, line in iter_lines(transcripts):
        if not line.strip():
            continue
        utt_id, _, text = line.rstrip("\n").partition("\t")
        match = MLS_ID.match(utt_id.strip())
        if match is None:
            _bad(report, where, f"{utt_id!r} is not an MLS utterance id (SPEAKER_BOOK_SEGMENT, digits)")
            continue
        if not text.strip():
            _bad(report, where, "no transcript after the utterance id (expected a tab, then the text)")
            continue
        speaker, book, _ = match.groups()
        folder = os.path.join(audio_root, speaker, book)
        audio = _find_audio_file(os.path.join(folder, utt_id.strip()))
        if audio is None:
            _bad(report, where, f"transcript without audio: no {utt_id}.flac/.opus in {folder}")
            continue
        yield Utterance(utt_id.strip(), speaker, audio, text.strip(), book, split)


# --------------------------------------------------------------------------------------------------- Common Voice
def read_common_voice(root: Path, split: str = "train", report: SkipReport | None = None,
                      allow_outside_root: bool = False) -> Iterator[Utterance]:
    """Common Voice: ``root/<split>.tsv`` (``client_id``, ``path``, ``sentence``, ... columns; the split is e.g.
    ``train``, ``dev``, ``test`` or ``validated``) with the clips in ``root/clips/`` (``root`` is the language
    folder, e.g. ``cv-corpus-17.0/en``). The speaker is the ``client_id``."""
    root = _require_dir(Path(root), "Common Voice language folder")
    tsv = _require_file(root / f"{split}.tsv", f"Common Voice split '{split}'")
    clips = _require_dir(root / "clips", "Common Voice clips")
    with open(tsv, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path", "sentence"} - set(rows.fieldnames or [])
        if missing:
            raise DatasetError(f"{tsv}: missing column(s) {sorted(missing)}; found {rows.fieldnames}. Is this a "
                               "Common Voice split file?")
        for row in rows:
            where = f"{tsv}:{rows.line_num}"
            clip, text = (row.get("path") or "").strip(), (row.get("sentence") or "").strip()
            if not clip or not text:
                _bad(report, where, "empty path or sentence")
                continue
            try:
                audio = resolve_inside(clips, clip, allow_outside_root)
            except OutsideRootError as e:
                _bad(report, where, str(e))
                continue
            if not os.path.isfile(audio):
                _bad(report, where, f"clip not found: {audio}")
                continue
            utt_id = os.path.splitext(os.path.basename(clip))[0]
            yield Utterance(utt_id, (row.get("client_id") or "").strip(), audio, text, None, split)


# --------------------------------------------------------------------------------------------------- GigaSpeech
GIGASPEECH_PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GIGASPEECH_GARBAGE = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")


@dataclass
class AudioSegment:
    """A time range of a long recording (GigaSpeech podcasts and videos); ``prepare`` cuts it out when loading."""

    path: str
    begin: float  # seconds
    end: float


@dataclass
class SegmentUtterance:
    utt_id: str
    speaker: str
    audio: AudioSegment
    text: str
    subsets: list[str] = field(default_factory=list)


def gigaspeech_text(text_tn: str) -> str:
    """GigaSpeech's normalized transcript with its punctuation tags turned into punctuation."""
    for tag, mark in GIGASPEECH_PUNCTUATION.items():
        text_tn = text_tn.replace(f" {tag}", mark).replace(tag, mark)
    return " ".join(text_tn.split())


def iter_json_array(path: Path, key: str, chunk_chars: int = 1 << 20) -> Iterator[tuple[int, int, object]]:
    """(index, line, element) of the array ``key`` of a top-level json object, parsed one element at a time so a
    multi-gigabyte file (GigaSpeech.json) never sits in memory. ``line`` is where the element starts."""
    decoder = json.JSONDecoder()
    opening = re.compile(r'"' + re.escape(key) + r'"\s*:\s*\[')
    with open(path, encoding="utf-8") as f:
        buffer, line, found = "", 1, None
        while found is None:
            more = f.read(chunk_chars)
            if not more:
                raise DatasetError(f"{path}: no \"{key}\": [...] array found; is this the dataset's metadata file?")
            buffer += more
            found = opening.search(buffer)
        line += buffer.count("\n", 0, found.end())
        buffer, index = buffer[found.end():], 0
        while True:
            stripped = buffer.lstrip(" \t\r\n,")
            line += buffer.count("\n", 0, len(buffer) - len(stripped))
            buffer = stripped
            if buffer.startswith("]"):
                return
            try:
                element, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError as e:
                more = f.read(chunk_chars)
                if not more:
                    raise DatasetError(f"{path}:{line}: {key}[{index}] is not valid json ({e})") from None
                buffer += more
                continue
            yield index, line, element
            line += buffer.count("\n", 0, end)
            buffer, index = buffer[end:], index + 1


def read_gigaspeech(json_path: Path, subsets: str | Sequence[str] = "XL", report: SkipReport | None = None,
                    allow_outside_root: bool = False) -> Iterator[SegmentUtterance]:
    """GigaSpeech: ``GigaSpeech.json`` (``audios[]``: ``aid``, ``path`` of the long ``.opus`` recording relative to
    the json's folder, ``segments[]``: ``sid``, ``begin_time``, ``end_time``, ``text_tn``, ``subsets`` such as
    ``{XL}``). Segments of the wanted ``subsets`` (``XS``/``S``/``M``/``L``/``XL``/``DEV``/``TEST``) become utterances
    cut from their recording; garbage-tag segments (``<SIL>``, ``<MUSIC>``, ...) are reported and skipped, as the
    corpus's authors recommend."""
    json_path = _require_file(Path(json_path), "GigaSpeech metadata")
    wanted = {f"{{{s.strip('{}')}}}" for s in ([subsets] if isinstance(subsets, str) else subsets)}
    for index, line, audio in iter_json_array(json_path, "audios"):
        where = f"{json_path}:{line} (audios[{index}])"
        try:
            aid, segments = str(audio["aid"]), list(audio["segments"])
            path = resolve_inside(json_path.parent, audio["path"], allow_outside_root)
        except OutsideRootError as e:
            _bad(report, where, str(e))
            continue
        except (KeyError, TypeError) as e:
            _bad(report, where, f"malformed audio entry ({type(e).__name__}: {e}); needs aid, path, segments")
            continue
        mine = [s for s in segments if isinstance(s, dict) and wanted & set(s.get("subsets") or ())]
        if not mine:
            continue
        if not os.path.isfile(path):
            _bad(report, where, f"recording {path} not found ({len(mine)} segment(s) of {aid} skipped); download "
                                "the audio or drop it from the metadata")
            continue
        for k, segment in enumerate(mine):
            seg_where = f"{where} segment {segment.get('sid', k)}"
            try:
                sid, text = str(segment["sid"]), str(segment["text_tn"]).strip()
                begin, end = float(segment["begin_time"]), float(segment["end_time"])
            except (KeyError, TypeError, ValueError) as e:
                _bad(report, seg_where, f"malformed segment ({type(e).__name__}: {e}); needs sid, begin_time, "
                                        "end_time, text_tn")
                continue
            if text in GIGASPEECH_GARBAGE or not text:
                _bad(report, seg_where, f"garbage utterance {text or '(empty)'}: no speech transcript, skipped")
                continue
            if end <= begin:
                _bad(report, seg_where, f"end_time {end} is not after begin_time {begin}")
                continue
            yield SegmentUtterance(sid, aid, AudioSegment(path, begin, end), gigaspeech_text(text),
                                   sorted(segment.get("subsets") or ()))


# --------------------------------------------------------------------------------------------------- MMC4
@dataclass
class InterleavedDocument:
    """An MMC4 document: its sentences and, per available image, the sentence it precedes."""

    id: str
    sentences: list[str]
    images: list[tuple[int, str]]  # (matched_text_index, image file), in document order
    url: str = ""


def read_mmc4(paths: Sequence[Path], image_dir: Path, report: SkipReport | None = None, min_images: int = 1,
              allow_outside_root: bool = False) -> Iterator[InterleavedDocument]:
    """MMC4 / MMC4-core documents (``docs_*.jsonl`` or ``.jsonl.zip``: ``text_list``, ``image_info[]`` with
    ``image_name`` and ``matched_text_index``, ``url``) with their images downloaded into ``image_dir`` under their
    ``image_name``. Images that were not downloaded are left out (listed in the report); a document with fewer than
    ``min_images`` images left is skipped."""
    image_dir = _require_dir(Path(image_dir), "MMC4 image folder")
    for path in paths:
        path = _require_file(Path(path), "MMC4 documents")
        stem = path.name.split(".")[0]
        for where, row in iter_jsonl(path, report):
            try:
                sentences = [str(t) for t in row["text_list"]]
                infos = sorted(row["image_info"], key=lambda i: int(i["matched_text_index"]))
                refs = [(int(i["matched_text_index"]), str(i["image_name"])) for i in infos]
            except (KeyError, TypeError, ValueError) as e:
                _bad(report, where, f"malformed document ({type(e).__name__}: {e}); needs text_list and "
                                    "image_info[].image_name / matched_text_index")
                continue
            images, absent = [], []
            try:
                for index, name in refs:
                    if not 0 <= index < len(sentences):
                        raise ValueError(f"image {name} matches sentence {index} of {len(sentences)}")
                    file = resolve_inside(image_dir, name, allow_outside_root)
                    (images if os.path.isfile(file) else absent).append((index, file))
            except (OutsideRootError, ValueError) as e:
                _bad(report, where, str(e))
                continue
            if len(images) < min_images:
                _bad(report, where, f"{len(images)} of {len(refs)} images found in {image_dir} (need {min_images}); "
                                    "download them (img2dataset) or lower min_images")
                continue
            if absent and report is not None:
                report.add(where, f"{len(absent)} of {len(refs)} images not in {image_dir}, left out of the document: "
                                  f"{', '.join(os.path.basename(p) for _, p in absent[:5])}")
            doc_id = f"{stem}-{where.rsplit(':', 1)[1]}"
            yield InterleavedDocument(doc_id, sentences, images, str(row.get("url", "")))


# --------------------------------------------------------------------------------------------------- JourneyDB
def read_journeydb(json_path: Path, image_dir: Path | None = None, text: str = "caption",
                   report: SkipReport | None = None, allow_outside_root: bool = False) -> Iterator[CaptionedImage]:
    """JourneyDB annotations (``train_anno_realease_repath.jsonl``: ``img_path`` like ``./000/abc.jpg``, ``prompt``,
    ``Task2.Caption``) with the images extracted from ``imgs/000.tgz`` ... into ``image_dir`` (default ``imgs/``
    beside the json). ``text``: ``caption`` (the GPT-3.5 caption, what the release's JourneyDB text looks like) or
    ``prompt`` (the Midjourney prompt)."""
    if text not in ("caption", "prompt"):
        raise ValueError(f"text must be 'caption' or 'prompt', got {text!r}")
    json_path = _require_file(Path(json_path), "JourneyDB annotations")
    image_dir = _require_dir(Path(image_dir) if image_dir is not None else json_path.parent / "imgs",
                             "JourneyDB image folder")
    for k, (where, row) in enumerate(iter_jsonl(json_path, report)):
        try:
            ref = str(row["img_path"])
            value = row["Task2"]["Caption"] if text == "caption" else row["prompt"]
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"empty {text}")
            path = resolve_inside(image_dir, ref, allow_outside_root)
        except OutsideRootError as e:
            _bad(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            field_name = "Task2.Caption" if text == "caption" else "prompt"
            _bad(report, where, f"malformed row ({type(e).__name__}: {e}); needs img_path and {field_name}")
            continue
        if not os.path.isfile(path):
            _bad(report, where, f"image not found: {path} (extract its imgs/NNN.tgz archive into {image_dir})")
            continue
        yield CaptionedImage(k, path, "train", [value.strip()], None, {"img_path": ref})


# --------------------------------------------------------------------------------------------------- release tokens
@dataclass(frozen=True)
class SpanLayout:
    """How one modality's codes are spelled in the release's token strings: ``<soim><👀12>...<eoim>``.

    ``unflatten`` turns the span's local ids (``[0, codebook_size)``) into the native codes a shard stores."""

    name: str
    codebook_size: int
    markers: tuple[str, str]
    token_format: str
    unflatten: object  # Callable[[torch.Tensor], torch.Tensor]


class TokenStrings:
    """Parse the release's marker-wrapped token strings against a vocabulary layout (no tokenizer needed).

    Every span must open and close with its own markers and hold only its modality's code tokens, each within the
    codebook and valid for the layout (music: frames of 4 codes, code ``q`` of a frame in ``[2048 q, 2048 (q+1))``).
    """

    def __init__(self, layouts: Sequence[SpanLayout]) -> None:
        self.layouts = {layout.name: layout for layout in layouts}
        self.by_start = {layout.markers[0]: layout for layout in layouts}
        self.by_end = {layout.markers[1]: layout for layout in layouts}
        markers = [re.escape(m) for layout in layouts for m in layout.markers]
        codes = [re.escape(layout.token_format).replace(re.escape("{}"), r"(\d+)") for layout in layouts]
        self._token = re.compile("|".join([f"({m})" for m in markers] + [f"(?:{c})" for c in codes]))
        self._code_groups = {}  # regex group index -> modality of a code token
        group = len(markers)
        for layout in layouts:
            group += 1
            self._code_groups[group] = layout.name

    def split(self, text: str) -> tuple[str, list[tuple[str, list[int]]]]:
        """``text`` with every span replaced by ``<media:K>`` (K = its index), and the (modality, local ids) spans.

        Raises `DatasetError` describing the first bad span (unclosed, a foreign code inside, a stray code or end
        marker, text between codes, an id outside the codebook or the layout)."""
        import torch

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
            if match.start() != position:
                raise DatasetError(f"{current.name} span {len(spans)} holds text "
                                   f"{text[position:match.start()][:20]!r} between its tokens")
            position = match.end()
            if token == current.markers[1]:
                try:
                    current.unflatten(torch.tensor(ids, dtype=torch.long))
                except ValueError as e:
                    raise DatasetError(f"{current.name} span {len(spans)}: {e}") from None
                spans.append((current.name, ids))
                out.append(f"<media:{len(spans) - 1}>")
                current = None
                continue
            group = next((g for g in self._code_groups if match.group(g) is not None), None)
            if group is None:
                raise DatasetError(f"{current.name} span {len(spans)} holds {token} before its end marker "
                                   f"{current.markers[1]}")
            if self._code_groups[group] != current.name:
                raise DatasetError(f"{current.name} span {len(spans)} holds {token}, a {self._code_groups[group]} "
                                   "token")
            value = int(match.group(group))
            if value >= current.codebook_size:
                raise DatasetError(f"{current.name} span {len(spans)} holds {token}, outside its "
                                   f"{current.codebook_size} codes")
            ids.append(value)
        if current is not None:
            raise DatasetError(f"{current.name} span {len(spans)} is not closed with {current.markers[1]}")
        out.append(text[position:])
        return "".join(out), spans

    def codes(self, modality: str, ids: list[int]):
        """Local ids of a span -> the native codes a shard stores (an int16/int32 numpy array)."""
        import numpy as np
        import torch

        native = self.layouts[modality].unflatten(torch.tensor(ids, dtype=torch.long)).numpy()
        return native.astype(np.int16 if self.layouts[modality].codebook_size <= 2**15 else np.int32)
