"""Test helpers, imported as ``tests.helpers`` (the repository root is on pytest's ``pythonpath``):
``training`` (tiny data, trainers and stages), ``cli`` (running ``scoresep`` in-process) and ``losses`` (a loss
term of a "user's own package", named by class path in the tests that plug one in)."""

from tests.helpers.cli import last_line, run_cli, snapshot
from tests.helpers.training import (
    TINY_FRAME,
    TINY_S,
    TINY_T,
    SignalAt,
    quiet_trainer,
    tiny_batch,
    tiny_datamodule,
    train_tiny_stages,
)

__all__ = ["TINY_FRAME", "TINY_S", "TINY_T", "SignalAt", "last_line", "quiet_trainer", "run_cli", "snapshot",
           "tiny_batch", "tiny_datamodule", "train_tiny_stages"]
