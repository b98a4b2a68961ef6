"""Stage 2: ``SeparatorStage`` trains the separator through a frozen critic plus mixture-consistency losses.

- ``critic: transcriptor`` (the paper): the stage-1 transcriptor judges each separated spectrogram
  (``L_score``); ``critic: classifier`` (baseline [16]): the activity classifier does; ``critic: none``: only
  mixture losses (or the supervised loss).
- ``supervised: true`` is the upper bound: L1/MSE against the true source magnitudes, no critic, no score.

Validation/test: each separated spectrogram is inverted with the mixture phase (fp32) and compared with the
true stem by SI-SDR; the input mixture's SI-SDR and the improvement (SI-SDRi) are reported beside it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from scoresep.checkpoints import StageCheckpoint, write_section
from scoresep.constants import HARMONIC_TOLERANCE, N_HARMONICS
from scoresep.errors import SettingsError
from scoresep.evaluation import SeparationEvaluation
from scoresep.features import DEFAULT_FEATURES, FeatureSettings
from scoresep.losses import supervised_loss
from scoresep.losses.terms import (
    ClipMixLoss,
    HarmonicLeakLoss,
    HarmonicMixLoss,
    MixLoss,
    ScoreLoss,
    term_weights,
    weighted_sum,
)
from scoresep.models import build_separator, separator_spec
from scoresep.models.transcriptor import Transcriptor, folded_for_inference
from scoresep.score import activity_target
from scoresep.stages.arguments import adamw, check_numbers
from scoresep.stages.media import log_media
from scoresep.stages.separating_base import SeparatingStage, masked_waveforms


class SeparatorStage(SeparatingStage):
    """Stage 2 (and the supervised upper bound, and the classifier-critic baseline).

    Args:
        features: the feature settings (``FeatureSettings``), linked from the data module by the CLI; they must
            match the critic's checkpoint.
        model: the separator network, ``{class_path: scoresep.models.<Network>, init_args: {...}}`` (see
            ``models/base.py``): ``FrameSeparator`` (the default) or ``UNetSeparator`` (``UNetConfig.paper()``
            sizes it for a GPU). Python callers may pass the network's config dataclass instead.
        critic: ``transcriptor`` (piano-roll critic), ``classifier`` (activity critic of the baseline) or
            ``none``.
        transcriptor_checkpoint: stage-1 checkpoint of the critic (``label: notes`` for ``transcriptor``,
            ``label: activity`` for ``classifier``). Frozen: eval mode, no gradient, weights never change.
        supervised: train against the true stems instead (upper bound; needs stems, uses no critic).
        supervised_loss: ``l1`` or ``mse`` on magnitudes.
        score_weight: weight of ``L_score``.
        mix_weight: weight of the plain mixture loss (all instruments summed); 0 disables it.
        clip_mix_weight: weight of ``L_c-mix`` (only instruments active in the clip); 0 disables it.
        harmonic_mix_weight: weight of ``L_h-mix`` (harmonic masks from the score); 0 disables it.
        n_harmonics, harmonic_tolerance, harmonic_restrict: harmonic mask: harmonics per note, half-width in
            semitones, and whether ``L_h-mix`` counts only the bins some mask covers.
        harmonic_leak_weight: weight of ``L_h-leak`` (energy of each separated spectrogram outside its harmonic
            mask; not in the paper, 0 disables it; see ``losses.mixture.harmonic_leak_loss``).
        critic_pos_weight: BCE weight of note cells in ``L_score`` (80, chosen on the validation split: with low
            weights the empty cells dominate and the separator learns to silence the critic's false notes rather
            than to give each instrument its notes; docs/training.md).
        loss_weights: weights of the project's other loss terms (``losses.terms.BUILTIN_TERMS``) by name, e.g.
            ``{score_target: 1.0}``; the paper's terms have their own ``<name>_weight`` arguments above.
        extra_losses: further terms by class path, each with its weight and settings,
            ``[{class_path: mypackage.losses.SpectralFluxLoss, init_args: {weight: 0.05, order: 2}}]``: any
            ``losses.terms.SeparatorLoss`` subclass, a user's own included (docs/extending.md).
        lr, weight_decay, scheduler: AdamW and an optional cosine decay over the run.
        log_media: log separated audio and mask images of the first validation batch (W&B or TensorBoard).
        max_nonfinite_steps: training steps in a row with a NaN/inf loss (each one skipped) before the run
            stops with an error.
    """

    eval_modules = ("critic",)  # frozen: eval mode, its BatchNorm statistics never move

    def __init__(
        self,
        features: FeatureSettings = DEFAULT_FEATURES,
        model: dict[str, Any] | None = None,
        critic: Literal["transcriptor", "classifier", "none"] = "transcriptor",
        transcriptor_checkpoint: str | None = None,
        separator_checkpoint: str | None = None,
        supervised: bool = False,
        supervised_loss: Literal["l1", "mse"] = "l1",
        score_weight: float = 1.0,
        mix_weight: float = 0.0,
        clip_mix_weight: float = 1.0,
        harmonic_mix_weight: float = 1.0,
        n_harmonics: int = N_HARMONICS,
        harmonic_tolerance: float = HARMONIC_TOLERANCE,
        harmonic_restrict: bool = True,
        harmonic_leak_weight: float = 0.0,
        critic_pos_weight: float = 80.0,
        loss_weights: dict[str, float] | None = None,
        extra_losses: list[dict[str, Any]] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "cosine",
        log_media: bool = True,
        max_nonfinite_steps: int = 10,
    ):
        super().__init__()
        spec = separator_spec(model)
        self.save_hyperparameters()
        self.hparams["model"] = spec  # primitives only, so checkpoints load with weights_only=True
        self.setup_stage("SeparatorStage", features, max_nonfinite_steps)
        check_numbers("SeparatorStage",
                      finite={"score_weight": score_weight, "mix_weight": mix_weight,
                              "clip_mix_weight": clip_mix_weight,
                              "harmonic_mix_weight": harmonic_mix_weight, "harmonic_leak_weight": harmonic_leak_weight,
                              "critic_pos_weight": critic_pos_weight, **(loss_weights or {})},
                      nonnegative={"harmonic_tolerance": harmonic_tolerance, "weight_decay": weight_decay},
                      positive={"lr": lr})
        if score_weight < 0:
            raise SettingsError(f"SeparatorStage: loss weights must be >= 0, got score_weight={score_weight}")
        if supervised and (loss_weights or extra_losses):
            raise SettingsError("SeparatorStage: supervised: true trains on the stems alone (supervised_loss); "
                                "loss_weights and extra_losses would be ignored, so leave them out")
        self.use_critic = critic != "none" and not supervised and score_weight > 0
        typed = [ScoreLoss(score_weight if self.use_critic else 0.0, critic_pos_weight), MixLoss(mix_weight),
                 ClipMixLoss(clip_mix_weight), HarmonicMixLoss(harmonic_mix_weight, harmonic_restrict),
                 HarmonicLeakLoss(harmonic_leak_weight)]
        self.setup_loss_terms(typed, loss_weights, extra_losses, self.use_critic, has_pairs=False)
        self.loss_weights = term_weights(self.loss_terms)
        if not supervised and not any(weight > 0 for weight in self.loss_weights.values()):
            raise SettingsError("SeparatorStage: no loss is enabled (set a critic with score_weight > 0, a mixture "
                                "loss weight, or supervised: true)")
        self.separator = build_separator(spec, self.features.n_bins, len(self.features.instruments))
        if separator_checkpoint is not None:
            source = StageCheckpoint.read(separator_checkpoint)
            self.separator.load_state_dict(source.warm_start_weights(self.separator, self.features))
            source.check_score_masks(self.separator, n_harmonics, harmonic_tolerance)
        self.critic: Transcriptor | None = None
        self.critic_thresholds: list[float] | None = None
        if self.use_critic:
            if transcriptor_checkpoint is None:
                raise SettingsError(f"SeparatorStage: critic={critic!r} needs transcriptor_checkpoint (the stage-1 "
                                    "checkpoint, e.g. --model.transcriptor_checkpoint checkpoints/stage1/best.ckpt)")
            label = "notes" if critic == "transcriptor" else "activity"
            self.critic, critic_info = StageCheckpoint.read(transcriptor_checkpoint).transcriptor(self.features, label)
            self.critic_thresholds = critic_info.get("thresholds")  # kept so the critic transcribes as calibrated
            self.critic.eval().requires_grad_(False)
        self.setup_separating(self.features, n_harmonics, harmonic_tolerance)
        self._reset_evaluation()

    # ------------------------------------------------------------------------------------------------- losses
    def losses(self, batch: dict, separated: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each enabled loss term, averaged over the batch (unweighted)."""
        hp, terms = self.hparams, {}
        if hp.supervised:
            keep = batch["has_sources"]
            if not bool(keep.any()):
                raise SettingsError(f"supervised training needs stems; batch tracks {batch['track']} have none")
            sources_mag = self.spectrogram.source_magnitudes(batch)
            terms["supervised"] = supervised_loss(separated[keep], sources_mag[keep], hp.supervised_loss).mean()
            return terms
        rolls = batch["rolls"]
        target = rolls if hp.critic == "transcriptor" else activity_target(rolls)
        return self.separator_losses(batch, separated, self.loss_critic() if self.use_critic else None, target)

    def loss_critic(self) -> Transcriptor:
        """The frozen critic as the loss terms run it: BatchNorm folded into its convolutions
        (``models.transcriptor.folded_for_inference``: the same logits to float rounding, a stage-2 step 6-11 %
        shorter on the CPU). The copy is built on first use and again after a move to
        another device or dtype or a ``load_state_dict``; it is not a submodule, so checkpoints hold ``self.critic`` as
        stage 1 trained it."""
        if self.critic is None:
            raise SettingsError("SeparatorStage: this stage trains without a critic (critic: none or supervised)")
        weight = self.critic.head.weight
        folded = self.__dict__.get("_folded_critic")
        if folded is None or (folded.head.weight.device, folded.head.weight.dtype) != (weight.device, weight.dtype):
            folded = folded_for_inference(self.critic)
            self.__dict__["_folded_critic"] = folded  # kept out of nn.Module's registry on purpose (see above)
        return folded

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.__dict__.pop("_folded_critic", None)  # the critic's weights may change: fold them again
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return weighted_sum(terms, {**self.loss_weights, "supervised": 1.0})

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        _, separated = self.separate(batch)
        terms = self.losses(batch, separated)
        loss = self.total(terms)
        if self.finite_or_skip(loss) is None:
            return None
        size = len(batch["mixture"])
        self.log_dict({f"train/{name}": value for name, value in terms.items()}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        return adamw(self, self.separator.parameters(), hp.lr, hp.weight_decay, hp.scheduler)

    # ---------------------------------------------------------------------------------------------- evaluation
    def _reset_evaluation(self) -> None:
        self.evaluation = SeparationEvaluation(self.features.instruments)
        self.reset_evaluation_loss()

    def _evaluation_step(self, batch: dict, batch_idx: int) -> None:
        masks, separated = self.separate(batch)
        if self.hparams.supervised and not bool(batch["has_sources"].any()):
            return
        self.add_evaluation_loss(self.total(self.losses(batch, separated)), len(masks))
        keep = batch["has_sources"]
        if not bool(keep.any()):
            return
        estimates = masked_waveforms(self.spectrogram, batch, masks)[keep]
        self.evaluation.update(estimates, batch["sources"][keep], batch["mixture"][keep])
        if batch_idx == 0 and self.hparams.log_media and not self.trainer.sanity_checking:
            log_media(self, batch, masks, estimates, keep)

    def _log_evaluation(self, prefix: str) -> dict[str, float]:
        results = self.evaluation.results(prefix, self.sum_over_processes)
        results[f"{prefix}/loss"] = self.evaluation_loss()
        self.log_dict(results, sync_dist=False)
        return results

    # ---------------------------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        label = "notes" if self.hparams.critic == "transcriptor" else "activity"
        write_section(checkpoint, "separator", self.features, separator=self.separator, transcriptor=self.critic,
                      label=label, thresholds=self.critic_thresholds)
