"""Never lose a run: atomic checkpoints, SIGUSR1 pre-emption, NaN/inf steps skipped, same seed -> same run,
mixed precision for every stage (bf16 on the CPU; 16-bit on a GPU, ``gpu`` marker)."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from scoresep.models.transcriptor import TranscriptorConfig
from scoresep.models.unet import UNetConfig
from scoresep.stages.adversarial import AdversarialStage
from scoresep.stages.separator import SeparatorStage
from scoresep.stages.transcriptor import TranscriptorStage
from scoresep.training import AtomicCheckpointIO, LearningCurve, PreemptionCheckpoint, RandomStateCheckpoint
from tests.helpers import TINY_S, SignalAt, quiet_trainer, tiny_datamodule, train_tiny_stages
from tests.helpers import TINY_T as HELPER_TINY_T

TINY_T = {**HELPER_TINY_T, "dropout": 0.1}  # dropout on: resumes and seeds must repeat its draws too


def test_atomic_checkpoint_keeps_the_old_file_when_a_write_dies(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "run" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}

    def dies_halfway(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_sigusr1_saves_last_ckpt_and_stops_cleanly_then_resumes(minislakh, tmp_path):
    folder = tmp_path / "checkpoints"
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    preemption = PreemptionCheckpoint("SIGUSR1", requeue=False)
    trainer = quiet_trainer(tmp_path, max_epochs=3, limit_val_batches=0,
                            callbacks=[last, preemption, SignalAt(signal.SIGUSR1, at=2)])
    previous_handler = signal.getsignal(signal.SIGUSR1)
    trainer.fit(TranscriptorStage(model=TranscriptorConfig(**TINY_T)), tiny_datamodule(minislakh, tmp_path))
    assert trainer.global_step == 3  # stopped after the signalled batch (3 epochs x 2 batches would be 6)
    assert signal.getsignal(signal.SIGUSR1) == previous_handler  # handler put back after the run
    checkpoint = torch.load(folder / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    resumed = quiet_trainer(tmp_path, max_epochs=3, limit_val_batches=0, callbacks=[
        ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)])
    resumed.fit(TranscriptorStage(model=TranscriptorConfig(**TINY_T)), tiny_datamodule(minislakh, tmp_path),
                ckpt_path="last")
    # Lightning resumes a mid-epoch checkpoint at the next epoch (our crops are keyed by epoch, and the data
    # loader keeps no position): the interrupted epoch's last batch is not replayed, the final epoch runs whole
    assert resumed.global_step == 5 and resumed.current_epoch == 3


class PoisonBatches(Callback):
    """Turns the mixture spectrogram of the listed training batches into NaN (as a bad file or overflow would)
    and records whether the weights changed over each poisoned batch."""

    def __init__(self, batches):
        self.batches, self.calls, self.changed = set(batches), 0, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before = None
        if self.calls in self.batches:
            batch["mixture_mag"].fill_(float("nan"))
            self.before = [p.detach().clone() for p in pl_module.parameters()]
        self.calls += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.before is not None:
            after = list(pl_module.parameters())
            self.changed.append(any(not torch.equal(a, b) for a, b in zip(self.before, after, strict=True)))


def test_nonfinite_steps_are_skipped_then_the_run_stops_with_a_clear_error(minislakh, tmp_path):
    stage = TranscriptorStage(model=TranscriptorConfig(**TINY_T), max_nonfinite_steps=3)
    poison = PoisonBatches([1])
    trainer = quiet_trainer(tmp_path, max_steps=4, limit_val_batches=0, callbacks=[poison])
    trainer.fit(stage, tiny_datamodule(minislakh, tmp_path))
    assert poison.changed == [False]  # the poisoned batch left every weight as it was
    assert all(torch.isfinite(p).all() for p in stage.parameters())
    assert trainer.logged_metrics["train/nonfinite_steps"] == 1

    stage = TranscriptorStage(model=TranscriptorConfig(**TINY_T), max_nonfinite_steps=3)
    trainer = quiet_trainer(tmp_path, max_steps=10, limit_val_batches=0, callbacks=[PoisonBatches([1, 2, 3, 4])])
    with pytest.raises(FloatingPointError, match="3 training steps in a row had a non-finite loss"):
        trainer.fit(stage, tiny_datamodule(minislakh, tmp_path))


class StepLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_same_seed_gives_identical_first_epoch_losses(minislakh, tmp_path):
    runs = []
    for _ in range(2):
        pl.seed_everything(5)
        recorder = StepLosses()
        # submixtures draw random gains and dropout is on: both must repeat under the same seed
        stage = TranscriptorStage(model=TranscriptorConfig(**TINY_T), train_on="submixtures")
        quiet_trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[recorder]).fit(
            stage, tiny_datamodule(minislakh, tmp_path))
        runs.append(recorder.losses)
    assert len(runs[0]) >= 2 and runs[0] == runs[1]


def test_random_state_travels_with_the_checkpoint():
    callback = RandomStateCheckpoint()
    torch.manual_seed(3)
    state = callback.state_dict()
    expected = (torch.rand(3), np.random.rand(2))
    torch.rand(7)
    np.random.rand(5)
    callback.load_state_dict(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1])


@pytest.fixture(scope="module")
def tiny_checkpoints(minislakh, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bf16")
    train_tiny_stages(minislakh, folder, steps=1)
    return folder


@pytest.mark.parametrize("stage_name", ["transcriptor", "separator", "adversarial"])
@pytest.mark.parametrize("accelerator, precision", [("cpu", "bf16-mixed"),
                                                    pytest.param("gpu", "16-mixed", marks=pytest.mark.gpu)])
def test_mixed_precision_trains_every_stage(minislakh, tmp_path, tiny_checkpoints, stage_name, accelerator,
                                            precision):
    stages = {
        "transcriptor": lambda: TranscriptorStage(model=TranscriptorConfig(**TINY_T)),
        "separator": lambda: SeparatorStage(model=UNetConfig(**TINY_S), log_media=False,
                                            transcriptor_checkpoint=str(tiny_checkpoints / "stage1.ckpt")),
        "adversarial": lambda: AdversarialStage(separator_checkpoint=str(tiny_checkpoints / "stage2.ckpt"),
                                                aml=True, atl=True, log_media=False),
    }
    stage = stages[stage_name]()
    trainer = pl.Trainer(default_root_dir=tmp_path, accelerator=accelerator, devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, max_epochs=1, limit_train_batches=2,
                         limit_val_batches=1, precision=precision)
    datamodule = tiny_datamodule(minislakh, tmp_path)
    trainer.fit(stage, datamodule)
    metrics = trainer.logged_metrics
    assert metrics and all(torch.isfinite(v).all() for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in stage.parameters())  # weights stay fp32 under autocast
    results = trainer.validate(stage, datamodule)[0]
    assert all(isinstance(v, float) for v in results.values())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_fit_stopped_by_a_signal_exits_non_zero_so_it_never_looks_finished(signum, minislakh, tmp_path, capsys,
                                                                             monkeypatch):
    """Lightning stops cleanly on SIGTERM and returns normally; `scoresep fit` must then exit 128 + signal, or
    scripts (and `scoresep reproduce`) would take a half-trained run for a finished one."""
    from scoresep.cli import main

    monkeypatch.setattr("sys.argv", ["scoresep"])
    callback = {"class_path": "tests.helpers.SignalAt", "init_args": {"signum": int(signum), "at": 1}}
    config = Path(__file__).resolve().parent.parent / "experiments" / "stage1.yaml"
    args = ["fit", "--config", str(config), "--data.root", str(minislakh), "--data.cache_dir",
            str(tmp_path / "cache"), "--data.segment_seconds", "1.0", "--data.batch_size", "2",
            "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.callbacks+={json.dumps(callback)}",
            "--model.init_args.model.channels=2", "--model.init_args.model.hidden=8"]
    monkeypatch.chdir(tmp_path)  # the YAML's checkpoints/stage1/ lands here
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 128 + int(signum)
    assert f"stopped by {signal.Signals(signum).name} before the end of training" in capsys.readouterr().err
    if signum != signal.SIGTERM:  # SIGUSR1 and Ctrl-C save the step they stopped at
        assert torch.load(tmp_path / "checkpoints" / "stage1" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_learning_curve_records_every_validation_with_its_step_and_clock(minislakh, tmp_path):
    """What benchmarks/learning_curves.py plots: one point per validation (none for the sanity check), in step
    order, with the separation metrics and growing wall-clock and CPU seconds."""
    path = tmp_path / "curve" / "curve.json"
    stage = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", clip_mix_weight=0.0,
                           harmonic_mix_weight=0.0, loss_weights={"score_target": 1.0}, log_media=False)
    trainer = quiet_trainer(tmp_path, max_steps=4, val_check_interval=2, check_val_every_n_epoch=None,
                            limit_val_batches=1, num_sanity_val_steps=1, callbacks=[LearningCurve(str(path))])
    trainer.fit(stage, tiny_datamodule(minislakh, tmp_path))
    points = json.loads(path.read_text())["points"]
    assert [point["step"] for point in points] == [2, 4]
    assert all({"val/si_sdr", "val/si_sdr/bass", "val/loss"} <= set(point["metrics"]) for point in points)
    assert 0 < points[0]["seconds"] < points[1]["seconds"] and 0 < points[0]["cpu_seconds"] < points[1]["cpu_seconds"]
