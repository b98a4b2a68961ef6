"""The separator's loss terms, declared once: each term's name, the function that computes it and what it reads.

Both separating stages (stage 2 ``SeparatorStage`` and stage 3 ``AdversarialStage``) compute their separator
loss from this table: ``separator_losses(inputs, weights)`` evaluates every term whose weight is > 0 and
``weighted_sum`` adds them up. A stage's weights come from its typed ``<name>_weight`` arguments (the paper's
terms, which sweeps and YAMLs set by name) and from its ``loss_weights`` mapping (any other row), validated
against the table when the stage is built, so a misspelled or unknown term stops the run before it trains.

Adding a term: write its function (``(batch,)`` from ``LossInputs``), add one row to ``SEPARATOR_TERMS`` (or call
``register_separator_term`` from your own module), and give it a weight in a YAML
(``model.init_args.loss_weights: {my_term: 0.1}``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from scoresep.errors import SettingsError
from scoresep.losses.adversarial import aml_separator_loss, artificial_mixtures
from scoresep.losses.mixture import harmonic_leak_loss, mixture_loss
from scoresep.losses.score import score_loss
from scoresep.losses.score_target import score_target_loss
from scoresep.score import harmonic_mask


@dataclass
class LossInputs:
    """What a separator loss term may read.

    Attributes:
        batch: the batch (``rolls`` ``(batch, instrument, pitch, frame)``, ``active`` ``(batch, instrument)``,
            ``mixture_mag`` ``(batch, freq, frame)``, ...: the contract of ``data/dataset.py``).
        separated: the separated spectrograms ``S_i = M_i * X``, ``(batch, instrument, freq, frame)``.
        templates: harmonic templates ``(pitch, freq)`` (``harmonic_templates``).
        critic: the transcriptor that judges each ``S_i`` (None: no critic in this stage).
        critic_target: what the critic should hear, ``(batch, instrument, pitch or 1, frame)``.
        critic_pos_weight: BCE weight of note cells in the critic's terms.
        harmonic_restrict: ``L_h-mix`` counts only the bins some harmonic mask covers.
        pairs: the AML pairing ``(instrument, batch)`` of this step (None: no AML this step).
    """

    batch: dict
    separated: torch.Tensor
    templates: torch.Tensor
    critic: nn.Module | None = None
    critic_target: torch.Tensor | None = None
    critic_pos_weight: float = 1.0
    harmonic_restrict: bool = True
    pairs: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def harmonic_masks(self) -> torch.Tensor:
        """``H_i`` of every instrument ``(batch, instrument, freq, frame)``, computed once per step."""
        if "harmonic" not in self._cache:
            self._cache["harmonic"] = harmonic_mask(self.batch["rolls"], self.templates)
        return self._cache["harmonic"]


@dataclass(frozen=True)
class LossTerm:
    """One row of the table: ``compute(inputs) -> (batch,)``; ``reads`` names the batch keys and inputs it uses;
    ``needs_critic`` / ``needs_pairs``: it is computed only with a critic / with an AML pairing."""

    name: str
    compute: Callable[[LossInputs], torch.Tensor]
    reads: tuple[str, ...]
    summary: str
    needs_critic: bool = False
    needs_pairs: bool = False


def _score(inputs: LossInputs) -> torch.Tensor:
    return score_loss(inputs.critic, inputs.separated, inputs.critic_target, inputs.critic_pos_weight)


def _mix(inputs: LossInputs) -> torch.Tensor:
    return mixture_loss(inputs.separated, inputs.batch["mixture_mag"])


def _clip_mix(inputs: LossInputs) -> torch.Tensor:
    return mixture_loss(inputs.separated, inputs.batch["mixture_mag"], active=inputs.batch["active"])


def _harmonic_mix(inputs: LossInputs) -> torch.Tensor:
    return mixture_loss(inputs.separated, inputs.batch["mixture_mag"], harmonic=inputs.harmonic_masks(),
                        restrict_to_covered=inputs.harmonic_restrict)


def _harmonic_leak(inputs: LossInputs) -> torch.Tensor:
    return harmonic_leak_loss(inputs.separated, inputs.harmonic_masks())


def _score_target(inputs: LossInputs) -> torch.Tensor:
    return score_target_loss(inputs.separated, inputs.batch["mixture_mag"], inputs.harmonic_masks())


def _aml(inputs: LossInputs) -> torch.Tensor:
    mixtures, scores = artificial_mixtures(inputs.separated, inputs.batch["rolls"], inputs.pairs)
    return aml_separator_loss(inputs.critic, mixtures, scores, inputs.critic_pos_weight)


SEPARATOR_TERMS: dict[str, LossTerm] = {term.name: term for term in (
    LossTerm("score", _score, ("separated", "critic", "critic_target"), "L_score: the critic transcribes each S_i "
             "as its instrument's notes only", needs_critic=True),
    LossTerm("mix", _mix, ("separated", "mixture_mag"), "L_mix: the S_i of all instruments add up to the mixture"),
    LossTerm("clip_mix", _clip_mix, ("separated", "mixture_mag", "active"),
             "L_c-mix: the S_i of the instruments active in the clip add up to the mixture"),
    LossTerm("harmonic_mix", _harmonic_mix, ("separated", "mixture_mag", "rolls", "templates"),
             "L_h-mix: the harmonic parts H_i * S_i add up to the mixture where some H_i covers it"),
    LossTerm("harmonic_leak", _harmonic_leak, ("separated", "rolls", "templates"),
             "L_h-leak (not in the paper): energy each S_i keeps outside its own harmonic mask"),
    LossTerm("score_target", _score_target, ("separated", "mixture_mag", "rolls", "templates"),
             "L_score-target (not in the paper): each S_i imitates the score's own separation "
             "H_i / max(1, sum_j H_j) * X"),
    LossTerm("aml", _aml, ("separated", "rolls", "critic", "pairs"),
             "AML, separator side: the critic transcribes artificial mixtures of separated sources as their "
             "score", needs_critic=True, needs_pairs=True),
)}


def register_separator_term(term: LossTerm) -> None:
    """Add a row to the table (for a term defined outside this module); a name already taken is refused."""
    if term.name in SEPARATOR_TERMS:
        raise SettingsError(f"loss term {term.name!r} exists already ({SEPARATOR_TERMS[term.name].summary})")
    SEPARATOR_TERMS[term.name] = term


def separator_weights(typed: dict[str, float], extra: dict[str, float] | None, where: str,
                      has_critic: bool, has_pairs: bool) -> dict[str, float]:
    """One weight per term: the stage's typed ``<name>_weight`` arguments plus its ``loss_weights`` mapping,
    checked against the table (unknown or doubly given names, negative weights, a term that needs a critic or
    an AML pairing the stage does not have: ValueError naming ``where`` and the term)."""
    extra = dict(extra or {})
    weights = {**typed}
    for name, value in extra.items():
        if name not in SEPARATOR_TERMS:
            raise SettingsError(f"{where}: loss_weights names an unknown loss term {name!r}; the terms are "
                                f"{sorted(SEPARATOR_TERMS)}")
        if name in typed:
            raise SettingsError(f"{where}: loss_weights gives {name!r}, which has its own argument {name}_weight")
        weights[name] = float(value)
    for name, value in weights.items():
        if value < 0:
            raise SettingsError(f"{where}: loss weights must be >= 0, got {name}={value}")
        term = SEPARATOR_TERMS[name]
        if value > 0 and term.needs_critic and not has_critic:
            raise SettingsError(f"{where}: loss term {name!r} needs a critic, and this stage has none")
        if value > 0 and term.needs_pairs and not has_pairs:
            raise SettingsError(f"{where}: loss term {name!r} needs AML's artificial mixtures (stage 3)")
    return weights


def separator_losses(inputs: LossInputs, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Every term with weight > 0, batch-averaged and unweighted (a term that needs a critic or a pairing the
    inputs lack is left out: AML on a batch of one, validation)."""
    terms = {}
    for name, weight in weights.items():
        term = SEPARATOR_TERMS[name]
        if weight <= 0 or (term.needs_critic and inputs.critic is None) or (term.needs_pairs and inputs.pairs is None):
            continue
        terms[name] = term.compute(inputs).mean()
    return terms


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_t w_t * L_t`` over the computed terms."""
    return sum(weights[name] * value for name, value in terms.items())


__all__ = ["LossInputs", "LossTerm", "SEPARATOR_TERMS", "register_separator_term", "separator_losses",
           "separator_weights", "weighted_sum"]
