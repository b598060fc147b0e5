"""Every raw source of the paper's mix, on a few files each test writes in the dataset's real layout: good rows become
items, bad rows are reported with file and line (or entry) and what to do, and references that leave the dataset's
root are refused unless allowed."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.data.readers import AudioSegment, DatasetError, SkipReport, gigaspeech_text, iter_json_array
from anygpt.data.sources import (
    MLS,
    MMC4,
    AnyInstruct,
    CocoKarpathy,
    CommonVoice,
    GigaSpeech,
    ImageTextTars,
    JourneyDB,
    RawSource,
)


def items_of(source: RawSource, chunk_size: int = 100):
    """All items of a source, through its chunks (as prepare's workers read them), and the report."""
    report = SkipReport()
    items = []
    for chunk in source.chunks(chunk_size, report):
        items.extend(chunk)
        report.skipped.extend(getattr(chunk, "bad", []))
    return items, report


def reasons(report: SkipReport) -> str:
    return " | ".join(f"{where}: {why}" for where, why in report.skipped)


def audio(path, seconds=0.5, rate=16000, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate, **kwargs)
    return path


def image(path, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 30, 30)).save(path)
    return path


# ------------------------------------------------------------------------------------------------------------ speech
def test_mls_transcripts_and_audio_tree(tmp_path):
    root = tmp_path / "mls_english"
    audio(root / "train/audio/4800/10003/4800_10003_000000.flac")
    audio(root / "train/audio/4800/10003/4800_10003_000001.opus", format="OGG", subtype="OPUS")
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "train/transcripts.txt").write_text(
        "4800_10003_000000\tthe first line read aloud\n"
        "4800_10003_000001\tthe second one\n"
        "../../etc/passwd\tan id that is not an MLS id\n"
        "4800_10003_000009\ta line whose audio was never downloaded\n")
    items, report = items_of(MLS(str(root), all_levels=True))
    assert [i.meta["id"] for i in items] == ["4800_10003_000000", "4800_10003_000001"]
    assert items[0].meta == {"task": "asr", "text": "the first line read aloud", "source": "mls",
                             "id": "4800_10003_000000", "speaker": "4800", "all_levels": ["speech0"]}
    assert items[1].media["speech0"][1].endswith("4800_10003_000001.opus")
    assert [w.rsplit(":", 1)[1] for w, _ in report.skipped] == ["3", "4"]
    assert "not an MLS utterance id" in reasons(report) and "transcript without audio" in reasons(report)


def test_common_voice_tsv_and_clips(tmp_path):
    root = tmp_path / "cv-corpus-17.0" / "en"
    audio(root / "clips/common_voice_en_1.mp3", format="MP3")
    audio(root / "clips/common_voice_en_2.mp3", format="MP3")
    (tmp_path / "secret.mp3").write_bytes(b"outside the dataset")
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents"
    rows = [header,
            'abc123\tcommon_voice_en_1.mp3\ts1\tThe "quoted" word stays.\t\t2\t0\tthirties\tmale\tEngland',
            "def456\tcommon_voice_en_2.mp3\ts2\tA second sentence.\t\t3\t0\t\t\t",
            "ghi789\tcommon_voice_en_3.mp3\ts3\tIts clip is missing.\t\t2\t0\t\t\t",
            "jkl000\t../../../secret.mp3\ts4\tA path that climbs out.\t\t2\t0\t\t\t",
            f"mno111\t{tmp_path / 'secret.mp3'}\ts5\tAn absolute path.\t\t2\t0\t\t\t",
            "pqr222\tcommon_voice_en_1.mp3\ts6\t\t\t2\t0\t\t\t"]
    (root / "train.tsv").write_text("\n".join(rows) + "\n")
    items, report = items_of(CommonVoice(str(root)))
    assert [(i.meta["speaker"], i.meta["text"]) for i in items] == [("abc123", 'The "quoted" word stays.'),
                                                                    ("def456", "A second sentence.")]
    assert [w.rsplit(":", 1)[1] for w, _ in report.skipped] == ["4", "5", "6", "7"]
    assert reasons(report).count("leaves the dataset root") == 2 and "--allow_outside_root" in reasons(report)
    allowed = CommonVoice(str(root))
    allowed.allow_outside_root = True
    items, report = items_of(allowed)
    assert len(items) == 4 and [w.rsplit(":", 1)[1] for w, _ in report.skipped] == ["4", "7"]
    with pytest.raises(DatasetError, match="dev.tsv"):
        items_of(CommonVoice(str(root), split="dev"))


