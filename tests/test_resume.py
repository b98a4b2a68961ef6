"""Slow: a run killed with SIGKILL mid-epoch and resumed with ``--ckpt_path last`` ends with exactly the weights
of an uninterrupted run (``make test-full``)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _command(minislakh, workdir, *extra):
    return [str(Path(sys.executable).parent / "scoresep"), "fit", "--config", str(ROOT / "experiments/stage1.yaml"),
            "--data.root", str(minislakh), "--data.cache_dir", str(workdir / "cache"), "--data.segment_seconds=1.0",
            "--data.batch_size=2", "--trainer.max_epochs=3", "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
            "--model.init_args.model.channels=4", "--model.init_args.model.hidden=32",
            "--model.init_args.model.dropout=0.1", *extra]


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_sigkill_then_resume_equals_an_uninterrupted_run(minislakh, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for folder in (straight, killed):
        folder.mkdir()
    subprocess.run(_command(minislakh, straight), cwd=straight, env=env, check=True, capture_output=True, timeout=900)

    last = killed / "checkpoints/stage1/last.ckpt"
    run = subprocess.Popen(_command(minislakh, killed), cwd=killed, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not last.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the first epoch never wrote last.ckpt"
    first_epoch = torch.load(last, weights_only=True)["epoch"]
    time.sleep(1.0)  # into the second epoch
    run.send_signal(signal.SIGKILL)
    run.wait()
    checkpoint = torch.load(last, weights_only=True)  # whole, not truncated: the write is atomic
    assert checkpoint["epoch"] < 2, "the run finished before it could be killed; the test proves nothing"
    assert not list(last.parent.glob(".*.tmp"))
    subprocess.run(_command(minislakh, killed, "--ckpt_path", "last"), cwd=killed, env=env, check=True,
                   capture_output=True, timeout=900)

    expected, resumed = _weights(straight / "checkpoints/stage1/last.ckpt"), _weights(last)
    assert torch.load(last, weights_only=True)["epoch"] == 2 and first_epoch == 0
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name
