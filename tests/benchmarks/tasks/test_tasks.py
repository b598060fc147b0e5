"""Every benchmark task end to end on the tiny demo corpus with a random tiny model: files, fields, reports, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anygpt.data.readers import DatasetError
from anygpt.generation.options import PromptOptions
from benchmarks.tasks.registry import BUILTIN_TASKS, available, load_task
from benchmarks.tasks.report import summary
from tests.benchmarks.tasks.conftest import FAST, make_bundle

pytestmark = pytest.mark.slow

# name -> (judge kind, media tags the report must hold, extra arguments)
CASES = {
    "coco-caption": (None, ["<img"], {"cider_tokenizer": "python", "limit": 2}),  # the demo's 2 test images
    "coco-t2i": ("clip", ["<img"], {"split": "val,test"}),  # 4 images x 5 captions
    "librispeech-asr": (None, ["<audio"], {"split": "train-clean-100"}),
    "vctk-tts": ("asr", ["<audio"], {}),
    "musiccaps-caption": ("clap", ["<audio"], {"split": "train"}),
    "musiccaps-gen": ("clap", ["<audio"], {"split": "train"}),
}


def run_task(name: str, bundle: Path, corpus: Path, out: Path, judges: dict[str, str], **kwargs):
    kind, _, extra = CASES[name]
    args = {"ckpt": str(bundle), "data": corpus, "limit": 3, "batch_size": 2, "out": out,
            "generation": FAST[name], **extra, **kwargs}
    if kind is not None:
        args["judge"] = judges[kind]
    return load_task(name)(**args).run()


# the baselines each task computes in the same run (the demo corpus has training data for every one)
BASELINES = {
    "coco-caption": {"random-train-caption"},
    "coco-t2i": {"shuffled", "random-train-image"},
    "librispeech-asr": {"empty", "frequent-words"},
    "vctk-tts": {"silence", "prompt", "other-speaker"},
    "musiccaps-caption": {"shuffled", "random-train-caption"},
    "musiccaps-gen": {"shuffled", "random-train-clip"},
}


def check_estimate(block: dict) -> None:
    low, high = block["interval"]
    assert isinstance(block["value"], float) and low <= block["value"] + 1e-9 and block["value"] <= high + 1e-9


def check_set_distance(block: dict, n: int, n_failed: int, judge: str, html: str) -> None:
    assert block["name"] == f"FD ({judge} judge features)" and not block["higher_is_better"]
    assert block["model"]["n_real"] == n and block["model"]["n_generated"] == n - n_failed
    assert block["model"]["n_failed"] == n_failed
    if n - n_failed >= 2:
        assert block["model"]["value"] >= 0
    assert set(block["baselines"]) == {"random-train-image" if judge == "CLIP" else "random-train-clip"}
    assert all(b["value"] >= 0 and b["n_generated"] == n for b in block["baselines"].values())
    # 3 items: halves of 1 and 2, too few for a covariance: no floor value, said so
    assert block["floor"]["value"] is None and (block["floor"]["n_real"], block["floor"]["n_generated"]) == (1, 2)
    assert "no per-item values" in block["interval"]
    assert block["name"] in html and "n/a (fewer than 2 in a set)" in html


@pytest.mark.parametrize("name", list(CASES))
def test_task_end_to_end(name, bundle, demo_corpus, judges, tmp_path):
    results = run_task(name, bundle, demo_corpus, tmp_path, judges, resamples=200)
    n = CASES[name][2].get("limit", 3)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["task"] == name and saved["n"] == n and saved == results
    for key in ("metric", "value", "interval", "metrics", "n_failed", "baselines", "reference", "judge", "decoding",
                "ckpt", "data", "wall_time_s", "devices", "command", "model_hash", "data_hash", "resamples"):
        assert key in saved, key
    assert saved["ckpt"] == str(bundle) and saved["data"] == str(demo_corpus) and saved["devices"] == 1
    if "image" in saved["tokenizers"]:  # how image files were read is recorded (the tiny tokenizer: anygpt's way)
        assert saved["tokenizers"]["image"]["image_preprocess"] == "anygpt"
        assert "image tokenizer" in summary(saved) and "image_preprocess anygpt" in summary(saved)
    assert saved["command"].startswith(f"anygpt benchmark {name} --ckpt ")
    assert 0 <= saved["n_failed"] <= n
    assert saved["value"] == saved["metrics"][saved["metric"]]["value"]
    for block in saved["metrics"].values():
        check_estimate(block)
    assert set(saved["baselines"]) == BASELINES[name]
    for baseline in saved["baselines"].values():
        assert baseline["description"]
        assert set(baseline["difference"]) <= set(saved["metrics"]) and baseline["difference"]
        for metric, diff in baseline["difference"].items():
            check_estimate(baseline["metrics"][metric])
            check_estimate(diff)
            assert diff["value"] == pytest.approx(saved["metrics"][metric]["value"] - baseline["metrics"][metric][
                "value"], abs=1e-9)
            low, high = diff["interval"]
            better = saved["metrics"][metric]["higher_is_better"]
            assert diff["beats"] == (low > 0 if better else high < 0)
    if name in ("coco-t2i", "musiccaps-caption", "musiccaps-gen", "vctk-tts"):
        assert saved["reference"]["description"]
        for block in saved["reference"]["metrics"].values():
            check_estimate(block)
    if name in ("coco-t2i", "musiccaps-gen"):  # the judge's Fréchet distance next to its similarity score
        check_set_distance(saved["set_distances"]["fd_judge"], n, saved["n_failed"], "CLIP" if name == "coco-t2i"
                           else "CLAP", html=(tmp_path / "report.html").read_text())
    else:
        assert saved["set_distances"] == {}
    overrides = FAST[name]
    assert saved["decoding"]["max_new_tokens"] == overrides["max_new_tokens"]
    if name in ("coco-t2i", "vctk-tts"):  # the paper's settings underneath the overrides
        assert saved["decoding"]["do_sample"] and saved["decoding"]["top_p"] == 0.7
    if name == "musiccaps-gen":
        assert saved["decoding"]["repetition_penalty"] == 1.15 and saved["decoding"]["do_sample"]
    if CASES[name][0] is not None:
        assert "judge" in saved["judge"] or "CLIP" in saved["judge"] or "open_clip" in saved["judge"]
    html = (tmp_path / "report.html").read_text()
    for tag in CASES[name][1]:
        assert tag in html, f"{tag} missing from the report"
    assert saved["metric"] in html and "baseline" in html and "beat it" in html
    # media referenced by the report exist next to it
    for src in [s.split('"')[0] for s in html.split('src="')[1:]]:
        assert (tmp_path / src).is_file(), src
    lines = [json.loads(x) for f in (tmp_path / "predictions").glob("rank*.jsonl") for x in f.read_text().splitlines()]
    assert len(lines) == n and all(line["input_hash"] for line in lines)


def test_rerun_resumes_from_cached_predictions(bundle, demo_corpus, judges, tmp_path, capsys):
    first = run_task("coco-caption", bundle, demo_corpus, tmp_path, judges, limit=2, split="train")
    log = tmp_path / "predictions" / "rank0.jsonl"
    assert len(log.read_text().splitlines()) == 2
    second = run_task("coco-caption", bundle, demo_corpus, tmp_path, judges, limit=3, split="train")
    assert "2 cached predictions reused" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 3  # only the new item was predicted
    assert second["n"] == 3 and first["n"] == 2
    # other settings: the cache is cleared
    run_task("coco-caption", bundle, demo_corpus, tmp_path, judges, limit=2, split="train", seed=1)
    assert len(log.read_text().splitlines()) == 2
    # --cache false: nothing reused
    run_task("coco-caption", bundle, demo_corpus, tmp_path, judges, limit=2, split="train", seed=1, cache=False)
    assert "cached predictions reused" not in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 2


def test_a_changed_model_in_the_same_folder_never_reuses_predictions(demo_corpus, judges, tmp_path, capsys):
    """Retraining into the same export folder is a new model: the cache is keyed on the files' content."""
    from safetensors.torch import load_file, save_file

    folder = make_bundle(tmp_path / "model", demo_corpus, modalities=("image",))
    run_task("coco-caption", folder, demo_corpus, tmp_path / "out", judges, limit=2, split="train")
    run_task("coco-caption", folder, demo_corpus, tmp_path / "out", judges, limit=2, split="train")
    assert "2 cached predictions reused" in capsys.readouterr().out
    weights = next(folder.glob("*.safetensors"))
    state = load_file(str(weights))
    name = next(k for k in state if state[k].is_floating_point())
    state[name] = state[name] + 1e-3
    save_file(state, str(weights), metadata={"format": "pt"})
    run_task("coco-caption", folder, demo_corpus, tmp_path / "out", judges, limit=2, split="train")
    out = capsys.readouterr().out
    assert "cached predictions reused" not in out and "earlier predictions" in out


