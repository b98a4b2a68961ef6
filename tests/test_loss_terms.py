"""The loss-term table: a new separator term is one function, one row and one weight, and both separating stages
train with it; names are checked when a stage is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY_S, quiet_trainer, run_cli, tiny_batch, tiny_datamodule

from scoresep.losses.terms import SEPARATOR_TERMS, LossInputs, LossTerm, register_separator_term
from scoresep.models.unet import UNetConfig
from scoresep.stages import AdversarialStage, SeparatorStage

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def _energy(inputs: LossInputs) -> torch.Tensor:
    """Mean energy of the separated spectrograms: a term no stage knows about, ``(batch,)``."""
    return inputs.separated.pow(2).flatten(1).mean(1)


@pytest.fixture
def energy_term():
    """The term added through the public mechanism (conftest takes it out again after the test)."""
    register_separator_term(LossTerm("energy", _energy, ("separated",), "mean energy of every S_i"))
    return SEPARATOR_TERMS["energy"]


def test_a_new_term_trains_in_stage_2_and_stage_3(energy_term, minislakh, tiny_checkpoints, tmp_path):
    stage2 = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", clip_mix_weight=0.1,
                            harmonic_mix_weight=0.1, loss_weights={"energy": 0.5}, log_media=False)
    trainer = quiet_trainer(tmp_path / "two", max_steps=1, limit_val_batches=0, log_every_n_steps=1)
    trainer.fit(stage2, tiny_datamodule(minislakh, tmp_path))
    assert float(trainer.callback_metrics["train/energy"]) > 0
    stage3 = AdversarialStage(separator_checkpoint=str(tiny_checkpoints["stage2"]),
                              transcriptor_checkpoint=str(tiny_checkpoints["stage1"]), loss_weights={"energy": 0.5},
                              log_media=False)
    trainer = quiet_trainer(tmp_path / "three", max_steps=2, limit_val_batches=0, log_every_n_steps=1)
    trainer.fit(stage3, tiny_datamodule(minislakh, tmp_path))
    assert float(trainer.callback_metrics["train/separator/energy"]) > 0
    assert "train/transcriptor/energy" not in trainer.callback_metrics  # a separator term only


def test_the_weighted_total_uses_the_table_weights(energy_term, minislakh, tmp_path):
    stage = SeparatorStage(model=UNetConfig(**TINY_S), critic="none", clip_mix_weight=0.25,
                           harmonic_mix_weight=0.0, loss_weights={"energy": 2.0}, log_media=False)
    batch = tiny_batch(minislakh, tmp_path)
    _, separated = stage.separate(batch["mixture_mag"])
    terms = stage.losses(batch, separated)
    assert set(terms) == {"clip_mix", "energy"}
    assert torch.allclose(stage.total(terms), 0.25 * terms["clip_mix"] + 2.0 * terms["energy"])


def test_unknown_doubled_or_impossible_terms_are_refused_when_the_stage_is_built(energy_term, minislakh, tmp_path,
                                                                                 capsys, monkeypatch):
    tiny = UNetConfig(**TINY_S)
    with pytest.raises(ValueError, match=r"unknown loss term 'enrgy'; the terms are \[.*'energy'"):
        SeparatorStage(model=tiny, critic="none", loss_weights={"enrgy": 1.0})
    with pytest.raises(ValueError, match="loss_weights gives 'clip_mix', which has its own argument clip_mix_weight"):
        SeparatorStage(model=tiny, critic="none", loss_weights={"clip_mix": 1.0})
    with pytest.raises(ValueError, match="loss term 'aml' needs a critic, and this stage has none"):
        SeparatorStage(model=tiny, critic="none", loss_weights={"aml": 1.0})
    with pytest.raises(ValueError, match="loss weights must be >= 0, got energy=-1.0"):
        SeparatorStage(model=tiny, critic="none", loss_weights={"energy": -1.0})
    with pytest.raises(ValueError, match="exists already"):
        register_separator_term(LossTerm("energy", _energy, ("separated",), "again"))
    # From a YAML run: the misspelling stops the run before it trains, in one line.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["scoresep"])
    code, _, stderr = run_cli(["fit", "--config", str(EXPERIMENTS / "stage2.yaml"), "--data.root", str(minislakh),
                               "--data.cache_dir", str(tmp_path / "cache"), "--model.init_args.critic", "none",
                               "--model.init_args.loss_weights", '{"enrgy": 1.0}', "--trainer.logger=false"], capsys)
    assert code != 0 and "unknown loss term 'enrgy'" in stderr
    assert not (tmp_path / "checkpoints").exists()
