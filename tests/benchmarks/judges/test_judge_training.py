"""Each judge trainer runs under a real Lightning Trainer on tiny standard-layout data and exports a loadable judge."""

import json

import lightning as L
import pytest
import torch

from anygpt.data.sources.base import DatasetError
from benchmarks.judges.asr import CtcAsrTrainer
from benchmarks.judges.clap import TinyClapTrainer
from benchmarks.judges.clip import TINY_CLIP_CONFIG, TinyClipTrainer
from benchmarks.judges.data import AudioTextData, ImageCaptionData, read_karpathy, read_librispeech, read_musiccaps
from benchmarks.judges.registry import load_judge


def _fit(model, data, steps=2):
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    return trainer


@pytest.mark.slow
def test_clip_trainer_exports_open_clip_folder(tiny_coco, tmp_path):
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["vision_cfg"]["layers"] = cfg["text_cfg"]["layers"] = 1
    model = TinyClipTrainer(model_cfg=cfg, export_dir=str(tmp_path / "clip"))
    frozen = model.model.token_embedding.weight.clone()
    _fit(model, ImageCaptionData(str(tiny_coco), batch_size=4))
    assert torch.equal(model.model.token_embedding.weight, frozen)  # frozen by default
    judge = load_judge("clip", tmp_path / "clip")
    note = json.loads((tmp_path / "clip" / "open_clip_config.json").read_text())["anygpt_judge"]
    assert note["steps"] == 2 and "demo corpus" in judge.description


@pytest.mark.slow
def test_clap_trainer_builds_vocab_and_exports(tiny_musiccaps, tmp_path):
    model = TinyClapTrainer(channels=(4, 8), text_width=16, text_layers=1, embed_dim=8, export_dir=str(tmp_path / "c"))
    data = AudioTextData("musiccaps", str(tiny_musiccaps), train=["train"], val=["val"], crop_seconds=1.0, batch_size=4)
    _fit(model, data)
    judge = load_judge("clap", tmp_path / "c")
    assert "piano" in judge.index and len(judge.config["vocab"]) <= 2 + 10
    assert judge.embed_text(["slow piano"]).shape == (1, 8)


@pytest.mark.slow
def test_asr_trainer_exports(tiny_librispeech, tmp_path):
    model = CtcAsrTrainer(hidden=16, layers=1, conv_channels=4, export_dir=str(tmp_path / "a"))
    data = AudioTextData("librispeech", str(tiny_librispeech), train=["train-clean-100"], val=["dev-clean"],
                         batch_size=4)
    trainer = _fit(model, data)
    assert "val/wer" in trainer.callback_metrics
    judge = load_judge("asr", tmp_path / "a")
    assert len(judge.transcribe([torch.randn(8000)], 16000)) == 1
    assert "piano" in judge.lexicon  # the train transcripts' words ship with the model


def test_readers_splits_and_errors(tiny_coco, tiny_librispeech, tiny_musiccaps, tmp_path):
    assert [len(read_karpathy(tiny_coco, s)) for s in ("train", "val", "test")] == [8, 4, 4]
    assert len(read_karpathy(tiny_coco, "train")[0].texts) == 5
    items = read_librispeech(tiny_librispeech, ["train-clean-100"])
    assert len(items) == 8 and items[0].path.suffix == ".flac" and items[0].texts[0].isupper()
    assert [len(read_musiccaps(tiny_musiccaps, None, s)) for s in ("train", "val", "test")] == [8, 4, 2]
    with pytest.raises(DatasetError, match="nope.json"):
        read_karpathy(tmp_path / "nope.json", "train")
    with pytest.raises(ValueError, match="unknown Karpathy split"):
        read_karpathy(tiny_coco, "dev")
    with pytest.raises(DatasetError, match="test-other"):
        read_librispeech(tiny_librispeech, ["test-other"])
    (tmp_path / "bad.csv").write_text("id,text\n1,hello\n")
    with pytest.raises(DatasetError, match="ytid"):
        read_musiccaps(tmp_path / "bad.csv", None, "train")


def test_unreadable_files_are_skipped_and_counted(tiny_musiccaps, caplog):
    (tiny_musiccaps.parent / "audio" / "clip0.flac").write_bytes(b"not audio")
    (tiny_musiccaps.parent / "audio" / "clip1.flac").unlink()
    data = AudioTextData("musiccaps", str(tiny_musiccaps), train=["train"], val=["val"])
    with caplog.at_level("WARNING"):
        data.setup("fit")
    assert len(data.train_set) == 6
    assert "skipped 1 bad music record" in caplog.text  # no file: the reader skips it
    assert "skipped 1 unreadable audio files" in caplog.text  # not audio: decoding skips it


@pytest.mark.parametrize("kind", ["clip", "clap", "asr"])
def test_experiment_configs_parse(kind, capsys):
    """`anygpt fit --config experiments/judges/<kind>.yaml` resolves its model and data classes and arguments."""
    from pathlib import Path

    from anygpt.cli import main

    config = Path(__file__).resolve().parents[3] / "experiments" / "judges" / f"{kind}.yaml"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert f"benchmarks.judges.{kind}." in printed and "export_dir: runs/judges/" in printed
