"""Writing files so that nothing a user produced is ever half-written: a temporary file next to the target,
flushed to disk and renamed onto it, with the permissions a plain ``open()`` would give the file.

Used by the cache, the synthesiser, the reports and every command that writes output; the data package, the
inference commands and the reports all depend on this module, not on each other, for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from scoresep.errors import UserError


def default_file_mode() -> int:
    """The permission bits a plain ``open()`` gives a new file: 0o666 minus the process's umask.

    Files written atomically start as ``tempfile.mkstemp`` temp files, which are 0600: renamed as they are,
    a dataset or cache would be unreadable to the other users of a shared machine. The umask is read from
    ``/proc/self/status`` where Linux has it, because ``os.umask`` can only read it by changing it, which
    briefly affects every thread of the process.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(stream)`` on a temporary file next to ``path``, then rename it onto ``path``.

    The file gets the permissions a plain ``open()`` would give it (``default_file_mode``), not mkstemp's 0600.
    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, default_file_mode())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) written atomically onto ``path`` (``atomic_write_bytes``)."""
    data = text.encode()
    atomic_write_bytes(path, lambda stream: stream.write(data))


class OutputExistsError(UserError, PermissionError):
    """An output that would replace an existing file without ``--overwrite``, or that another run is writing
    now; the message names it and says what to do."""


def lock_file(path: str | os.PathLike) -> Path:
    """The hidden lock file beside ``path`` that a run writing ``path`` holds (``.<name>.scoresep-lock``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.scoresep-lock")


def _lock_owner(lock: Path) -> tuple[str, int] | None:
    """``(host, pid)`` written in a lock file, or None when it cannot be read (being written, or not ours)."""
    try:
        host, pid = lock.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold ``path`` for this run while the ``with`` block writes it: a second run that wants the same output at
    the same time is refused (OutputExistsError naming the run that holds it) instead of racing it, so at most
    one of two concurrent writers wins, and the other says so.

    The lock is a file beside ``path`` (``lock_file``) created exclusively, holding the host and process id; one
    left by a run that died on this host is taken over. Its folder must exist."""
    import socket

    path, lock, host = Path(path), lock_file(path), socket.gethostname()
    for attempt in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, default_file_mode())
            break
        except FileExistsError:
            owner = _lock_owner(lock)
            if attempt == 0 and owner is not None and owner[0] == host and not _alive(owner[1]):
                lock.unlink(missing_ok=True)  # left behind by a run that was killed: take it over
                continue
            who = f" (process {owner[1]} on {owner[0]})" if owner is not None else ""
            raise OutputExistsError(f"{path}: another scoresep run{who} is writing it now; wait for it to end or "
                                    f"choose another output (if no such run exists any more, remove {lock})"
                                    ) from None
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(f"{host} {os.getpid()}\n")
        yield path
    finally:
        lock.unlink(missing_ok=True)


def refuse_existing(paths: list[Path], overwrite: bool, option: str = "--out") -> None:
    """OutputExistsError naming the first of ``paths`` that exists, unless ``overwrite``: a command never
    replaces a user's file without being asked (``--overwrite``)."""
    if overwrite:
        return
    existing = [path for path in paths if os.path.lexists(path)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}: already exists{more}; give --overwrite to replace it, or another "
                                f"{option}")
