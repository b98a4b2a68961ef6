"""Separator loss terms: a term of a user's own package, with a setting of its own, is one dataclass and one YAML
entry (``extra_losses``, by class path); both separating stages train with it, checkpoints keep it, and names,
weights and settings are checked when a stage is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scoresep.checkpoints import StageCheckpoint
from scoresep.losses.terms import BUILTIN_TERMS, ClipMixLoss, HarmonicMixLoss, LossInputs, ScoreLoss, build_loss
from scoresep.models.unet import UNetConfig
from scoresep.stages import AdversarialStage, SeparatorStage
from tests.helpers import TINY_S, quiet_trainer, run_cli, tiny_batch, tiny_datamodule
from tests.helpers.losses import FrameEnergy

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
ENERGY = "tests.helpers.losses.FrameEnergy"


def _energy(weight: float, power: float = 2.0) -> dict:
    return {"class_path": ENERGY, "init_args": {"weight": weight, "power": power}}


def test_a_term_of_ones_own_trains_in_stage_2_and_stage_3(minislakh, tiny_checkpoints, tmp_path):
    stage2 = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", clip_mix_weight=0.1,
                            harmonic_mix_weight=0.1, extra_losses=[_energy(0.5)], log_media=False)
    trainer = quiet_trainer(tmp_path / "two", max_steps=1, limit_val_batches=0, log_every_n_steps=1)
    trainer.fit(stage2, tiny_datamodule(minislakh, tmp_path))
    assert float(trainer.callback_metrics["train/frame_energy"]) > 0
    stage3 = AdversarialStage(separator_checkpoint=str(tiny_checkpoints["stage2"]),
                              transcriptor_checkpoint=str(tiny_checkpoints["stage1"]), extra_losses=[_energy(0.5)],
                              log_media=False)
    trainer = quiet_trainer(tmp_path / "three", max_steps=2, limit_val_batches=0, log_every_n_steps=1)
    trainer.fit(stage3, tiny_datamodule(minislakh, tmp_path))
    assert float(trainer.callback_metrics["train/separator/frame_energy"]) > 0
    assert "train/transcriptor/frame_energy" not in trainer.callback_metrics  # a separator term only


def test_the_terms_setting_and_weight_reach_the_loss(minislakh, tmp_path):
    """Known answer: with ``power: 1`` the term is the mean magnitude of each item's S_i, and the total adds it
    with its own weight."""
    stage = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", clip_mix_weight=0.25,
                           harmonic_mix_weight=0.0, extra_losses=[_energy(2.0, power=1.0)], log_media=False)
    batch = tiny_batch(minislakh, tmp_path)
    _, separated = stage.separate(batch)
    terms = stage.losses(batch, separated)
    assert set(terms) == {"clip_mix", "frame_energy"}
    assert torch.allclose(terms["frame_energy"], separated.abs().mean())
    assert torch.allclose(stage.total(terms), 0.25 * terms["clip_mix"] + 2.0 * terms["frame_energy"])


def test_the_builtin_terms_carry_their_own_settings(minislakh, tmp_path):
    """The stage's typed settings become the terms' own: ``critic_pos_weight`` is ``L_score``'s, and
    ``harmonic_restrict`` is ``L_h-mix``'s; ``loss_weights`` builds the project's other terms by name."""
    stage = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", harmonic_restrict=False, critic_pos_weight=40.0,
                           loss_weights={"score_target": 0.5}, log_media=False)
    by_name = {term.name: term for term in stage.loss_terms}
    assert by_name["harmonic_mix"] == HarmonicMixLoss(weight=1.0, restrict=False)
    assert by_name["score"] == ScoreLoss(weight=0.0, pos_weight=40.0)  # no critic: L_score is off
    assert by_name["score_target"].weight == 0.5 and type(by_name["score_target"]) is BUILTIN_TERMS["score_target"]
    batch = tiny_batch(minislakh, tmp_path)
    _, separated = stage.separate(batch)
    inputs = LossInputs(batch, separated, stage.templates)
    assert not torch.allclose(HarmonicMixLoss(restrict=True)(inputs), HarmonicMixLoss(restrict=False)(inputs))
    assert ClipMixLoss().spec() == {"class_path": "scoresep.losses.terms.ClipMixLoss", "init_args": {"weight": 1.0}}
    assert build_loss(FrameEnergy(0.3, 1.5).spec(), "test") == FrameEnergy(0.3, 1.5)


def test_a_yaml_names_a_term_by_class_path_and_the_checkpoint_keeps_it(minislakh, tmp_path, capsys, monkeypatch):
    """``scoresep fit`` (LightningCLI) with the term in ``--model.init_args.extra_losses``: it trains, is logged,
    and the checkpoint stores it as ``{class_path, init_args}`` with every setting (defaults included)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    extra = json.dumps([{"class_path": ENERGY, "init_args": {"weight": 0.2}}])
    code, _, stderr = run_cli(["fit", "--config", str(EXPERIMENTS / "stage2.yaml"), "--data.root", str(minislakh),
                               "--data.cache_dir", str(tmp_path / "cache"), "--data.segment_seconds", "1.0",
                               "--model.init_args.critic", "none", "--model.init_args.extra_losses", extra,
                               "--trainer.logger=false", "--trainer.max_steps=1", "--trainer.limit_val_batches=0",
                               "--trainer.enable_progress_bar=false"], capsys)
    assert code == 0, stderr
    saved = StageCheckpoint.read(tmp_path / "checkpoints" / "stage2" / "last.ckpt").hyper_parameters
    assert saved["extra_losses"] == [{"class_path": ENERGY, "init_args": {"weight": 0.2, "power": 2.0}}]
    resumed = SeparatorStage.load_from_checkpoint(tmp_path / "checkpoints" / "stage2" / "last.ckpt")
    assert FrameEnergy(0.2, 2.0) in resumed.loss_terms


