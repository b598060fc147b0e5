"""The README table comes from results.json files by a command, and each row's command reproduces its numbers."""

from __future__ import annotations

import json
import shlex

import pytest

from benchmarks import table
from tests.benchmarks.tasks.test_tasks import run_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(bundle, demo_corpus, judges, tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    for name in ("librispeech-asr", "musiccaps-caption"):
        run_task(name, bundle, demo_corpus, root / "runs" / name, judges, resamples=200,
                 publish=root / "results" / f"{name}.json")
    return root


def test_table_shows_intervals_baselines_reference_n_and_commands(published):
    results = table.load_results(published / "results")
    assert [r["task"] for r in results] == ["librispeech-asr", "musiccaps-caption"]  # the paper's order
    text = table.render(results)
    asr, clap = results
    wer = asr["metrics"]["wer"]
    assert f"| `librispeech-asr` | WER (lower is better) | {asr['n']} ({asr['n_failed']}) |" in text
    assert f"{wer['value']:.3f} [{wer['interval'][0]:.3f}, {wer['interval'][1]:.3f}]" in text
    assert "empty: 1.000 [1.000, 1.000]" in text and "frequent-words: " in text
    assert "shuffled: " in text and "random-train-caption: " in text
    ref = clap["reference"]["metrics"]["clap_score"]
    assert f"| {ref['value']:.3f} [{ref['interval'][0]:.3f}, {ref['interval'][1]:.3f}] |" in text
    for r in results:
        assert f"`{r['command']}`" in text
        for b in r["baselines"].values():
            for d in b["difference"].values():
                assert f"{d['value']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}] " + (
                    "**beats**" if d["beats"] else "does not beat") in text


def test_readme_is_rewritten_between_markers_and_checked(published, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{table.START}\nold numbers typed by hand\n{table.END}\noutro\n")
    results = str(published / "results")
    assert table.main([results, "--readme", str(readme), "--check"]) == 1  # out of date
    assert table.main([results, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old numbers" not in text
    assert table.render(table.load_results(results)) in text
    assert table.main([results, "--readme", str(readme), "--check"]) == 0
    readme.write_text(text.replace("[", "[9", 1))
    assert table.main([results, "--readme", str(readme), "--check"]) == 1
    with pytest.raises(ValueError, match="markers"):
        table.replace_in("no markers here", "x")
    # a second, named table in the same file is rewritten on its own
    start, end = table.markers("rerun")
    readme.write_text(f"{text}{start}\nstale\n{end}\n")
    assert table.main([results, "--readme", str(readme), "--name", "rerun", "--check"]) == 1
    assert table.main([results, "--readme", str(readme), "--name", "rerun"]) == 0
    assert readme.read_text() == f"{text}{start}\n{table.render(table.load_results(results))}{end}\n"
    assert table.main([results, "--readme", str(readme), "--check"]) == 0  # the unnamed table untouched
    # --collect copies the runs' results.json files
    assert table.main([str(tmp_path / "collected"), "--collect", str(published / "runs")]) == 0
    assert sorted(p.name for p in (tmp_path / "collected").glob("*.json")) == ["librispeech-asr.json",
                                                                              "musiccaps-caption.json"]
    assert "librispeech-asr" in capsys.readouterr().out


def test_each_rows_command_reproduces_its_numbers(published, monkeypatch):
    """Run the command recorded in results.json again (predicting afresh) and get the same numbers."""
    from anygpt.cli import main

    saved = json.loads((published / "results" / "librispeech-asr.json").read_text())
    argv = shlex.split(saved["command"])
    assert argv[:3] == ["anygpt", "benchmark", "librispeech-asr"]
    out = published / "rerun"
    argv = [a if a != str(published / "runs" / "librispeech-asr") else str(out) for a in argv[1:]]
    main([*argv, "--cache", "false", "--publish", str(out / "published.json")])
    again = json.loads((out / "results.json").read_text())
    assert again["metrics"] == saved["metrics"] and again["baselines"] == saved["baselines"]
    assert again["model_hash"] == saved["model_hash"] and again["data_hash"] == saved["data_hash"]


def test_the_committed_readme_table_is_the_committed_results():
    """README.md's table is what `python -m benchmarks.table docs/demo/results --readme README.md` writes."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    assert table.main([str(root / "docs/demo/results"), "--readme", str(root / "README.md"), "--check"]) == 0
    for name, folder in README_NAMED_TABLES.items():  # the other generated tables of the README
        assert table.main([str(root / folder), "--readme", str(root / "README.md"), "--name", name, "--check"]) == 0


README_NAMED_TABLES = {"seeds": "docs/demo/seeds", "rerun-2026-12-07": "docs/demo/rerun-2026-12-07/results",
                      "lora-2026-12-07": "docs/demo/lora/results", "speech-share": "docs/demo/ablations/speech-share",
                      "long": "docs/demo/long"}
