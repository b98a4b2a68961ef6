"""The evaluation accumulators: separation (SI-SDR) and transcription (note accuracy), one implementation for
the stages (validation and test on crops) and for ``scoresep evaluate`` (whole tracks).

Each accumulator sums over the items it is given (crops of one process, or tracks); ``results(prefix, gather)``
sums them over processes (``gather``: tensor -> the same tensor summed over ranks, identity on one process) and
turns them into metrics named ``{prefix}/...``. Every evaluation crop is seen by exactly one process (see
samplers.py), so the results do not depend on the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from scoresep.features import FeatureSettings
from scoresep.metrics import frame_counts, note_onset_counts, onset_f1, scores_from_counts, si_sdr, wrong_channel_rate

Gather = Callable[[torch.Tensor], torch.Tensor]


class SeparationEvaluation:
    """Per-instrument SI-SDR of separated sources, of the input mixture, and the improvement (SI-SDRi).

    Items whose reference stem is silent (SI-SDR undefined) are left out of that instrument's average.
    """

    def __init__(self, instruments: tuple[str, ...]):
        self.instruments = instruments
        self.reset()

    def reset(self) -> None:
        # per instrument: [sum SI-SDR, sum input SI-SDR, count]
        self.sums = torch.zeros(len(self.instruments), 3, dtype=torch.float64)

    @staticmethod
    def scores(estimates: torch.Tensor, references: torch.Tensor, mixture: torch.Tensor) -> tuple[torch.Tensor,
                                                                                               torch.Tensor]:
        """``(SI-SDR of the estimates, SI-SDR of the input mixture)``, each ``(batch, instrument)``, NaN where the
        reference is silent (undefined). estimates, references: ``(batch, instrument, time)``; mixture
        ``(batch, time)``; computed in their dtype (fp64 for whole tracks, fp32 for crops)."""
        return si_sdr(estimates, references), si_sdr(mixture[:, None].expand_as(references), references)

    def update(self, estimates: torch.Tensor, references: torch.Tensor, mixture: torch.Tensor) -> None:
        """estimates, references: ``(batch, instrument, time)``; mixture: ``(batch, time)``."""
        self.add(*self.scores(estimates.float(), references.float(), mixture.float()))

    def add(self, separated_sdr: torch.Tensor, input_sdr: torch.Tensor) -> None:
        """Add items' scores ``(batch, instrument)`` from ``scores`` (NaN: left out of that instrument)."""
        valid = ~torch.isnan(separated_sdr)
        self.sums[:, 0] += torch.where(valid, separated_sdr, 0).sum(0).double().cpu()
        self.sums[:, 1] += torch.where(valid, input_sdr, 0).sum(0).double().cpu()
        self.sums[:, 2] += valid.sum(0).double().cpu()

    def results(self, prefix: str, gather: Gather) -> dict[str, float]:
        sums = gather(self.sums)
        results: dict[str, float] = {}
        for index, name in enumerate(self.instruments):
            total, total_input, count = (float(v) for v in sums[index])
            if count:
                results[f"{prefix}/si_sdr/{name}"] = total / count
                results[f"{prefix}/input_si_sdr/{name}"] = total_input / count
                results[f"{prefix}/si_sdri/{name}"] = (total - total_input) / count
        for metric in ("si_sdr", "input_si_sdr", "si_sdri"):
            values = [v for k, v in results.items() if k.startswith(f"{prefix}/{metric}/")]
            if values:
                results[f"{prefix}/{metric}"] = float(np.mean(values))
        return results