def test_registry_holds_every_built_in_task():
    assert set(BUILTIN_TASKS) == {"coco-caption", "coco-t2i", "librispeech-asr", "vctk-tts", "musiccaps-caption",
                                  "musiccaps-gen"}
    assert set(available()) >= set(BUILTIN_TASKS)
    for name in BUILTIN_TASKS:
        assert load_task(name).name == name


def test_missing_dataset_parts_are_named(bundle, demo_corpus, judges, tmp_path):
    with pytest.raises(DatasetError, match="dataset_coco.json"):
        run_task("coco-caption", bundle, tmp_path, tmp_path / "out", judges)
    with pytest.raises(DatasetError, match="does not exist"):
        run_task("coco-caption", bundle, tmp_path / "nowhere", tmp_path / "out", judges)
    with pytest.raises(DatasetError, match="test-other"):
        run_task("librispeech-asr", bundle, demo_corpus, tmp_path / "out", judges, split="test-other")
    with pytest.raises(DatasetError, match="musiccaps"):
        run_task("musiccaps-gen", bundle, demo_corpus / "coco", tmp_path / "out", judges)


def test_checkpoint_without_the_needed_modality(demo_corpus, judges, tmp_path):
    image_only = make_bundle(tmp_path / "image-only", demo_corpus, modalities=("image",))
    with pytest.raises(ValueError, match="needs the music modality"):
        run_task("musiccaps-caption", image_only, demo_corpus, tmp_path / "out", judges)
    with pytest.raises(ValueError, match="--ckpt"):
        run_task("coco-caption", "", demo_corpus, tmp_path / "out", judges)


