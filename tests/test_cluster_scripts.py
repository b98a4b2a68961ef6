"""The SLURM and torchrun launchers: valid bash, and the command they build parses with the CLI."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from scoresep.cli import main

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "experiments" / "cluster"


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["scoresep"])
    monkeypatch.chdir(ROOT)


def _dry_run(script: str, env: dict, *args: str) -> list[str]:
    result = subprocess.run(["bash", str(CLUSTER / script), *args], env={**os.environ, **env, "SCORESEP_DRY_RUN": "1"},
                            capture_output=True, text=True, check=True, cwd=ROOT)
    return result.stdout.splitlines()


@pytest.mark.parametrize("script", ["slurm.sbatch", "torchrun.sh"])
def test_scripts_are_valid_bash_and_fail_fast(script):
    subprocess.run(["bash", "-n", str(CLUSTER / script)], check=True)
    text = (CLUSTER / script).read_text()
    assert "set -euo pipefail" in text


def test_sbatch_ties_nodes_and_tasks_to_the_trainer_and_handles_preemption(capsys):
    text = (CLUSTER / "slurm.sbatch").read_text()
    for line in ("#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue", "srun --kill-on-bad-exit=1"):
        assert line in text
    command = _dry_run("slurm.sbatch", {"SLURM_JOB_NUM_NODES": "3", "SLURM_NTASKS_PER_NODE": "4(x3)"},
                       "--model.init_args.lr=0.01")
    assert command[0] == "scoresep" and "--ckpt_path=last" in command
    with pytest.raises(SystemExit) as stopped:
        main([*command[1:], "--print_config"])
    assert stopped.value.code in (None, 0)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["num_nodes"] == 3 and str(config["trainer"]["devices"]) == "4"
    assert config["trainer"]["strategy"] == "ddp" and config["model"]["init_args"]["lr"] == 0.01


def test_torchrun_launcher_builds_a_multi_node_command(capsys):
    command = _dry_run("torchrun.sh", {"NNODES": "2", "NODE_RANK": "1", "GPUS_PER_NODE": "8",
                                       "MASTER_ADDR": "10.0.0.1", "CONFIG": "experiments/stage3.yaml"})
    assert command[:6] == ["torchrun", "--nnodes=2", "--node_rank=1", "--nproc_per_node=8",
                           "--master_addr=10.0.0.1", "--master_port=29500"]
    assert command[6:9] == ["-m", "scoresep", "fit"]
    with pytest.raises(SystemExit) as stopped:
        main([*command[8:], "--print_config"])
    assert stopped.value.code in (None, 0)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["num_nodes"] == 2 and str(config["trainer"]["devices"]) == "8"
    assert config["model"]["class_path"].endswith("AdversarialStage")
