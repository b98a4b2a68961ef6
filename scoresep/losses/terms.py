"""The separator's loss terms: each term a class that holds its weight and its own settings.

Both separating stages (stage 2 ``SeparatorStage`` and stage 3 ``AdversarialStage``) compute their separator
loss from a list of terms: ``separator_losses(inputs, terms)`` evaluates every term whose weight is > 0 and
``weighted_sum`` adds them up. A stage builds its list (``separator_terms``) from three sources:

- its typed ``<name>_weight`` arguments, for the paper's terms, which sweeps and YAMLs set by name;
- its ``loss_weights`` mapping, for the project's other terms (``BUILTIN_TERMS``) by name;
- its ``extra_losses`` list, for any ``SeparatorLoss`` subclass named by class path with its own settings
  (``{class_path: mypackage.losses.SpectralFluxLoss, init_args: {weight: 0.05, order: 2}}``), so a term can live in
  a user's own package, as a separator network can.

Every name, weight and setting is checked when the stage is built, so a misspelled or impossible term stops the
run before it trains. The terms a stage trains with are stored in its checkpoint as ``{class_path, init_args}``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from scoresep.class_paths import class_path_of, import_subclass
from scoresep.errors import SettingsError
from scoresep.losses.adversarial import aml_separator_loss, artificial_mixtures
from scoresep.losses.mixture import harmonic_leak_loss, mixture_loss
from scoresep.losses.remix import remix, remix_loss, remix_picks
from scoresep.losses.score import score_loss
from scoresep.losses.score_target import score_target_loss
from scoresep.score import ScorePerturbation, harmonic_mask, perturb_rolls, shared_masks


@dataclass
class LossInputs:
    """What a separator loss term may read in one step.

    Attributes:
        batch: the batch (``rolls`` ``(batch, instrument, pitch, frame)``, ``active`` ``(batch, instrument)``,
            ``mixture_mag`` ``(batch, freq, frame)``, ...: the contract of ``data/dataset.py``).
        separated: the separated spectrograms ``S_i = M_i * X``, ``(batch, instrument, freq, frame)``.
        templates: harmonic templates ``(pitch, freq)`` (``harmonic_templates``).
        critic: the transcriptor that judges each ``S_i`` (None: no critic in this stage).
        critic_target: what the critic should hear, ``(batch, instrument, pitch or 1, frame)``.
        pairs: the AML pairing ``(instrument, batch)`` of this step (None: no AML this step).
        separate: the separator being trained, as a function of a mixture magnitude ``(batch, freq, frame)`` and
            its rolls ``(batch, instrument, pitch, frame)`` to separated spectrograms, for terms that separate
            inputs of their own (``RemixLoss``); None: such terms cannot run.
        spectrogram: the stage's STFT and inverse STFT (``features.Spectrogram``), for such terms.
        training: a training step (validation batches hold no training-only inputs such as solo passages).
    """

    batch: dict
    separated: torch.Tensor
    templates: torch.Tensor
    critic: nn.Module | None = None
    critic_target: torch.Tensor | None = None
    pairs: torch.Tensor | None = None
    separate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    spectrogram: nn.Module | None = None
    training: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    def harmonic_masks(self) -> torch.Tensor:
        """``H_i`` of every instrument ``(batch, instrument, freq, frame)``, computed once per step."""
        if "harmonic" not in self._cache:
            self._cache["harmonic"] = harmonic_mask(self.batch["rolls"], self.templates)
        return self._cache["harmonic"]


@dataclass
class SeparatorLoss(ABC):
    """A separator loss term: a dataclass whose fields are its weight and its own settings, called on a step's
    ``LossInputs`` to give one value per batch item ``(batch,)``.

    A subclass is a ``@dataclass`` that adds its settings as fields and implements ``__call__``. Its class
    attributes are unannotated or ``ClassVar`` (annotated, the dataclass would take them for settings):

    - ``name``: what the stage logs, ``train/<name>``; default: the class name in snake case without a trailing
      ``Loss``;
    - ``summary``: one line for the docs and errors;
    - ``needs_critic`` / ``needs_pairs``: computed only with a critic / with AML's artificial mixtures; a stage
      without them refuses a positive weight.

    Args:
        weight: the term's weight in the separator's loss (0 leaves it out).
    """

    weight: float = 1.0
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_critic: ClassVar[bool] = False
    needs_pairs: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            words = re.sub(r"(?<!^)(?=[A-Z])", "_", re.sub(r"Loss$", "", cls.__name__) or cls.__name__)
            cls.name = words.lower()

    @abstractmethod
    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        """The term per batch item, ``(batch,)``."""

    def spec(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what checkpoints store and ``build_loss`` rebuilds it from."""
        return {"class_path": class_path_of(type(self)), "init_args": asdict(self)}


