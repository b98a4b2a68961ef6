"""Solo passages (data/solo_passages.py): where the score has one instrument alone the mixture is its part, so
artificial mixtures of such passages have known parts without a stem; and the L_solo term that uses them."""

import numpy as np
import pytest
import torch

from scoresep.data.datamodule import SlakhDataModule
from scoresep.data.solo_passages import SoloPassages
from scoresep.losses.terms import LossInputs, SoloLoss
from scoresep.stages import SeparatorStage
from tests.helpers import quiet_trainer

INFORMED = {"class_path": "scoresep.models.ScoreInformedSeparator", "init_args": {"hidden": 16, "blocks": 2}}


def _datamodule(root, tmp_path, solo: bool) -> SlakhDataModule:
    datamodule = SlakhDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), segment_seconds=2.0,
                                 batch_size=4, train_crops_per_track=2, eval_crops_per_track=1, solo_passages=solo)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def test_in_a_solo_passage_the_mixture_is_that_instruments_part(minislakh_solo, tmp_path):
    """Known answer from the stems (which the passages never read): inside every passage the other instruments'
    stems hold less than 1/1000 of the energy of the soloist's."""
    tracks = _datamodule(minislakh_solo, tmp_path, solo=False).datasets["train"].tracks
    solo = SoloPassages(tracks, 62.5, 256, "instruments")
    assert sum(len(passages) for passages in solo.passages) >= 10 and solo.minutes()[0] > 0.2
    for instrument, passages in enumerate(solo.passages):
        for index, start, end in passages:
            stems = tracks[index].sources(start * 256, (end - start) * 256)
            others = np.delete(stems, instrument, axis=0)
            assert (others ** 2).sum() < 1e-3 * (stems[instrument] ** 2).sum()
            rolls = tracks[index].rolls(start, end - start)
            assert rolls[instrument].any(0).all() and not np.delete(rolls, instrument, axis=0).any()


def test_an_artificial_mixture_places_each_piece_with_its_roll_and_repeats_with_its_seed(minislakh_solo, tmp_path):
    tracks = _datamodule(minislakh_solo, tmp_path, solo=False).datasets["train"].tracks
    solo = SoloPassages(tracks, 62.5, 256, "instruments", keep=1.0)
    parts, rolls = solo.draw(np.random.default_rng(5), 125)
    assert parts.shape == (3, 125 * 256) and rolls.shape == (3, 88, 126)
    for instrument in range(3):
        if not solo.passages[instrument]:
            assert not parts[instrument].any() and not rolls[instrument].any()
            continue
        frames = np.flatnonzero(rolls[instrument].any(0))
        assert len(frames) > 0 and np.abs(parts[instrument, frames[0] * 256:(frames[-1] + 1) * 256]).max() > 0
        assert not parts[instrument, (frames[-1] + 1) * 256:].any() and not parts[instrument, :frames[0] * 256].any()
    again = solo.draw(np.random.default_rng(5), 125)
    assert np.array_equal(again[0], parts) and np.array_equal(again[1], rolls)


def test_solo_passages_add_mixtures_to_the_training_items_and_leave_the_crops_alone(minislakh_solo, tmp_path):
    plain = _datamodule(minislakh_solo, tmp_path, solo=False).datasets["train"]
    with_solo = _datamodule(minislakh_solo, tmp_path, solo=True)
    item, reference = with_solo.datasets["train"][(1, 2)], plain[(1, 2)]
    assert torch.equal(item["mixture"], reference["mixture"]) and torch.equal(item["rolls"], reference["rolls"])
    assert item["solo_parts"].shape == (3, len(item["mixture"])) and item["solo_rolls"].shape == item["rolls"].shape
    assert "solo_parts" not in with_solo.datasets["validation"][0]


def test_the_solo_term_trains_and_refuses_training_batches_without_solo_passages(minislakh_solo, tmp_path):
    stage = SeparatorStage(model=INFORMED, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                           loss_weights={"solo": 1.0}, log_media=False)
    datamodule = _datamodule(minislakh_solo, tmp_path, solo=True)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1)
    trainer.fit(stage, datamodule)
    assert float(trainer.callback_metrics["train/solo"]) > 0
    plain = _datamodule(minislakh_solo, tmp_path, solo=False)
    batch = plain.on_after_batch_transfer(next(iter(plain.train_dataloader())), 0)
    separated = stage.separate(batch)[1]
    inputs = LossInputs(batch, separated, stage.templates, spectrogram=stage.spectrogram, training=True)
    with pytest.raises(ValueError, match="set data.solo_passages: true"):
        SoloLoss()(inputs)
    inputs.training = False
    assert torch.equal(SoloLoss()(inputs), torch.zeros(len(separated)))


def test_solo_passages_are_refused_with_full_mixtures(minislakh_solo, tmp_path):
    """A full mixture also holds the parts the score does not list: its solo passages are not one instrument."""
    with pytest.raises(ValueError, match="solo_passages needs mixture: instruments"):
        SlakhDataModule(root=str(minislakh_solo), cache_dir=str(tmp_path / "cache"), mixture="full",
                        solo_passages=True)