@pytest.mark.parametrize(("settings", "message"), [
    ({"loss_weights": {"enrgy": 1.0}}, r"unknown loss term 'enrgy'; the terms are \[.*'score_target'.*extra_losses"),
    ({"loss_weights": {"clip_mix": 1.0}}, "loss_weights gives 'clip_mix', which has its own argument clip_mix_weight"),
    ({"loss_weights": {"aml": 1.0}}, "loss term 'aml' needs a critic, and this stage has none"),
    ({"loss_weights": {"score_target": -1.0}}, "loss weights must be >= 0, got score_target=-1.0"),
    ({"extra_losses": [_energy(float("nan"))]}, "loss weights must be >= 0, got frame_energy=nan"),
    ({"extra_losses": [_energy(1.0), _energy(2.0)]}, "two loss terms are named 'frame_energy'"),
    ({"extra_losses": [{"class_path": ENERGY, "init_args": {"powr": 1}}]},
     r"FrameEnergy' has no setting powr; its settings are \['weight', 'power'\]"),
    ({"extra_losses": [{"class_path": "torch.nn.L1Loss"}]},
     "loss term 'torch.nn.L1Loss' is not a scoresep.losses.terms.SeparatorLoss subclass"),
    ({"extra_losses": [{"class_path": "nopackage.Term"}]}, "cannot import 'nopackage'"),
    ({"extra_losses": [ENERGY]}, "each extra_losses entry is {class_path: package.module.Class"),
    ({"extra_losses": [{"class_path": "tests.helpers.losses.UndecoratedEnergy"}]},
     "must be decorated with @dataclass"),
    ({"extra_losses": [{"class_path": "tests.helpers.losses.LossNamedLoss"}]}, "may not be named 'loss'"),
    ({"extra_losses": [{"class_path": "tests.helpers.losses.PathSetting"}]},
     r"setting where=PosixPath\('/tmp'\) is not a number"),
    ({"supervised": True, "extra_losses": [_energy(1.0)]}, "supervised: true trains on the stems alone"),
])
def test_impossible_terms_are_refused_when_the_stage_is_built(settings, message):
    with pytest.raises(ValueError, match=message):
        SeparatorStage(model=UNetConfig(**TINY_S), critic="none", **settings)


def test_a_misspelled_term_in_a_yaml_run_stops_it_in_one_line(minislakh, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    code, _, stderr = run_cli(["fit", "--config", str(EXPERIMENTS / "stage2.yaml"), "--data.root", str(minislakh),
                               "--data.cache_dir", str(tmp_path / "cache"), "--model.init_args.critic", "none",
                               "--model.init_args.loss_weights", '{"enrgy": 1.0}', "--trainer.logger=false"], capsys)
    assert code != 0 and "unknown loss term 'enrgy'" in stderr.strip().splitlines()[-1]
    assert not (tmp_path / "checkpoints").exists()
