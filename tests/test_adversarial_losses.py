"""AML/ATL: pairing of songs, artificial mixtures, the bounded forms, and which way each side's step goes."""

import pytest
import torch

from scoresep.losses import (
    aml_separator_loss,
    aml_transcriptor_loss,
    artificial_mixtures,
    atl_separator_loss,
    atl_transcriptor_loss,
    mixing_pairs,
    score_loss,
    transcription_bce,
)
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig
from scoresep.models.unet import UNetConfig, UNetSeparator

BINS, PITCHES, FRAMES = 65, 12, 16


@pytest.mark.parametrize("batch", [2, 3, 4, 8])
def test_pairs_are_permutations_and_never_one_song_for_a_whole_mixture(batch):
    for seed in range(50):
        pairs = mixing_pairs(batch, 3, torch.Generator().manual_seed(seed))
        assert pairs.shape == (3, batch)
        for row in pairs:  # every separated source is used once per instrument
            assert sorted(row.tolist()) == list(range(batch))
        for item in range(batch):
            assert len(set(pairs[:, item].tolist())) >= 2, (seed, pairs)
    same = [mixing_pairs(4, 3, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*same)
    assert torch.equal(mixing_pairs(1, 3), torch.zeros(3, 1, dtype=torch.long))


def test_artificial_mixture_adds_the_paired_sources_and_their_scores():
    separated = torch.arange(2 * 3 * 2 * 1, dtype=torch.float32).view(2, 3, 2, 1)  # (B, I, F, N)
    rolls = torch.zeros(2, 3, 4, 1)
    for b in range(2):
        for i in range(3):
            rolls[b, i, b + i, 0] = 1  # song b, instrument i plays pitch b + i
    pairs = torch.tensor([[1, 0], [0, 1], [1, 0]])  # mixture 0 = (song 1 inst 0, song 0 inst 1, song 1 inst 2)
    mixtures, scores = artificial_mixtures(separated, rolls, pairs)
    assert torch.equal(mixtures[0], separated[1, 0] + separated[0, 1] + separated[1, 2])
    assert torch.equal(mixtures[1], separated[0, 0] + separated[1, 1] + separated[0, 2])
    assert torch.equal(scores[0], torch.stack([rolls[1, 0], rolls[0, 1], rolls[1, 2]]))
    with pytest.raises(ValueError, match="pairs"):
        artificial_mixtures(separated, rolls, pairs[:2])


class FixedLogits(torch.nn.Module):
    """A 'transcriptor' whose logits are a parameter: known BCE values."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, spectrogram):
        return self.logits.expand(spectrogram.shape[0], *self.logits.shape[1:])


def test_aml_forms_negated_clipped_and_empty():
    scores = torch.zeros(1, 2, 3, 4)
    scores[0, 0, 1] = 1
    transcriptor = FixedLogits(torch.zeros(1, 2, 3, 4))  # p = 0.5 everywhere: BCE = log 2
    mixtures = torch.rand(1, 5, 4)
    log2 = torch.log(torch.tensor(2.0))
    assert torch.allclose(aml_separator_loss(transcriptor, mixtures, scores), log2)
    assert torch.allclose(aml_transcriptor_loss(transcriptor, mixtures, scores, "negated"), -log2)
    clipped = aml_transcriptor_loss(transcriptor, mixtures, scores, "clipped", margin=0.5)
    assert torch.allclose(clipped, torch.tensor(-0.5))  # log 2 > margin: clipped, and no gradient
    clipped.sum().backward()
    assert transcriptor.logits.grad.abs().max() == 0
    assert torch.allclose(aml_transcriptor_loss(transcriptor, mixtures, scores, "empty"), log2)
    # confidently wrong notes: the poster's form has no floor, the bounded forms do
    transcriptor.logits.data = 40 * (1 - 2 * scores)
    assert aml_transcriptor_loss(transcriptor, mixtures, scores, "negated") < -10
    assert aml_transcriptor_loss(transcriptor, mixtures, scores, "clipped", margin=1.0) >= -1.0
    # "empty": every cell against silence, 20 of the 24 cells confidently on (logit 40, BCE 40), 4 off (BCE ~0)
    assert torch.allclose(aml_transcriptor_loss(transcriptor, mixtures, scores, "empty"), torch.tensor(40 * 20 / 24))
    with pytest.raises(ValueError, match="form"):
        aml_transcriptor_loss(transcriptor, mixtures, scores, "hinge")


def test_atl_targets_every_note_of_the_mixture_for_the_transcriptor_and_only_its_own_for_the_separator():
    rolls = torch.zeros(1, 2, 3, 4)
    rolls[0, 0, 0], rolls[0, 1, 2] = 1, 1
    all_notes_logits = 40 * (2 * rolls - 1)  # predicts both instruments' notes, confidently
    transcriptor = FixedLogits(all_notes_logits)
    separated = torch.rand(1, 2, 5, 4)
    assert atl_transcriptor_loss(transcriptor, separated, rolls) < 1e-6  # what the transcriptor aims for
    assert atl_separator_loss(transcriptor, separated, rolls) > 5  # the separator wants each channel alone
    assert torch.allclose(atl_separator_loss(transcriptor, separated, rolls),
                          score_loss(transcriptor, separated, rolls))


def _tiny_models():
    torch.manual_seed(0)
    # linear bins and log1p: with only 65 bins (n_fft 128) the semitone filterbank would average them into
    # nearly equal bands, and these checks are about the losses' gradients, not the input representation
    transcriptor = Transcriptor(BINS, 3, PITCHES, TranscriptorConfig(channels=4, conv_blocks=1, hidden=16,
                                                                     rnn_layers=1, dropout=0.0, bands_per_semitone=0,
                                                                     log_eps=1.0, harmonics=[])).eval()
    separator = UNetSeparator(BINS, 3, UNetConfig(channels=4, depth=2)).eval()
    mixture = torch.rand(4, BINS, FRAMES) * 10
    rolls = (torch.rand(4, 3, PITCHES, FRAMES) < 0.2).float()
    return transcriptor, separator, mixture, rolls


def _descend(parameters, step=0.05):
    """One gradient step of fixed length ``step`` (normalised): the sign of a change is what we test."""
    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.sqrt(sum((p.grad**2).sum() for p in parameters))
    with torch.no_grad():
        for p in parameters:
            p -= step * p.grad / norm
            p.grad = None


def _aml_value(transcriptor, separator, mixture, rolls, pairs):
    with torch.no_grad():
        separated = separator(mixture) * mixture[:, None]
        return transcription_bce(transcriptor, *artificial_mixtures(separated, rolls, pairs)).mean()


@pytest.mark.parametrize("form", ["negated", "clipped"])
def test_aml_transcriptor_step_raises_the_loss_and_separator_step_lowers_it_without_leaks(form):
    transcriptor, separator, mixture, rolls = _tiny_models()
    pairs = mixing_pairs(4, 3, torch.Generator().manual_seed(0))
    before = _aml_value(transcriptor, separator, mixture, rolls, pairs)

    # transcriptor half-step: separated detached, only the transcriptor gets gradients
    separated = (separator(mixture) * mixture[:, None]).detach()
    loss = aml_transcriptor_loss(transcriptor, *artificial_mixtures(separated, rolls, pairs), form=form,
                                 margin=100.0).mean()
    loss.backward()
    assert all(p.grad is None for p in separator.parameters())
    _descend(transcriptor.parameters())
    after_transcriptor = _aml_value(transcriptor, separator, mixture, rolls, pairs)
    assert after_transcriptor > before + 1e-4

    # separator half-step: the transcriptor is frozen, gradients reach the separator through it
    transcriptor.requires_grad_(False)
    separated = separator(mixture) * mixture[:, None]
    aml_separator_loss(transcriptor, *artificial_mixtures(separated, rolls, pairs)).mean().backward()
    assert all(p.grad is None for p in transcriptor.parameters())
    _descend(separator.parameters(), step=2.0)  # an untrained critic is nearly flat in its input
    assert _aml_value(transcriptor, separator, mixture, rolls, pairs) < after_transcriptor - 1e-4