@dataclass
class ScoreLoss(SeparatorLoss):
    """``L_score``: the critic transcribes each ``S_i`` as its instrument's notes only (BCE, note cells weighted
    ``pos_weight``)."""

    pos_weight: float = 80.0
    name: ClassVar[str] = "score"
    summary: ClassVar[str] = "L_score: the critic transcribes each S_i as its instrument's notes only"
    needs_critic: ClassVar[bool] = True

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return score_loss(inputs.critic, inputs.separated, inputs.critic_target, self.pos_weight)


@dataclass
class MixLoss(SeparatorLoss):
    """``L_mix``: the separated spectrograms of all instruments add up to the mixture."""

    name: ClassVar[str] = "mix"
    summary: ClassVar[str] = "L_mix: the S_i of all instruments add up to the mixture"

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return mixture_loss(inputs.separated, inputs.batch["mixture_mag"])


@dataclass
class ClipMixLoss(SeparatorLoss):
    """``L_c-mix``: the separated spectrograms of the instruments active in the clip add up to the mixture."""

    name: ClassVar[str] = "clip_mix"
    summary: ClassVar[str] = "L_c-mix: the S_i of the instruments active in the clip add up to the mixture"

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return mixture_loss(inputs.separated, inputs.batch["mixture_mag"], active=inputs.batch["active"])


@dataclass
class HarmonicMixLoss(SeparatorLoss):
    """``L_h-mix``: the harmonic parts ``H_i * S_i`` add up to the mixture; with ``restrict``, only in the bins
    some harmonic mask covers."""

    restrict: bool = True
    name: ClassVar[str] = "harmonic_mix"
    summary: ClassVar[str] = "L_h-mix: the harmonic parts H_i * S_i add up to the mixture where some H_i covers it"

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return mixture_loss(inputs.separated, inputs.batch["mixture_mag"], harmonic=inputs.harmonic_masks(),
                            restrict_to_covered=self.restrict)


@dataclass
class HarmonicLeakLoss(SeparatorLoss):
    """``L_h-leak`` (not in the paper): the energy each ``S_i`` keeps outside its own harmonic mask."""

    name: ClassVar[str] = "harmonic_leak"
    summary: ClassVar[str] = "L_h-leak (not in the paper): energy each S_i keeps outside its own harmonic mask"

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return harmonic_leak_loss(inputs.separated, inputs.harmonic_masks())


@dataclass
class ScoreTargetLoss(SeparatorLoss):
    """``L_score-target`` (not in the paper): each ``S_i`` imitates the score's own separation
    ``H_i / max(1, sum_j H_j) * X``."""

    name: ClassVar[str] = "score_target"
    summary: ClassVar[str] = ("L_score-target (not in the paper): each S_i imitates the score's own separation "
                              "H_i / max(1, sum_j H_j) * X")

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return score_target_loss(inputs.separated, inputs.batch["mixture_mag"], inputs.harmonic_masks())


def check_separates(inputs: LossInputs, term: str) -> None:
    """SettingsError unless the stage gave ``term`` what it needs to separate mixtures of its own."""
    if inputs.separate is None or inputs.spectrogram is None:
        raise SettingsError(f"the {term} term separates mixtures of its own: its stage must give it the separator "
                            "and the spectrogram (LossInputs.separate, LossInputs.spectrogram)")


def known_parts_loss(inputs: LossInputs, parts: torch.Tensor, rolls: torch.Tensor) -> torch.Tensor:
    """The separator on the sum of ``parts`` ``(batch, instrument, time)`` (with their ``rolls``), against the
    parts' magnitudes (``remix_loss``): what ``L_remix`` and ``L_solo`` share. ``(batch,)``."""
    spectrogram = inputs.spectrogram
    with torch.no_grad():
        mixture_magnitude = spectrogram.stft(parts.sum(1)).abs()
        parts_magnitude = spectrogram.stft(parts).abs()
    return remix_loss(inputs.separate(mixture_magnitude, rolls), parts_magnitude)


