"""The demo corpus: layouts readable by the standard readers, deterministic, captions true to the media."""

from __future__ import annotations

import itertools
import json
import re
import time

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.data.demo import build_demo_corpus, demo, speech
from anygpt.data.demo.build import content_hash
from anygpt.data.demo.datamodule import corpus_texts
from anygpt.data.demo.images import COLOURS, NUMBER_WORDS, SIZE
from anygpt.data.demo.music import DURATION, KEY_NAMES, SAMPLE_RATE
from anygpt.data.sources.anyinstruct import read_anyinstruct
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.data.sources.librispeech import read_librispeech
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.data.sources.vctk import read_vctk

SCALE = 0.02
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "corpus"
    manifest = build_demo_corpus(out, seed=0, scale=SCALE, workers=2, progress=False)
    return out, manifest


def test_manifest_counts(corpus):
    out, manifest = corpus
    counts = manifest["counts"]
    assert counts["images"] == {"train": 50, "val": 5, "test": 5}
    assert counts["librispeech"] == {"train-clean-100": 53, "dev-clean": 4, "test-clean": 4}
    assert counts["music"] == {"train": 16, "val": 2, "test": 2}
    assert sum(counts["dialogues"].values()) == 60
    assert manifest["n_files"] == sum(1 for p in out.rglob("*") if p.is_file()) - 2  # all but manifest and README
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_coco_layout_and_captions_match_scenes(corpus):
    out, manifest = corpus
    records = list(read_coco_karpathy(out / manifest["layout"]["coco"]))
    assert len(records) == 60
    assert {r.split for r in records} == {"train", "val", "test"}
    centre_hits = centre_total = 0
    for rec in records:
        assert len(rec.captions) == 5 and len(set(rec.captions)) >= 3  # varied phrasing
        scene = rec.meta["scene"]
        for caption in rec.captions:
            text = caption.lower()
            assert scene["background"]["colour"] in text
            for group in scene["groups"]:
                assert group["colour"] in text and group["shape"] in text
                if group["count"] > 1:
                    assert re.search(rf"\b({NUMBER_WORDS[group['count']]}|{group['count']})\b", text)
            if scene["relation"]:
                assert scene["relation"] in text
        image = np.asarray(Image.open(rec.path).convert("RGB"), dtype=np.float32)
        assert image.shape == (SIZE, SIZE, 3)
        for group in scene["groups"]:  # filled shapes show their colour at their centre
            if group["shape"] in ("ring", "star", "cross"):
                continue
            for x, y in group["centres"]:
                pixel = image[min(SIZE - 1, int(y * SIZE)), min(SIZE - 1, int(x * SIZE))]
                centre_total += 1
                centre_hits += np.abs(pixel - np.array(COLOURS[group["colour"]])).max() < 40
    assert centre_total > 20 and centre_hits / centre_total > 0.9


def test_librispeech_layout_rates_and_alignment(corpus):
    out, _ = corpus
    root = out / "librispeech"
    by_split = {s: list(read_librispeech(root, s)) for s in ("train-clean-100", "dev-clean", "test-clean")}
    train_texts = {u.text for u in by_split["train-clean-100"]}
    assert not train_texts & {u.text for u in by_split["test-clean"]}  # test utterances are held out
    assert len({u.speaker for u in by_split["train-clean-100"]}) >= 8
    for utts in by_split.values():
        for u in utts:
            assert u.text == u.text.upper() and re.fullmatch(r"[A-Z' ]+", u.text)
            assert u.path.name == f"{u.utt_id}.flac" and u.utt_id.startswith(f"{u.speaker}-{u.chapter}-")
            info = sf.info(u.path)
            assert info.samplerate == 16000 and info.channels == 1
            assert 0.95 <= info.duration <= 4.05
            times = [t for _, t in u.alignment["phonemes"]]
            assert len(times) >= 5 and times == sorted(times) and times[-1] < info.duration
            # word events follow the transcript (espeak merges a few function words into their neighbour)
            words, it = [w.upper() for w, _ in u.alignment["words"]], iter(u.text.split())
            assert all(w in it for w in words) and len(words) >= 0.7 * len(u.text.split())


def test_vctk_layout_is_48k_with_unseen_speakers(corpus):
    out, _ = corpus
    utts = list(read_vctk(out / "vctk"))
    assert len({u.speaker for u in utts}) == 8
    libri_speakers = {u.speaker for u in read_librispeech(out / "librispeech", "train-clean-100")}
    assert not libri_speakers & {u.speaker for u in utts}
    for u in utts:
        assert u.path.parent.parent.name == "wav48" and u.path.suffix == ".wav"
        assert sf.info(u.path).samplerate == 48000
    assert (out / "vctk" / "speaker-info.txt").read_text().startswith("ID")


