"""Stage 3: joint fine-tuning from stage-1/stage-2 checkpoints, half-steps without leaks, handoff of both models."""

import pytest
import torch

from scoresep.checkpoints import CheckpointError, StageCheckpoint
from scoresep.features import FeatureSettings
from scoresep.losses.adversarial import aml_transcriptor_loss, artificial_mixtures, atl_transcriptor_loss
from scoresep.models.transcriptor import TranscriptorConfig
from scoresep.stages.adversarial import AdversarialStage
from scoresep.stages.transcriptor import TranscriptorStage
from tests.helpers import TINY_T, quiet_trainer, tiny_batch, tiny_datamodule, train_tiny_stages


@pytest.fixture(scope="module")
def checkpoints(minislakh, tmp_path_factory):
    """Tiny ``{"stage1", "classifier", "stage2"}`` checkpoints, stage 2 trained through that stage 1."""
    folder = tmp_path_factory.mktemp("stages")
    train_tiny_stages(minislakh, folder)
    trainer = quiet_trainer(folder, max_steps=2, limit_val_batches=0)
    trainer.fit(TranscriptorStage(model=TranscriptorConfig(**TINY_T), label="activity"),
                tiny_datamodule(minislakh, folder))
    trainer.save_checkpoint(folder / "classifier.ckpt")
    return {name: folder / f"{name}.ckpt" for name in ("stage1", "classifier", "stage2")}


def _stage(checkpoints, **kwargs):
    return AdversarialStage(separator_checkpoint=str(checkpoints["stage2"]),
                            transcriptor_checkpoint=str(checkpoints["stage1"]), log_media=False, **kwargs)


@pytest.mark.parametrize("switches", [{"aml": False, "atl": False}, {"aml": True, "aml_form": "clipped"},
                                      {"aml": True, "aml_form": "negated"}, {"aml": True, "aml_form": "empty"},
                                      {"aml": False, "atl": True}])
def test_fine_tuning_updates_both_models_and_reports_separation_and_transcription(minislakh, tmp_path, checkpoints,
                                                                                 switches):
    stage = _stage(checkpoints, **switches)
    before = {name: {k: v.clone() for k, v in getattr(stage, name).state_dict().items()}
              for name in ("separator", "transcriptor")}
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    datamodule = tiny_datamodule(minislakh, tmp_path)
    trainer.fit(stage, datamodule)
    logged = dict(trainer.logged_metrics)
    for name in ("separator", "transcriptor"):
        state = getattr(stage, name).state_dict()
        assert any(not torch.equal(t, before[name][k]) for k, t in state.items()), f"{name} did not train"
    transcriptor_stats = {k: v for k, v in stage.transcriptor.state_dict().items() if "running" in k}
    assert all(torch.equal(v, before["transcriptor"][k]) for k, v in transcriptor_stats.items())
    results = trainer.test(stage, datamodule)[0]
    for name in ("bass", "guitar", "piano"):
        assert f"test/si_sdr/{name}" in results and f"test/si_sdri/{name}" in results
        assert f"test/mix/accuracy/{name}" in results and f"test/iso/accuracy/{name}" in results
    assert "train/transcriptor/transcription" in logged and "train/separator/score" in logged
    assert ("train/transcriptor/aml" in logged) == switches["aml"]
    assert ("train/transcriptor/atl" in logged) == switches.get("atl", False)


def test_each_half_step_puts_gradients_into_its_own_model_only(minislakh, tmp_path, checkpoints):
    stage = _stage(checkpoints, aml=True, atl=True, transcriptor_updates=2, separator_updates=1)
    changed_per_backward = []
    backward = stage.manual_backward

    def spy(loss, *args, **kwargs):
        grads = {n: None if p.grad is None else p.grad.clone() for n, p in stage.named_parameters()}
        backward(loss, *args, **kwargs)
        changed_per_backward.append({n.split(".")[0] for n, p in stage.named_parameters()
                                     if (p.grad is None) != (grads[n] is None)
                                     or (p.grad is not None and not torch.equal(p.grad, grads[n]))})

    stage.manual_backward = spy
    quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0).fit(
        stage, tiny_datamodule(minislakh, tmp_path))
    expected = [{"transcriptor"}, {"transcriptor"}, {"separator"}] * 2
    assert changed_per_backward == expected


