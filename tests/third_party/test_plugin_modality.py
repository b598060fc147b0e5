"""A third-party modality, registered only by class_path, trains with a tiny LLM through `anygpt fit`."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anygpt.data.shards import ShardWriter
from anygpt.generation.constrained import ModalityConstraint
from anygpt.vocab import UnifiedVocab, train_bpe_tokenizer
from tests.third_party.depth_modality import DepthMap

ROOT = Path(__file__).resolve().parents[2]
SCENES = ["a wall close to the camera", "a long empty corridor", "a ramp rising to the right", "a box in a far room"]


def depth_of(scene: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:16, 0:16] / 15.0
    base = [np.full((16, 16), 1.0), 2 + 6 * y, 1 + 8 * x, np.where((abs(x - .5) < .2) & (abs(y - .5) < .2), 3., 9.)]
    return (base[scene] + rng.normal(0, 0.2, (16, 16))).clip(0, 10)


@pytest.mark.slow
def test_plugin_modality_trains_with_no_change_inside_anygpt(tmp_path):
    rng = np.random.default_rng(0)
    modality = DepthMap(levels=16)
    with ShardWriter(tmp_path / "shards", maxcount=100) as writer:
        for i in range(200):
            scene = i % len(SCENES)
            codes = modality.encode([torch.from_numpy(depth_of(scene, rng)).float()])[0].numpy().astype(np.int16)
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
      - {{class_path: tests.third_party.depth_modality.DepthMap, init_args: {{levels: 16}}}}
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