@dataclass
class RemixLoss(SeparatorLoss):
    """``L_remix`` (not in the paper, ``losses/remix.py``): the separator separates remixes of the score's
    separations of the batch's crops, each instrument's part taken from another crop, back into those parts.

    The settings perturb the score the separator reads (``score.ScorePerturbation``: each remix's own draw), while
    the parts stay those of the true score: a score-informed separator learns to cope with a score that is off by
    tens of milliseconds or misses a few notes. All 0 (the default): the score as it is. ``stretch`` scales each
    crop's time axis from the crop's start (a few frames at the crop's end), not a whole recording's.

    Training steps draw the remixes from torch's generator (``seed_everything`` makes them repeatable); validation
    draws them from a generator of its own with a fixed seed, so ``val/loss`` is the same number for the same
    weights and validation leaves the training draws alone.
    """

    offset_s: float = 0.0
    jitter_s: float = 0.0
    drop: float = 0.0
    add: float = 0.0
    stretch: float = 0.0
    name: ClassVar[str] = "remix"
    summary: ClassVar[str] = ("L_remix (not in the paper): separate remixes of the score's separations of other "
                              "crops (each instrument from another crop) back into those parts")

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        check_separates(inputs, "remix")
        batch, spectrogram = inputs.batch, inputs.spectrogram
        with torch.no_grad():
            shares = shared_masks(inputs.harmonic_masks(), dim=1)
            parts = spectrogram.istft(shares * batch["mixture_stft"][:, None], batch["mixture"].shape[-1])
            generator = None if inputs.training else torch.Generator().manual_seed(0)
            picks = remix_picks(parts.shape[0], parts.shape[1], generator)
            parts, rolls = remix(parts, batch["rolls"], picks)
            rolls = self.perturbed(rolls, spectrogram.sample_rate / spectrogram.hop_length, generator)
        return known_parts_loss(inputs, parts, rolls)

    def __post_init__(self) -> None:
        ScorePerturbation(self.offset_s, self.jitter_s, self.drop, self.add, self.stretch)  # refuses bad settings

    def perturbed(self, rolls: torch.Tensor, frame_rate: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """The rolls ``(batch, instrument, pitch, frame)`` with this term's perturbation, a draw per item (seeded
        from ``generator``, else torch's, so ``seed_everything`` makes it repeatable)."""
        perturbation = ScorePerturbation(self.offset_s, self.jitter_s, self.drop, self.add, self.stretch)
        if perturbation.is_identity:
            return rolls
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        perturbed = [perturb_rolls(item, perturbation, frame_rate, rng) for item in rolls.cpu().numpy()]
        return torch.from_numpy(np.stack(perturbed)).to(rolls)


@dataclass
class SoloLoss(SeparatorLoss):
    """``L_solo`` (not in the paper): artificial mixtures of the score's solo passages (``data.solo_passages``,
    ``data/solo_passages.py``), separated into their known parts (L1 on magnitudes, ``remix_loss``). Computed on
    training batches; validation batches have no solo passages and give 0."""

    name: ClassVar[str] = "solo"
    summary: ClassVar[str] = ("L_solo (not in the paper): separate artificial mixtures of the score's solo "
                              "passages into their known parts (needs data.solo_passages: true)")

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        batch = inputs.batch
        if "solo_parts" not in batch:
            if not inputs.training:
                return inputs.separated.new_zeros(inputs.separated.shape[0])
            raise SettingsError("the solo loss term separates mixtures of the score's solo passages, and this "
                                "training batch has none: set data.solo_passages: true (--data.solo_passages true)")
        check_separates(inputs, "solo")
        return known_parts_loss(inputs, batch["solo_parts"].float(), batch["solo_rolls"])


@dataclass
class AmlLoss(SeparatorLoss):
    """AML, the separator's side: the critic transcribes artificial mixtures of separated sources as their
    score (BCE, note cells weighted ``pos_weight``)."""

    pos_weight: float = 80.0
    name: ClassVar[str] = "aml"
    summary: ClassVar[str] = ("AML, separator side: the critic transcribes artificial mixtures of separated sources "
                              "as their score")
    needs_critic: ClassVar[bool] = True
    needs_pairs: ClassVar[bool] = True

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        mixtures, scores = artificial_mixtures(inputs.separated, inputs.batch["rolls"], inputs.pairs)
        return aml_separator_loss(inputs.critic, mixtures, scores, self.pos_weight)


# Names the stages use themselves: ``train/loss`` is the total, ``supervised`` the supervised row's term.
RESERVED_NAMES = ("loss", "supervised")
# The project's terms by name: what a stage's ``loss_weights`` mapping may name.
BUILTIN_TERMS: dict[str, type[SeparatorLoss]] = {cls.name: cls for cls in (
    ScoreLoss, MixLoss, ClipMixLoss, HarmonicMixLoss, HarmonicLeakLoss, ScoreTargetLoss, RemixLoss, SoloLoss,
    AmlLoss)}


def build_loss(spec: dict[str, Any], where: str) -> SeparatorLoss:
    """The term a ``{class_path, init_args}`` entry of ``extra_losses`` names; SettingsError naming ``where``,
    the class and what is wrong (not a ``SeparatorLoss`` dataclass, an unknown or missing setting)."""
    if not isinstance(spec, dict) or "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        raise SettingsError(f"{where}: each extra_losses entry is {{class_path: package.module.Class, init_args: "
                            f"{{weight: ..., ...}}}}, got {spec!r}")
    class_path = spec["class_path"]
    cls = import_subclass(class_path, SeparatorLoss, f"{where}: loss term",
                          "scoresep.losses.terms.ScoreTargetLoss, or your own subclass")
    if "__dataclass_fields__" not in cls.__dict__ or "__call__" in getattr(cls, "__abstractmethods__", ()):
        # every subclass inherits the base's dataclass fields; only its own decorator makes its settings fields
        raise SettingsError(f"{where}: loss term {class_path!r} must be decorated with @dataclass and implement "
                            "__call__")
    init_args = dict(spec.get("init_args") or {})
    known = [item.name for item in fields(cls)]
    if unknown := sorted(set(init_args) - set(known)):
        raise SettingsError(f"{where}: loss term {class_path!r} has no setting {', '.join(unknown)}; its settings "
                            f"are {known}")
    try:
        term = cls(**init_args)
    except TypeError as error:
        raise SettingsError(f"{where}: loss term {class_path!r}: {error}") from error
    for name, value in asdict(term).items():
        if not _plain(value):
            raise SettingsError(f"{where}: loss term {class_path!r}: setting {name}={value!r} is not a number, "
                                "string, bool, None or a list/dict of them (checkpoints keep plain data only)")
    return term


def _plain(value: Any) -> bool:
    """Whether ``value`` is data a checkpoint loads with ``weights_only=True``: primitives, lists and dicts."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


def separator_terms(typed: list[SeparatorLoss], loss_weights: dict[str, float] | None,
                    extra_losses: list[dict[str, Any]] | None, where: str, has_critic: bool,
                    has_pairs: bool) -> list[SeparatorLoss]:
    """A stage's separator terms, in a fixed order: its ``typed`` terms (built from its ``<name>_weight``
    arguments), then the built-in terms its ``loss_weights`` names, then its ``extra_losses`` by class path.

    Refused with a SettingsError naming ``where`` and the term: an unknown name, a name given twice, a weight
    that is negative or not finite, and a positive weight for a term that needs a critic or an AML pairing the
    stage does not have."""
    terms = list(typed)
    typed_names = {term.name for term in typed}
    for name, weight in (loss_weights or {}).items():
        if name not in BUILTIN_TERMS:
            raise SettingsError(f"{where}: loss_weights names an unknown loss term {name!r}; the terms are "
                                f"{sorted(BUILTIN_TERMS)} (a term of your own goes in extra_losses, by class path)")
        if name in typed_names:
            raise SettingsError(f"{where}: loss_weights gives {name!r}, which has its own argument {name}_weight")
        terms.append(BUILTIN_TERMS[name](weight=float(weight)))
    terms.extend(build_loss(spec, where) for spec in extra_losses or [])
    seen: set[str] = set()
    for term in terms:
        if term.name in RESERVED_NAMES:
            raise SettingsError(f"{where}: a loss term may not be named {term.name!r} (the stage logs its total as "
                                "'loss' and the supervised row's term as 'supervised'); set the class's name")
        if term.name in seen:
            raise SettingsError(f"{where}: two loss terms are named {term.name!r}; give each term once")
        seen.add(term.name)
        if not isinstance(term.weight, int | float) or not math.isfinite(term.weight) or term.weight < 0:
            raise SettingsError(f"{where}: loss weights must be >= 0, got {term.name}={term.weight}")
        if term.weight > 0 and term.needs_critic and not has_critic:
            raise SettingsError(f"{where}: loss term {term.name!r} needs a critic, and this stage has none")
        if term.weight > 0 and term.needs_pairs and not has_pairs:
            raise SettingsError(f"{where}: loss term {term.name!r} needs AML's artificial mixtures (stage 3)")
    return terms


def separator_losses(inputs: LossInputs, terms: list[SeparatorLoss]) -> dict[str, torch.Tensor]:
    """Every term with weight > 0, batch-averaged and unweighted (a term that needs a critic or a pairing the
    inputs lack is left out: AML on a batch of one, validation)."""
    values = {}
    for term in terms:
        if term.weight <= 0 or (term.needs_critic and inputs.critic is None) or (
                term.needs_pairs and inputs.pairs is None):
            continue
        values[term.name] = term(inputs).mean()
    return values


def term_weights(terms: list[SeparatorLoss]) -> dict[str, float]:
    """``{name: weight}`` of a stage's terms (what ``weighted_sum`` reads)."""
    return {term.name: float(term.weight) for term in terms}


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_t w_t * L_t`` over the computed terms."""
    return sum(weights[name] * value for name, value in terms.items())


__all__ = ["AmlLoss", "BUILTIN_TERMS", "ClipMixLoss", "HarmonicLeakLoss", "HarmonicMixLoss", "LossInputs", "MixLoss",
           "ScoreLoss", "ScoreTargetLoss", "SeparatorLoss", "build_loss", "separator_losses", "separator_terms",
           "term_weights", "weighted_sum"]
