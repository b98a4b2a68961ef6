"""Real DDP on CPU (gloo): the same validation numbers with 1 and 2 processes, training writes once, and a
2-node torchrun launch on localhost trains stage 2 to a checkpoint."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scoresep.stages import AdversarialStage
from tests.helpers import train_tiny_stages

ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "ddp_driver.py"


@pytest.fixture(scope="module")
def work(minislakh, tmp_path_factory):
    """Stage checkpoints for the driver and fixed weights per stage (trained a little, so metrics are not
    trivially equal)."""
    folder = tmp_path_factory.mktemp("ddp")
    transcriptor, separator = train_tiny_stages(minislakh, folder)
    adversarial = AdversarialStage(separator_checkpoint=str(folder / "stage2.ckpt"), log_media=False)
    for name, stage in (("transcriptor", transcriptor), ("separator", separator), ("adversarial", adversarial)):
        torch.save(stage.state_dict(), folder / f"{name}_weights.pt")
    return folder


def _driver(minislakh, work, stage, mode, devices, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(DRIVER), "--stage", stage, "--mode", mode, "--root", str(minislakh),
                    "--work", str(work), "--devices", str(devices), "--out", str(out)],
                   check=True, env=env, cwd=work, timeout=600)
    return json.loads(Path(out).read_text())


def _validation_matches(minislakh, work, stage, tmp_path):
    one = _driver(minislakh, work, stage, "validate", 1, tmp_path / "one.json")
    two = _driver(minislakh, work, stage, "validate", 2, tmp_path / "two.json")
    assert two["world_size"] == 2 and len(two["per_rank"]) == 2
    assert sum(two["per_rank"]) == sum(one["per_rank"]) == 6  # every crop once: none duplicated or dropped
    assert one["results"].keys() == two["results"].keys() and one["results"]
    for key, value in one["results"].items():
        # equal up to float32 rounding: the processes see other batch shapes, so convolutions sum in other orders
        assert two["results"][key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_separator_validation_is_identical_with_one_and_two_processes(minislakh, work, tmp_path):
    _validation_matches(minislakh, work, "separator", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["transcriptor", "adversarial"])
def test_other_stages_validate_identically_with_one_and_two_processes(minislakh, work, tmp_path, stage):
    _validation_matches(minislakh, work, stage, tmp_path)


@pytest.mark.parametrize("stage", ["separator", pytest.param("adversarial", marks=pytest.mark.slow),
                                   pytest.param("transcriptor", marks=pytest.mark.slow)])
def test_ddp_training_keeps_processes_in_step_and_writes_once(minislakh, work, tmp_path, stage):
    shutil.rmtree(work / "ddp_checkpoints", ignore_errors=True)
    shutil.rmtree(work / "ddp_logs", ignore_errors=True)
    report = _driver(minislakh, work, stage, "fit", 2, tmp_path / "fit.json")
    assert report["world_size"] == 2
    first, second = report["checksums"]
    assert first == second  # gradients averaged: both processes hold the same weights
    assert [p.name for p in (work / "ddp_checkpoints").iterdir()] == ["last.ckpt"]
    assert [p.name for p in (work / "ddp_logs" / stage).iterdir()] == ["version_0"]  # one logger run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_on_localhost_train_stage2_to_a_checkpoint(minislakh, work, tmp_path):
    """Two "nodes" of one process each, launched by experiments/cluster/torchrun.sh as on a real cluster."""
    (tmp_path / "checkpoints" / "stage1").mkdir(parents=True)
    shutil.copy(work / "stage1.ckpt", tmp_path / "checkpoints" / "stage1" / "best.ckpt")
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    torchrun = Path(sys.executable).parent / "torchrun"
    port = _free_port()
    overrides = ["--data.root", str(minislakh), "--data.cache_dir", str(tmp_path / "cache"),
                 "--data.segment_seconds=1.0", "--data.batch_size=2", "--trainer.max_steps=2",
                 "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
                 "--model.init_args.log_media=false",
                 '--model.init_args.model={"class_path": "scoresep.models.FrameSeparator", '
                 '"init_args": {"hidden": 8, "blocks": 1}}']
    nodes = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NNODES": "2", "NODE_RANK": str(rank), "GPUS_PER_NODE": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "ACCELERATOR": "cpu",
               "TORCHRUN": str(torchrun), "CONFIG": "experiments/stage2.yaml", "WANDB_MODE": "offline",
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        nodes.append(subprocess.Popen(["bash", str(ROOT / "experiments/cluster/torchrun.sh"), *overrides],
                                      env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    checkpoint = torch.load(tmp_path / "checkpoints/stage2/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["scoresep"]["stage"] == "separator"
