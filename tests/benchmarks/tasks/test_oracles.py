"""Oracles that would catch a mis-pairing anywhere between reading items and scoring them: the task plumbing runs as
usual, but the "model" answers with the references themselves (the real transcript, caption, image or clip).

Perfect answers must get the perfect score (WER 0), the reference's own score (same numbers as the real pairs), and
beat the chance-level baselines under the judges shipped with anygpt, on the demo corpus.
"""

from __future__ import annotations

import shutil

import pytest

from benchmarks.tasks.coco_caption import CocoCaption
from benchmarks.tasks.coco_t2i import CocoT2i
from benchmarks.tasks.items import Prediction, safe_name
from benchmarks.tasks.librispeech_asr import LibrispeechAsr
from benchmarks.tasks.musiccaps_caption import MusiccapsCaption
from benchmarks.tasks.musiccaps_gen import MusiccapsGen
from benchmarks.tasks.vctk_tts import VctkTts

pytestmark = pytest.mark.slow


def copy_as_prediction(task, key: str, source) -> Prediction:
    path = task.media_dir / "predictions" / f"{safe_name(key)}{source.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return Prediction(key, path=str(path))


class TranscriptOracle(LibrispeechAsr):
    def predict_batch(self, items, keys, generator):
        return [Prediction(k, text=it.text) for it, k in zip(items, keys, strict=True)]


class CaptionOracle(CocoCaption):
    """Answers each image with one of its own reference captions, or (``shift``) with another image's."""

    shift = 0

    def read_items(self, root):
        items = super().read_items(root)
        self.answer = {str(it.image_id): items[(i + self.shift) % len(items)].captions[0]
                       for i, it in enumerate(items)}
        return items

    def predict_batch(self, items, keys, generator):
        return [Prediction(k, text=self.answer[k]) for k in keys]


class MisPairedCaptionOracle(CaptionOracle):
    shift = 1


class ImageOracle(CocoT2i):
    def predict_batch(self, items, keys, generator):
        return [copy_as_prediction(self, k, it.path) for it, k in zip(items, keys, strict=True)]


class MusicCaptionOracle(MusiccapsCaption):
    def predict_batch(self, items, keys, generator):
        return [Prediction(k, text=it.caption) for it, k in zip(items, keys, strict=True)]


class MusicOracle(MusiccapsGen):
    def predict_batch(self, items, keys, generator):
        return [copy_as_prediction(self, k, it.path) for it, k in zip(items, keys, strict=True)]


class SpeechOracle(VctkTts):
    def predict_batch(self, items, keys, generator):
        return [copy_as_prediction(self, k, it.target.path) for it, k in zip(items, keys, strict=True)]


def common(bundle, corpus, out) -> dict:
    return {"ckpt": str(bundle), "data": corpus, "out": out, "batch_size": 4, "accelerator": "cpu", "resamples": 500}


def test_reference_transcripts_score_wer_zero_and_beat_the_baselines(bundle, demo_corpus, tmp_path):
    results = TranscriptOracle(split="train-clean-100", **common(bundle, demo_corpus, tmp_path)).run()
    assert results["value"] == 0.0 and results["interval"] == [0.0, 0.0]
    for name in ("empty", "frequent-words"):
        assert results["baselines"][name]["difference"]["wer"]["beats"], name


def test_reference_captions_get_the_top_cider_and_mis_paired_ones_do_not(bundle, demo_corpus, tmp_path):
    options = {"split": "train", "limit": 12, "cider_tokenizer": "python", **common(bundle, demo_corpus, tmp_path)}
    paired = CaptionOracle(**options).run()
    options["out"] = tmp_path / "mis-paired"
    mis_paired = MisPairedCaptionOracle(**options).run()
    assert paired["value"] > 2 * mis_paired["value"] and paired["value"] > 1.0
    assert paired["baselines"]["random-train-caption"]["difference"]["cider"]["beats"]
    assert not mis_paired["baselines"]["random-train-caption"]["difference"]["cider"]["beats"]


def test_real_images_beat_shuffled_pairs_under_the_shipped_clip_judge(bundle, demo_corpus, tmp_path):
    results = ImageOracle(split="train", limit=40, **common(bundle, demo_corpus, tmp_path)).run()
    assert "trained on the anygpt demo corpus" in results["judge"]  # the shipped judge
    reference = results["reference"]["metrics"]["clip_score"]
    assert results["value"] == pytest.approx(reference["value"], abs=1e-6)  # generated == real: same pairs
    assert results["baselines"]["shuffled"]["difference"]["clip_score"]["beats"]


def test_real_music_and_captions_beat_shuffled_pairs_under_the_shipped_clap_judge(bundle, demo_corpus, tmp_path):
    gen = MusicOracle(split="train", **common(bundle, demo_corpus, tmp_path / "gen")).run()
    assert gen["value"] == pytest.approx(gen["reference"]["metrics"]["clap_score"]["value"], abs=1e-5)
    assert gen["baselines"]["shuffled"]["difference"]["clap_score"]["beats"]
    caption = MusicCaptionOracle(split="train", **common(bundle, demo_corpus, tmp_path / "caption")).run()
    assert caption["value"] == pytest.approx(caption["reference"]["metrics"]["clap_score"]["value"], abs=1e-5)
    assert caption["baselines"]["shuffled"]["difference"]["clap_score"]["beats"]


def test_a_perfect_voice_clone_beats_another_speakers_recording(bundle, demo_corpus, tmp_path):
    results = SpeechOracle(**common(bundle, demo_corpus, tmp_path)).run()
    reference = results["reference"]["metrics"]
    for metric in ("wer", "speaker_similarity"):
        assert results["metrics"][metric]["value"] == pytest.approx(reference[metric]["value"], abs=1e-6)
    assert results["baselines"]["other-speaker"]["difference"]["speaker_similarity"]["beats"]
    assert results["baselines"]["silence"]["difference"]["speaker_similarity"]["beats"]
