"""The shared pieces of the tasks: default data, dataset lookup, baseline pairings, gathering checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from anygpt.data.readers import DatasetError
from benchmarks.tasks import runner
from benchmarks.tasks.runner import Evaluation, Prediction, derangement, locate, sample_rows
from benchmarks.tasks.vctk_tts import interleave_speakers, other_speaker_pairing


def test_derangement_pairs_every_item_with_another():
    for n in (2, 3, 10, 101):
        perm = derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
    assert derangement(1, 0) is None
    assert derangement(10, 3) == derangement(10, 3) and derangement(10, 3) != derangement(10, 4)


def test_other_speaker_pairing_and_interleaving():
    class U:
        def __init__(self, speaker, k):
            self.speaker, self.k = speaker, k

    items = interleave_speakers([U("a", 0), U("a", 1), U("a", 2), U("b", 0), U("c", 0)])
    assert [(u.speaker, u.k) for u in items] == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("a", 2)]
    pairing = other_speaker_pairing([u.speaker for u in items])
    assert all(items[j].speaker != items[i].speaker for i, j in enumerate(pairing))
    assert other_speaker_pairing(["a", "a"]) == [1, 0]  # one speaker: another sentence at least
    assert other_speaker_pairing(["a"]) is None


def test_locate_names_every_path_it_tried(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "dataset_coco.json").write_text("{}")
    assert locate(tmp_path, ("coco/dataset_coco.json",), "json") == tmp_path / "coco" / "dataset_coco.json"
    with pytest.raises(DatasetError, match=r"tried .*librispeech/test-clean"):
        locate(tmp_path, ("librispeech",), "LibriSpeech test-clean/ folder", inside="test-clean")


def test_default_data_is_the_demo_corpus(tmp_path, monkeypatch, demo_corpus):
    monkeypatch.setattr(runner, "DEMO_DIR", demo_corpus)
    assert runner.data_root(None) == demo_corpus  # built already: used as is
    built = []
    import anygpt.data.demo as demo

    monkeypatch.setattr(runner, "DEMO_DIR", tmp_path / "demo")
    monkeypatch.setattr(demo, "build_demo_corpus", lambda out: built.append(Path(out)))
    assert runner.data_root(None) == tmp_path / "demo" and built == [tmp_path / "demo"]


def test_gather_rejects_a_wrong_prediction_count():
    ev = Evaluation.__new__(Evaluation)
    ev.world, ev.args = 1, runner.TaskArgs("coco-caption", "x")
    preds = {0: Prediction("a"), 1: Prediction("b")}
    assert [p.key for p in ev.gather(preds, 2)] == ["a", "b"]
    with pytest.raises(RuntimeError, match="gathered 2 predictions for 3 items"):
        ev.gather(preds, 3)


def test_empty_and_sampled_rows():
    assert Prediction("k").empty and Prediction("k", text="  ").empty and not Prediction("k", text="a").empty
    assert not Prediction("k", path="x.png").empty and Prediction("k", note="no span").empty
    assert sample_rows(3, 12) == [0, 1, 2] and sample_rows(100, 4) == [0, 25, 50, 75]