def test_the_transcriptors_terms_weigh_notes_as_stage_1_did_and_the_separators_by_the_critic_weight(
        minislakh, tmp_path, checkpoints):
    stage = _stage(checkpoints, aml=True, atl=True, pos_weight=20.0, critic_pos_weight=80.0).eval()
    batch = tiny_batch(minislakh, tmp_path)
    rolls = batch["rolls"]
    separated = 0.3 * batch["mixture_mag"][:, None].expand(-1, rolls.shape[1], -1, -1)  # (B, I, F, N)
    pairs = stage._pairs(len(rolls), 0)
    with torch.no_grad():
        terms = stage.transcriptor_terms(batch, separated, pairs)
        mixtures, scores = artificial_mixtures(separated, rolls, pairs)
        for weight, close in ((20.0, True), (80.0, False)):
            atl = atl_transcriptor_loss(stage.transcriptor, separated, rolls, weight).mean()
            aml = aml_transcriptor_loss(stage.transcriptor, mixtures, scores, stage.hparams.aml_form,
                                        stage.hparams.aml_margin, weight).mean()
            assert torch.allclose(terms["atl"], atl) == close and torch.allclose(terms["aml"], aml) == close


def test_checkpoint_hands_both_models_on(minislakh, tmp_path, checkpoints):
    stage = _stage(checkpoints)
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(stage, tiny_datamodule(minislakh, tmp_path))
    path = tmp_path / "stage3.ckpt"
    trainer.save_checkpoint(path)
    assert StageCheckpoint.read(path).stage == "adversarial"
    separator, _ = StageCheckpoint.read(path).separator(expected=stage.features)
    transcriptor, info = StageCheckpoint.read(path).transcriptor(expected=stage.features, label="notes")
    assert info["stage"] == "adversarial"
    for model, trained in ((separator, stage.separator), (transcriptor, stage.transcriptor)):
        for (name, tensor), reference in zip(model.state_dict().items(), trained.state_dict().values(), strict=True):
            assert torch.equal(tensor, reference), name
    # a stage-3 checkpoint can seed another stage 3 (both models from one file)
    AdversarialStage(separator_checkpoint=str(path), transcriptor_checkpoint=str(path))


def test_transcriptor_defaults_to_the_critic_inside_the_stage2_checkpoint(checkpoints):
    stage = AdversarialStage(separator_checkpoint=str(checkpoints["stage2"]))
    stage1, _ = StageCheckpoint.read(checkpoints["stage1"]).transcriptor()
    for (name, tensor), reference in zip(stage.transcriptor.state_dict().items(), stage1.state_dict().values(),
                                         strict=True):
        assert torch.equal(tensor, reference), name


def test_bad_checkpoints_are_refused_before_training(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="separator_checkpoint is required"):
        AdversarialStage()
    with pytest.raises(CheckpointError, match="holds no separator"):
        AdversarialStage(separator_checkpoint=str(checkpoints["stage1"]))
    with pytest.raises(CheckpointError, match="label='activity'"):
        AdversarialStage(separator_checkpoint=str(checkpoints["stage2"]),
                         transcriptor_checkpoint=str(checkpoints["classifier"]))
    with pytest.raises(CheckpointError, match="not found"):
        AdversarialStage(separator_checkpoint=str(tmp_path / "missing.ckpt"))
    with pytest.raises(CheckpointError, match="hop_length"):
        AdversarialStage(separator_checkpoint=str(checkpoints["stage2"]), features=FeatureSettings(hop_length=512))
    with pytest.raises(ValueError, match="loss weights"):
        _stage(checkpoints, aml_weight=-1.0)
