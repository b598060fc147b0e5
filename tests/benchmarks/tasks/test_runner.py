"""The shared pieces of the tasks: default data, dataset lookup, baseline pairings, gathering checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from anygpt.data.readers import DatasetError
from benchmarks.tasks import items
from benchmarks.tasks.coco_caption import CocoCaption
from benchmarks.tasks.items import Prediction, locate
from benchmarks.tasks.options import option
from benchmarks.tasks.report import Row, sample_rows
from benchmarks.tasks.scoring import derangement
from benchmarks.tasks.vctk_tts import VctkTts, interleave_speakers, other_speaker_recording


def test_derangement_pairs_every_item_with_another():
    for n in (2, 3, 10, 101):
        perm = derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
    assert derangement(1, 0) is None
    assert derangement(10, 3) == derangement(10, 3) and derangement(10, 3) != derangement(10, 4)


def test_other_speaker_recording_and_interleaving():
    import random

    from anygpt.data.readers import Utterance

    def u(speaker, k, text):
        return Utterance(f"{speaker}_{k}", speaker, f"{speaker}_{k}.wav", text)

    items = interleave_speakers([u("a", 0, "x"), u("a", 1, "y"), u("a", 2, "z"), u("b", 0, "w"), u("c", 0, "X.")])
    assert [(it.speaker, it.utt_id) for it in items] == [("a", "a_0"), ("b", "b_0"), ("c", "c_0"), ("a", "a_1"),
                                                         ("a", "a_2")]
    by_text: dict = {}
    for it in items:
        by_text.setdefault(runner_text_key(it.text), []).append(it)
    rng = random.Random(0)
    # the same sentence by another speaker when the corpus has one ("X." ~ "x"), else another speaker's recording
    assert other_speaker_recording(items[0], by_text, items, rng).utt_id == "c_0"
    for it in items:
        other = other_speaker_recording(it, by_text, items, rng)
        assert other.speaker != it.speaker
    assert other_speaker_recording(items[0], {}, [items[0], items[3]], rng) is None  # one speaker: none


def runner_text_key(text: str) -> str:
    from benchmarks.tasks.vctk_tts import _text_key

    return _text_key(text)


def test_locate_names_every_path_it_tried(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "dataset_coco.json").write_text("{}")
    assert locate(tmp_path, ("coco/dataset_coco.json",), "json") == tmp_path / "coco" / "dataset_coco.json"
    with pytest.raises(DatasetError, match=r"tried .*librispeech/test-clean"):
        locate(tmp_path, ("librispeech",), "LibriSpeech test-clean/ folder", inside="test-clean")


def test_default_data_is_the_demo_corpus(tmp_path, monkeypatch, demo_corpus):
    monkeypatch.setattr(items, "DEMO_DIR", demo_corpus)
    assert items.data_root(None) == demo_corpus  # built already: used as is
    built = []
    monkeypatch.setattr(items, "DEMO_DIR", tmp_path / "demo")
    monkeypatch.setattr(items, "build_demo_corpus", lambda out: built.append(Path(out)))
    assert items.data_root(None) == tmp_path / "demo" and built == [tmp_path / "demo"]


def test_gather_rejects_a_wrong_prediction_count():
    ev = CocoCaption(ckpt="x")
    ev.world = 1
    preds = {0: Prediction("a"), 1: Prediction("b")}
    assert [p.key for p in ev.gather(preds, 2)] == ["a", "b"]
    with pytest.raises(RuntimeError, match="gathered 2 values for 3 items"):
        ev.gather(preds, 3)


def test_empty_and_sampled_rows():
    assert Prediction("k").empty and Prediction("k", text="  ").empty and not Prediction("k", text="a").empty
    assert not Prediction("k", path="x.png").empty and Prediction("k", note="no span").empty
    assert sample_rows(3, 12) == [0, 1, 2] and sample_rows(100, 4) == [0, 25, 50, 75]


def test_report_cells_follow_the_modalitys_media_kind_else_the_suffix():
    row = Row().text("caption", "a cat").media("image", "x.png").media("speech", "y.flac").media("depth", "z.npy")
    row.media("nothing", None).media("generated music", "clip.bin", "music").media("drawing", "x.jpg", "image")
    assert [kind for _, _, kind in row.cells] == ["text", "image", "audio", "array", "download", "audio", "image"]


def test_options_command_and_cache_key_cover_every_option():
    task = CocoCaption(ckpt="runs/x", limit=5, generation={"num_beams": 1}, split="val")
    names = list(task.options())
    assert {"ckpt", "limit", "batch_size", "cache", "resamples", "split", "cider_tokenizer"} <= set(names)
    assert names.index("ckpt") < names.index("split")  # shared options first
    assert task.options()["split"] == "val" and task.options()["limit"] == 5
    assert task.command() == ("anygpt benchmark coco-caption --ckpt runs/x --limit 5 --generation "
                              "'{\"num_beams\": 1}' --split val")
    # every option says on its field whether it keys the prediction cache
    keyed = set(task.cache_options())
    assert {"seed", "batch_size", "prompt", "settings", "generation", "split", "instruction", "devices"} <= keyed
    assert not keyed & {"out", "cache", "judge", "baseline", "report_samples", "resamples", "publish", "ckpt",
                        "limit", "train_split", "cider_tokenizer", "loading"}
    assert "speaker_encoder" not in VctkTts(ckpt="x").cache_options()  # a task's own scoring-only option


def test_option_refuses_a_shared_mutable_default():
    with pytest.raises(TypeError, match="mutable default"):
        option({})
