"""Never lose a run: atomic checkpoint files, a checkpoint on pre-emption (SIGUSR1), and random-number state
carried in checkpoints so a resumed run continues exactly where it stopped.

All three are named in every experiment YAML (``trainer.plugins`` / ``trainer.callbacks``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info


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
    """On ``signal_name`` (SLURM sends SIGUSR1 before the time limit with ``--signal=SIGUSR1@90``): finish the
    current batch, write ``last.ckpt`` where the run's ``last`` ModelCheckpoint writes (so ``--ckpt_path last``
    resumes from it), stop training cleanly and, inside a SLURM job with ``requeue: true``, requeue it.

    Every process handles the signal; the decision to stop is shared across processes, so all of them save
    and stop at the same batch.

    Args:
        signal_name: the signal to catch (``SIGUSR1``, or ``SIGTERM`` for schedulers that send it).
        requeue: run ``scontrol requeue $SLURM_JOB_ID`` from rank 0 after saving, when inside a SLURM job.
    """

    def __init__(self, signal_name: str = "SIGUSR1", requeue: bool = True):
        if not hasattr(signal, signal_name):
            raise ValueError(f"PreemptionCheckpoint: unknown signal {signal_name!r}")
        self.signal_name, self.requeue = signal_name, requeue
        self.requested = False
        self.stopped = False  # True once this callback stopped a run: the run is not finished
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stopped = False
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(getattr(signal, self.signal_name), self._handle)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(getattr(signal, self.signal_name), self._previous)
            self._previous = None

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.filename == "last" and callback.dirpath:
                return Path(callback.dirpath) / "last.ckpt"
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        rank_zero_info(f"{self.signal_name}: saved {path} at step {trainer.global_step}; stopping "
                       "(resume with --ckpt_path last)")
        trainer.should_stop = True
        self.requested, self.stopped = False, True
        job = os.environ.get("SLURM_JOB_ID")
        if self.requeue and job and trainer.is_global_zero:
            subprocess.run(["scontrol", "requeue", job], check=False)
