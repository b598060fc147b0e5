"""The release's pre-tokenized training data (OpenMOSS/AnyGPT ``data/pretrain/*/*.jsonl`` and
``data/instruction/*.jsonl``), written here in exactly its formats: `anygpt prepare` reads it into shards without a
tokenizer, checks every span against the vocabulary layout, reports bad lines with file and line, and the shards render
back to the release's own template strings and train with ``anygpt fit``."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.prepare import ReleaseConversations, ReleaseDocuments, ReleasePairs, prepare
from anygpt.data.shards import expand_shards, read_manifest, read_shard
from anygpt.data.sources import RELEASE_LAYOUT
from anygpt.data.tiny import make_tokenizer

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = ("You are an AI assistant named MMGPT who can understand and generate multimodal content, including text, "
          "speech, images and audio.")


def image_span(codes):
    return "<soim>" + "".join(f"<👀{c}>" for c in codes) + "<eoim>"


def speech_span(codes):
    return "<sosp>" + "".join(f"<🗣️{c}>" for c in codes) + "<eosp>"


def music_span(frames):
    """[T, 4] Encodec codes -> the release's frame-major string, codebook q shifted by 2048 q."""
    return "<somu>" + "".join(f"<🎶{c + 2048 * q}>" for frame in frames for q, c in enumerate(frame)) + "<eomu>"


