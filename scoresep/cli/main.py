"""The ``scoresep`` command: one entry point that hands ``fit|validate|test|predict`` to LightningCLI
(``lightning.py``) and every other command to its argparse sub-parser (data, audio, results commands)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from scoresep.cli.errors import reporting_errors
from scoresep.cli.lightning import LIGHTNING_COMMANDS, lightning_main


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command but the LightningCLI ones (listed, handed on before parsing)."""
    from scoresep.cli.data_commands import add_data_commands
    from scoresep.cli.evaluate import add_evaluate_command
    from scoresep.cli.results_commands import add_results_commands
    from scoresep.cli.separate import add_separate_command
    from scoresep.cli.transcribe import add_transcribe_command

    parser = argparse.ArgumentParser(prog="scoresep", description="Score-supervised music source separation.",
                                     epilog="Training: scoresep {fit,validate,test,predict} --config FILE.yaml "
                                            "(LightningCLI; add --help for its options).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in LIGHTNING_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (scoresep {name} --help)", add_help=False)
    add_data_commands(commands)
    add_separate_command(commands)
    add_transcribe_command(commands)
    add_evaluate_command(commands)
    add_results_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` None means the process's command line. A Ctrl-C at any moment, while the command
    line is read and the modules load too, ends in one line and exit status 130."""
    try:
        _main(argv)
    except KeyboardInterrupt:
        print("scoresep: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None


def _main(argv: list[str] | None) -> None:
    args_given = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        reporting_errors(argv[0], lambda: lightning_main(argv if args_given else None))
        return
    # our own INFO lines (prepare, pack); other libraries' only from WARNING on (torch logs cache statistics at
    # exit at INFO, which would follow a Ctrl-C's last line)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("scoresep").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    if not getattr(args, "run", None):
        build_parser().print_help()
        raise SystemExit(2)
    reporting_errors(args.command, lambda: args.run(args))
