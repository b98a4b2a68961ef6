"""The subprocesses of a run, each a ``python -m scoresep ...`` command (``_scoresep``) started in the project's
folder with its output appended to a log: the data step (``prepare_data``: render the mini-Slakh if missing, build
each cache once; ``_run`` waits for each command) and the rows (``RowJob``: a row's fit, then its evaluate,
advanced by ``poll`` without blocking; ``stop_jobs`` stops the running ones; ``_finish_row`` is a finished row's
status).

Why subprocesses: each row trains in its own process with its own thread count (``OMP_NUM_THREADS``), so
``parallel`` rows run side by side, a crash of one row's fit cannot take the others down, and its whole output is
in its ``run.log``. Stopping sends SIGUSR1 to a fit first, so it saves ``last.ckpt`` and the row resumes from it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from scoresep.configs import PROJECT_ROOT
from scoresep.reproduce.preset import Preset, ReproduceError


class RowJob:
    """The commands of one row (fit, then evaluate), run one after the other as subprocesses.

    ``after_fit`` runs in this process once the fit command has succeeded (it marks the row as trained).
    """

    def __init__(self, name: str, commands: list[tuple[str, list[str]]], log: Path, env: dict[str, str],
                 after_fit=None, previous_seconds: float = 0.0, precision: str = "32-true"):
        self.name, self.commands, self.log, self.env = name, commands, log, env
        self.after_fit, self.previous_seconds = after_fit, previous_seconds
        self.precision = precision  # the row's trainer.precision, recorded in reproduce.json
        self.process: subprocess.Popen | None = None
        self.current = ""
        self.started = time.perf_counter()
        self.returncode: int | None = None

    def poll(self) -> bool:
        """Advance; True when every command has finished (``returncode`` 0) or one failed (its exit code)."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return False
            self.process = None
            if code != 0:
                self.returncode = code
                return True
            if self.current == "fit" and self.after_fit is not None:
                self.after_fit()
        if not self.commands:
            self.returncode = 0
            return True
        self.current, command = self.commands.pop(0)
        with self.log.open("a") as log:
            log.write(f"\n$ {' '.join(command)}\n")
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=PROJECT_ROOT)
        return False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def stop_jobs(jobs: list[RowJob], grace: float = 60.0) -> None:
    """Stop every running row at once: SIGUSR1 first (the fit saves ``last.ckpt`` at the end of its batch and
    stops, see PreemptionCheckpoint), SIGTERM after ``grace`` seconds, SIGKILL 10 s later."""
    for job in jobs:
        if job.alive:
            job.process.send_signal(signal.SIGUSR1 if job.current == "fit" else signal.SIGTERM)
    for escalate in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + (grace if escalate == signal.SIGTERM else 10.0)
        while any(job.alive for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.2)
        for job in jobs:
            if job.alive:
                job.process.send_signal(escalate)


def _scoresep(*args: str) -> list[str]:
    return [sys.executable, "-m", "scoresep", *args]


def prepare_data(preset: Preset, data_sections: list[dict], log: Path) -> None:
    """Render the mini-Slakh when the preset says how and it is missing; build the cache once for each distinct
    data setting the rows train on (``data_sections``: the rows' merged ``data`` configs)."""
    root = Path(preset.data["root"])
    if not root.exists():
        if not preset.synth:
            raise ReproduceError(f"{root}: dataset folder not found (this preset renders no data; give --data)")
        synth = preset.synth
        _run(_scoresep("synth", "--out", str(root), "--tracks", str(synth.get("tracks", 48)), "--seconds",
                       str(synth.get("seconds", 30)), "--seed", str(synth.get("seed", 0))), log, "synth")
    keys = ("root", "cache_dir", "instruments", "sample_rate", "hop_length", "min_midi", "max_midi")
    settings = {tuple(str(v) if not isinstance(v, list) else tuple(v) for v in (d[k] for k in keys))
                for d in data_sections}
    for root_dir, cache_dir, instruments, sample_rate, hop_length, min_midi, max_midi in sorted(settings):
        _run(_scoresep("prepare", "--root", root_dir, "--cache", cache_dir, "--instruments", *instruments,
                       "--sample-rate", sample_rate, "--hop-length", hop_length, "--min-midi", min_midi,
                       "--max-midi", max_midi), log, "prepare")


def _run(command: list[str], log: Path, what: str) -> None:
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    if code != 0:
        raise ReproduceError(f"{what} failed (exit {code}); see {log}")


def _finish_row(out: Path, name: str, job: RowJob) -> dict:
    seconds = time.perf_counter() - job.started + job.previous_seconds
    if job.returncode == 0:
        return {"status": "done", "seconds": seconds}
    return {"status": "failed", "seconds": seconds, "step": job.current,
            "reason": f"{job.current} exited with {job.returncode}; see {job.log}"}
