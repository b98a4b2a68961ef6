"""What the two separating stages (stage 2 ``SeparatorStage``, stage 3 ``AdversarialStage``) share: applying the
separator, inverting its masks, the harmonic templates of the score's masks, the separator's loss from its
loss terms, and keeping critics in eval mode while the separator trains. Neither stage imports the other.
"""

from __future__ import annotations

from typing import Any

import torch

from scoresep.features import FeatureSettings, Spectrogram
from scoresep.losses.terms import LossInputs, SeparatorLoss, separator_losses, separator_terms
from scoresep.models import SeparatorNetwork, network_masks
from scoresep.score import bin_frequencies, harmonic_mask, harmonic_templates
from scoresep.stages.base import EvaluatedStage


def separate(separator: SeparatorNetwork, mixture_mag: torch.Tensor,
             harmonic: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(masks, separated spectrograms S_i = M_i * X)``, both ``(batch, instrument, freq, frame)``; ``harmonic``,
    the score's harmonic masks, is read by a separator that reads the score."""
    masks = network_masks(separator, mixture_mag, harmonic)
    return masks, masks * mixture_mag[:, None]


def masked_waveforms(spectrogram: Spectrogram, batch: dict, masks: torch.Tensor) -> torch.Tensor:
    """Inverse STFT of each masked mixture STFT with the mixture's phase, in fp32.

    Shape: masks ``(batch, instrument, freq, frame)`` -> waveforms ``(batch, instrument, time)``.
    """
    spectrum = masks.float() * batch["mixture_stft"][:, None]
    return spectrogram.to(masks.device).istft(spectrum, batch["mixture"].shape[-1])


class SeparatingStage(EvaluatedStage):
    """Base of the stages that train a separator (``self.separator``).

    A subclass calls ``setup_separating`` in ``__init__`` and lists in ``eval_modules`` the submodules that stay in
    eval mode whatever Lightning switches (critics: their BatchNorm statistics must not drift).
    """

    separator: SeparatorNetwork
    eval_modules: tuple[str, ...] = ()

    def setup_separating(self, features: FeatureSettings, n_harmonics: int, harmonic_tolerance: float) -> None:
        """The spectrogram (with its inverse) and the harmonic templates ``(pitch, freq)`` of ``L_h-mix``."""
        self.spectrogram = Spectrogram.of(features, inverse=True)
        templates = harmonic_templates(bin_frequencies(features.sample_rate, features.n_fft), features.n_pitches,
                                       features.min_midi, n_harmonics, harmonic_tolerance)
        self.register_buffer("templates", templates, persistent=False)

    def train(self, mode: bool = True):
        """Lightning switches modules to train mode every epoch; ``eval_modules`` stay in eval mode."""
        super().train(mode)
        for name in self.eval_modules:
            module = getattr(self, name, None)
            if module is not None:
                module.eval()
        return self

    def separate(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks, separated spectrograms)`` of the batch's mixtures. A separator that reads the score gets the
        harmonic masks of the batch's rolls, with the stage's harmonic settings (those of ``L_h-mix``, which the
        checkpoint records, so ``separate --score`` builds the same masks)."""
        return self._separate(batch["mixture_mag"], batch["rolls"])

    def _separate(self, magnitude: torch.Tensor, rolls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks, separated spectrograms)`` of a mixture magnitude ``(batch, freq, frame)`` with its rolls (the
        batch's, or a loss term's own inputs)."""
        harmonic = harmonic_mask(rolls, self.templates) if self.separator.reads_score else None
        return separate(self.separator, magnitude, harmonic)

    def _separated_spectrograms(self, magnitude: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
        return self._separate(magnitude, rolls)[1]

    def setup_loss_terms(self, typed: list[SeparatorLoss], loss_weights: dict[str, float] | None,
                         extra_losses: list[dict[str, Any]] | None, has_critic: bool, has_pairs: bool) -> None:
        """``self.loss_terms``: the separator's terms (``losses.terms.separator_terms``: the ``typed`` ones built
        from the stage's ``<name>_weight`` arguments, then ``loss_weights``, then ``extra_losses``). The saved
        hyper-parameters hold each extra term as ``{class_path, init_args}`` with every setting, defaults
        included, so a checkpoint rebuilds the terms it trained with."""
        self.loss_terms = separator_terms(typed, loss_weights, extra_losses, type(self).__name__, has_critic,
                                          has_pairs)
        if extra_losses:
            self.hparams["extra_losses"] = [term.spec() for term in self.loss_terms[-len(extra_losses):]]

    def separator_losses(self, batch: dict, separated: torch.Tensor, critic: torch.nn.Module | None,
                         critic_target: torch.Tensor | None,
                         pairs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``self.loss_terms`` with weight > 0, unweighted and batch-averaged."""
        inputs = LossInputs(batch, separated, self.templates, critic, critic_target, pairs,
                            self._separated_spectrograms, self.spectrogram, self.training)
        return separator_losses(inputs, self.loss_terms)
