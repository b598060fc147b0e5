"""The ``anygpt`` entry point: LightningCLI for fit/validate/test/predict, jsonargparse function CLIs for the rest."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from anygpt.commands import ArgvCommand, registered_commands, resolve
from anygpt.modalities.spec import ModalitySpecError
from anygpt.resolve import UntrustedCodeError

LIGHTNING_SUBCOMMANDS = {
    "fit": "Train a model (the LLM or a modality tokenizer) from a YAML config",
    "validate": "Run one validation epoch",
    "test": "Run one test epoch",
    "predict": "Run prediction",
}


def _usage() -> str:
    lines = ["usage: anygpt SUBCOMMAND [options]   (anygpt SUBCOMMAND --help for details)", "", "subcommands:"]
    for name, help_text in LIGHTNING_SUBCOMMANDS.items():
        lines.append(f"  {name:<12} {help_text}")
    for name, (_, help_text) in sorted(registered_commands().items()):
        lines.append(f"  {name:<12} {help_text}")
    return "\n".join(lines)


def _data_vocab(datamodule: object) -> object:
    return getattr(datamodule, "vocab", None)


def run_lightning(argv: Sequence[str]) -> None:
    """LightningCLI in subclass mode: configs name the model and data module by ``class_path``.

    The data module's vocabulary (``data.vocab``, built when it is instantiated) is linked to the model's ``vocab``
    argument, so the vocabulary is configured once and the model never reads the trainer's data module. Models without
    a ``vocab`` argument (the modality tokenizers) are left alone."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    class AnyGPTCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (LightningArgumentParser)
            parser.link_arguments("data", "model.init_args.vocab", compute_fn=_data_vocab, apply_on="instantiate")

    # From the console script the arguments are sys.argv's own; LightningCLI warns when it is given both.
    args = None if list(argv) == sys.argv[1:] else list(argv)
    try:
        AnyGPTCLI(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  args=args, save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    except Exception as err:
        from anygpt.data.checks import UnusableModalityError  # here: `anygpt --help` stays free of torch imports

        clash = _cause(err, ModalitySpecError) or _cause(err, UnusableModalityError)
        if clash is None:
            raise
        # jsonargparse buries the data module's own message in a Union error: say it plainly, without the trace
        print(f"anygpt {argv[0]}: error: {clash}", file=sys.stderr)
        raise SystemExit(2) from None


def _cause(err: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` in ``err``'s chain of causes."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_command(name: str, argv: Sequence[str]) -> object:
    from jsonargparse import CLI

    target_path, _ = registered_commands()[name]
    if isinstance(target_path, ArgvCommand):
        return resolve(target_path.target)(list(argv))
    target = resolve(target_path)
    # a command may add text after its options in --help (chat: its slash commands), as `cli_epilog`
    epilog = getattr(target, "cli_epilog", None)
    extra = {"epilog": epilog()} if callable(epilog) else {}
    return CLI(target, args=list(argv), prog=f"anygpt {name}", as_positional=True, **extra)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    name, rest = argv[0], argv[1:]
    if name in LIGHTNING_SUBCOMMANDS:
        run_lightning([name, *rest])
    elif name in registered_commands():
        from anygpt.hub import HubError  # here: huggingface_hub stays out of `anygpt --help`

        try:
            run_command(name, rest)
        except (UntrustedCodeError, HubError) as err:  # a refusal is an answer, not a crash: no traceback
            print(f"anygpt {name}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    else:
        print(f"anygpt: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
