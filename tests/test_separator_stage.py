import pytest
import pytorch_lightning as pl
import torch

from scoresep.checkpoints import CheckpointError, StageCheckpoint
from scoresep.features import FeatureSettings
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig, folded_for_inference
from scoresep.models.unet import UNetConfig, UNetSeparator
from scoresep.stages.separator import SeparatorStage
from scoresep.stages.transcriptor import TranscriptorStage
from tests.helpers import TINY_FRAME, TINY_S, TINY_T, quiet_trainer, tiny_datamodule


@pytest.fixture(scope="module")
def stage1_checkpoints(minislakh, tmp_path_factory):
    """Tiny stage-1 checkpoints: ``{"notes": path, "activity": path}``."""
    folder = tmp_path_factory.mktemp("stage1")
    paths = {}
    for label in ("notes", "activity"):
        stage = TranscriptorStage(model=TranscriptorConfig(**TINY_T), label=label)
        trainer = quiet_trainer(folder, max_steps=2, limit_val_batches=1)
        trainer.fit(stage, tiny_datamodule(minislakh, folder))
        paths[label] = folder / f"{label}.ckpt"
        trainer.save_checkpoint(paths[label])
    return paths


def test_separator_masks_are_in_unit_range_for_odd_sizes():
    model = UNetSeparator(513, 3, UNetConfig(**TINY_S))
    masks = model(torch.rand(2, 513, 63) * 50)
    assert masks.shape == (2, 3, 513, 63) and masks.min() >= 0 and masks.max() <= 1


def test_critic_weights_stay_bit_identical_through_training(minislakh, tmp_path, stage1_checkpoints):
    stage = SeparatorStage(model=UNetConfig(**TINY_S), transcriptor_checkpoint=str(stage1_checkpoints["notes"]))
    critic_before = {k: v.clone() for k, v in stage.critic.state_dict().items()}
    separator_before = {k: v.clone() for k, v in stage.separator.state_dict().items()}
    quiet_trainer(tmp_path, max_steps=3, limit_val_batches=1).fit(stage, tiny_datamodule(minislakh, tmp_path))
    assert not stage.critic.training and all(not p.requires_grad for p in stage.critic.parameters())
    for name, tensor in stage.critic.state_dict().items():  # parameters and BatchNorm statistics
        assert torch.equal(tensor, critic_before[name]), name
    assert any(not torch.equal(t, separator_before[k]) for k, t in stage.separator.state_dict().items())
    # the loss terms ran a folded copy of the critic: not a submodule, so neither in checkpoints nor in the optimiser
    folded = stage.loss_critic()
    assert folded is not stage.critic and all(m is not folded for m in stage.modules())
    assert set(stage.state_dict()) == {f"critic.{k}" for k in critic_before} | {
        f"separator.{k}" for k in separator_before}
    stage.load_state_dict(stage.state_dict())  # new weights may come in: the copy is folded again
    assert stage.loss_critic() is not folded


def test_folded_critic_gives_the_critics_logits_and_gradients_and_leaves_it_as_trained():
    torch.manual_seed(0)
    critic = Transcriptor(513, 3, 88, TranscriptorConfig(**{**TINY_T, "conv_blocks": 2}))
    for module in critic.modules():  # BatchNorm statistics and affine terms far from the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.5, 2), module.bias.data.uniform_(-1, 1)
    critic.eval().requires_grad_(False)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    folded = folded_for_inference(critic)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.frontend)
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    magnitude = (torch.rand(2, 513, 40) * 30).requires_grad_(True)
    expected = critic(magnitude)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), magnitude)
    got = folded(magnitude)
    (got_grad,) = torch.autograd.grad(got.square().sum(), magnitude)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-3, atol=1e-4)
    assert critic.state_dict().keys() == before.keys()
    assert all(torch.equal(t, before[k]) for k, t in critic.state_dict().items())


@pytest.mark.parametrize("variant", [
    {"critic": "transcriptor", "clip_mix_weight": 1.0, "harmonic_mix_weight": 1.0, "harmonic_leak_weight": 1.0},
    {"critic": "classifier", "clip_mix_weight": 0.0, "harmonic_mix_weight": 0.0, "mix_weight": 1.0},
    {"critic": "none", "supervised": True, "score_weight": 0.0},
])
def test_variants_train_and_report_si_sdr_per_instrument(minislakh, tmp_path, stage1_checkpoints, variant):
    label = "activity" if variant["critic"] == "classifier" else "notes"
    stage = SeparatorStage(model=UNetConfig(**TINY_S), transcriptor_checkpoint=str(stage1_checkpoints[label]),
                           **variant)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=2)
    datamodule = tiny_datamodule(minislakh, tmp_path)
    trainer.fit(stage, datamodule)
    logged = {name[len("train/"):] for name in trainer.callback_metrics if name.startswith("train/")}
    enabled = {name[: -len("_weight")] for name, weight in variant.items() if name.endswith("_weight") and weight > 0}
    assert enabled <= logged, (enabled, logged)  # every enabled loss term is computed and logged on its own
    results = trainer.test(stage, datamodule)[0]
    for name in ("bass", "guitar", "piano"):
        assert -100 <= results[f"test/si_sdr/{name}"] <= 100
        assert results[f"test/si_sdri/{name}"] == pytest.approx(
            results[f"test/si_sdr/{name}"] - results[f"test/input_si_sdr/{name}"], abs=1e-3)
    path = tmp_path / "stage2.ckpt"
    trainer.save_checkpoint(path)
    separator, info = StageCheckpoint.read(path).separator()
    assert info["stage"] == "separator"
    assert all(torch.equal(t, stage.separator.state_dict()[k]) for k, t in separator.state_dict().items())
    assert not any("spectrogram" in key for key in torch.load(path, weights_only=True)["state_dict"])


