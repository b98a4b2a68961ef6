"""The one base of every error that is the user's to fix: a file, a setting, a dataset, a checkpoint.

``scoresep`` commands print such an error as one line naming what is wrong (exit status 1) and keep the full
traceback of every other exception: an internal bug is never dressed up as a user's mistake. Each error class of
the project (``AudioError``, ``MidiError``, ``DatasetError``, ``CheckpointError``, ...) derives from
``UserError`` as well as from the built-in class it always was, so code that catches ``ValueError`` or
``RuntimeError`` still catches it.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave; the message names it and says what is wrong."""


class SettingsError(UserError, ValueError):
    """A setting or argument out of its range or of the wrong kind (a ``ValueError``, as it always was)."""
