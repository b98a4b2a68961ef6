"""``L_remix`` (losses/remix.py): remixes of the score's separations, each instrument from another crop, with the
known parts as targets. Known answers for the pure functions, then the term inside the stages."""

import pytest
import torch

from scoresep.losses import remix, remix_loss, remix_picks
from scoresep.losses.terms import LossInputs
from scoresep.stages import SeparatorStage
from tests.helpers import quiet_trainer, tiny_batch, tiny_datamodule

INFORMED = {"class_path": "scoresep.models.ScoreInformedSeparator", "init_args": {"hidden": 16, "blocks": 2}}
FRAME = {"class_path": "scoresep.models.FrameSeparator", "init_args": {"hidden": 16, "blocks": 2}}


def test_a_remix_takes_each_instruments_part_from_the_crop_it_picks():
    parts = torch.arange(4 * 3 * 5, dtype=torch.float32).view(4, 3, 5)
    rolls = torch.zeros(4, 3, 88, 2)
    rolls[torch.arange(4)[:, None], torch.arange(3), torch.arange(4)[:, None] * 3 + torch.arange(3), 0] = 1
    picks = torch.tensor([[1, 2, 3, 0], [0, 1, 2, 3], [3, 3, 3, 3]])
    mixed, mixed_rolls = remix(parts, rolls, picks)
    for item in range(4):
        for instrument in range(3):
            assert torch.equal(mixed[item, instrument], parts[picks[instrument, item], instrument])
            assert torch.equal(mixed_rolls[item, instrument], rolls[picks[instrument, item], instrument])
    same, same_rolls = remix(parts, rolls, torch.arange(4).expand(3, 4))
    assert torch.equal(same, parts) and torch.equal(same_rolls, rolls)
    torch.manual_seed(0)
    drawn = remix_picks(6, 3)
    assert drawn.shape == (3, 6) and all(sorted(row.tolist()) == list(range(6)) for row in drawn)
    with pytest.raises(ValueError, match="must agree on"):
        remix(parts, rolls, picks[:2])


def test_the_remix_loss_is_the_l1_distance_to_the_known_parts():
    parts = torch.rand(2, 3, 9, 7)
    assert torch.equal(remix_loss(parts, parts), torch.zeros(2))
    assert torch.allclose(remix_loss(torch.zeros_like(parts), parts), parts.flatten(1).mean(1))
    with pytest.raises(ValueError, match="parts_magnitude"):
        remix_loss(parts, parts[:, :2])


def test_untrained_the_score_informed_separator_already_solves_a_one_crop_remix(minislakh, tmp_path):
    """Known answer: a batch of one crop remixes it with itself, so the parts are the score's separation and an
    untrained score-informed separator (which starts as that formula) nearly reproduces them; a frame
    separator's even split does not."""
    batch = {key: value[:1] if torch.is_tensor(value) else value for key, value in
             tiny_batch(minislakh, tmp_path).items()}
    scale = batch["mixture_mag"].mean()
    informed = SeparatorStage(model=INFORMED, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                              loss_weights={"remix": 1.0}, log_media=False).eval()
    frame = SeparatorStage(model=FRAME, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                           loss_weights={"remix": 1.0}, log_media=False).eval()
    with torch.no_grad():
        informed_loss = informed.losses(batch, informed.separate(batch)[1])["remix"]
        frame_loss = frame.losses(batch, frame.separate(batch)[1])["remix"]
    # measured 0.028 against 0.122 (mean magnitude 0.61): what is left is the resynthesis (inverse STFT, sum,
    # STFT: magnitudes of a masked STFT are not those of any signal) and the prior's floor
    assert informed_loss < 0.1 * scale and informed_loss < 0.35 * frame_loss


def test_a_stage_trains_with_the_remix_term_alone(minislakh, tmp_path):
    stage = SeparatorStage(model=INFORMED, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                           loss_weights={"remix": 1.0}, log_media=False)
    before = stage.separator.expand[-1].weight.clone()
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=1)
    trainer.fit(stage, tiny_datamodule(minislakh, tmp_path))
    assert "train/remix" in trainer.callback_metrics and torch.isfinite(trainer.callback_metrics["train/loss"])
    assert not torch.equal(before, stage.separator.expand[-1].weight)


def test_the_remix_term_perturbs_only_the_score_the_separator_reads(minislakh, tmp_path):
    """With every note dropped the separator reads an empty score, while the parts (the targets) stay those of
    the true score; a bad setting is refused when the stage is built."""
    batch = tiny_batch(minislakh, tmp_path)
    read = []

    def separate(magnitude, rolls):
        read.append(rolls)
        return torch.zeros(magnitude.shape[0], rolls.shape[1], *magnitude.shape[1:])

    stage = SeparatorStage(model=INFORMED, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                           extra_losses=[{"class_path": "scoresep.losses.terms.RemixLoss",
                                          "init_args": {"weight": 1.0, "drop": 1.0}}], log_media=False)
    term = stage.loss_terms[-1]
    inputs = LossInputs(batch, stage.separate(batch)[1], stage.templates, separate=separate,
                        spectrogram=stage.spectrogram)
    assert batch["rolls"].any()
    torch.manual_seed(0)
    value = term(inputs)
    assert not read[0].any() and value.shape == (len(batch["rolls"]),) and bool((value > 0).all())
    with pytest.raises(ValueError, match="score perturbation"):
        SeparatorStage(model=INFORMED, critic="none", extra_losses=[
            {"class_path": "scoresep.losses.terms.RemixLoss", "init_args": {"weight": 1.0, "drop": 2.0}}])


def test_on_validation_the_remix_term_is_one_number_and_leaves_the_training_draws_alone(minislakh, tmp_path):
    batch = tiny_batch(minislakh, tmp_path)
    stage = SeparatorStage(model=INFORMED, critic="none", clip_mix_weight=0.0, harmonic_mix_weight=0.0,
                           loss_weights={"remix": 1.0}, log_media=False).eval()
    torch.manual_seed(3)
    state = torch.get_rng_state()
    with torch.no_grad():
        values = [stage.losses(batch, stage.separate(batch)[1])["remix"] for _ in range(2)]
    assert torch.equal(values[0], values[1]) and torch.equal(torch.get_rng_state(), state)