def test_failed_generations_are_counted_and_scored_worst(bundle, demo_corpus, judges, tmp_path):
    # 3 new tokens cannot hold an image span (32 codes): every generation fails, and the run still finishes
    results = run_task("coco-t2i", bundle, demo_corpus, tmp_path, judges, generation={"max_new_tokens": 3})
    assert results["n_failed"] == 3 and results["n"] == 3
    assert results["value"] == -1.0 and results["interval"] == [-1.0, -1.0]  # never dropped: the worst cosine
    assert any("3 failed generation(s), scored as the worst CLIP score" in n for n in results["notes"])
    assert not results["baselines"]["random-train-image"]["difference"]["clip_score"]["beats"]
    assert "(none)" in (tmp_path / "report.html").read_text()


def test_two_processes_match_one(bundle, demo_corpus, judges, tmp_path):
    """Items sharded over 2 gloo processes, predictions gathered, CLAP synced: the same numbers as 1 process
    (beam search gives each prompt the same output whatever its batch)."""
    import os
    import subprocess
    import sys

    name, generation = "musiccaps-caption", FAST["musiccaps-caption"]
    single = run_task(name, bundle, demo_corpus, tmp_path / "one", judges, batch_size=1)
    script = Path(__file__).with_name("ddp_run.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run([sys.executable, str(script), name, str(bundle), str(demo_corpus), str(tmp_path / "two"),
                           judges["clap"], "3", json.dumps(generation), "train"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    double = json.loads((tmp_path / "two" / "results.json").read_text())
    assert double["devices"] == 2 and double["n"] == single["n"] == 3
    assert sorted(p.name for p in (tmp_path / "two" / "predictions").glob("rank*.jsonl")) == ["rank0.jsonl",
                                                                                                "rank1.jsonl"]
    assert double["value"] == pytest.approx(single["value"], abs=1e-6)
    assert double["interval"] == pytest.approx(single["interval"], abs=1e-6)
    for name, baseline in single["baselines"].items():
        assert double["baselines"][name]["metrics"]["clap_score"]["value"] == pytest.approx(
            baseline["metrics"]["clap_score"]["value"], abs=1e-6)
    assert double["reference"]["metrics"]["clap_score"]["value"] == pytest.approx(
        single["reference"]["metrics"]["clap_score"]["value"], abs=1e-6)


def test_chat_template_and_no_baseline(bundle, demo_corpus, judges, tmp_path):
    results = run_task("librispeech-asr", bundle, demo_corpus, tmp_path, judges, baseline=False, limit=2,
                       prompt=PromptOptions(template="chat", constrained=False))
    assert results["baselines"] == {} and results["template"] == "chat"
    assert results["decoding"]["constrained"] is False and results["decoding"]["template"] == "chat"
    with pytest.raises(ValueError, match="--prompt.template"):
        run_task("librispeech-asr", bundle, demo_corpus, tmp_path, judges, prompt=PromptOptions(template="plain"))


def test_prompt_longer_than_the_context_is_counted(demo_corpus, judges, tmp_path):
    short = make_bundle(tmp_path / "short", demo_corpus, modalities=("speech",), block_size=48)
    results = run_task("librispeech-asr", short, demo_corpus, tmp_path / "out", judges, limit=2)
    assert results["n_failed"] == 2 and results["value"] == 1.0  # empty transcripts: every word deleted
    notes = [json.loads(x)["note"] for x in (tmp_path / "out" / "predictions" / "rank0.jsonl").read_text().splitlines()]
    assert all("leaves no room in the context of 48" in n for n in notes)


def test_a_missing_training_split_drops_that_baseline_with_a_note(bundle, demo_corpus, judges, tmp_path):
    results = run_task("coco-caption", bundle, demo_corpus, tmp_path, judges, train_split="nosuch")
    assert results["baselines"] == {}
    assert any("no random-train-caption baseline" in n and "--train_split" in n for n in results["notes"])
    results = run_task("librispeech-asr", bundle, demo_corpus, tmp_path / "asr", judges, train_split="nosuch")
    assert set(results["baselines"]) == {"empty"}
    assert any("no frequent-words baseline" in n for n in results["notes"])


def test_fid_and_fad_from_weights_files(bundle, demo_corpus, judges, tmp_path):
    """FID (Inception-v3) and FAD (EnCodec) from weights files in their real formats (random weights), next to the
    judge's distance, with a floor once there are 4 real items."""
    from benchmarks.judges.encodec_features import WEIGHTS_NAME as ENCODEC
    from benchmarks.judges.inception import WEIGHTS_NAME as INCEPTION
    from tests.benchmarks.random_weights import random_encodec_weights, random_inception_weights

    inception = random_inception_weights(tmp_path / "w" / INCEPTION)
    results = run_task("coco-t2i", bundle, demo_corpus, tmp_path / "t2i", judges, limit=4, fid_weights=inception,
                       resamples=50)
    fid = results["set_distances"]["fid"]
    assert fid["name"] == "FID (Inception-v3)" and str(inception) in fid["features"]
    assert fid["model"]["n_real"] == 4 and fid["floor"]["n_real"] == 2  # 4 captions: halves of 2
    for part in (fid["model"], fid["floor"], fid["baselines"]["random-train-image"]):
        assert part["value"] is not None and part["value"] > -1e-6
    assert "--fid_weights" in results["command"]
    encodec = random_encodec_weights(tmp_path / "w" / ENCODEC)
    results = run_task("musiccaps-gen", bundle, demo_corpus, tmp_path / "gen", judges, limit=4, fad_embedder=encodec,
                       resamples=50)
    fad = results["set_distances"]["fad"]
    assert fad["name"] == "FAD (EnCodec 24 kHz)" and fad["floor"]["value"] > 0  # 4 distinct clips
    assert fad["model"]["n_real"] > 4 * 50  # encoder frames, 75 per second
    assert set(results["set_distances"]) == {"fd_judge", "fad"}
    html = (tmp_path / "gen" / "report.html").read_text()
    assert "FAD (EnCodec 24 kHz)" in html and "FD (CLAP judge features)" in html


def test_vctk_seed_tts_eval_protocol(bundle, demo_corpus, judges, tmp_path, monkeypatch):
    """--protocol seed-tts-eval with a Whisper folder and a WavLM x-vector folder (random weights, save_pretrained):
    WER is the mean of per-utterance WERs after the protocol's normalization, recomputed here from the files."""
    from anygpt.data.readers import read_vctk
    from anygpt.media import read_audio_with_rate
    from benchmarks.judges import load_judge
    from benchmarks.judges.asr import WhisperAsr
    from benchmarks.metrics.dnsmos import Dnsmos
    from benchmarks.metrics.seed_tts import utterance_wers
    from tests.benchmarks.judges.test_asr_judge import _tiny_whisper
    from tests.benchmarks.metrics.test_dnsmos import linear_onnx
    from tests.benchmarks.random_weights import tiny_wavlm_xvector

    _tiny_whisper(tmp_path / "whisper")
    monkeypatch.setattr(WhisperAsr.__init__, "__defaults__", ("cpu", 16))  # the tiny decoder has 32 positions
    wavlm = tiny_wavlm_xvector(tmp_path / "wavlm")
    def run(**options):
        return load_task("vctk-tts")(**options).run()

    args = {"ckpt": str(bundle), "data": demo_corpus, "limit": 2, "batch_size": 2, "generation": FAST["vctk-tts"],
            "resamples": 50, "speaker_encoder": str(wavlm)}
    onnx_model = tmp_path / "sig_bak_ovr.onnx"
    linear_onnx(onnx_model, np.random.default_rng(0))
    results = run(**args, out=tmp_path / "out", judge=str(tmp_path / "whisper"), protocol="seed-tts-eval",
                  mos=onnx_model)
    assert "--protocol seed-tts-eval" in results["command"] and "protocol: seed-tts-eval" in results["judge"]
    assert any("per utterance (jiwer), averaged over utterances" in n for n in results["notes"])
    texts = {u.utt_id: u.text for u in read_vctk(demo_corpus / "vctk")}
    preds = [json.loads(x) for x in (tmp_path / "out" / "predictions" / "rank0.jsonl").read_text().splitlines()]
    asr = load_judge("asr", tmp_path / "whisper")
    said = [asr.transcribe([read_audio_with_rate(p["path"])[0][0]], read_audio_with_rate(p["path"])[1])[0]
            if p["path"] else "" for p in preds]
    wers = utterance_wers(said, [texts[p["key"]] for p in preds])
    assert results["value"] == pytest.approx(sum(wers) / len(wers), abs=1e-9)
    dnsmos = Dnsmos(onnx_model)  # DNSMOS OVRL for the model, every baseline and the reference; failed speech: 1
    mos = [dnsmos.score(*read_audio_with_rate(p["path"]))["ovrl"] if p["path"] else 1.0 for p in preds]
    assert results["metrics"]["dnsmos_ovrl"]["value"] == pytest.approx(sum(mos) / len(mos), rel=1e-6)
    assert all("dnsmos_ovrl" in b["metrics"] for b in results["baselines"].values())
    assert "dnsmos_ovrl" in results["reference"]["metrics"] and "DNSMOS P.835" in results["judge"]
    with pytest.raises(ValueError, match="needs --judge"):
        run(**{**args, "speaker_encoder": "resemblyzer"}, out=tmp_path / "o2", judge=str(tmp_path / "whisper"),
            protocol="seed-tts-eval")
    with pytest.raises(ValueError, match="not a Whisper folder"):
        run(**args, out=tmp_path / "o3", judge=judges["asr"], protocol="seed-tts-eval")
    with pytest.raises(ValueError, match="--protocol must be one of"):
        run(**args, out=tmp_path / "o4", protocol="seed")


def test_set_distance_on_two_processes_matches_one(bundle, demo_corpus, judges, tmp_path):
    """musiccaps-gen's judge FD with items sharded over 2 gloo processes (sums reduced across them) equals 1 process."""
    import os
    import subprocess
    import sys

    name = "musiccaps-gen"
    single = run_task(name, bundle, demo_corpus, tmp_path / "one", judges, batch_size=1, limit=4)
    script = Path(__file__).with_name("ddp_run.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run([sys.executable, str(script), name, str(bundle), str(demo_corpus), str(tmp_path / "two"),
                           judges["clap"], "4", json.dumps(FAST[name]), "train"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    double = json.loads((tmp_path / "two" / "results.json").read_text())
    assert double["devices"] == 2
    one, two = single["set_distances"]["fd_judge"], double["set_distances"]["fd_judge"]
    for part in ("model", "floor"):
        assert two[part]["value"] == pytest.approx(one[part]["value"], abs=1e-6)
        assert (two[part]["n_real"], two[part]["n_generated"]) == (one[part]["n_real"], one[part]["n_generated"])
    assert two["baselines"]["random-train-clip"]["value"] == pytest.approx(
        one["baselines"]["random-train-clip"]["value"], abs=1e-6)
    assert one["floor"]["n_real"] == 2 and one["floor"]["value"] is not None
