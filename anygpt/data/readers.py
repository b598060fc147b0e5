"""Readers for the raw dataset layouts: COCO Karpathy json, LibriSpeech tree, VCTK tree, MusicCaps csv, AnyInstruct.

Each reader streams simple dataclass records (files are opened lazily; trees are walked folder by folder) so the same
code serves the demo corpus and the real datasets. Bad input:
- a missing root/folder/file raises :class:`DatasetError` naming the path and what was expected;
- a bad row or a record whose media file is missing raises too, unless a :class:`SkipReport` is passed: then the
  record is skipped and the report lists it (location + reason), so nothing is dropped silently.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anygpt.modalities.registry import media_pattern, media_words

AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".opus")


class DatasetError(ValueError):
    """Raised for input that does not have the expected layout; the message names the path and the fix."""


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
    path: Path
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
            path = root / entry.get("filepath", "") / entry["filename"]
            image_id = int(entry["imgid"] if "imgid" in entry else entry["cocoid"])
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
    path: Path
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


def parse_media(message: str, media_root: Path) -> list[MediaRef]:
    """Media placeholders of a message (``[image: cat.png]``, any registered modality or alias), in order; an alias
    (``[audio: x.wav]``) is reported as its modality (music)."""
    words = media_words()
    return [
        MediaRef(words[m.group(1)], media_root / m.group(2).strip(), m.group(2).strip())
        for m in media_pattern().finditer(message)
    ]


def read_anyinstruct(
    path: Path, media_root: Path | None = None, report: SkipReport | None = None, check_files: bool = True
) -> Iterator[Dialogue]:
    """Rows ``{"id", "conversation": [[{"role": "user", "message"}, {"role": "assistant", "message"}], ...]}`` from a
    ``.jsonl`` file (streamed line by line) or a ``.json`` list. Media placeholders resolve against ``media_root``
    (default: the file's folder)."""
    path = _require_file(Path(path), "AnyInstruct")
    root = Path(media_root) if media_root is not None else path.parent
    for where, row in _json_rows(path, report):
        try:
            dialogue = _parse_dialogue(row, root)
        except (KeyError, TypeError, ValueError) as e:
            _bad(report, where, f"malformed dialogue ({e}); expected conversation: [[user, assistant], ...]")
            continue
        if check_files:
            absent = [m.ref for m in dialogue.media if not m.path.is_file()]
            if absent:
                _bad(report, where, f"media file(s) not found under {root}: {', '.join(absent)}")
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


def _parse_dialogue(row: object, root: Path) -> Dialogue:
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
            media += parse_media(msg["message"], root)
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
