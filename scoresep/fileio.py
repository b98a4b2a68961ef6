"""Writing files so that nothing a user produced is ever half-written: a temporary file next to the target,
flushed to disk and renamed onto it, with the permissions a plain ``open()`` would give the file.

Used by the cache, the synthesiser, the reports and every command that writes output; the data package, the
inference commands and the reports all depend on this module, not on each other, for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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
