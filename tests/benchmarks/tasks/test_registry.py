"""Plugin tasks through real entry points: an installed distribution (a dist-info folder on sys.path) registers a
task under ``anygpt.tasks``; ``anygpt benchmark`` lists it, runs it, and the command in its results.json runs again.
Clashes and broken plugins are refused with a message naming the entry point, never a traceback."""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path

import pytest

from anygpt.cli import main
from benchmarks import table
from benchmarks.tasks.registry import ENTRY_POINT_GROUP, TaskRegistryError, available, load_task

PLUGIN = '''
from dataclasses import dataclass

from benchmarks.stats import mean_of
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, option


@dataclass
class Item:
    key: str
    text: str


@dataclass
class EchoText(Task):
    """Repeat a sentence; scored by exact match.

    Args:
        file: the items' jsonl file, relative to --data.
        instruction: what the model is asked.
    """

    name = "echo-text"
    output = "text"
    metric = "match"
    higher_is_better = {"match": True}

    file: str = option("echo.jsonl")
    instruction: str = option("Repeat this sentence.")

    def read_items(self, root):
        import json

        lines = (root / self.file).read_text().splitlines()
        return [Item(**json.loads(line)) for line in lines][: self.limit]

    def predict_batch(self, items, keys, generator):
        prompts = [self.model.encode_prompt(f"{self.instruction} {it.text}") for it in items]
        return self.text_predictions(keys, prompts, generator)

    def score(self, items, preds):
        match = mean_of([float(p.text.strip() == it.text) for it, p in zip(items, preds)])
        empty = System("no output", {"match": mean_of([0.0 for _ in items])})
        return Scored(model={"match": match}, judge="none (exact match)", baselines={"empty": empty},
                      failed_as="no match")

    def report_rows(self, items, preds, extra, indices):
        return [Row().text("sentence", items[i].text).text("output", preds[i].text) for i in indices]
'''


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution in ``site``: its modules and a dist-info with METADATA and entry points."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_help_lists_built_in_and_plugin_tasks_without_importing_them(site, capsys):
    install(site, "echo-plugin", {"echo-text": "echo_plugin_never_imported:EchoText"}, {})
    main(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert "built-in tasks:" in out and "coco-caption" in out and "musiccaps-gen" in out
    assert "echo-text" in out and "echo_plugin_never_imported:EchoText (echo-plugin)" in out
    assert available()["echo-text"].plugin == "the package echo-plugin"


def test_a_plugin_task_is_refused_a_built_in_name_naming_both(site, capsys):
    install(site, "shadow-plugin", {"coco-caption": "shadow:Caption"}, {})
    with pytest.raises(TaskRegistryError, match=r"entry point coco-caption = 'shadow:Caption' of the package "
                                                r"shadow-plugin.*built-in task 'coco-caption' \(benchmarks"):
        available()
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--help"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "task name clash" in err and "shadow-plugin" in err and "Traceback" not in err


def test_a_broken_plugin_is_named_not_a_traceback(site, capsys):
    install(site, "broken-plugin", {"broken-task": "broken_task:Task", "not-a-task": "not_a_task:Thing",
                                    "wrong-name": "wrong_name:Named"},
            {"broken_task": "import a_dependency_that_is_not_installed\n",
             "not_a_task": "class Thing:\n    name = 'not-a-task'\n",
             "wrong_name": PLUGIN.replace("class EchoText", "class Named")})
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "broken-task", "--ckpt", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert ("the anygpt.tasks entry point broken-task = 'broken_task:Task' of the package broken-plugin could not be "
            "loaded: ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'") in err
    assert "Traceback" not in err
    with pytest.raises(TaskRegistryError, match="not a subclass of benchmarks.tasks.base.Task"):
        load_task("not-a-task")
    with pytest.raises(TaskRegistryError, match="whose name attribute is 'echo-text'"):
        load_task("wrong-name")
    with pytest.raises(TaskRegistryError, match="unknown benchmark task 'nosuch'.*coco-caption"):
        load_task("nosuch")


def test_a_task_with_options_but_no_dataclass_is_refused(site):
    source = PLUGIN.replace("@dataclass\nclass EchoText", "class EchoText")
    install(site, "plain-plugin", {"echo-text": "plain_echo:EchoText"}, {"plain_echo": source})
    with pytest.raises(TaskRegistryError, match=r"declares options \['file', 'instruction'\] but is not a dataclass"):
        load_task("echo-text")


@pytest.mark.slow
def test_a_plugin_task_runs_through_the_cli_and_its_recorded_command_reruns(site, bundle, tmp_path, capsys):
    install(site, "echo-plugin", {"echo-text": "echo_plugin:EchoText"}, {"echo_plugin": PLUGIN})
    data = tmp_path / "data"
    data.mkdir()
    (data / "echo.jsonl").write_text("".join(json.dumps({"key": f"k{i}", "text": t}) + "\n"
                                             for i, t in enumerate(["a cat", "two dogs", "a red bus"])))
    out = tmp_path / "out"
    main(["benchmark", "echo-text", "--ckpt", str(bundle), "--data", str(data), "--out", str(out),
          "--generation", '{"max_new_tokens": 4}', "--resamples", "50", "--instruction", "Say it again."])
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "echo-text" and saved["n"] == 3 and set(saved["baselines"]) == {"empty"}
    assert saved["command"].startswith("anygpt benchmark echo-text --ckpt ") and "--instruction" in saved["command"]
    assert (out / "report.html").is_file()
    argv = shlex.split(saved["command"])[1:]
    main([*argv, "--out", str(tmp_path / "again")])  # the recorded command works as written
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["metrics"] == saved["metrics"] and again["model_hash"] == saved["model_hash"]
    with pytest.raises(SystemExit):
        main(["benchmark", "echo-text", "--help"])
    assert "Repeat a sentence" in capsys.readouterr().out


def test_the_table_skips_files_that_are_not_results(tmp_path, capsys):
    root = Path(__file__).resolve().parents[3] / "docs/demo/results"
    folder = tmp_path / "results"
    folder.mkdir()
    for f in root.glob("*.json"):
        (folder / f.name).write_text(f.read_text())
    (folder / "notes.json").write_text('{"what": "not a result"}')
    (folder / "broken.json").write_text("{not json")
    assert table.render(table.load_results(folder)) == table.render(table.load_results(root))
    err = capsys.readouterr().err
    assert f"skipping {folder / 'notes.json'}: not a benchmark results.json" in err
    assert f"skipping {folder / 'broken.json'}: not JSON" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="no results files"):
        table.load_results(empty)
