"""The ``scoresep`` command line (``main``): ``fit|validate|test|predict`` through LightningCLI (``lightning``),
``env|synth|prepare|pack`` (``data_commands``), ``separate``, ``transcribe``, ``evaluate`` (one module each, with
their shared ``inputs`` and ``options``), ``reproduce|report`` (``results_commands``). How a command ends on an
error is ``errors``; a parse error's one line is ``parse_errors``. Library code never imports from here."""

from scoresep.cli.lightning import LIGHTNING_COMMANDS
from scoresep.cli.main import build_parser, main

__all__ = ["LIGHTNING_COMMANDS", "build_parser", "main"]
