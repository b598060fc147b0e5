"""`anygpt prepare`: raw layouts -> shards through Lightning's predict loop, resumable, bad files reported."""

import json
import struct
import wave

import numpy as np
import pytest
import torch

from anygpt.data.prepare import AnyInstruct, AudioCaptionCsv, MusicCaps, prepare
from anygpt.data.shards import ReaderStats, expand_shards, read_manifest, read_shard
from anygpt.modalities.codec import Codec, Modality
from anygpt.modalities.registry import modality_for


class FrameEnergyCodec(Codec):
    """A deterministic stand-in codec: quantised RMS energy of 20 ms frames of 16 kHz audio (no training)."""

    modality = "music"
    sample_rate = 16000
    frame_rate = 50.0

    def __init__(self, levels: int = 16) -> None:
        super().__init__()
        self.levels = levels
        self.register_buffer("gain", torch.tensor(8.0))

    @property
    def codebook_size(self) -> int:
        return self.levels

    @torch.inference_mode()
    def encode(self, items):
        out = []
        for wav in items:
            wav = wav.reshape(-1)
            frames = wav[: wav.numel() // 320 * 320].view(-1, 320)
            rms = frames.pow(2).mean(1).sqrt()
            out.append((rms * self.gain * self.codebook_size).clamp(0, self.codebook_size - 1).long())
        return out

    @torch.inference_mode()
    def decode(self, codes, **context):
        return [c.float() for c in codes]


def write_wav(path, seconds, freq=440.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


@pytest.fixture
def music_dataset(tmp_path):
    audio = tmp_path / "raw" / "audio"
    audio.mkdir(parents=True)
    rows = ["ytid,start_s,end_s,aspect_list,caption,split"]
    for i in range(10):
        write_wav(audio / f"clip{i}.wav", 0.5 + 0.1 * i, freq=200 + 50 * i)
        rows.append(f"clip{i},0,5,\"['calm']\",a calm clip number {i},train")
    (audio / "clip3.wav").write_bytes(b"not a wav file")  # corrupt
    write_wav(audio / "clip7.wav", 0.005)  # shorter than one frame
    rows.append("ghost,0,5,\"['calm']\",a clip whose audio is missing,train")
    (tmp_path / "raw" / "musiccaps.csv").write_text("\n".join(rows) + "\n")
    FrameEnergyCodec(levels=16).save_pretrained(tmp_path / "tok")
    return tmp_path


def test_prepare_writes_shards_manifest_and_report(music_dataset):
    root = music_dataset
    source = MusicCaps(str(root / "raw" / "musiccaps.csv"), split="train")
    summary = prepare({"mc": source}, {"music": str(root / "tok")}, out=str(root / "shards"), chunk_size=4,
                      batch_size=3, num_workers=0, accelerator="cpu", progress=False)["mc"]
    assert summary["samples"] == 8 and summary["skipped"] == 3
    out = root / "shards" / "mc"
    manifest = read_manifest(out)
    assert manifest["num_samples"] == 8 and manifest["vocab"]["codebook_sizes"] == {"music": 16}
    report = json.loads((out / "prepare_report.json").read_text())
    reasons = " | ".join(f"{s['item']}: {s['reason']}" for s in report["skipped"])
    assert "clip3" in reasons and "clip7" in reasons and "ghost" in reasons
    samples = [s for url in expand_shards(str(out)) for s in read_shard(url, ReaderStats(), {"music": 16})]
    assert sorted(s.id for s in samples) == [f"clip{i}" for i in (0, 1, 2, 4, 5, 6, 8, 9)]
    clip9 = next(s for s in samples if s.id == "clip9")
    assert clip9.text == "a calm clip number 9" and clip9.media == {"music0": "music"}
    assert clip9.codes["music0"].shape == (int(1.4 * 16000) // 320,)
    reference = modality_for(FrameEnergyCodec(levels=16))
    wav = reference.read(root / "raw" / "audio" / "clip9.wav")
    assert np.array_equal(clip9.codes["music0"], reference.codec.encode([wav])[0].numpy())


def test_prepare_resumes_and_skips_finished_chunks(music_dataset, capsys):
    root = music_dataset
    source = MusicCaps(str(root / "raw" / "musiccaps.csv"), split="train")
    kwargs = dict(out=str(root / "shards"), chunk_size=4, batch_size=4, num_workers=0, accelerator="cpu",
                  progress=False)
    prepare({"mc": source}, {"music": str(root / "tok")}, **kwargs)
    out = root / "shards" / "mc"
    first = (out / "shard-000000.tar").read_bytes()
    (out / "shard-000001.json").unlink()  # as if the run died while writing chunk 1
    summary = prepare({"mc": source}, {"music": str(root / "tok")}, **kwargs)["mc"]
    assert "1 to tokenize" in capsys.readouterr().out
    assert summary["samples"] == 8 and (out / "shard-000000.tar").read_bytes() == first


def test_prepare_generic_csv_and_dialogues(music_dataset):
    root = music_dataset
    (root / "pairs.csv").write_text("file,text\nraw/audio/clip0.wav,low hum\nraw/audio/clip1.wav,\n")
    dialogues = [{"id": "d0", "conversation": [[
        {"role": "user", "message": "Compose music like this: [music: raw/audio/clip2.wav]"},
        {"role": "assistant", "message": "Here it is: [music: raw/audio/clip4.wav]"}]]}]
    (root / "dialogues.json").write_text(json.dumps(dialogues))
    sources = {"csv": AudioCaptionCsv(str(root / "pairs.csv"), audio_column="file", text_column="text"),
               "chat": AnyInstruct(str(root / "dialogues.json"))}
    summary = prepare(sources, {"music": str(root / "tok")}, out=str(root / "shards"), num_workers=0,
                      accelerator="cpu", progress=False)
    assert summary["csv"]["samples"] == 1 and summary["csv"]["skipped"] == 1
    sample, = read_shard(expand_shards(str(root / "shards" / "chat"))[0])
    turns = sample.turns
    assert turns[0]["message"] == "Compose music like this: <media:m0>"
    assert turns[1]["message"] == "Here it is: <media:m1>" and sample.media == {"m0": "music", "m1": "music"}


def test_prepare_rejects_a_tokenizer_keyed_by_the_wrong_modality(music_dataset):
    root = music_dataset
    with pytest.raises(ValueError, match="key it by its modality name"):
        prepare({"mc": MusicCaps(str(root / "raw" / "musiccaps.csv"))}, {"speech": str(root / "tok")},
                out=str(root / "shards"), accelerator="cpu", progress=False)


@pytest.mark.parametrize("option", ["chunk_size", "batch_size"])
def test_sizes_below_one_are_refused_before_anything_is_written(music_dataset, tmp_path, option):
    with pytest.raises(ValueError, match=f"--{option} must be at least 1, got 0"):
        prepare({"mc": MusicCaps(str(music_dataset / "raw" / "musiccaps.csv"))}, {"music": str(music_dataset / "tok")},
                out=str(tmp_path / "s"), accelerator="cpu", progress=False, **{option: 0})
    assert not (tmp_path / "s").exists()


def test_missing_dataset_names_the_path(tmp_path, music_dataset):
    from anygpt.data.sources.base import DatasetError

    with pytest.raises(DatasetError, match="nowhere.csv"):
        prepare({"mc": MusicCaps(str(tmp_path / "nowhere.csv"))}, {"music": str(music_dataset / "tok")},
                out=str(tmp_path / "s"), accelerator="cpu", progress=False)


def test_wav_header_helper_is_valid(tmp_path):
    write_wav(tmp_path / "a.wav", 0.1)
    assert struct.unpack("<4s", (tmp_path / "a.wav").read_bytes()[:4])[0] == b"RIFF"


def test_files_shared_between_sources_are_encoded_once(music_dataset, monkeypatch, capsys):
    root = music_dataset
    dialogues = [{"id": f"d{n}", "conversation": [[
        {"role": "user", "message": f"Describe [music: raw/audio/clip{i}.wav]"},
        {"role": "assistant", "message": "A calm clip."}]]} for n, i in enumerate((0, 2, 2, 3))]  # clip3 is corrupt
    dialogues.insert(1, dialogues[0])  # the same id twice in a shard: reported, not merged into a broken sample
    (root / "dialogues.json").write_text(json.dumps(dialogues))
    loads = []
    original = Modality.read
    monkeypatch.setattr(Modality, "read", lambda self, src: loads.append(src) or original(self, src))
    sources = {"pairs": MusicCaps(str(root / "raw" / "musiccaps.csv"), split="train"),
               "chat": AnyInstruct(str(root / "dialogues.json"))}
    summary = prepare(sources, {"music": str(root / "tok")}, out=str(root / "shards"), chunk_size=4, num_workers=0,
                      accelerator="cpu", progress=False, share_media=True)
    assert summary["chat"] == {**summary["chat"], "samples": 3, "skipped": 2}  # corrupt file, duplicate id
    report = json.loads((root / "shards" / "chat" / "prepare_report.json").read_text())["skipped"]
    assert {r["item"]: r["reason"].split(":")[0] for r in report} == {"anyinstruct-d3": "cannot load " + str(
        root / "raw" / "audio" / "clip3.wav"), "anyinstruct-d0": "duplicate key"}
    assert "4 media files reused" in capsys.readouterr().out
    loaded = [str(s).rsplit("/", 1)[-1] for s in loads]
    assert loaded.count("clip0.wav") == 1 and loaded.count("clip2.wav") == 1 and loaded.count("clip3.wav") == 2
    assert len(loaded) == 10 + 1  # each file of the pairs once (clip0-9; the missing one is not tried) + clip3 again
    pairs = {s.id: s for u in expand_shards(str(root / "shards" / "pairs")) for s in read_shard(u)}
    chat = [s for u in expand_shards(str(root / "shards" / "chat")) for s in read_shard(u)]
    for sample, clip in zip(chat, ("clip0", "clip2", "clip2"), strict=True):
        assert np.array_equal(sample.codes["m0"], pairs[clip].codes["music0"])


def test_encoding_in_loader_workers_writes_the_same_shards(music_dataset):
    root = music_dataset
    source = MusicCaps(str(root / "raw" / "musiccaps.csv"), split="train")
    codes, reports = {}, {}
    for workers, in_workers in ((0, False), (2, True)):
        out = root / f"shards-{workers}"
        summary = prepare({"mc": source}, {"music": str(root / "tok")}, out=str(out), chunk_size=3, batch_size=2,
                          num_workers=workers, accelerator="cpu", progress=False, encode_in_workers=in_workers)["mc"]
        assert summary["samples"] == 8 and summary["skipped"] == 3
        codes[workers] = {s.id: s.codes["music0"].tolist()
                          for u in expand_shards(str(out / "mc")) for s in read_shard(u)}
        reports[workers] = sorted(r["item"] for r in json.loads((out / "mc" / "prepare_report.json").read_text())[
            "skipped"])
    assert codes[0] == codes[2] and reports[0] == reports[2]


def test_paths_outside_the_dataset_root_need_the_flag(music_dataset):
    root = music_dataset
    chat = root / "chat"
    chat.mkdir()
    rows = [{"id": "d0", "conversation": [[{"role": "user", "message": "Play [music: ../raw/audio/clip0.wav]"},
                                           {"role": "assistant", "message": "Calm."}]]}]
    (chat / "dialogues.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    kwargs = dict(num_workers=0, accelerator="cpu", progress=False)
    summary = prepare({"chat": AnyInstruct(str(chat / "dialogues.jsonl"))}, {"music": str(root / "tok")},
                      out=str(root / "strict"), **kwargs)["chat"]
    assert summary["samples"] == 0 and summary["skipped"] == 1
    report = json.loads((root / "strict" / "chat" / "prepare_report.json").read_text())["skipped"]
    assert report[0]["item"].endswith("dialogues.jsonl:1") and "--allow_outside_root" in report[0]["reason"]
    summary = prepare({"chat": AnyInstruct(str(chat / "dialogues.jsonl"))}, {"music": str(root / "tok")},
                      out=str(root / "trusting"), allow_outside_root=True, **kwargs)["chat"]
    assert summary["samples"] == 1 and summary["skipped"] == 0
    assert not list((root / "trusting" / "chat").glob(".anygpt-plan-*"))  # plan files are cleaned up


def test_tokenizing_leaves_the_seeded_random_streams_as_it_found_them(music_dataset, capsys):
    """A run that prepares its data and then initialises its model (the demo) must draw the same weights whether it
    tokenized chunks (a fresh clone's first run) or found them done (every later run): prepare's DataLoaders and
    Trainer draw random numbers, which must not come out of the caller's seeded streams."""
    import random

    root = music_dataset
    kwargs = dict(out=str(root / "shards"), chunk_size=4, num_workers=0, accelerator="cpu", progress=False)

    def draws() -> tuple:
        torch.manual_seed(7)
        np.random.seed(7)
        random.seed(7)
        prepare({"mc": MusicCaps(str(root / "raw" / "musiccaps.csv"))}, {"music": str(root / "tok")}, **kwargs)
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()

    first = draws()
    assert "0 already done" in capsys.readouterr().out  # this call tokenized every chunk
    again = draws()
    assert "0 to tokenize" in capsys.readouterr().out  # this one found them done
    assert first == again
