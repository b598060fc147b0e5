"""A third-party modality (tests/third_party/depth_modality.py, nothing inside anygpt/ knows it) trains with a tiny LLM
through `anygpt fit`, and reaches the front end: an AnyInstruct row through `anygpt prepare`, chat's ``/depth``, files
written with its media kind's suffix and shown in the HTML transcript."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anygpt.data.shards import ShardWriter, expand_shards, read_shard
from anygpt.generation.constrained import ModalityConstraint
from anygpt.generation.options import DecodingOptions
from anygpt.modalities.registry import modality_for
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.third_party.depth_modality import DepthCodec

ROOT = Path(__file__).resolve().parents[2]
SCENES = ["a wall close to the camera", "a long empty corridor", "a ramp rising to the right", "a box in a far room"]


def depth_of(scene: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:16, 0:16] / 15.0
    base = [np.full((16, 16), 1.0), 2 + 6 * y, 1 + 8 * x, np.where((abs(x - .5) < .2) & (abs(y - .5) < .2), 3., 9.)]
    return (base[scene] + rng.normal(0, 0.2, (16, 16))).clip(0, 10)


@pytest.mark.slow
def test_plugin_modality_trains_with_no_change_inside_anygpt(tmp_path):
    rng = np.random.default_rng(0)
    modality = modality_for(DepthCodec(levels=16))
    with ShardWriter(tmp_path / "shards", maxcount=100) as writer:
        for i in range(200):
            scene = i % len(SCENES)
            codes = modality.codec.encode([torch.from_numpy(depth_of(scene, rng))])[0].numpy().astype(np.int16)
            writer.write(f"{i:05d}", {"task": "caption", "text": SCENES[scene], "media": {"depth0": "depth"}},
                         {"depth0": codes})
    train_bpe_tokenizer(SCENES * 20 + ["Please describe this depth."], 300, tmp_path / "tokenizer")
    config = tmp_path / "plugin.yaml"
    config.write_text(f"""
seed_everything: 0
trainer: {{accelerator: cpu, devices: 1, max_steps: 30, log_every_n_steps: 2, num_sanity_val_steps: 0,
          limit_val_batches: 0, enable_checkpointing: false, default_root_dir: {tmp_path / 'runs'},
          logger: {{class_path: lightning.pytorch.loggers.CSVLogger, init_args: {{save_dir: {tmp_path / 'runs'}}}}}}}
model:
  class_path: anygpt.model.lm.AnyGPTLM
  init_args: {{model: tiny, learning_rate: 0.005, warmup: 0.1}}
data:
  class_path: anygpt.data.datamodule.AnyGPTDataModule
  init_args:
    text_tokenizer: {tmp_path / 'tokenizer'}
    modalities:
      - {{class_path: tests.third_party.depth_modality.DepthCodec, init_args: {{levels: 16}}}}
    sources: [{{shards: {tmp_path / 'shards'}}}]
    max_length: 128
    batch_size: 4
    batches_per_epoch: 30
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = "import sys; from anygpt.cli import main; main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, "fit", "--config", str(config)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp_path / "runs").rglob("metrics.csv")))))
    depth = [float(r["train/loss_depth"]) for r in rows if r.get("train/loss_depth")]
    assert len(depth) >= 4 and depth[-1] < depth[0], depth

    # Constrained decoding knows the plugin's structure too: every span is exactly 16 codes.
    vocab = UnifiedVocab(train_bpe_tokenizer(SCENES * 20, 300, tmp_path / "tok2"), [modality])
    constraint = ModalityConstraint(vocab, {"depth": modality.structure})
    ids = torch.tensor([[vocab.modalities["depth"].start_id] + [vocab.modalities["depth"].first_id] * 16])
    scores = constraint(ids, torch.zeros(1, len(vocab)))
    assert torch.isfinite(scores[0]).nonzero().flatten().tolist() == [vocab.modalities["depth"].end_id]


def test_plugin_reaches_prepare_chat_and_transcripts(tmp_path):
    from anygpt.checkpoints import Bundle, save_bundle
    from anygpt.data.prepare import AnyInstruct, prepare
    from anygpt.generation.chat import chat
    from anygpt.modalities.registry import TokenizerRef
    from anygpt.model.llama.config import Config
    from anygpt.model.llama.model import LLaMA

    rng = np.random.default_rng(0)
    (tmp_path / "scans").mkdir()
    for scene in range(2):
        np.save(tmp_path / "scans" / f"{scene}.npy", depth_of(scene, rng).astype(np.float32))
    DepthCodec(levels=16).save_pretrained(tmp_path / "depth")

    # an AnyInstruct row with a depth placeholder, through anygpt prepare
    row = {"id": "d0", "conversation": [[{"role": "user", "message": "What is in [depth: scans/1.npy]?"},
                                         {"role": "assistant", "message": "A long corridor."}]]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(row) + "\n")
    summary = prepare({"chat": AnyInstruct(str(tmp_path / "chat.jsonl"))}, {"depth": str(tmp_path / "depth")},
                      out=str(tmp_path / "shards"), num_workers=0, accelerator="cpu", progress=False)
    assert summary["chat"]["samples"] == 1 and summary["chat"]["skipped"] == 0
    sample, = read_shard(expand_shards(str(tmp_path / "shards" / "chat"))[0])
    assert sample.media == {"m0": "depth"} and sample.turns[0]["message"] == "What is in <media:m0>?"
    expected = DepthCodec(levels=16).encode([torch.from_numpy(np.load(tmp_path / "scans" / "1.npy"))])[0]
    assert np.array_equal(sample.codes["m0"], expected.numpy())

    # a model with the depth modality: chat reads [depth: ...], /depth asks for a depth map back
    depth = TokenizerRef(str(tmp_path / "depth")).load("depth")
    vocab = UnifiedVocab(train_bpe_tokenizer(SCENES * 20, 300, tmp_path / "text"), [depth])
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=256))
    save_bundle(Bundle(model, vocab, {"depth": depth}, None, {"depth": TokenizerRef(str(tmp_path / "depth"))}),
                tmp_path / "export")
    (tmp_path / "messages.txt").write_text(f"What is this? [depth: {tmp_path / 'scans' / '0.npy'}]\n"
                                           "/depth a ramp rising to the right\n")
    chat(str(tmp_path / "export"), out=str(tmp_path / "chat"), input=str(tmp_path / "messages.txt"),
         decoding=DecodingOptions(max_new_tokens=20))
    written = sorted((tmp_path / "chat").glob("turn*"))
    assert [p.suffix for p in written] == [".npy"] and np.load(written[0]).shape == (16, 16)
    page = (tmp_path / "chat" / "transcript.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 2  # the depth map sent and the one received
    assert 'href="inputs/0.npy"' in page and f'href="{written[0].name}"' in page
