"""The music codec's training data reads MusicCaps through the same reader as ``anygpt prepare``."""

import csv

import numpy as np
import soundfile as sf

from anygpt.modalities.music.data import MusicDataModule, find_clips

COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
           "is_balanced_subset", "is_audioset_eval")


def musiccaps_root(root, clips=12, every=3):
    """A MusicCaps root in the real csv's columns; every ``every``-th clip is an AudioSet evaluation clip, its audio
    loud (0.9) where the training clips are quiet (0.1), so a loaded clip tells which it was."""
    (root / "audio").mkdir(parents=True)
    evaluation = set()
    with open(root / "musiccaps.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(clips):
            ytid, is_eval = f"yt{i:09d}", i % every == 0
            writer.writerow([ytid, 30, 40, "/m/04rlf", "['piano', 'calm']", f"a calm piano piece number {i}", 4,
                             str(i % 2 == 0), str(is_eval)])
            sf.write(str(root / "audio" / f"{ytid}.wav"), np.full(3200, 0.9 if is_eval else 0.1, np.float32), 16000)
            if is_eval:
                evaluation.add(ytid)
    return evaluation


def test_musiccaps_evaluation_clips_never_reach_the_codec_training_split(tmp_path):
    evaluation = musiccaps_root(tmp_path)
    train = {p.stem for p in find_clips(tmp_path, split="train")}
    assert len(evaluation) == 4 and train == {f"yt{i:09d}" for i in range(12)} - evaluation
    assert {p.stem for p in find_clips(tmp_path, split="test")} == evaluation
    data = MusicDataModule(str(tmp_path), segment_seconds=0.1, batch_size=2, crops_per_clip=1)
    data.setup("fit")
    assert len(data.train_set.clips) == 8 and all(float(c.abs().max()) < 0.5 for c in data.train_set.clips)
    assert all(float(c.abs().max()) < 0.5 for c in data.val_set.clips)  # no val split: training clips, not eval


def test_clips_outside_the_audio_folder_are_skipped(tmp_path):
    musiccaps_root(tmp_path, clips=3)
    (tmp_path / "secret.wav").write_bytes((tmp_path / "audio" / "yt000000001.wav").read_bytes())
    with open(tmp_path / "musiccaps.csv", "a", newline="") as f:
        csv.writer(f).writerow(["../secret", 0, 10, "", "[]", "escapes the folder", 1, "False", "False"])
    assert [p.stem for p in find_clips(tmp_path, split="train")] == ["yt000000001", "yt000000002"]