def gigaspeech(tmp_path):
    root = tmp_path / "GigaSpeech"
    audio(root / "audio/podcast/P0000/POD0000000001.opus", seconds=3.0, format="OGG", subtype="OPUS")
    segments = [
        {"sid": "POD0000000001_S0000000", "begin_time": 0.2, "end_time": 1.4, "subsets": ["{XL}", "{L}"],
         "text_tn": "DOUGLAS MCGRAY IS GOING TO BE OUR GUIDE <COMMA> YOU SEE <PERIOD>"},
        {"sid": "POD0000000001_S0000001", "begin_time": 1.5, "end_time": 2.5, "subsets": ["{XL}"],
         "text_tn": "<SIL>"},
        {"sid": "POD0000000001_S0000002", "begin_time": 2.0, "end_time": 2.9, "subsets": ["{XL}"],
         "text_tn": "IS IT <QUESTIONMARK>"},
        {"sid": "POD0000000001_S0000003", "begin_time": 0.0, "end_time": 1.0, "subsets": ["{DEV}"],
         "text_tn": "ANOTHER SUBSET"}]
    meta = {"dataset": "GigaSpeech", "language": "EN", "version": "v1.0.0", "audios": [
        {"aid": "POD0000000001", "path": "audio/podcast/P0000/POD0000000001.opus", "format": "opus",
         "sample_rate": 16000, "duration": 3.0, "source": "podcast", "segments": segments},
        {"aid": "POD0000000002", "path": "audio/podcast/P0000/POD0000000002.opus", "format": "opus",
         "sample_rate": 16000, "duration": 9.0, "source": "podcast", "segments": segments[:1]},
        {"aid": "POD0000000003", "path": "../outside.opus", "segments": segments[:1]}]}
    (root / "GigaSpeech.json").write_text(json.dumps(meta, indent=2))
    return root


def test_gigaspeech_metadata_is_streamed_and_segments_cut(tmp_path):
    root = gigaspeech(tmp_path)
    items, report = items_of(GigaSpeech(str(root / "GigaSpeech.json"), subsets="XL", lowercase=True))
    assert [i.meta["text"] for i in items] == ["douglas mcgray is going to be our guide, you see.", "is it?"]
    segment = items[0].media["speech0"][1]  # spooled and read back
    assert isinstance(segment, AudioSegment) and (segment.begin, segment.end) == (0.2, 1.4)
    found = reasons(report)
    assert "audios[1]" in found and "POD0000000002.opus not found" in found and "audios[2]" in found
    assert "leaves the dataset root" in found and "garbage utterance <SIL>" in found
    lines = [w.split(":")[-1].split(" ")[0] for w, _ in report.skipped]
    assert all(n.isdigit() and int(n) > 1 for n in lines)  # file + line of the entry
    dev, _ = items_of(GigaSpeech(str(root / "GigaSpeech.json"), subsets=["DEV"]))
    assert [i.meta["id"] for i in dev] == ["POD0000000001_S0000003"]
    assert gigaspeech_text("A <COMMA> B <EXCLAMATIONPOINT>") == "A, B!"


def test_json_array_streaming_survives_small_reads(tmp_path):
    rows = [{"n": i, "text": "x" * (i * 7)} for i in range(40)]
    (tmp_path / "m.json").write_text(json.dumps({"head": 1, "audios": rows}, indent=1))
    got = list(iter_json_array(tmp_path / "m.json", "audios", chunk_chars=16))
    assert [e for _, _, e in got] == rows and got[1][1] > got[0][1]


