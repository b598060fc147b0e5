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
