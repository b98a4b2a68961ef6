"""Stage 1: ``TranscriptorStage`` trains the transcriptor (or, with ``label: activity``, the baseline's
frame-level instrument-activity classifier) on mixtures with the score as target.

Validation and test report, per instrument, on the mixture and (when stems exist) on each isolated stem:
frame-level note accuracy ``TP / (TP + FP + FN)``, precision/recall/F1, note-onset F1 (mir_eval), and the
*wrong-channel rate* (share of an isolated stem's notes that the model puts in another instrument's channel).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

import torch

from scoresep.checkpoints import write_section
from scoresep.errors import SettingsError
from scoresep.evaluation import TranscriptionEvaluation
from scoresep.features import DEFAULT_FEATURES, FeatureSettings, Spectrogram
from scoresep.losses import note_bce
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig
from scoresep.score import activity_target, isolated_targets
from scoresep.stages.arguments import adamw, check_numbers
from scoresep.stages.base import EvaluatedStage


def random_gain(magnitude: torch.Tensor, gain_db: float) -> torch.Tensor:
    """Each input's magnitude times its own gain, uniform in ``[-gain_db, +gain_db]`` dB (the level
    augmentation of stage 1). Shape: ``(batch, freq, frame)`` -> same; ``gain_db = 0`` returns the input."""
    if gain_db == 0:
        return magnitude
    decibels = torch.empty(magnitude.shape[0], 1, 1, device=magnitude.device).uniform_(-gain_db, gain_db)
    return magnitude * (10.0 ** (decibels / 20.0)).to(magnitude.dtype)


class TranscriptorStage(EvaluatedStage):
    """Stage 1: mixture magnitude -> per-instrument piano roll, trained with (weighted) BCE.

    Args:
        features: the feature settings (``FeatureSettings``); the CLI links them from the data module, and a run
            whose data module disagrees stops at start.
        model: transcriptor size (``small`` defaults; ``paper`` in experiments/stage1_paper.yaml).
        label: ``notes`` (piano roll, P = 88) or ``activity`` (the baseline's classifier, P = 1).
        train_on: ``mixture`` (the paper), ``sources`` (isolated stems, each with only its own notes), ``both``,
            or ``submixtures`` (random sub-mixtures of the stems: each stem and the background kept with
            probability ``submix_keep`` at a random gain in [0.5, 1.5]; uses stems: a variant, not the paper).
            Tracks without stems always train on the mixture.
        pos_weight: BCE weight of positive (note) cells; notes fill ~1-2 % of the roll and plain BCE
            learns to predict silence, so positives count ``pos_weight`` times.
        gain_db: level augmentation: every training input (mixture, stem or sub-mixture) is scaled by a gain
            drawn uniformly in ``[-gain_db, +gain_db]`` dB, one per input. A transcriptor trained on mixtures at
            one level misses the notes of quieter inputs (its log features shift with level), and as stage 2's
            critic it hears separated stems, which are quieter than the mixtures it learnt on. Uses mixtures
            only, so it keeps the paper's recipe. 0 turns it off.
        threshold: probability above which a cell counts as a note until the first validation has calibrated the
            thresholds (and always, with ``calibrate_thresholds: false``).
        calibrate_thresholds: after each validation pass, choose one threshold per instrument on the validation
            mixtures (best frame accuracy; ``scoresep.evaluation.ThresholdCalibration``). They are logged as
            ``val/threshold/<instrument>``, kept in the checkpoint, used by ``test``, stage 3, ``transcribe`` and
            ``evaluate``, and ``val/mix/*`` frame metrics (so ``best.ckpt``) are read at them.
        lr, weight_decay: AdamW settings. scheduler: ``cosine`` decays to 0 over the run, ``none`` keeps lr.
        onset_tolerance: seconds for note-onset matching (mir_eval default 0.05).
        max_nonfinite_steps: training steps in a row with a NaN/inf loss (each one skipped) before the run
            stops with an error.
    """

    def __init__(
        self,
        features: FeatureSettings = DEFAULT_FEATURES,
        model: TranscriptorConfig | None = None,
        label: Literal["notes", "activity"] = "notes",
        train_on: Literal["mixture", "sources", "both", "submixtures"] = "mixture",
        submix_keep: float = 0.7,
        pos_weight: float = 20.0,
        gain_db: float = 0.0,
        threshold: float = 0.5,
        calibrate_thresholds: bool = True,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        scheduler: Literal["cosine", "none"] = "cosine",
        onset_tolerance: float = 0.05,
        max_nonfinite_steps: int = 10,
    ):
        super().__init__()
        model = TranscriptorConfig(**model) if isinstance(model, dict) else (model or TranscriptorConfig())
        self.save_hyperparameters()
        self.hparams["model"] = asdict(model)  # primitives only, so checkpoints load with weights_only=True
        self.setup_stage("TranscriptorStage", features, max_nonfinite_steps)
        check_numbers("TranscriptorStage", finite={"pos_weight": pos_weight, "threshold": threshold,
                                                   "submix_keep": submix_keep, "gain_db": gain_db,
                                                   "onset_tolerance": onset_tolerance},
                      nonnegative={"weight_decay": weight_decay}, positive={"lr": lr})
        if pos_weight <= 0 or not 0 < threshold < 1 or not 0 < submix_keep <= 1 or gain_db < 0:
            raise SettingsError(f"TranscriptorStage: need pos_weight > 0, 0 < threshold < 1, 0 < submix_keep <= 1, "
                                f"gain_db >= 0; got {pos_weight}, {threshold}, {submix_keep}, {gain_db}")
        features, n_instruments = self.features, len(self.features.instruments)
        self.n_outputs = features.n_pitches if label == "notes" else 1
        self.transcriptor = Transcriptor(features.n_bins, n_instruments, self.n_outputs, model, features.sample_rate,
                                        features.min_midi)
        self.spectrogram = Spectrogram.of(features, inverse=False)
        self.register_buffer("thresholds", torch.full((n_instruments,), float(threshold)))
        self._reset_evaluation()

    # ------------------------------------------------------------------------------------------------ training
    def target(self, rolls: torch.Tensor) -> torch.Tensor:
        return rolls if self.hparams.label == "notes" else activity_target(rolls)

    def bce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Stage 1's loss: ``note_bce`` as one mean over every cell of the batch."""
        return note_bce(logits, target, self.hparams.pos_weight, reduction="all")

    def _isolated_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each stem's magnitude with a target holding only that instrument's roll: ``(B' * I, F, N)``."""
        keep = batch["has_sources"]
        sources_mag = self.spectrogram.source_magnitudes(batch)
        if sources_mag is None:
            return None
        magnitude = sources_mag[keep]  # (b, I, F, N)
        isolated_target = isolated_targets(self.target(batch["rolls"][keep]))  # stem i -> only channel i
        return magnitude.flatten(0, 1), isolated_target.flatten(0, 1)

    def _submixture_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        keep = batch["has_sources"]
        sources, mixture, rolls = batch["sources"][keep], batch["mixture"][keep], batch["rolls"][keep]
        background = mixture - sources.sum(1)
        shape = (sources.shape[0], sources.shape[1] + 1)
        kept = (torch.rand(shape, device=sources.device) < self.hparams.submix_keep).float()
        gains = kept * torch.empty(shape, device=sources.device).uniform_(0.5, 1.5)
        waveform = (gains[:, :-1, None] * sources).sum(1) + gains[:, -1:] * background
        magnitude = self.spectrogram.to(waveform.device).stft(waveform).abs()
        return magnitude, self.target(rolls * kept[:, :-1, None, None])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        train_on = self.hparams.train_on
        inputs = []
        if train_on in ("mixture", "both") or not bool(batch["has_sources"].all()):
            use = torch.ones_like(batch["has_sources"]) if train_on in ("mixture", "both") else ~batch["has_sources"]
            inputs.append((batch["mixture_mag"][use], self.target(batch["rolls"][use])))
        if train_on in ("sources", "both") and (isolated := self._isolated_inputs(batch)) is not None:
            inputs.append(isolated)
        if train_on == "submixtures" and bool(batch["has_sources"].any()):
            inputs.append(self._submixture_inputs(batch))
        inputs = [(m, t) for m, t in inputs if len(m)]
        magnitude = random_gain(torch.cat([m for m, _ in inputs]), self.hparams.gain_db)
        target = torch.cat([t for _, t in inputs])
        loss = self.bce(self.transcriptor(magnitude), target)
        if self.finite_or_skip(loss) is None:
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=len(magnitude))
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        return adamw(self, self.transcriptor.parameters(), hp.lr, hp.weight_decay, hp.scheduler)

    # ---------------------------------------------------------------------------------------------- evaluation
    def _reset_evaluation(self) -> None:
        hp = self.hparams
        self.evaluation = TranscriptionEvaluation(self.features, hp.label == "notes", self.thresholds,
                                                  hp.onset_tolerance)
        self.reset_evaluation_loss()

    def _evaluation_step(self, batch: dict, batch_idx: int) -> None:
        target = self.target(batch["rolls"]).bool()
        logits = self.transcriptor(batch["mixture_mag"])
        self.add_evaluation_loss(self.bce(logits, target.float()), len(target))
        self.evaluation.update_mixture(logits, target)
        keep = batch["has_sources"]
        if (sources_mag := self.spectrogram.source_magnitudes(batch)) is not None:
            self.evaluation.update_isolated(self.transcriptor, sources_mag[keep], target[keep])

    def _log_evaluation(self, prefix: str) -> dict[str, float]:
        if prefix == "val" and self.hparams.calibrate_thresholds:
            self.thresholds.copy_(self.evaluation.calibrate(self.sum_over_processes))
        results = self.evaluation.results(prefix, self.sum_over_processes)
        results[f"{prefix}/loss"] = self.evaluation_loss()
        self.log_dict(results, sync_dist=False, rank_zero_only=False)
        return results

    # ---------------------------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        write_section(checkpoint, "transcriptor", self.features, transcriptor=self.transcriptor,
                      label=self.hparams.label, thresholds=self.thresholds)
