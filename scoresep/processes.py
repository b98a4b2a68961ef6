"""Worker processes that leave Ctrl-C to the command: ``worker_pool`` for ``prepare`` and ``synth``.

A terminal's Ctrl-C reaches every process of its group: each pool worker would print its own KeyboardInterrupt
traceback (a screenful for four workers) over the command's one line. The workers ignore SIGINT; the parent gets
the KeyboardInterrupt, leaves the ``with`` block, and the pool terminates them.
"""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.pool import Pool


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_pool(workers: int) -> Pool:
    """A pool of ``workers`` processes started with spawn, not fork (torch's, OpenMP's and FluidSynth's thread
    pools deadlock in forked children), that ignore Ctrl-C. Use it as a context manager."""
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_ctrl_c)
