"""Never lose a run: atomic checkpoint files, a checkpoint on pre-emption (SIGUSR1) and on Ctrl-C, and
random-number state carried in checkpoints so a resumed run continues exactly where it stopped.

All three are named in every experiment YAML (``trainer.plugins`` / ``trainer.callbacks``). ``Trainer`` is the
``scoresep fit`` trainer: Lightning's, with the batch limits read as the user wrote them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info

from scoresep.fileio import atomic_write_text

BatchLimit = int | float | None


class Trainer(pl.Trainer):
    """Lightning's Trainer with ``limit_{train,val,test,predict}_batches`` typed ``int | float`` instead of
    Lightning's ``float | int``.

    Lightning reads an int as a number of batches and a float as a fraction of them; its signature lists float
    first, so the command line's ``--trainer.limit_val_batches=1`` parsed as 1.0, *all* batches, silently. Here
    ``1`` is one batch and ``1.0`` (or ``0.25``) a fraction, as Lightning's documentation means them. Every other
    argument is Lightning's own."""

    def __init__(self, *, limit_train_batches: BatchLimit = None, limit_val_batches: BatchLimit = None,
                 limit_test_batches: BatchLimit = None, limit_predict_batches: BatchLimit = None, **kwargs: Any):
        super().__init__(limit_train_batches=limit_train_batches, limit_val_batches=limit_val_batches,
                         limit_test_batches=limit_test_batches, limit_predict_batches=limit_predict_batches,
                         **kwargs)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, flushes it to disk and renames it over
    the target: a kill at any moment leaves either the old or the new file, never a truncated one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


class RandomStateCheckpoint(Callback):
    """Saves the Python, NumPy and torch (CPU and CUDA) generators with each checkpoint and restores them on
    resume, so dropout and random sub-mixtures after a resume draw what the uninterrupted run drew.

    Data crops do not need it: they are keyed by ``(seed, epoch, item)`` (see data/samplers.py).
    """

    def state_dict(self) -> dict[str, Any]:
        kind, key, position, has_gauss, gauss = np.random.get_state()
        # tensors and primitives only, so checkpoints still load with torch.load(weights_only=True)
        state = {"python": random.getstate(), "torch": torch.get_rng_state(),
                 "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "position": position,
                           "has_gauss": has_gauss, "gauss": gauss}}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        saved = state_dict["numpy"]
        np.random.set_state((saved["kind"], saved["key"].numpy().astype(np.uint32), saved["position"],
                             saved["has_gauss"], saved["gauss"]))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class PreemptionCheckpoint(Callback):
    """On ``signal_name`` (SLURM sends SIGUSR1 before the time limit with ``--signal=SIGUSR1@90``) and, with
    ``ctrl_c``, on the first Ctrl-C (SIGINT): finish the current batch, write ``last.ckpt`` where the run's
    ``last`` ModelCheckpoint writes (so ``--ckpt_path last`` resumes from it), stop training cleanly and, for the
    pre-emption signal inside a SLURM job with ``requeue: true``, requeue it. A second Ctrl-C stops at once, as
    Ctrl-C does without this callback (nothing saved at that step).

    Every process handles the signal; the decision to stop is shared across processes, so all of them save
    and stop at the same batch.

    Args:
        signal_name: the pre-emption signal to catch (``SIGUSR1``, or ``SIGTERM`` for schedulers that send it).
        requeue: run ``scontrol requeue $SLURM_JOB_ID`` from rank 0 after saving, when inside a SLURM job.
        ctrl_c: treat the first Ctrl-C like the pre-emption signal (never requeued): a keystroke does not lose the
            training since the last epoch end. The run exits with status 130.
    """

    def __init__(self, signal_name: str = "SIGUSR1", requeue: bool = True, ctrl_c: bool = True):
        if not hasattr(signal, signal_name) or signal_name == "SIGINT":
            raise ValueError(f"PreemptionCheckpoint: unknown or reserved signal {signal_name!r} "
                             "(SIGINT is Ctrl-C: use ctrl_c)")
        self.signal_name, self.requeue, self.ctrl_c = signal_name, requeue, ctrl_c
        self.requested: str | None = None  # the name of the signal received and not yet acted on
        self.stopped_by: str | None = None  # the signal that stopped the run (the run is not finished)
        self._previous: dict[int, Any] = {}

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self.requested = self.requested or name
        if signum == signal.SIGINT:  # the next Ctrl-C interrupts at once
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))
            rank_zero_info("Ctrl-C: saving last.ckpt after this batch, then stopping (Ctrl-C again: stop now, "
                           "nothing saved)")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stopped_by, self.requested = None, None
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            # a SIGINT that is ignored (a job started in the background by a script) stays ignored
            ctrl_c = self.ctrl_c and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
            signals = [getattr(signal, self.signal_name)] + ([signal.SIGINT] if ctrl_c else [])
            for signum in signals:
                self._previous[signum] = signal.signal(signum, self._handle)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()  # Lightning does not call teardown after an exception

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.filename == "last" and callback.dirpath:
                return Path(callback.dirpath) / "last.ckpt"
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False):
            return
        # a process that did not receive the signal itself stops for the pre-emption signal
        received = self.requested or self.signal_name
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        rank_zero_info(f"{received}: saved {path} at step {trainer.global_step}; stopping "
                       "(resume with --ckpt_path last)")
        trainer.should_stop = True
        self.requested, self.stopped_by = None, received
        job = os.environ.get("SLURM_JOB_ID")
        if self.requeue and received != "SIGINT" and job and trainer.is_global_zero:
            subprocess.run(["scontrol", "requeue", job], check=False)


