"""The option groups are defined once and parsed alike by chat, generate and benchmark (nested flags), and a
benchmark's recorded command names the groups' changed fields so that it parses back to the same options."""

from __future__ import annotations

import shlex

import pytest

from anygpt.cli import main
from anygpt.generation.options import DecodingOptions, LoadingOptions, PromptOptions
from benchmarks.tasks.cli import parser_for
from benchmarks.tasks.registry import load_task


@pytest.mark.parametrize("command", [["chat"], ["generate", "hello"], ["benchmark", "librispeech-asr"]])
def test_every_command_takes_the_same_prompt_and_loading_groups(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--prompt.template", "base", "--prompt.music_seconds", "7.5", "--loading.trust_code",
              "true", "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "prompt:\n" in out and "  template: base" in out and "  music_seconds: 7.5" in out
    assert "loading:\n" in out and "  trust_code: true" in out


def test_decoding_overrides_combine_the_budget_and_the_rest():
    assert DecodingOptions().generation_overrides() == {}
    assert DecodingOptions(max_new_tokens=40, overrides={"top_p": 0.9}).generation_overrides() == {
        "top_p": 0.9, "max_new_tokens": 40}


def test_a_benchmark_command_round_trips_through_its_parser():
    task = load_task("librispeech-asr")(ckpt="runs/x", prompt=PromptOptions(template="chat", constrained=False),
                                        loading=LoadingOptions(compile=True), split="dev-clean", seed=3)
    command = task.command()
    assert command == ("anygpt benchmark librispeech-asr --ckpt runs/x --seed 3 --prompt.template chat "
                       "--prompt.constrained false --loading.compile true --split dev-clean")
    parser = parser_for("librispeech-asr")
    again = vars(parser.instantiate(parser.parse_args(shlex.split(command)[3:])))
    again.pop("config")
    assert load_task("librispeech-asr")(**again).options() == task.options()
    # the prompt group keys the prediction cache; the loading group does not (file contents are hashed instead)
    assert task.cache_options()["prompt"]["template"] == "chat" and "loading" not in task.cache_options()