def test_bad_critic_checkpoints_are_refused_before_training(tmp_path, stage1_checkpoints):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        SeparatorStage(transcriptor_checkpoint=str(tmp_path / "missing.ckpt"))
    with pytest.raises(ValueError, match="needs transcriptor_checkpoint"):
        SeparatorStage()
    with pytest.raises(CheckpointError, match=r"label='activity', this run needs label='notes'"):
        SeparatorStage(transcriptor_checkpoint=str(stage1_checkpoints["activity"]))
    with pytest.raises(CheckpointError, match=r"hop_length=512 \(this run\) vs hop_length=256 \(checkpoint\)"):
        SeparatorStage(transcriptor_checkpoint=str(stage1_checkpoints["notes"]),
                       features=FeatureSettings(hop_length=512))
    with pytest.raises(CheckpointError, match=r"instruments=\('bass', 'piano'\) \(this run\)"):
        SeparatorStage(transcriptor_checkpoint=str(stage1_checkpoints["notes"]),
                       features=FeatureSettings(("bass", "piano")))
    separator_only = SeparatorStage(critic="none", supervised=True, model=UNetConfig(**TINY_S))
    trainer = pl.Trainer(logger=False, accelerator="cpu")
    trainer.strategy.connect(separator_only)
    trainer.save_checkpoint(tmp_path / "stage2.ckpt")
    with pytest.raises(CheckpointError, match="a 'separator' checkpoint holds no transcriptor"):
        SeparatorStage(transcriptor_checkpoint=str(tmp_path / "stage2.ckpt"))


def test_no_enabled_loss_is_an_error():
    with pytest.raises(ValueError, match="no loss is enabled"):
        SeparatorStage(critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0)
    with pytest.raises(ValueError, match="loss weights must be >= 0"):
        SeparatorStage(critic="none", clip_mix_weight=-1.0)


def test_wandb_offline_gets_audio_and_mask_images_and_csv_still_works(minislakh, tmp_path, stage1_checkpoints,
                                                                       monkeypatch):
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    datamodule = tiny_datamodule(minislakh, tmp_path)
    for logger in (WandbLogger(project="scoresep-test", save_dir=str(tmp_path), offline=True),
                   CSVLogger(save_dir=str(tmp_path), name="csv")):
        stage = SeparatorStage(model=UNetConfig(**TINY_S),
                               transcriptor_checkpoint=str(stage1_checkpoints["notes"]))
        trainer = pl.Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=logger, max_steps=2,
                             limit_val_batches=1, enable_progress_bar=False, enable_checkpointing=False)
        trainer.fit(stage, datamodule)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
    media = list(tmp_path.glob("wandb/offline-run-*/files/media/**/*"))
    assert any(p.suffix == ".wav" for p in media) and any(p.suffix == ".png" for p in media), media
    assert "val/si_sdr" in (tmp_path / "csv" / "version_0" / "metrics.csv").read_text()


def test_score_target_row_trains_without_critic_and_warm_starts_stage2(minislakh, tmp_path, stage1_checkpoints):
    """The warm start of the stage2_warm row: a separator trained on the score's own separation only (no critic,
    no stem) starts a stage-2 run with its exact weights; another network is refused, naming both."""
    datamodule = tiny_datamodule(minislakh, tmp_path)
    pretrain = SeparatorStage(model=TINY_FRAME, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                              loss_weights={"score_target": 1.0}, log_media=False)
    assert pretrain.critic is None
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1)
    trainer.fit(pretrain, datamodule)
    assert "train/score_target" in trainer.callback_metrics
    path = tmp_path / "score_target.ckpt"
    trainer.save_checkpoint(path)
    warm = SeparatorStage(model=TINY_FRAME, transcriptor_checkpoint=str(stage1_checkpoints["notes"]),
                          separator_checkpoint=str(path), log_media=False)
    for name, tensor in pretrain.separator.state_dict().items():
        assert torch.equal(warm.separator.state_dict()[name], tensor), name
    cold = SeparatorStage(model=TINY_FRAME, transcriptor_checkpoint=str(stage1_checkpoints["notes"]), log_media=False)
    assert any(not torch.equal(cold.separator.state_dict()[k], t) for k, t in pretrain.separator.state_dict().items()
               if t.is_floating_point())
    wider = {"class_path": TINY_FRAME["class_path"], "init_args": {**TINY_FRAME["init_args"], "hidden": 24}}
    with pytest.raises(CheckpointError, match=r"score_target.ckpt: its separator is .*'hidden': 16.*, this run's "
                                              r"model is .*'hidden': 24"):
        SeparatorStage(model=wider, transcriptor_checkpoint=str(stage1_checkpoints["notes"]),
                       separator_checkpoint=str(path))