# ------------------------------------------------------------------------------------------------------------ images
def mmc4_docs(tmp_path):
    images = tmp_path / "mmc4/images"
    image(images / "b9040a0dbb22.jpg")
    image(images / "db1c21bc8474.jpg")
    docs = [
        {"url": "http://example.com/1", "text_list": ["Lock the door.", "Press the switch.", "All doors lock."],
         "image_info": [{"image_name": "b9040a0dbb22.jpg", "matched_text_index": 2, "matched_sim": 0.27,
                         "face_detections": None, "raw_url": "http://example.com/a.jpg"},
                        {"image_name": "db1c21bc8474.jpg", "matched_text_index": 1, "matched_sim": 0.32,
                         "face_detections": None, "raw_url": "http://example.com/b.jpg"},
                        {"image_name": "0000deadbeef.jpg", "matched_text_index": 0, "matched_sim": 0.3,
                         "face_detections": None, "raw_url": "http://example.com/c.jpg"}],
         "similarity_matrix": [[0.2, 0.3, 0.27]], "could_have_url_duplicate": 0},
        {"url": "http://example.com/2", "text_list": ["Nothing was downloaded."],
         "image_info": [{"image_name": "ffffffffffff.jpg", "matched_text_index": 0}]},
        {"url": "http://example.com/3", "text_list": ["Climbs out."],
         "image_info": [{"image_name": "../../../etc/passwd", "matched_text_index": 0}]},
        {"url": "http://example.com/4", "text_list": "not a list"}]
    plain = tmp_path / "mmc4/docs_no_face_shard_0_v3.jsonl"
    plain.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    zipped = tmp_path / "mmc4/docs_no_face_shard_1_v3.jsonl.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("docs_no_face_shard_1_v3.jsonl", json.dumps(docs[0]) + "\n")
    return tmp_path / "mmc4"


def test_mmc4_documents_interleave_their_downloaded_images(tmp_path):
    root = mmc4_docs(tmp_path)
    items, report = items_of(MMC4(str(root / "docs_*"), image_dir=str(root / "images")))
    assert len(items) == 2  # the plain file's first document and the zipped copy of it
    doc = items[0]
    assert doc.meta["task"] == "interleaved" and doc.meta["url"] == "http://example.com/1"
    assert doc.meta["text"] == "Lock the door. <media:image0> Press the switch. <media:image1> All doors lock."
    assert [m for m, _ in doc.media.values()] == ["image", "image"]
    assert doc.media["image0"][1].endswith("db1c21bc8474.jpg") and doc.media["image1"][1].endswith("b9040a0dbb22.jpg")
    found = reasons(report)
    assert "docs_no_face_shard_0_v3.jsonl:1: 1 of 3 images not in" in found  # dropped, named
    assert "shard_0_v3.jsonl:2: 0 of 1 images found" in found and "shard_0_v3.jsonl:3: media reference" in found
    assert "shard_0_v3.jsonl:4: malformed document" in found
    assert "docs_no_face_shard_1_v3.jsonl.zip!docs_no_face_shard_1_v3.jsonl:1" in found


