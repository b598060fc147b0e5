"""Audio clips for training music codecs: a MusicCaps-style csv + audio folder, or any folder of audio files."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import torch
from torch.utils.data import Dataset

from anygpt.data.sources.base import SkipReport
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.media import MEDIA_KINDS, MediaError, read_audio
from anygpt.modalities.training import TrainValDataModule

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = MEDIA_KINDS["audio"].suffixes


def find_clips(root: str | Path, csv_file: str | None = "musiccaps.csv", audio_dir: str = "audio",
               split: str = "train") -> list[Path]:
    """Audio files of one split.

    With a csv, its rows are read as ``anygpt prepare`` reads them (`read_musiccaps`): the split from a ``split``
    column or, on the original MusicCaps csv, from ``is_audioset_eval`` (True: "test"), so evaluation clips never train
    a codec; the audio ``{audio_dir}/{ytid}.<ext>`` only inside ``audio_dir``. Rows of a csv with neither column
    belong to every split; rows without audio are skipped with a warning. Without a csv, every audio file under
    ``root`` is used, a deterministic 5% (by file-name hash) forming the "val" split.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Audio data root {root} does not exist.")
    if csv_file and (root / csv_file).exists():
        report = SkipReport()
        clips = [clip.path for clip in read_musiccaps(root / csv_file, root / audio_dir, report=report)
                 if clip.split in (None, split)]
        if report:
            log.warning("%s", report.summary())
        return clips
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    return [p for p in files if (zlib.crc32(p.name.encode()) % 20 == 0) == (split == "val")]


class AudioClips(Dataset):
    """Fixed-length segments of clips: random crops for training, the first segment for evaluation.

    Unreadable or too-short files are skipped and counted (``skipped``) when the dataset is built, so training never
    stops on one bad file.
    """

    def __init__(self, files: list[Path], sample_rate: int, segment_samples: int, train: bool = True,
                 crops_per_clip: int = 1) -> None:
        self.sample_rate, self.segment, self.train, self.crops = sample_rate, segment_samples, train, crops_per_clip
        self.clips: list[torch.Tensor] = []
        self.skipped: list[str] = []
        for file in files:
            try:
                self.clips.append(read_audio(file, sample_rate, min_samples=min(segment_samples, sample_rate // 10))[0])
            except MediaError as err:
                self.skipped.append(f"{file}: {err}")
        if self.skipped:
            log.warning("Skipped %d of %d audio files, e.g. %s", len(self.skipped), len(files), self.skipped[0])
        if not self.clips:
            raise ValueError(f"No usable audio among {len(files)} files"
                             + (f" (e.g. {self.skipped[0]})" if self.skipped else ""))

    def __len__(self) -> int:
        return len(self.clips) * self.crops

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        wav = self.clips[index % len(self.clips)]
        if wav.numel() < self.segment:
            wav = torch.nn.functional.pad(wav, (0, self.segment - wav.numel()))
        start = int(torch.randint(wav.numel() - self.segment + 1, ())) if self.train else 0
        return {"audio": wav[start : start + self.segment]}


class MusicDataModule(TrainValDataModule):
    """Training data for `SEANetCodec` models (``sample_rate`` must equal the model's)."""

    def __init__(self, root: str, csv_file: str | None = "musiccaps.csv", audio_dir: str = "audio",
                 sample_rate: int = 16000, segment_seconds: float = 1.0, batch_size: int = 16, crops_per_clip: int = 4,
                 num_workers: int = 0, max_clips: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        segment = int(h.segment_seconds * h.sample_rate)
        train = find_clips(h.root, h.csv_file, h.audio_dir, "train")[: h.max_clips]
        val = find_clips(h.root, h.csv_file, h.audio_dir, "val")[: h.max_clips]
        self.train_set = AudioClips(train, h.sample_rate, segment, train=True, crops_per_clip=h.crops_per_clip)
        self.val_set = AudioClips(val or train[:8], h.sample_rate, segment, train=False)
