"""Stage 3: ``AdversarialStage`` fine-tunes the separator and the transcriptor together (two optimisers).

Each training step alternates two half-steps on the same batch (``transcriptor_updates`` then
``separator_updates`` optimiser steps):

- transcriptor: ``L_tr`` on the real mixtures (it stays a transcriptor) + AML's transcriptor side on artificial
  mixtures of separated sources (it learns to spot separation errors) + ATL's transcriptor side on each
  separated source (it learns to hear the interference left in it). Separated spectrograms are detached.
- separator: ``L_score`` (the transcriptor as critic, ATL's separator side) + ``L_c-mix`` + ``L_h-mix`` + AML's
  separator side. The transcriptor is frozen (Lightning's ``toggled_optimizer``: no gradient reaches it).

The transcriptor runs in eval mode throughout (BatchNorm statistics and dropout as in stage 1): its inputs here
are partly separated or artificial spectrograms, whose statistics would shift the normalisation of real
mixtures. AML pairs songs within each process's batch with a generator seeded by ``(seed, epoch, batch index,
rank)``, so a run is reproducible for a given number of processes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from scoresep.checkpoints import StageCheckpoint, write_section
from scoresep.constants import HARMONIC_TOLERANCE, N_HARMONICS
from scoresep.errors import SettingsError
from scoresep.evaluation import SeparationEvaluation, TranscriptionEvaluation
from scoresep.features import DEFAULT_FEATURES, FeatureSettings
from scoresep.losses import (
    aml_transcriptor_loss,
    artificial_mixtures,
    atl_transcriptor_loss,
    mixing_pairs,
    transcription_bce,
)
from scoresep.losses.adversarial import AmlForm
from scoresep.losses.terms import (
    AmlLoss,
    ClipMixLoss,
    HarmonicLeakLoss,
    HarmonicMixLoss,
    ScoreLoss,
    term_weights,
    weighted_sum,
)
from scoresep.stages.arguments import check_numbers
from scoresep.stages.media import log_media
from scoresep.stages.separating_base import SeparatingStage, masked_waveforms


class AdversarialStage(SeparatingStage):
    """Stage 3: joint fine-tuning with the adversarial mixture (AML) and transcription (ATL) losses.

    Args:
        features: the feature settings (``FeatureSettings``), linked from the data module by the CLI; both
            checkpoints must match them.
        separator_checkpoint: stage-2 (or stage-3) checkpoint whose separator is fine-tuned.
        transcriptor_checkpoint: stage-1 (or stage-3) checkpoint whose transcriptor (``label: notes``) is
            fine-tuned; ``null`` takes the frozen critic stored in the stage-2 ``separator_checkpoint``.
        aml, atl: switch the adversarial mixture / transcription loss on.
        aml_form: transcriptor side of AML: ``negated`` (the poster's -L_score, unbounded), ``clipped``
            (-min(L_score, aml_margin)) or ``empty`` (artificial mixtures labelled with an empty roll).
        aml_margin: the clip of ``clipped`` (BCE value).
        transcription_weight: weight of ``L_tr`` on real mixtures (transcriptor side).
        aml_weight, atl_weight: weights of AML (both sides) and of ATL's transcriptor side.
        score_weight, clip_mix_weight, harmonic_mix_weight: the separator's stage-2 losses (``L_score`` is ATL's
            separator side as well).
        n_harmonics, harmonic_tolerance, harmonic_restrict: harmonic mask settings (as in stage 2).
        harmonic_leak_weight: weight of ``L_h-leak`` (as in stage 2; 0 disables it).
        loss_weights: weights of the project's other separator terms (``losses.terms.BUILTIN_TERMS``) by name.
        extra_losses: further separator terms by class path with their weights and settings (as in stage 2).
        pos_weight: BCE weight of note cells in the transcriptor's terms: ``L_tr`` and the transcriptor's side of
            AML and ATL (stage 1 trained with 20, so the transcriptor keeps the operating point its thresholds
            were calibrated at).
        critic_pos_weight: BCE weight of note cells in the separator's terms: ``L_score`` and the separator's
            side of AML and ATL (as in stage 2: 80).
        transcriptor_updates, separator_updates: optimiser steps of each model per training batch.
        separator_lr, transcriptor_lr, weight_decay: AdamW settings of each model (constant rate).
        gradient_clip_val: gradient-norm clip of each half-step (0: none). Set here, not on the Trainer:
            Lightning clips only automatically optimised modules.
        threshold: note threshold of every instrument when the transcriptor's checkpoint holds no calibrated
            thresholds (checkpoints written before calibration existed).
        calibrate_thresholds: re-choose the per-instrument thresholds after each validation pass (as in stage 1:
            the transcriptor is fine-tuned here, so its operating point moves); they are kept in the checkpoint.
        onset_tolerance: note-onset matching of the transcription metrics (seconds).
        seed: AML pairing randomness.
        log_media: log separated audio and mask images of the first validation batch.
        max_nonfinite_steps: training steps in a row with a NaN/inf loss (each one skipped) before the run
            stops with an error.
    """

    eval_modules = ("transcriptor", "reference_critic")  # stage 1's normalisation statistics (module docstring)

    def __init__(
        self,
        features: FeatureSettings = DEFAULT_FEATURES,
        separator_checkpoint: str | None = None,
        transcriptor_checkpoint: str | None = None,
        aml: bool = True,
        atl: bool = False,
        aml_form: AmlForm = "clipped",
        aml_margin: float = 1.0,
        transcription_weight: float = 1.0,
        aml_weight: float = 0.1,
        atl_weight: float = 0.1,
        score_weight: float = 1.0,
        clip_mix_weight: float = 0.1,
        harmonic_mix_weight: float = 0.1,
        n_harmonics: int = N_HARMONICS,
        harmonic_tolerance: float = HARMONIC_TOLERANCE,
        harmonic_restrict: bool = True,
        harmonic_leak_weight: float = 0.0,
        loss_weights: dict[str, float] | None = None,
        extra_losses: list[dict[str, Any]] | None = None,
        pos_weight: float = 20.0,
        critic_pos_weight: float = 80.0,
        transcriptor_updates: int = 1,
        separator_updates: int = 1,
        separator_lr: float = 3e-4,
        transcriptor_lr: float = 3e-4,
        weight_decay: float = 0.0,
        gradient_clip_val: float = 1.0,
        threshold: float = 0.5,
        calibrate_thresholds: bool = True,
        onset_tolerance: float = 0.05,
        seed: int = 0,
        log_media: bool = True,
        max_nonfinite_steps: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.setup_stage("AdversarialStage", features, max_nonfinite_steps)
        check_numbers("AdversarialStage",
                      finite={"transcription_weight": transcription_weight, "aml_weight": aml_weight,
                              "atl_weight": atl_weight, "score_weight": score_weight,
                              "clip_mix_weight": clip_mix_weight,
                              "harmonic_mix_weight": harmonic_mix_weight, "harmonic_leak_weight": harmonic_leak_weight,
                              **(loss_weights or {}), "aml_margin": aml_margin, "pos_weight": pos_weight,
                              "critic_pos_weight": critic_pos_weight, "threshold": threshold,
                              "onset_tolerance": onset_tolerance},
                      nonnegative={"harmonic_tolerance": harmonic_tolerance, "weight_decay": weight_decay,
                                   "gradient_clip_val": gradient_clip_val},
                      positive={"separator_lr": separator_lr, "transcriptor_lr": transcriptor_lr})
        transcriptor_side = {"transcription_weight": transcription_weight, "aml_weight": aml_weight,
                             "atl_weight": atl_weight}  # the separator's: separator_terms, below
        if any(value < 0 for value in transcriptor_side.values()):
            raise SettingsError(f"AdversarialStage: loss weights must be >= 0, got {transcriptor_side}")
        typed = [ScoreLoss(score_weight, critic_pos_weight), ClipMixLoss(clip_mix_weight),
                 HarmonicMixLoss(harmonic_mix_weight, harmonic_restrict), HarmonicLeakLoss(harmonic_leak_weight),
                 AmlLoss(aml_weight if aml else 0.0, critic_pos_weight)]
        self.setup_loss_terms(typed, loss_weights, extra_losses, has_critic=True, has_pairs=aml)
        self.separator_weights = term_weights(self.loss_terms)
        self.transcriptor_weights = {"transcription": transcription_weight, "aml": aml_weight, "atl": atl_weight}
        if transcriptor_updates < 0 or separator_updates < 0 or transcriptor_updates + separator_updates == 0:
            raise SettingsError("AdversarialStage: transcriptor_updates and separator_updates must be >= 0 and not "
                                f"both 0, got {transcriptor_updates}, {separator_updates}")
        if aml_margin <= 0 or gradient_clip_val < 0 or pos_weight <= 0 or critic_pos_weight <= 0:
            raise SettingsError("AdversarialStage: need aml_margin > 0, gradient_clip_val >= 0 and positive BCE "
                                f"weights; got {aml_margin}, {gradient_clip_val}, {pos_weight}, {critic_pos_weight}")
        if separator_checkpoint is None:
            raise SettingsError("AdversarialStage: separator_checkpoint is required (the stage-2 checkpoint, e.g. "
                                "--model.separator_checkpoint checkpoints/stage2/best.ckpt)")
        separator_source = StageCheckpoint.read(separator_checkpoint)
        transcriptor_source = (separator_source if transcriptor_checkpoint in (None, separator_checkpoint)
                               else StageCheckpoint.read(transcriptor_checkpoint))
        self.separator, _ = separator_source.separator(expected=self.features)
        separator_source.check_score_masks(self.separator, n_harmonics, harmonic_tolerance)
        self.transcriptor, transcriptor_info = transcriptor_source.transcriptor(expected=self.features, label="notes")
        # The critic as it starts, frozen: the yardstick of the validation loss (in the checkpoint's state_dict,
        # so a resumed run keeps the same one).
        self.reference_critic = copy.deepcopy(self.transcriptor).eval().requires_grad_(False)
        thresholds = transcriptor_info.get("thresholds") or [threshold] * len(self.features.instruments)
        self.register_buffer("thresholds", torch.tensor(thresholds, dtype=torch.float32))
        self.transcriptor.eval()  # Lightning restores the modes it finds here after each validation
        self.setup_separating(self.features, n_harmonics, harmonic_tolerance)
        self._reset_evaluation()

    # ------------------------------------------------------------------------------------------------ training
    def _pairs(self, batch_size: int, batch_idx: int) -> torch.Tensor:
        key = [self.hparams.seed, self.current_epoch, batch_idx, self.global_rank]
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        return mixing_pairs(batch_size, len(self.features.instruments), generator)

    def transcriptor_terms(self, batch: dict, separated: torch.Tensor,
                           pairs: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The transcriptor's loss terms (unweighted, batch-averaged); ``separated`` must be detached."""
        hp, rolls = self.hparams, batch["rolls"]
        terms = {"transcription": transcription_bce(self.transcriptor, batch["mixture_mag"], rolls,
                                                    hp.pos_weight).mean()}
        if hp.aml and pairs is not None:
            mixtures, scores = artificial_mixtures(separated, rolls, pairs)
            terms["aml"] = aml_transcriptor_loss(self.transcriptor, mixtures, scores, hp.aml_form, hp.aml_margin,
                                                 hp.pos_weight).mean()
        if hp.atl:
            terms["atl"] = atl_transcriptor_loss(self.transcriptor, separated, rolls, hp.pos_weight).mean()
        return terms

    def separator_terms(self, batch: dict, separated: torch.Tensor, pairs: torch.Tensor | None,
                        critic: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The separator's loss terms (``self.loss_terms``: unweighted, batch-averaged), judged by ``critic``
        (default: the transcriptor being fine-tuned)."""
        return self.separator_losses(batch, separated, critic or self.transcriptor, batch["rolls"],
                                     pairs if self.hparams.aml else None)

    def weighted(self, terms: dict[str, torch.Tensor], side: str = "separator") -> torch.Tensor:
        """``sum w * L`` of one model's terms (``side``: ``separator`` or ``transcriptor``)."""
        return weighted_sum(terms, self.separator_weights if side == "separator" else self.transcriptor_weights)

    def _backward(self, loss: torch.Tensor, model: torch.nn.Module) -> None:
        """``manual_backward``, then under DDP the average of ``model``'s gradients over processes.

        DDP's own gradient hooks expect every parameter of the wrapped module to get a gradient in each
        backward; a half-step updates one model only, so the hooks are bypassed (``no_sync``) and the updated
        model's gradients are averaged here, in one flat all-reduce.
        """
        wrapper = self.trainer.model
        if not isinstance(wrapper, DistributedDataParallel):
            self.manual_backward(loss)
            return
        with wrapper.no_sync():
            self.manual_backward(loss)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch.distributed.all_reduce(flat)
            flat /= self.trainer.world_size
            for grad, averaged in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(averaged.view_as(grad))

    def _update(self, optimizer, loss: torch.Tensor, model: torch.nn.Module, what: str) -> None:
        if self.finite_or_skip(loss, what) is None:
            return
        optimizer.zero_grad()
        self._backward(loss, model)
        if self.hparams.gradient_clip_val > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val,
                                gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        separator_optimizer, transcriptor_optimizer = self.optimizers()
        size = len(batch["mixture"])
        pairs = self._pairs(size, batch_idx) if hp.aml and size >= 2 else None
        _, separated = self.separate(batch)
        logs: dict[str, torch.Tensor] = {}
        for _ in range(hp.transcriptor_updates):
            with self.toggled_optimizer(transcriptor_optimizer):
                terms = self.transcriptor_terms(batch, separated.detach(), pairs)
                loss = self.weighted(terms, "transcriptor")
                self._update(transcriptor_optimizer, loss, self.transcriptor, "transcriptor loss")
            logs.update({f"train/transcriptor/{k}": v.detach() for k, v in terms.items()})
            logs["train/transcriptor/loss"] = loss.detach()
        for update in range(hp.separator_updates):
            with self.toggled_optimizer(separator_optimizer):
                if update > 0:
                    _, separated = self.separate(batch)
                terms = self.separator_terms(batch, separated, pairs)
                loss = self.weighted(terms)
                self._update(separator_optimizer, loss, self.separator, "separator loss")
            logs.update({f"train/separator/{k}": v.detach() for k, v in terms.items()})
            logs["train/separator/loss"] = loss.detach()
        self.log_dict(logs, batch_size=size)

    def configure_optimizers(self):
        hp = self.hparams
        separator = torch.optim.AdamW(self.separator.parameters(), lr=hp.separator_lr, weight_decay=hp.weight_decay)
        transcriptor = torch.optim.AdamW(self.transcriptor.parameters(), lr=hp.transcriptor_lr,
                                         weight_decay=hp.weight_decay)
        return [separator, transcriptor]

    # ---------------------------------------------------------------------------------------------- evaluation
    def _reset_evaluation(self) -> None:
        hp = self.hparams
        self.separation = SeparationEvaluation(self.features.instruments)
        self.transcription = TranscriptionEvaluation(self.features, True, self.thresholds, hp.onset_tolerance)
        self.reset_evaluation_loss(("loss", "transcriptor_loss"))

    def _evaluation_step(self, batch: dict, batch_idx: int) -> None:
        masks, separated = self.separate(batch)
        # Both models' losses without the AML pairing (random in training): on score-only tracks, which have no
        # stems to score SI-SDR against, they are what validation can tell. The separator's is judged by the
        # critic as it was at the start (the trained one moves, and a more lenient critic is no better separator).
        separator_terms = self.separator_terms(batch, separated, None, critic=self.reference_critic)
        self.add_evaluation_loss({"loss": self.weighted(separator_terms),
                                  "transcriptor_loss": self.weighted(self.transcriptor_terms(batch, separated, None),
                                                                     "transcriptor")},
                                 len(masks))
        target = batch["rolls"].bool()
        self.transcription.update_mixture(self.transcriptor(batch["mixture_mag"]), target)
        keep = batch["has_sources"]
        if not bool(keep.any()):
            return
        self.transcription.update_isolated(self.transcriptor, self.spectrogram.source_magnitudes(batch)[keep],
                                           target[keep])
        estimates = masked_waveforms(self.spectrogram, batch, masks)[keep]
        self.separation.update(estimates, batch["sources"][keep], batch["mixture"][keep])
        if batch_idx == 0 and self.hparams.log_media and not self.trainer.sanity_checking:
            log_media(self, batch, masks, estimates, keep)

    def _log_evaluation(self, prefix: str) -> dict[str, float]:
        if prefix == "val" and self.hparams.calibrate_thresholds:
            self.thresholds.copy_(self.transcription.calibrate(self.sum_over_processes))
        results = self.separation.results(prefix, self.sum_over_processes)
        results.update(self.transcription.results(prefix, self.sum_over_processes))
        # loss: the separator's, by the starting critic (what adapt.yaml monitors); transcriptor_loss: the critic's
        results.update({f"{prefix}/{name}": value for name, value in self.evaluation_losses().items()})
        self.log_dict(results, sync_dist=False)
        return results

    # ---------------------------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        write_section(checkpoint, "adversarial", self.features, separator=self.separator,
                      transcriptor=self.transcriptor, label="notes", thresholds=self.thresholds)
