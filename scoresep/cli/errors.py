"""How a command ends when something is wrong: a user's error (``scoresep.errors.UserError``, or a file the OS
cannot find or write) is one line naming what is wrong and exit status 1; Ctrl-C one line and 130; any other
exception keeps its traceback, because it is a bug of ours, not the user's mistake."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from scoresep.errors import UserError

# The OS errors a user causes by naming a file or folder (missing, not a folder, not writable).
FILE_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


class CommandLineError(UserError):
    """A command line or config file that does not parse: exit status 2, the message naming the option or file."""


UNION_WRAPPER = "Does not validate against any of the Union subtypes"


def user_error(error: BaseException) -> BaseException:
    """The error to show the user: jsonargparse wraps an exception raised while building a class (an unreadable
    checkpoint, an unknown instrument) in a Union-validation message that ends with a dump of the namespace;
    the first error of the chain that is not such a wrapper says what is wrong."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not str(current).startswith(UNION_WRAPPER):
            return current
        current = current.__cause__ or current.__context__
    return error


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line: the user's last line must say what is wrong."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def reported_error(error: BaseException) -> BaseException | None:
    """The user's error behind ``error`` (jsonargparse wraps one raised while it builds a class, Lightning may
    chain it), or None when there is none: then it is ours and keeps its traceback."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (UserError, *FILE_ERRORS)):
            return user_error(current)
        current = current.__cause__ or current.__context__
    return None


def reporting_errors(command: str, run: Callable[[], None]) -> None:
    """Run ``run()``; a user error (bad data, checkpoint or settings: its message says which file and why) is
    one line and exit status 1, a Ctrl-C one line and 130, anything else its traceback. Every output is written to
    a temp file and renamed, and a fit's first Ctrl-C saves and stops by itself (PreemptionCheckpoint): nothing is
    half-written."""
    try:
        run()
    except KeyboardInterrupt:
        print(f"scoresep {command}: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None
    except Exception as error:
        reported = reported_error(error)
        if reported is None:
            raise
        print(f"scoresep {command}: error: {one_line(reported)}", file=sys.stderr)
        raise SystemExit(1) from None
