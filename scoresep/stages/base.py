"""What every stage is: ``EvaluatedStage``, the base of the three LightningModules (set-up from the feature
settings, the check against the data module's, non-finite steps, DDP sums, validation and test, the test table)."""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch

from scoresep.errors import SettingsError, UserError
from scoresep.features import FeaturesArgument, FeatureSettings
from scoresep.instruments import check_instruments

log = logging.getLogger(__name__)


class NonFiniteTraining(UserError, FloatingPointError):
    """Training steps kept giving NaN or infinite losses; the message says how many and what to change."""


class EvaluatedStage(FeaturesArgument, pl.LightningModule):
    """Shared evaluation plumbing: a stage calls ``setup_stage`` (its ``features``) and defines
    ``_evaluation_step(batch, batch_idx)`` (validation and test run it), ``_reset_evaluation()`` (clear the sums)
    and ``_log_evaluation(prefix) -> results``; this class runs them at the right hooks, checks the data module's
    feature settings at start and prints the per-instrument table after a test."""

    features: FeatureSettings
    _nonfinite_in_a_row: int = 0
    _nonfinite_total: int = 0

    def setup_stage(self, name: str, features: FeatureSettings | dict, max_nonfinite_steps: int) -> None:
        """The stage's checked feature settings (``self.features``; a dict, as its checkpoint stores them, is read
        too) and its limit of non-finite steps in a row; ValueError naming the stage ``name`` for an unknown
        instrument or a limit below 1. The hyper-parameters keep the settings as primitives (``to_dict``), so that
        checkpoints load with ``torch.load(weights_only=True)``."""
        self.features = FeatureSettings.coerce(features)
        check_instruments(self.features.instruments)
        self.hparams["features"] = self.features.to_dict()
        if max_nonfinite_steps < 1:
            raise SettingsError(f"{name}: max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, batch_idx)

    def finite_or_skip(self, loss: torch.Tensor, what: str = "loss") -> torch.Tensor | None:
        """``loss`` when it is finite on every process, else None: the step is skipped (Lightning skips a
        ``None`` training step; stage 3 skips the half-step), counted in ``train/nonfinite_steps`` and
        logged; ``max_nonfinite_steps`` bad steps in a row stop the run with an error."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        if self._trainer is not None and self._trainer.world_size > 1:  # detached: a step called by hand
            bad = self._trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            self._nonfinite_in_a_row = 0
            return loss
        self._nonfinite_in_a_row += 1
        self._nonfinite_total += 1
        self.log("train/nonfinite_steps", float(self._nonfinite_total), rank_zero_only=True)
        limit = self.hparams.max_nonfinite_steps
        log.warning("step %d: non-finite %s (%s), step skipped (%d in a row, the run stops at %d)",
                    self.global_step, what, float(loss.detach().float().mean()), self._nonfinite_in_a_row, limit)
        if self._nonfinite_in_a_row >= limit:
            raise NonFiniteTraining(
                f"{type(self).__name__}: {self._nonfinite_in_a_row} training steps in a row had a non-finite {what} "
                f"(at step {self.global_step}); lower the learning rate, check the data, or try precision "
                "bf16-mixed/32 instead of 16-mixed. The last checkpoint is unharmed.")
        return None

    def setup(self, stage: str) -> None:
        """Stop at start when the trainer's data module was configured with other feature settings."""
        data = getattr(getattr(self.trainer, "datamodule", None), "features", None)
        problems = self.features.mismatches(data, "model", "data") if isinstance(data, FeatureSettings) else []
        if problems:
            raise SettingsError(f"{type(self).__name__} and the data module disagree: {'; '.join(problems)}")

    def on_validation_epoch_start(self) -> None:
        self._reset_evaluation()

    def on_test_epoch_start(self) -> None:
        self._reset_evaluation()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        results = self._log_evaluation("test")
        if self.trainer.is_global_zero:
            print(evaluation_table(results, "test", self.features.instruments))

    def reset_evaluation_loss(self, names: tuple[str, ...] = ("loss",)) -> None:
        """Clear the evaluation losses ``names`` (each logged as ``<prefix>/<name>``)."""
        self._evaluation_names = names
        self._evaluation_loss = torch.zeros(len(names) + 1, dtype=torch.float64)  # [sums of per-item losses, items]

    def add_evaluation_loss(self, batch_mean: torch.Tensor | dict[str, torch.Tensor], items: int) -> None:
        """Add a batch's mean loss (one tensor for a single ``loss``, else one per name)."""
        means = batch_mean if isinstance(batch_mean, dict) else {"loss": batch_mean}
        values = [float(means[name]) * items for name in self._evaluation_names]
        self._evaluation_loss += torch.tensor([*values, items], dtype=torch.float64)

    def evaluation_loss(self) -> float:
        """Mean ``loss`` per evaluated item over every process."""
        return self.evaluation_losses()["loss"]

    def evaluation_losses(self) -> dict[str, float]:
        """Mean of each evaluation loss per evaluated item over every process."""
        *totals, items = (float(v) for v in self.sum_over_processes(self._evaluation_loss))
        return {name: total / max(items, 1.0) for name, total in zip(self._evaluation_names, totals, strict=True)}

    def sum_over_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over all processes (itself on one process), on the CPU."""
        tensor = tensor.to(self.device)
        if self.trainer.world_size > 1:
            tensor = self.all_gather(tensor).sum(0)
        return tensor.cpu()


def evaluation_table(results: dict[str, float], prefix: str, instruments: tuple[str, ...]) -> str:
    """Markdown table of per-instrument results: one row per metric key, one column per instrument."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] == prefix and parts[-1] in instruments:
            rows.setdefault("/".join(parts[1:-1]), {})[parts[-1]] = value
    header = "| metric | " + " | ".join(instruments) + " |"
    lines = [header, "|---" * (len(instruments) + 1) + "|"]
    for name, values in rows.items():
        cells = [("n/a" if math.isnan(v) else f"{v:.3f}") if (v := values.get(i)) is not None else "" for i in
                 instruments]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
