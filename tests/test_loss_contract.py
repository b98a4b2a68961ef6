"""The contract every exported loss keeps (in the manner of asteroid's loss tests): one value per batch item
``(batch,)``, finite on all-zero inputs (silence and an empty score are ordinary crops), and a ValueError naming
the argument when a tensor has the wrong rank, before anything deep inside torch can fail.

A loss added to ``scoresep.losses.__all__`` without a row here fails ``test_every_exported_loss_is_covered``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import scoresep.losses as losses
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig
from tests.helpers import TINY_T

BATCH, INSTRUMENTS, BINS, FRAMES, PITCHES = 2, 3, 513, 8, 88
# Exported helpers that are not losses (they build inputs of losses).
NOT_LOSSES = {"activity_target", "artificial_mixtures", "bin_frequencies", "harmonic_mask", "harmonic_templates",
              "mixing_pairs", "remix", "remix_picks", "score_separation"}


def _critic() -> Transcriptor:
    torch.manual_seed(0)
    return Transcriptor(BINS, INSTRUMENTS, PITCHES, TranscriptorConfig(**TINY_T)).eval()


def _separated() -> torch.Tensor:
    return torch.zeros(BATCH, INSTRUMENTS, BINS, FRAMES)


def _rolls() -> torch.Tensor:
    return torch.zeros(BATCH, INSTRUMENTS, PITCHES, FRAMES)


def _mixture() -> torch.Tensor:
    return torch.zeros(BATCH, BINS, FRAMES)


# name -> (call with the first tensor argument replaced by ``first``, the first argument's zeros, its name)
CALLS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[], torch.Tensor], str]] = {
    "score_loss": (lambda s: losses.score_loss(_critic(), s, _rolls(), 5.0), _separated, "separated"),
    "mixture_loss": (lambda s: losses.mixture_loss(s, _mixture()), _separated, "separated"),
    "harmonic_leak_loss": (lambda s: losses.harmonic_leak_loss(s, torch.zeros_like(_separated())), _separated,
                           "separated"),
    "score_target_loss": (lambda s: losses.score_target_loss(s, _mixture(), torch.zeros_like(_separated())),
                          _separated, "separated"),
    "supervised_loss": (lambda s: losses.supervised_loss(s, torch.zeros_like(_separated())), _separated,
                        "separated"),
    "remix_loss": (lambda s: losses.remix_loss(s, torch.zeros_like(_separated())), _separated, "separated"),
    "note_bce": (lambda x: losses.note_bce(x, _rolls(), 20.0), _rolls, "logits"),
    "transcription_bce": (lambda x: losses.transcription_bce(_critic(), x, _rolls(), 20.0), _mixture, "spectrogram"),
    "aml_separator_loss": (lambda x: losses.aml_separator_loss(_critic(), x, _rolls(), 5.0), _mixture, "mixtures"),
    "aml_transcriptor_loss": (lambda x: losses.aml_transcriptor_loss(_critic(), x, _rolls(), "clipped", 1.0, 5.0),
                              _mixture, "mixtures"),
    "atl_separator_loss": (lambda s: losses.atl_separator_loss(_critic(), s, _rolls(), 5.0), _separated,
                           "separated"),
    "atl_transcriptor_loss": (lambda s: losses.atl_transcriptor_loss(_critic(), s, _rolls(), 5.0), _separated,
                              "separated"),
}


def test_every_exported_loss_is_covered():
    exported = set(losses.__all__) - NOT_LOSSES
    assert exported == set(CALLS), f"add a row to CALLS for {sorted(exported - set(CALLS))}"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_one_finite_value_per_batch_item_on_all_zero_inputs(name):
    call, zeros, _ = CALLS[name]
    value = call(zeros())
    assert value.shape == (BATCH,), (name, value.shape)
    assert torch.isfinite(value).all(), (name, value)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_wrong_rank_is_a_value_error_naming_the_argument(name):
    call, zeros, argument = CALLS[name]
    with pytest.raises(ValueError, match=rf"^{name} {argument}: expected shape"):
        call(zeros()[0])  # the batch axis forgotten