def write_release_data(root: Path) -> dict:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 8192, 32) for _ in range(3)]
    speech = [rng.integers(0, 1024, n) for n in (40, 25)]
    music = [rng.integers(0, 2048, (n, 4)) for n in (10, 6)]
    pretrain = root / "data" / "pretrain"
    (pretrain / "image").mkdir(parents=True)
    (pretrain / "speech").mkdir()
    (pretrain / "music").mkdir()
    lines = [json.dumps({"text": f"caption {i}", "image": image_span(c)}, ensure_ascii=False)
             for i, c in enumerate(images)]
    lines += [json.dumps({"text": "a bad one", "image": image_span(images[0])[:-6] + "<🗣️3><eoim>"}),  # foreign code
              json.dumps({"text": "unclosed", "image": image_span(images[0])[:-6]}),
              json.dumps({"text": "too big", "image": "<soim><👀8192><eoim>"}),
              "{not json",
              json.dumps({"image": image_span(images[1])})]  # no text
    (pretrain / "image" / "laion-coco-caption.jsonl").write_text("\n".join(lines) + "\n")
    # the release's speech files escape non-ASCII (\ud83d\udde3\ufe0f) and put the modality field first
    lines = [json.dumps({"speech": speech_span(c), "text": f"spoken words {i}"}) for i, c in enumerate(speech)]
    lines.append(json.dumps({"speech": speech_span(speech[0]), "image": image_span(images[0]), "text": "two"}))
    (pretrain / "speech" / "commonvoice.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps({"text": f"a calm piece {i}", "music": music_span(f)}, ensure_ascii=False)
             for i, f in enumerate(music)]
    swapped = music_span(music[0]).replace(f"<🎶{music[0][0][0]}>", f"<🎶{music[0][0][0] + 2048}>", 1)
    lines.append(json.dumps({"text": "codebook order broken", "music": swapped}, ensure_ascii=False))
    (pretrain / "music" / "music-1m.jsonl").write_text("\n".join(lines) + "\n")
    (pretrain / "image" / "mmc4.txt").write_text(f"A page. {image_span(images[2])} It shows a lighthouse.\n")

    instruction = root / "data" / "instruction"
    instruction.mkdir(parents=True)
    rows = [{"id": 1, "conversation": [[
        {"role": "user", "message": f"{speech_span(speech[1])} Please acknowledge the user's vocal input, create a "
                                    "textual response"},
        {"role": "assistant", "message": f"<-Ins-> hello, how are you\n <-Res-> I am fine, thank you "
                                         f"{speech_span(speech[0])} "}]]},
        {"id": 2, "conversation": [[{"role": "user", "message": "Draw a cat."},
                                    {"role": "assistant", "message": f"Here it is. {image_span(images[1])}"},
                                    {"role": "user", "message": "And music?"},
                                    {"role": "assistant", "message": music_span(music[1])}]]},
        {"id": 3, "conversation": [[{"role": "user", "message": "hi"}, {"role": "user", "message": "again"}]]}]
    (instruction / "anyinstruct_speech.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"images": images, "speech": speech, "music": music}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    codes = write_release_data(root)
    pretrain = root / "data" / "pretrain"
    sources = {"laion-coco": ReleasePairs(str(pretrain / "image" / "*.jsonl")),
               "speech": ReleasePairs(str(pretrain / "speech" / "*.jsonl")),
               "music": ReleasePairs(str(pretrain / "music" / "*.jsonl")),
               "mmc4": ReleaseDocuments(str(pretrain / "image" / "mmc4.txt")),
               "instruct": ReleaseConversations(str(root / "data" / "instruction" / "*.jsonl"))}
    summary = prepare(sources, {}, out=str(root / "shards"), chunk_size=3, num_workers=0, accelerator="cpu",
                      progress=False)  # no tokenizer: the codes are in the files
    make_tokenizer(root / "tokenizer")
    return root, codes, summary


def samples(directory):
    return [s for url in expand_shards(str(directory)) for s in read_shard(url)]


def test_prepare_reads_the_release_jsonl_without_a_tokenizer(release):
    root, codes, summary = release
    assert {k: (v["samples"], v["skipped"]) for k, v in summary.items()} == {
        "laion-coco": (3, 5), "speech": (2, 1), "music": (2, 1), "mmc4": (1, 0), "instruct": (2, 1)}
    assert read_manifest(root / "shards" / "music")["vocab"]["codebook_sizes"] == {"image": 8192, "speech": 1024,
                                                                                 "music": 8192}
    by_text = {s.meta["text"]: s for s in samples(root / "shards" / "laion-coco")}
    assert np.array_equal(by_text["caption 1"].codes["image0"], codes["images"][1])
    assert "x2text_prob" not in by_text["caption 1"].meta  # the training config decides the direction
    music = {s.meta["text"]: s for s in samples(root / "shards" / "music")}
    assert np.array_equal(music["a calm piece 0"].codes["music0"], codes["music"][0].T)  # native [4, T]
    report = {r["item"]: r["reason"] for r in
              json.loads((root / "shards" / "laion-coco" / "prepare_report.json").read_text())["skipped"]}
    where = str(root / "data" / "pretrain" / "image" / "laion-coco-caption.jsonl")
    assert sorted(report) == [f"{where}:{n}" for n in (4, 5, 6, 7, 8)]
    assert "holds <🗣️3>, a speech token" in report[f"{where}:4"]
    assert "not closed with <eoim>" in report[f"{where}:5"] and "outside its 8192 codes" in report[f"{where}:6"]
    assert "not valid json" in report[f"{where}:7"] and "no text field" in report[f"{where}:8"]
    music_report = json.loads((root / "shards" / "music" / "prepare_report.json").read_text())["skipped"]
    assert "not in codebook 0's range [0, 2048)" in music_report[0]["reason"]
    speech_report = json.loads((root / "shards" / "speech" / "prepare_report.json").read_text())["skipped"]
    assert "expected one modality field" in speech_report[0]["reason"]
    instruct = json.loads((root / "shards" / "instruct" / "prepare_report.json").read_text())["skipped"]
    assert instruct[0]["item"].endswith("anyinstruct_speech.jsonl:3") and "alternate" in instruct[0]["reason"]


def datamodule(root, **kwargs):
    modalities = [m["name"] for m in RELEASE_LAYOUT]  # the paper's codecs, sized on the meta device
    return AnyGPTDataModule(str(root / "tokenizer"), modalities, **{"max_length": 1024, "batch_size": 1, **kwargs})


def test_shards_render_to_the_release_templates(release):
    root, codes, _ = release
    dm = datamodule(root, sources=[Source(str(root / "shards" / "laion-coco"))])
    sample = next(s for s in samples(root / "shards" / "laion-coco") if s.meta["text"] == "caption 2")
    rendered = dm.renderer.render(sample, random.Random(0), x2text_prob=1.0)  # a caption set (the Source's 1.0)
    text = dm.vocab.decode_text(rendered.ids)
    # [Human]: {instruction} {X}<eoh> [MMGPT]: {text}<eos>, the image span spelled exactly as in the release's file
    prefix, _, rest = text.partition("[Human]: ")
    assert prefix == "<s>" and rest.endswith(f" {image_span(codes['images'][2])}<eoh> [MMGPT]: caption 2<eos></s>")

    dm = datamodule(root, sources=[Source(str(root / "shards" / "instruct"))], instruction_tokens=True,
                    system_prompt=SYSTEM)
    speech_row = next(s for s in samples(root / "shards" / "instruct") if s.key.endswith("-1"))
    rendered = dm.renderer.render(speech_row, random.Random(0), train_on="assistant")
    user = (f"{speech_span(codes['speech'][1])} Please acknowledge the user's vocal input, create a textual "
            "response")
    reply = f"<-Ins-> hello, how are you\n <-Res-> I am fine, thank you {speech_span(codes['speech'][0])} "
    # the release's conversation template: {system}\n[Human]: {message}<eoh>\n[MMGPT]: {reply}<eos>
    assert dm.vocab.decode_text(rendered.ids) == f"<s>{SYSTEM}\n[Human]: {user}<eoh>\n[MMGPT]: {reply}<eos></s>"
    trained = dm.vocab.decode_text([i for i, m in zip(rendered.ids, rendered.mask, strict=True) if m])
    assert trained == f" {reply}<eos></s>"  # the loss is on the reply only
    assert dm.vocab.token_id("<-Ins->") in rendered.ids

    plain = datamodule(root, sources=[Source(str(root / "shards" / "instruct"))])
    with pytest.raises(ValueError, match="set instruction_tokens: true"):
        plain.renderer.render(speech_row, random.Random(0), train_on="assistant")

    dm = datamodule(root, sources=[Source(str(root / "shards" / "mmc4"))])
    document = samples(root / "shards" / "mmc4")[0]
    assert dm.vocab.decode_text(dm.renderer.render(document, random.Random(0)).ids) == (
        f"<s>A page. {image_span(codes['images'][2])} It shows a lighthouse.</s>")


@pytest.mark.slow
def test_anygpt_fit_trains_on_the_release_shards(release, tmp_path):
    root, _, _ = release
    modalities = "\n".join(f"      - {m['name']}" for m in RELEASE_LAYOUT)
    shards = root / "shards"
    config = f"""
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  max_steps: 6
  log_every_n_steps: 1
  enable_checkpointing: false
  default_root_dir: {tmp_path / "run"}
  logger:
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args: {{save_dir: {tmp_path / "run"}}}
model:
  class_path: anygpt.model.lm.AnyGPTLM
  init_args:
    model: tiny
    model_config: {{n_layer: 1, n_embd: 32, n_head: 2, n_kv_head: 1, intermediate_size: 64}}
    learning_rate: 0.003
    warmup: 0.1
data:
  class_path: anygpt.data.datamodule.AnyGPTDataModule
  init_args:
    text_tokenizer: {root / "tokenizer"}
    instruction_tokens: true
    system_prompt: "{SYSTEM}"
    modalities:
{modalities}
    sources:
      - {{name: laion-coco, shards: {shards / "laion-coco"}, weight: 0.2, x2text_prob: 1.0}}
      - {{name: speech, shards: {shards / "speech"}, weight: 0.2}}
      - {{name: music, shards: {shards / "music"}, weight: 0.2}}
      - {{name: mmc4, shards: {shards / "mmc4"}, weight: 0.1}}
      - {{name: instruct, shards: {shards / "instruct"}, weight: 0.3, train_on: assistant}}
    max_length: 256
    batch_size: 2
    batches_per_epoch: 6
    shuffle_buffer: 4
"""
    (tmp_path / "fit.yaml").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = "import sys; from anygpt.cli import main; main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, "fit", "--config", str(tmp_path / "fit.yaml")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp_path / "run").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 6 and all(np.isfinite(losses))
