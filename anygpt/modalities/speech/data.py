"""Speech corpora for training the speech tokenizers: LibriSpeech/MLS-style folders of audio files.

``root/SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` (LibriSpeech) or ``root/SPLIT/audio/SPK/BOOK/*.flac`` (MLS) --
any audio file below ``root/SPLIT`` counts. Optional per-chapter alignment sidecars
(``SPEAKER-CHAPTER.alignment.json``: ``{utt_id: {"phonemes": [[name, start_seconds], ...]}}``, written by the demo
corpus) give frame-level phone targets for the tiny tokenizer's semantic distillation. Unreadable files are skipped and
counted (``SpeechSegments.skipped``), never fatal.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from anygpt.media import MEDIA_KINDS, MediaError, read_audio
from anygpt.modalities.codec import Modality
from anygpt.modalities.registry import load_modality
from anygpt.modalities.training import TrainValDataModule

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = MEDIA_KINDS["audio"].suffixes
IGNORE_INDEX = -100


def find_audio(root: str | Path, split: str) -> list[Path]:
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: expected a LibriSpeech/MLS-style folder of audio files "
                                f"(root/{split}/SPEAKER/CHAPTER/*.flac).")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) below {folder}")
    return files


def normalize_phone(name: str) -> str:
    """espeak phoneme mnemonics carry stress marks (``'3:``, ``,a``); the phone identity is the rest."""
    return name.lstrip("',%=")


def load_alignments(files: Sequence[Path]) -> dict[str, list[tuple[str, float]]]:
    """Utterance id -> [(phone, start seconds)] from every ``*.alignment.json`` beside ``files``."""
    alignments: dict[str, list[tuple[str, float]]] = {}
    for sidecar in sorted({p for f in files for p in f.parent.glob("*.alignment.json")}):
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("skipping unreadable alignment file %s: %s", sidecar, e)
            continue
        for utt, entry in data.items():
            alignments[utt] = [(normalize_phone(str(p)), float(t)) for p, t in entry.get("phonemes", [])]
    return alignments


def frame_phones(alignment: list[tuple[str, float]], n_frames: int, frame_seconds: float, phones: Sequence[str],
                 ) -> torch.Tensor:
    """Label each frame with the phone whose interval holds the frame's centre (before the first phone: silence).

    Phones missing from ``phones`` map to index 0 (``phones[0]`` is the silence/other class).
    """
    index = {p: i for i, p in enumerate(phones)}
    labels = torch.zeros(n_frames, dtype=torch.long)
    starts = [t for _, t in alignment]
    ids = [index.get(p, 0) for p, _ in alignment]
    j = -1
    for f in range(n_frames):
        centre = (f + 0.5) * frame_seconds
        while j + 1 < len(starts) and starts[j + 1] <= centre:
            j += 1
        labels[f] = ids[j] if j >= 0 else 0
    return labels


class SpeechSegments(Dataset):
    """Fixed-length random crops of the utterances of one split, with frame phone labels when alignments exist.

    ``cache=True`` keeps decoded audio in memory, in every loader worker: only for corpora that small (the demo's).
    """

    def __init__(self, root: str | Path, split: str, sample_rate: int, hop_length: int, segment_seconds: float,
                 phones: Sequence[str] = (), random_crop: bool = True, cache: bool = False,
                 max_files: int | None = None) -> None:
        self.files = find_audio(root, split)[:max_files]
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.segment = int(segment_seconds * sample_rate) // hop_length * hop_length
        self.phones = list(phones)
        self.random_crop = random_crop
        self.alignments = load_alignments(self.files) if self.phones else {}
        self.skipped: list[str] = []
        self._cache: dict[int, torch.Tensor] = {}
        self.cache = cache

    def __len__(self) -> int:
        return len(self.files)

    def _audio(self, i: int) -> torch.Tensor | None:
        if i in self._cache:
            return self._cache[i]
        try:
            wav = read_audio(self.files[i], self.sample_rate, min_samples=self.hop_length)[0]
        except MediaError as e:
            log.warning("skipping: %s", e)
            self.skipped.append(str(self.files[i]))
            return None
        if self.cache:
            self._cache[i] = wav
        return wav

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        wav = self._audio(i)
        for _ in range(len(self.files) - 1):  # a bad file yields the next good one; each skip counted once
            if wav is not None:
                break
            i = (i + 1) % len(self.files)
            wav = self._audio(i)
        if wav is None:
            raise MediaError(f"no readable audio file among {len(self.files)} files (first: {self.files[0]})")
        start = 0
        if wav.shape[-1] > self.segment:
            max_start = (wav.shape[-1] - self.segment) // self.hop_length
            start = (random.randint(0, max_start) if self.random_crop else 0) * self.hop_length
        piece = wav[start:start + self.segment]
        length = piece.shape[-1] // self.hop_length  # valid frames; the rest is zero padding
        audio = torch.nn.functional.pad(piece, (0, self.segment - piece.shape[-1]))
        item = {"audio": audio.unsqueeze(0), "frames": torch.tensor(length)}
        if self.phones:
            n_frames = self.segment // self.hop_length
            labels = torch.full((n_frames,), IGNORE_INDEX, dtype=torch.long)
            alignment = self.alignments.get(self.files[i].stem)
            if alignment:
                offset = start // self.hop_length
                total = wav.shape[-1] // self.hop_length
                full = frame_phones(alignment, total, self.hop_length / self.sample_rate, self.phones)
                labels[:length] = full[offset:offset + length]
            item["phones"] = labels
        return item


class SpeechDataModule(TrainValDataModule):
    """Train/val crops from a LibriSpeech/MLS-style tree for `SpeechTokenizerTrainer` (``cache``: keep decoded audio in
    memory, per loader worker; small corpora only)."""

    persistent_train_workers = True

    def __init__(self, root: str, train_split: str = "train-clean-100", val_split: str = "dev-clean",
                 sample_rate: int = 16000, hop_length: int = 320, segment_seconds: float = 1.0,
                 phones: Sequence[str] = (), batch_size: int = 8, num_workers: int = 0,
                 max_train_files: int | None = None, max_val_files: int | None = None, cache: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        common = dict(sample_rate=h.sample_rate, hop_length=h.hop_length, phones=h.phones, cache=h.get("cache", False))
        self.train_set = SpeechSegments(h.root, h.train_split, segment_seconds=h.segment_seconds,
                                        max_files=h.max_train_files, **common)
        self.val_set = SpeechSegments(h.root, h.val_split, segment_seconds=h.segment_seconds, random_crop=False,
                                      max_files=h.max_val_files, **common)


class CodeSegments(Dataset):
    """Random crops of ``segment_frames`` frames of all-level codes ``[F, n_q]`` (SoundStorm training)."""

    def __init__(self, codes: Sequence[torch.Tensor], segment_frames: int, random_crop: bool = True) -> None:
        self.codes = [c for c in codes if c.shape[0] >= 2]
        self.segment_frames, self.random_crop = segment_frames, random_crop

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> torch.Tensor:
        codes = self.codes[i]
        start = random.randint(0, max(0, codes.shape[0] - self.segment_frames)) if self.random_crop else 0
        return codes[start:start + self.segment_frames]


def pad_codes(items: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    codes = torch.nn.utils.rnn.pad_sequence(list(items), batch_first=True, padding_value=pad_id).long()
    return {"codes": codes, "lengths": torch.tensor([c.shape[0] for c in items])}


class SoundStormDataModule(TrainValDataModule):
    """All-level codes of a small LibriSpeech-style tree (the demo's), encoded at setup by a trained speech tokenizer
    and kept in memory on every rank.

    ``tokenizer`` is a speech tokenizer checkpoint (a save_pretrained folder, ``anygpt-assets:tokenizers/speech``, or a
    release folder); ``codes_file`` caches the codes. For real corpora, write token shards with all levels
    (``anygpt prepare``, a speech source with ``all_levels: true``) and train from them with
    `anygpt.data.codes.CodeShardDataModule`, which streams them split by rank (experiments/tokenizers/soundstorm.yaml).
    """

    def __init__(self, root: str, tokenizer: str = "anygpt-assets:tokenizers/speech",
                 train_split: str = "train-clean-100", val_split: str = "dev-clean", segment_frames: int = 100,
                 batch_size: int = 16, num_workers: int = 0,
                 max_train_files: int | None = None, max_val_files: int | None = None,
                 codes_file: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()

    def _encode_split(self, speech: Modality, split: str, max_files: int | None) -> list[torch.Tensor]:
        codes = []
        for path in find_audio(self.hparams.root, split)[:max_files]:
            try:
                wav = speech.read(path)
            except MediaError as e:
                log.warning("skipping: %s", e)
                continue
            codes.append(speech.codec.encode_all_levels([wav])[0].T.contiguous())
        return codes

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        cache = Path(h.codes_file) if h.codes_file else None
        if cache is not None and cache.exists():
            splits = torch.load(cache, weights_only=True)
            self.pad_id = int(splits["pad_id"])
        else:
            speech = load_modality(h.tokenizer, "anygpt.modalities.speech.codec.SpeechTokenizerCodec")
            self.pad_id = speech.codebook_size
            splits = {"train": self._encode_split(speech, h.train_split, h.max_train_files),
                      "val": self._encode_split(speech, h.val_split, h.max_val_files), "pad_id": self.pad_id}
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(splits, cache)
        self.train_set = CodeSegments(splits["train"], h.segment_frames)
        self.val_set = CodeSegments(splits["val"], h.segment_frames, random_crop=False)

    def collate_fn(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return pad_codes(items, self.pad_id)