# What Lightning and the config callback write into a run's log folder before its first training step.
_RUN_START_FILES = ("config.yaml", "hparams.yaml", "metrics.csv")


class SaveConfig(SaveConfigCallback):
    """LightningCLI's config.yaml writer, which also takes back what a run wrote when it fails before its first
    training step (a missing split, a checkpoint refused in ``setup``): otherwise every failed attempt leaves a
    ``lightning_logs/<name>/version_N/`` holding only a config, and the next run's version number says nothing.

    Only a log folder that was empty when this run's setup began (a version the logger had just made) is taken
    back, and only the files Lightning writes at the start, then the folder itself if that left it empty. A
    reused version folder holding an earlier run's logs, the ``save_dir`` and ``name`` folders, and everything
    after the first training step are never touched."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._fresh_log_dirs: list[Path] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._fresh_log_dirs = []
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None)
            if log_dir and Path(log_dir).is_dir() and not Path(log_dir).is_symlink() and not any(
                    Path(log_dir).iterdir()):
                self._fresh_log_dirs.append(Path(log_dir))
        super().setup(trainer, pl_module, stage)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_step > 0 or not trainer.is_global_zero:
            return
        for folder in self._fresh_log_dirs:
            try:
                for name in _RUN_START_FILES:
                    (folder / name).unlink(missing_ok=True)
                if not any(folder.iterdir()):
                    folder.rmdir()
            except OSError as error:  # never hide the run's own error behind a clean-up problem
                rank_zero_info(f"could not take back {folder} ({error})")
        self._fresh_log_dirs = []


class LearningCurve(Callback):
    """Appends each validation's metrics, with the optimiser step, wall-clock and process CPU seconds since the
    fit started, to a JSON file: the learning curve of a run against steps and against CPU-minutes
    (``benchmarks/learning_curves.py`` adds it to the rows it measures).

    The file is ``{"points": [{"step", "epoch", "seconds", "cpu_seconds", "metrics": {name: value}}]}``, rewritten
    atomically after each validation (rank 0 only; sanity checks are not recorded).

    Args:
        path: the JSON file to write.
        prefix: the metrics recorded (those whose names start with it).
    """

    def __init__(self, path: str, prefix: str = "val/"):
        self.path = Path(path)
        self.prefix = prefix
        self.points: list[dict[str, Any]] = []
        self._started: tuple[float, float] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._started is None:
            return
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                   if name.startswith(self.prefix) and torch.as_tensor(value).numel() == 1}
        self.points.append({"step": int(trainer.global_step), "epoch": int(trainer.current_epoch),
                            "seconds": time.perf_counter() - self._started[0],
                            "cpu_seconds": time.process_time() - self._started[1], "metrics": metrics})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"points": self.points}, indent=1))
