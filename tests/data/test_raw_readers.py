"""Raw dataset readers on small hand-written trees: good records parse, bad ones raise or are skipped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from anygpt.data.sources.anyinstruct import read_anyinstruct
from anygpt.data.sources.base import DatasetError, SkipReport, parse_media
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.data.sources.librispeech import read_librispeech
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.data.sources.vctk import read_vctk


def _wav(path, rate=16000, seconds=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(rate * seconds), np.float32), rate)
    return path


def test_missing_roots_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    for call in (
        lambda: list(read_librispeech(missing, "test-clean")),
        lambda: list(read_vctk(missing)),
        lambda: list(read_coco_karpathy(missing / "dataset_coco.json")),
        lambda: list(read_musiccaps(missing / "musiccaps.csv")),
        lambda: list(read_anyinstruct(missing / "train.jsonl")),
    ):
        with pytest.raises(DatasetError, match=str(missing)):
            call()


def test_librispeech_transcript_without_audio(tmp_path):
    chapter = tmp_path / "test-clean" / "61" / "70968"
    _wav(chapter / "61-70968-0000.flac")
    (chapter / "61-70968.trans.txt").write_text(
        "61-70968-0000 HELLO WORLD\n61-70968-0001 NO AUDIO HERE\n61-70968-0002\n"
    )
    with pytest.raises(DatasetError, match="61-70968-0001"):
        list(read_librispeech(tmp_path, "test-clean"))
    report = SkipReport()
    utts = list(read_librispeech(tmp_path, "test-clean", report=report))
    assert [(u.utt_id, u.speaker, u.chapter, u.text) for u in utts] == [("61-70968-0000", "61", "70968", "HELLO WORLD")]
    assert len(report) == 2 and "trans.txt:2" in report.skipped[0][0] and "no transcript" in report.skipped[1][1]
    with pytest.raises(DatasetError, match="dev-clean.*found: test-clean"):
        list(read_librispeech(tmp_path, "dev-clean"))


def test_vctk_both_release_layouts(tmp_path):
    (tmp_path / "txt" / "p225").mkdir(parents=True)
    (tmp_path / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.\n")
    (tmp_path / "txt" / "p225" / "p225_002.txt").write_text("Ask her to bring these things.\n")
    _wav(tmp_path / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac", 48000)
    report = SkipReport()
    utts = list(read_vctk(tmp_path, report=report))
    assert [(u.utt_id, u.text) for u in utts] == [("p225_001", "Please call Stella.")]
    assert len(report) == 1 and "p225_002" in report.summary()


def test_coco_karpathy_malformed_entries(tmp_path):
    _wav(tmp_path / "val2014" / "dummy.wav")  # creates the folder
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "val2014" / "a.jpg")
    data = {
        "images": [
            {
                "filepath": "val2014",
                "filename": "a.jpg",
                "imgid": 0,
                "cocoid": 7,
                "split": "test",
                "sentences": [{"raw": "A cat. "}, {"raw": "A dog."}],
            },
            {
                "filepath": "val2014",
                "filename": "missing.jpg",
                "imgid": 1,
                "split": "test",
                "sentences": [{"raw": "x"}],
            },
            {"filepath": "val2014", "imgid": 2, "split": "train", "sentences": []},
        ]
    }
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data))
    report = SkipReport()
    recs = list(read_coco_karpathy(tmp_path / "dataset_coco.json", report=report))
    assert [(r.image_id, r.cocoid, r.captions) for r in recs] == [(0, 7, ["A cat.", "A dog."])]
    assert len(report) == 2 and "images[1]" in report.skipped[0][0] and "images[2]" in report.skipped[1][0]
    assert list(read_coco_karpathy(tmp_path / "dataset_coco.json", split="train", report=SkipReport())) == []
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json"):
        list(read_coco_karpathy(tmp_path / "bad.json"))


def test_musiccaps_original_columns_and_bad_rows(tmp_path):
    _wav(tmp_path / "audio" / "abc-30-40.wav", 32000)
    _wav(tmp_path / "audio" / "def.wav", 32000)
    (tmp_path / "musiccaps.csv").write_text(
        "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval\n"
        "abc,30,40,/m/0,\"['piano', 'slow']\",A slow piano.,4,False,True\n"
        'def,0,10,/m/0,"[\'broken",Bad aspects.,4,False,False\n'
        "ghi,0,10,/m/0,[],No audio file.,4,False,False\n"
    )
    with pytest.raises(DatasetError, match=r"musiccaps.csv:3"):
        list(read_musiccaps(tmp_path / "musiccaps.csv"))
    report = SkipReport()
    clips = list(read_musiccaps(tmp_path / "musiccaps.csv", report=report))
    assert [(c.ytid, c.aspects, c.start_s, c.split) for c in clips] == [("abc", ["piano", "slow"], 30.0, "test")]
    assert len(report) == 2 and "ghi" in report.skipped[1][1]
    assert list(read_musiccaps(tmp_path / "musiccaps.csv", split="train", report=SkipReport())) == []


def test_anyinstruct_jsonl_and_json(tmp_path):
    _wav(tmp_path / "speech" / "q.flac")
    good = {
        "id": 1,
        "conversation": [
            [
                {"role": "user", "message": "[speech: speech/q.flac] answer this"},
                {"role": "assistant", "message": "Sure."},
            ]
        ],
    }
    bad_media = {
        "id": 2,
        "conversation": [
            [{"role": "user", "message": "Describe [image: nope.png]"}, {"role": "assistant", "message": "A cat."}]
        ],
    }
    no_reply = {"id": 3, "conversation": [[{"role": "user", "message": "hi"}]]}
    lines = [json.dumps(good), "{broken", json.dumps(bad_media), json.dumps(no_reply)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"train.jsonl:2"):
        list(read_anyinstruct(tmp_path / "train.jsonl"))
    report = SkipReport()
    rows = list(read_anyinstruct(tmp_path / "train.jsonl", report=report))
    assert len(rows) == 1 and rows[0].turns == [("[speech: speech/q.flac] answer this", "Sure.")]
    assert rows[0].media[0].modality == "speech" and rows[0].media[0].path == tmp_path / "speech" / "q.flac"
    assert [loc.rsplit(":", 1)[1] for loc, _ in report.skipped] == ["2", "3", "4"]
    (tmp_path / "all.json").write_text(json.dumps([good]))
    assert len(list(read_anyinstruct(tmp_path / "all.json"))) == 1


def test_parse_media_placeholders(tmp_path):
    refs = parse_media("Draw it. [image: a/b c.png] then [music: m.flac]", tmp_path)
    assert [(r.modality, r.ref) for r in refs] == [("image", "a/b c.png"), ("music", "m.flac")]
