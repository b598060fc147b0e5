import subprocess
import sys

from anygpt import cli


def test_help_lists_lightning_and_registered_subcommands(capsys, monkeypatch):
    monkeypatch.setitem(cli.LIGHTNING_SUBCOMMANDS, "fit", "Train")
    monkeypatch.setattr(cli, "registered_commands", lambda: {"demo-cmd": ("math:sqrt", "a registered command")})
    cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "demo-cmd"):
        assert name in out


def test_registered_command_runs_through_jsonargparse(monkeypatch, capsys):
    monkeypatch.setattr(cli, "registered_commands", lambda: {"add": ("tests.cli_target:add", "add numbers")})
    assert cli.run_command("add", ["2", "--b", "5"]) == 7


def test_unknown_subcommand_exits_with_usage():
    proc = subprocess.run([sys.executable, "-m", "anygpt.cli", "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown subcommand" in proc.stderr


def test_plugins_add_tasks_not_commands(tmp_path, monkeypatch):
    """The old undocumented ``anygpt.commands`` entry-point group is not read: plugins extend what the commands act
    on (``anygpt.tasks``, ``anygpt.modalities``), and ``anygpt benchmark`` parses its own arguments."""
    from anygpt.commands import ArgvCommand, registered_commands

    info = tmp_path / "old_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: old-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[anygpt.commands]\nmotion-caption = old_plugin:run\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "motion-caption" not in registered_commands()
    assert registered_commands()["benchmark"][0] == ArgvCommand("benchmarks.tasks.cli:main")