def test_journeydb_annotations_and_extracted_images(tmp_path):
    root = tmp_path / "JourneyDB/data/train"
    image(root / "imgs/000/7a2c.jpg")
    rows = [{"img_path": "./000/7a2c.jpg", "prompt": "aniva lighthouse, weathered --ar 16:9 --v 5",
             "Task1": {"Style": ["weathered"], "Content": ["lighthouse"]},
             "Task2": {"Caption": "Aniva Lighthouse stands tall against the sea."}},
            {"img_path": "./000/missing.jpg", "prompt": "p", "Task2": {"Caption": "c"}},
            {"img_path": "./000/7a2c.jpg", "prompt": "p", "Task2": {}},
            {"img_path": "/etc/hosts", "prompt": "p", "Task2": {"Caption": "c"}}]
    (root / "train_anno_realease_repath.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items, report = items_of(JourneyDB(str(root / "train_anno_realease_repath.jsonl")))
    assert [i.meta["text"] for i in items] == ["Aniva Lighthouse stands tall against the sea."]
    assert items[0].key == "journeydb-000-7a2c"
    assert [w.rsplit(":", 1)[1] for w, _ in report.skipped] == ["2", "3", "4"]
    assert "extract its imgs/NNN.tgz" in reasons(report) and "Task2.Caption" in reasons(report)
    prompts, _ = items_of(JourneyDB(str(root / "train_anno_realease_repath.jsonl"), text="prompt"))
    assert prompts[0].meta["text"].startswith("aniva lighthouse")


def test_laion_style_webdataset_tars(tmp_path):
    """img2dataset's output: per sample KEY.jpg, KEY.txt (caption) and KEY.json (url, caption, status ...)."""
    def member(tar, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    jpg = buffer.getvalue()
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        member(tar, "000000000.jpg", jpg)
        member(tar, "000000000.txt", b"a red bus in the rain")
        member(tar, "000000000.json", json.dumps({"url": "http://x/0.jpg", "caption": "a red bus in the rain",
                                                  "key": "000000000", "status": "success"}).encode())
        member(tar, "000000001.jpg", jpg)
        member(tar, "000000001.json", json.dumps({"top_caption": "a cat on a mat", "key": "000000001"}).encode())
        member(tar, "000000002.txt", b"a caption without its image")
    items, report = items_of(ImageTextTars(str(tmp_path / "*.tar")))
    assert [(i.key, i.meta["text"]) for i in items] == [("image_text-00000-000000000", "a red bus in the rain")]
    assert isinstance(items[0].media["image0"][1], bytes)
    assert [w for w, _ in report.skipped] == [f"{tmp_path / '00000.tar'}:000000001", f"{tmp_path / '00000.tar'}:"
                                                                                     "000000002"]
    coco_style, _ = items_of(ImageTextTars(str(tmp_path / "*.tar"), caption_key="top_caption"))  # LAION-COCO
    assert [i.meta["text"] for i in coco_style] == ["a red bus in the rain", "a cat on a mat"]


# ------------------------------------------------------------------------------------------------------ containment
def test_rows_naming_files_outside_the_root_are_reported_not_read(tmp_path):
    (tmp_path / "secret.png").write_bytes(b"not for us")
    root = tmp_path / "coco"
    image(root / "train2014/ok.jpg")
    entries = [{"filepath": "train2014", "filename": "ok.jpg", "imgid": 0, "split": "train",
                "sentences": [{"raw": "fine"}]},
               {"filepath": "train2014", "filename": "../../secret.png", "imgid": 1, "split": "train",
                "sentences": [{"raw": "climbs out"}]},
               {"filepath": str(tmp_path), "filename": "secret.png", "imgid": 2, "split": "train",
                "sentences": [{"raw": "absolute"}]}]
    (root / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    items, report = items_of(CocoKarpathy(str(root / "dataset_coco.json")))
    assert [i.meta["id"] for i in items] == [0]
    assert [w.rsplit("[", 1)[1] for w, _ in report.skipped] == ["1]", "2]"]
    assert all("leaves the dataset root" in why for _, why in report.skipped)

    chat = tmp_path / "chat"
    image(chat / "media/cat.png")
    rows = [{"id": "ok", "conversation": [[{"role": "user", "message": "What is it? [image: media/cat.png]"},
                                           {"role": "assistant", "message": "A cat."}]]},
            {"id": "bad", "conversation": [[{"role": "user", "message": "And this? [image: ../secret.png]"},
                                            {"role": "assistant", "message": "Your secret."}]]}]
    (chat / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items, report = items_of(AnyInstruct(str(chat / "train.jsonl")))
    assert [i.meta["id"] for i in items] == ["ok"]
    assert report.skipped[0][0].endswith("train.jsonl:2") and "leaves the dataset root" in report.skipped[0][1]
    # the dataset root can be wider than the folder paths resolve from (the demo's dialogues name ../coco/...)
    items, report = items_of(AnyInstruct(str(chat / "train.jsonl"), root=str(tmp_path)))
    assert len(items) == 2 and not report.skipped