class ThresholdCalibration:
    """Per-instrument histograms of note probabilities on note and non-note cells, to choose thresholds.

    A transcriptor trained with a positive weight ``w`` is miscalibrated: the optimum of its weighted BCE crosses
    0.5 where the true note probability is only ``1 / (w + 1)``, so a fixed 0.5 is an operating point nobody
    chose (and no formula fixes it: measured accuracies move up for some instruments and down for others). The
    thresholds are therefore chosen on data: the one of ``n_bins - 1`` evenly spaced candidates with the best
    frame accuracy ``TP / (TP + FP + FN)`` (the metric of Table 2), per instrument.
    """

    def __init__(self, n_instruments: int, n_bins: int = 200):
        self.n_bins = n_bins
        self.histogram = torch.zeros(n_instruments, 2, n_bins, dtype=torch.long)  # [instrument, note?, bin]

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:
        """probabilities, target: ``(batch, instrument, pitch, frame)`` (float in [0, 1], bool)."""
        bins = (probabilities.detach().float() * self.n_bins).long().clamp_(0, self.n_bins - 1)
        n_instruments = bins.shape[1]
        index = (torch.arange(n_instruments, device=bins.device).view(1, -1, 1, 1) * 2 + target.long()) * self.n_bins
        flat = torch.bincount((index + bins).flatten(), minlength=n_instruments * 2 * self.n_bins)
        self.histogram += flat.view(n_instruments, 2, self.n_bins).cpu()

    @staticmethod
    def counts(histogram: torch.Tensor) -> torch.Tensor:
        """``(instrument, candidate, 3)`` TP/FP/FN when cells in bins ``>= k`` count as notes, ``k = 1..n-1``."""
        above = histogram.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # cells in bin >= k: (instrument, 2, n - 1)
        true_positive, false_positive = above[:, 1], above[:, 0]
        false_negative = histogram[:, 1].sum(-1, keepdim=True) - true_positive
        return torch.stack([true_positive, false_positive, false_negative], dim=-1)

    def best(self, gather: Gather, fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Thresholds ``(instrument,)`` with the best accuracy over every process's cells (``fallback[i]`` where
        instrument ``i`` had no note cell: nothing to calibrate on), and the TP/FP/FN counts ``(instrument, 3)``
        at them. The histograms are gathered once."""
        histogram = gather(self.histogram)
        counts = self.counts(histogram)  # (instrument, candidate, 3)
        as_float = counts.double()
        accuracy = as_float[..., 0] / as_float.sum(-1).clamp_min(1)
        candidates = torch.arange(1, self.n_bins, dtype=torch.float32) / self.n_bins
        has_notes = histogram[:, 1].sum(-1) > 0
        thresholds = torch.where(has_notes, candidates[accuracy.argmax(-1)], fallback.float().cpu())
        steps = (thresholds * self.n_bins).round().long().clamp(1, self.n_bins - 1)
        return thresholds, counts[torch.arange(len(steps)), steps - 1]


class TranscriptionEvaluation:
    """Frame accuracy/P/R/F1 and note-onset F1 per instrument, on mixtures (``mix``) and on each isolated stem
    (``iso``, the transcriptor applied to the true stem), plus the wrong-channel rate on isolated stems.

    Args:
        features: feature settings (instruments, frame rate, lowest pitch).
        notes: the model outputs piano rolls (onset F1 and the per-pitch metrics make sense); False for the
            activity classifier (one row).
        thresholds: per-instrument probability above which a cell counts as a note ``(instrument,)``, or one
            number for all.
        onset_tolerance: seconds for note-onset matching.

    Mixture predictions are also collected in a ``ThresholdCalibration`` (``calibration``), so a stage can
    choose the next thresholds from this pass.
    """

    def __init__(self, features: FeatureSettings, notes: bool, thresholds: torch.Tensor | float,
                 onset_tolerance: float):
        self.features, self.notes = features, notes
        n = len(features.instruments)
        self.thresholds = torch.as_tensor(thresholds, dtype=torch.float32).flatten().expand(n).clone()
        self.onset_tolerance = onset_tolerance
        self.reset()

    def _predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Notes ``(batch, instrument, pitch, frame)`` bool from logits of the same shape."""
        return torch.sigmoid(logits.float()) > self.thresholds.to(logits.device).view(1, -1, 1, 1)

    def reset(self) -> None:
        n = len(self.features.instruments)
        self.counts = {"mix": torch.zeros(n, 3, dtype=torch.long), "iso": torch.zeros(n, 3, dtype=torch.long)}
        self.onsets = {"mix": np.zeros((n, 3), dtype=np.int64), "iso": np.zeros((n, 3), dtype=np.int64)}
        self.wrong = torch.zeros(n, 2, dtype=torch.long)
        self.calibration = ThresholdCalibration(n)
        self._calibrated_counts: torch.Tensor | None = None

    def add(self, kind: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add predicted notes on mixtures (``kind`` ``mix``) or isolated stems (``iso``): prediction, target
        ``(batch, instrument, pitch, frame)`` bool (frame counts; onsets too for a note transcriptor)."""
        self.counts[kind] += frame_counts(prediction, target).sum(0).cpu()
        if not self.notes:
            return
        frame_rate = self.features.frame_rate
        for item_pred, item_target in zip(prediction.cpu().numpy(), target.cpu().numpy(), strict=True):
            for channel in range(item_pred.shape[0]):
                self.onsets[kind][channel] += note_onset_counts(item_pred[channel], item_target[channel], frame_rate,
                                                                self.features.min_midi, self.onset_tolerance)

    def update_mixture(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits: transcriptor output on mixtures ``(batch, instrument, pitch, frame)``; target: same, bool."""
        self.calibration.update(torch.sigmoid(logits.float()), target)
        self.add("mix", self._predict(logits), target)

    def update_isolated(self, transcribe: Callable[[torch.Tensor], torch.Tensor], sources_mag: torch.Tensor,
                        target: torch.Tensor) -> None:
        """Transcribe each isolated stem ``sources_mag[:, i]`` (``(batch, instrument, freq, frame)``) and score
        channel ``i`` against instrument ``i``'s roll; notes that land in other channels are wrong-channel."""
        own = []
        for channel in range(sources_mag.shape[1]):
            prediction = self._predict(transcribe(sources_mag[:, channel]))
            own.append(prediction[:, channel])
            self.add_wrong_channel(channel, prediction, target[:, channel])
        self.add("iso", torch.stack(own, dim=1), target)

    def add_wrong_channel(self, channel: int, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Notes heard in other channels when instrument ``channel`` plays alone: prediction ``(batch, instrument,
        pitch, frame)``, target (that instrument's roll) ``(batch, pitch, frame)``, both bool."""
        self.wrong[channel] += wrong_channel_rate(prediction, target, channel).cpu()

    def calibrate(self, gather: Gather) -> torch.Tensor:
        """Choose per-instrument thresholds on this pass's mixtures and re-score the mixture frame metrics at them
        (exact: they are read from the histograms). Onset F1 and the isolated-stem metrics of this pass stay at
        the thresholds it ran with. Returns the thresholds ``(instrument,)``."""
        self.thresholds, self._calibrated_counts = self.calibration.best(gather, self.thresholds)
        return self.thresholds

    def results(self, prefix: str, gather: Gather) -> dict[str, float]:
        n = len(self.features.instruments)
        packed = torch.cat([
            self.counts["mix"].flatten(), self.counts["iso"].flatten(),
            torch.from_numpy(self.onsets["mix"]).flatten(), torch.from_numpy(self.onsets["iso"]).flatten(),
            self.wrong.flatten(),
        ])
        parts = gather(packed).split([3 * n, 3 * n, 3 * n, 3 * n, 2 * n])
        counts = {"mix": parts[0].view(n, 3), "iso": parts[1].view(n, 3)}
        if self._calibrated_counts is not None:
            counts["mix"] = self._calibrated_counts
        onsets = {"mix": parts[2].view(n, 3), "iso": parts[3].view(n, 3)}
        instruments = self.features.instruments
        results: dict[str, float] = {}
        for kind in ("mix", "iso"):
            if int(counts[kind].sum()) == 0:
                continue
            scores = scores_from_counts(counts[kind])
            for index, name in enumerate(instruments):
                for metric in ("accuracy", "precision", "recall", "f1"):
                    results[f"{prefix}/{kind}/{metric}/{name}"] = float(scores[metric][index])
                if self.notes:
                    results[f"{prefix}/{kind}/onset_f1/{name}"] = onset_f1(onsets[kind][index].numpy())
            accuracies = [results[f"{prefix}/{kind}/accuracy/{name}"] for name in instruments]
            results[f"{prefix}/{kind}/accuracy"] = float(np.nanmean(accuracies)) if not all(
                np.isnan(accuracies)) else float("nan")
        for index, name in enumerate(instruments):
            results[f"{prefix}/threshold/{name}"] = float(self.thresholds[index])
            wrong, notes = (int(v) for v in parts[4].view(n, 2)[index])
            if notes:
                results[f"{prefix}/iso/wrong_channel/{name}"] = wrong / notes
        return results