def test_speakers_of_each_split_are_unseen_in_training(corpus):
    out, _ = corpus
    root = out / "librispeech"
    splits = ("train-clean-100", "dev-clean", "test-clean")
    speakers = {s: {u.speaker for u in read_librispeech(root, s)} for s in splits}
    speakers["vctk"] = {u.speaker for u in read_vctk(out / "vctk")}
    for a, b in itertools.combinations(speakers, 2):
        assert not speakers[a] & speakers[b], f"{a} and {b} share speakers {speakers[a] & speakers[b]}"
    # test-clean voices use espeak variants that train and dev never use
    variant = {v.speaker: v.name.split("+")[1] for split in speech.LIBRISPEECH_VOICES.values() for v in split}
    seen = {variant[s] for s in speakers["train-clean-100"] | speakers["dev-clean"]}
    assert not seen & {variant[s] for s in speakers["test-clean"]}


def test_test_texts_never_occur_in_train_or_val(corpus):
    out, manifest = corpus
    assert manifest["counts"]["test_texts_seen_in_training"] == {
        "captions": 0, "transcripts": 0, "vctk_sentences": 0, "music_captions": 0}
    # the demo BPE reads train and val text only
    bpe_text = set(corpus_texts(out))
    test_only = [u.text.lower() for u in read_librispeech(out / "librispeech", "test-clean")]
    test_only += [r.captions[0] for r in read_coco_karpathy(out / manifest["layout"]["coco"], split="test")]
    assert test_only and not bpe_text & set(test_only)
    assert {u.text.lower() for u in read_librispeech(out / "librispeech", "train-clean-100")} <= bpe_text


def test_musiccaps_layout_and_captions(corpus):
    out, manifest = corpus
    clips = list(read_musiccaps(out / manifest["layout"]["musiccaps"]))
    assert len(clips) == 20 and {c.split for c in clips} == {"train", "val", "test"}
    peaks = {}
    for clip in clips:
        audio, rate = sf.read(clip.path, dtype="float32")
        assert rate == SAMPLE_RATE and audio.ndim == 1 and len(audio) == int(DURATION * rate)
        p = clip.extra
        key = f"{KEY_NAMES.get(p['key'], p['key'])} {p['mode']}"
        assert p["melody_instrument"] in clip.caption and key in clip.caption
        assert re.search(rf"\b{p['tempo_bpm']} (BPM|beats per minute)", clip.caption)
        assert f"{p['melody_instrument']} melody" in clip.aspects
        assert ("There are no drums." in clip.caption) == (p["drums"] == "none")
        peaks.setdefault(p["dynamics"], []).append(float(np.abs(audio).max()))
        assert np.sqrt(np.mean(audio**2)) > 0.01  # not silent
    if "soft" in peaks and "loud" in peaks:
        assert max(peaks["soft"]) < min(peaks["loud"])


def test_dialogues_reference_existing_media_of_their_split(corpus):
    out, manifest = corpus
    split_of = {r.path.resolve(): r.split for r in read_coco_karpathy(out / manifest["layout"]["coco"])}
    split_of |= {c.path.resolve(): c.split for c in read_musiccaps(out / manifest["layout"]["musiccaps"])}
    for split, name in manifest["librispeech_splits"].items():
        split_of |= {u.path.resolve(): split for u in read_librispeech(out / "librispeech", name)}
    modalities, spoken = set(), 0
    for split, rel in manifest["layout"]["anyinstruct"].items():
        for d in read_anyinstruct(out / rel, root=out):  # check_files: every placeholder resolves to a file
            assert d.id.startswith(f"demo-{split}-") and d.turns
            for m in d.media:
                modalities.add(m.modality)
                assert d.extra["media"][m.ref]["modality"] == m.modality and d.extra["media"][m.ref]["text"]
                assert split_of.get(m.path.resolve(), split) == split  # no train media in test dialogues
            spoken += d.extra["task"] == "spoken_dialogue"
    assert modalities == {"image", "speech", "music"}
    assert spoken >= 1


def test_rebuild_is_skipped_when_identical(corpus):
    out, manifest = corpus
    start = time.perf_counter()
    again = build_demo_corpus(out, seed=0, scale=SCALE, progress=False)
    assert again == manifest and time.perf_counter() - start < 5


def test_cli_function_reports_existing_build(corpus, capsys):
    out, manifest = corpus
    demo(out, seed=0, scale=SCALE)
    assert manifest["content_hash"] in capsys.readouterr().out


def test_deterministic_across_worker_counts_and_repairs_partial_builds(corpus, tmp_path):
    _, manifest = corpus
    other = build_demo_corpus(tmp_path / "c", seed=0, scale=SCALE, workers=1, progress=False)
    assert other["content_hash"] == manifest["content_hash"]
    next((tmp_path / "c" / "musiccaps" / "audio").glob("*.flac")).unlink()  # an interrupted or damaged build
    repaired = build_demo_corpus(tmp_path / "c", seed=0, scale=SCALE, workers=2, progress=False)
    assert repaired["content_hash"] == manifest["content_hash"] == content_hash(tmp_path / "c")


def test_other_seed_differs(tmp_path):
    a = build_demo_corpus(tmp_path / "a", seed=1, scale=0.005, workers=1, progress=False)
    b = build_demo_corpus(tmp_path / "b", seed=2, scale=0.005, workers=1, progress=False)
    assert a["content_hash"] != b["content_hash"]
    assert a["counts"]["images"] == b["counts"]["images"] and a["counts"]["music"] == b["counts"]["music"]
