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
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info

from scoresep.errors import SettingsError, UserError
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
            raise SettingsError(f"PreemptionCheckpoint: unknown or reserved signal {signal_name!r} "
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
    """LightningCLI's config.yaml writer, which puts each run's config in a folder of that run only, and takes
    back what a run wrote when it fails before its first training step.

    Where: a CSV or TensorBoard logger's version folder (``lightning_logs/<name>/version_N/``, beside its
    ``hparams.yaml``); for any other logger (the YAMLs' offline W&B logger, whose ``save_dir`` is shared by every
    run) and without a logger, a new ``<save_dir>/<run name>/version_N/`` made for this run
    (``lightning_logs/version_N/`` under ``default_root_dir`` without a logger). Lightning itself would write them
    all to the shared folder, each run replacing the last one's ``config.yaml``. The saved config always says
    ``overwrite: false``: re-running it never replaces another run's checkpoints unless asked again.

    Take-back: a failed attempt would otherwise leave a ``version_N/`` holding only a config, and the next run's
    version number would say nothing. Only a log folder that was empty when this run's setup began (a version the
    logger had just made, or the one made here) is taken back, and only the files Lightning writes at the start,
    then the folder itself if that left it empty. A reused version folder holding an earlier run's logs, the
    ``save_dir`` and ``name`` folders, and everything after the first training step are never touched."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._fresh_log_dirs: list[Path] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        self._fresh_log_dirs = []
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None)
            if log_dir and Path(log_dir).is_dir() and not Path(log_dir).is_symlink() and not any(
                    Path(log_dir).iterdir()):
                self._fresh_log_dirs.append(Path(log_dir))
        run_dir = self._run_dir(trainer)
        if trainer.is_global_zero:
            config = self.config.clone()
            if "overwrite" in config:
                config.overwrite = False
            self.parser.save(config, str(run_dir / self.config_filename), skip_none=False, overwrite=self.overwrite,
                             multifile=self.multifile)
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def _run_dir(self, trainer: pl.Trainer) -> Path:
        """This run's log folder (made on rank 0, the same path on every process)."""
        if trainer.loggers and isinstance(trainer.loggers[0], CSVLogger | TensorBoardLogger):
            run_dir = Path(trainer.log_dir)  # the logger's version folder (broadcast by Lightning)
            if trainer.is_global_zero:
                run_dir.mkdir(parents=True, exist_ok=True)
            return run_dir
        made = None
        if trainer.is_global_zero:
            made = str(new_version_dir(_run_parent(trainer)))
        run_dir = Path(trainer.strategy.broadcast(made))
        self._fresh_log_dirs.append(run_dir)
        return run_dir

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_step > 0 or not trainer.is_global_zero:
            return
        for folder in self._fresh_log_dirs:
            try:
                for name in _RUN_START_FILES:
                    (folder / name).unlink(missing_ok=True)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            except OSError as error:  # never hide the run's own error behind a clean-up problem
                rank_zero_info(f"could not take back {folder} ({error})")
        self._fresh_log_dirs = []


def _run_parent(trainer: pl.Trainer) -> Path:
    """Where a run without a versioned log folder gets one: ``<save_dir>/<run name>`` of its first logger (the W&B
    run's name, not its project), ``<default_root_dir>/lightning_logs`` without a logger (rank 0 only: a W&B
    run exists there alone)."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir) / "lightning_logs"
    logger = trainer.loggers[0]
    root = Path(logger.save_dir or trainer.default_root_dir)
    name = getattr(logger.experiment, "name", None) if isinstance(logger, WandbLogger) else logger.name
    return root / str(name) if name else root


def new_version_dir(parent: Path) -> Path:
    """A new, empty ``parent/version_N`` (N one above the highest there), made here: two runs starting at once
    never get the same one."""
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(path.name[len("version_"):]) for path in parent.glob("version_*")
               if path.name[len("version_"):].isdigit()]
    number = max(numbers, default=-1) + 1
    while True:
        try:
            (parent / f"version_{number}").mkdir()
            return parent / f"version_{number}"
        except FileExistsError:
            number += 1


def shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the working folder when inside it (Lightning makes a
    ModelCheckpoint's ``dirpath`` absolute)."""
    try:
        return str(Path(path).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class OutputsExistError(UserError, ValueError):
    """A fit would replace files of another run; the message names them and the ways out."""


def fixed_checkpoint_files(callback: ModelCheckpoint) -> list[Path]:
    """The files of fixed name that ``callback`` writes (``<dirpath>/<filename>.ckpt``, and ``last.ckpt`` with
    ``save_last``): a file of that name already there is replaced. None when its folder is not fixed yet
    (``dirpath`` None: Lightning puts it in the new log version), its names are templates (``{epoch}``), or it
    numbers names that are taken (``enable_version_counter``: ``best-v1.ckpt``)."""
    if callback.dirpath is None or getattr(callback, "_enable_version_counter", False):
        return []
    names = []
    if callback.save_top_k != 0 and callback.filename and "{" not in callback.filename:
        names.append(callback.filename + callback.FILE_EXTENSION)
    if callback.save_last and "{" not in callback.CHECKPOINT_NAME_LAST:
        names.append(callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION)
    return [Path(callback.dirpath) / name for name in dict.fromkeys(names)]


def earlier_checkpoints(trainer: pl.Trainer, ckpt_path: str | None, overwrite: bool) -> list[Path]:
    """The checkpoint files of an earlier run that this fit would replace, checked before it starts (on every
    process, before anything is written).

    Resuming (``--ckpt_path``) continues the run that wrote them, and a ``fast_dev_run`` writes no checkpoint:
    nothing to check. ``--ckpt_path last`` where no ``last*.ckpt`` is found starts from scratch (Lightning only
    warns), so it is checked like a new run. An existing file raises OutputsExistError naming the files and the
    three ways out, unless ``overwrite``: then they are returned, for ``FitOutputs`` to take away when training
    starts."""
    callbacks = [callback for callback in trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)]
    resumes = bool(ckpt_path) and (str(ckpt_path) != "last" or any(
        callback.CHECKPOINT_NAME_LAST in path.name and path.suffix == callback.FILE_EXTENSION
        for callback in callbacks if callback.dirpath is not None and Path(callback.dirpath).is_dir()
        for path in Path(callback.dirpath).iterdir()))
    if resumes or trainer.fast_dev_run:
        return []
    existing: dict[Path, list[str]] = {}
    for callback in callbacks:
        for path in fixed_checkpoint_files(callback):
            if path.is_file() or path.is_symlink():
                existing.setdefault(path.parent, []).append(path.name)
    if existing and not overwrite:
        held = "; ".join(f"{shown(folder)} holds {' and '.join(dict.fromkeys(names))}"
                         for folder, names in existing.items())
        last = any(callback.CHECKPOINT_NAME_LAST in name for callback in callbacks for names in existing.values()
                   for name in names)
        resume = "resume that run with --ckpt_path last, " if last else ""
        raise OutputsExistError(f"{held} of an earlier run, which this fit would replace: {resume}write this one "
                                "elsewhere with --checkpoint_dir DIR, or replace them with --overwrite true")
    return [folder / name for folder, names in existing.items() for name in dict.fromkeys(names)]


class FitOutputs(Callback):
    """What ``scoresep fit`` adds to every fit (the CLI appends it; not for YAMLs).

    - ``replaced``: the earlier run's checkpoint files that ``--overwrite true`` replaces. They are removed when
      this run's training starts (rank 0), not before: a run that fails at setup or in its sanity check leaves
      them, and once it trains, the folder never holds one run's ``last.ckpt`` beside another's ``best.ckpt``.
    - counts this fit's validations, so that ``missing_best`` can say why a monitored checkpoint
      (``best.ckpt``) was never written.
    """

    def __init__(self, replaced: list[Path] | None = None):
        self.replaced = list(replaced or [])
        self.validations = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            for path in self.replaced:
                path.unlink(missing_ok=True)
                rank_zero_info(f"--overwrite: removed {shown(path)}, written by an earlier run")
        self.replaced = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validations += 1

    def missing_best(self, trainer: pl.Trainer) -> str | None:
        """A note naming each monitored checkpoint this fit never wrote, why, and where its final weights are;
        None when every one was written."""
        notes = []
        last = next((Path(path) for callback in trainer.checkpoint_callbacks
                     if isinstance(callback, ModelCheckpoint) and callback.monitor is None
                     and (path := callback.best_model_path or callback.last_model_path) and Path(path).is_file()),
                    None)
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint) or callback.monitor is None or callback.save_top_k == 0:
                continue
            if callback.best_model_path:
                continue
            files = fixed_checkpoint_files(callback)
            what = shown(files[0]) if files else f"a checkpoint monitored by {callback.monitor}"
            if trainer.limit_val_batches == 0:
                why = "validation is off (limit_val_batches=0)"
            elif self.validations == 0:
                why = f"the fit ended at step {trainer.global_step}, before its first validation"
            else:
                why = f"validation never logged {callback.monitor!r}"
            notes.append(f"{why}, so {what} was not written")
        if not notes:
            return None
        final = (f"{shown(last)} holds this fit's final weights (step {trainer.global_step}): give that file where a "
                 "best.ckpt is expected, or fit until a validation runs" if last is not None else
                 "no checkpoint holds this fit's weights")
        return f"note: {'; '.join(notes)}; {final}"


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
