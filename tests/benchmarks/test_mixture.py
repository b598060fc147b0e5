"""`python -m benchmarks.mixture`: what a config's training stream feeds the model, per task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anygpt.data.tiny import write_tiny_corpus
from benchmarks import mixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mixture")
    write_tiny_corpus(folder / "data" / "tiny")
    return folder


def rows(text: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ") and "---" not in line
            for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[0] != "task"}


def test_each_task_gets_its_share_of_samples_tokens_and_loss(tiny, monkeypatch, capsys):
    monkeypatch.chdir(tiny)
    assert mixture.main(["--config", str(ROOT / "experiments/tiny/pretrain.yaml"), "--batches", "20"]) == 0
    table = rows(capsys.readouterr().out)
    assert {"image -> text", "text -> image", "speech -> text", "text -> speech"} <= set(table)
    for column in (1, 2, 3):  # the shares of samples, tokens and loss tokens add up
        assert sum(float(r[column].rstrip("%")) for r in table.values()) == pytest.approx(100, abs=0.3)
    # a media -> text pair's loss is its text; text -> media carries the media codes: more loss tokens per sample
    assert float(table["text -> speech"][4]) > float(table["speech -> text"][4])


def test_an_overlay_changes_the_mixture_it_reports(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tiny)
    overlay = tmp_path / "asr.yaml"
    overlay.write_text("data:\n  init_args:\n    sources:\n"
                       "      - {shards: data/tiny/shards/speech, weight: 1.0, x2text_prob: 1.0}\n")
    assert mixture.main(["--config", str(ROOT / "experiments/tiny/pretrain.yaml"), str(overlay),
                         "--batches", "10"]) == 0
    out = capsys.readouterr().out
    assert list(rows(out)) == ["speech -> text"] and re.search(r"\| 100\.0% \| 100\.0% \| 100\.0% \|", out)


def test_a_data_module_that_is_not_an_anygpt_one_is_named(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  class_path: anygpt.modalities.image.data.ImageDataModule\n  init_args: {}\n")
    with pytest.raises(TypeError, match="ImageDataModule is not an AnyGPTDataModule"):
        mixture.build_data(mixture.data_config([config]))
