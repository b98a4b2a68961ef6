"""Metrics as pure functions: transcription counts/scores and (later) separation SI-SDR.

Transcription. A roll is a bool tensor ``(..., pitch, frame)``. Frame-level counts over frames x pitches
give precision, recall, F1 and the multi-pitch *accuracy* ``TP / (TP + FP + FN)`` (the "note accuracy" of
the paper's Table 2). Counts are summed over a whole evaluation set before dividing, so clips with few notes
do not dominate. Note-level onset F1 uses mir_eval on notes decoded from frame rolls.
"""

from __future__ import annotations

import numpy as np
import torch
from mir_eval import transcription as mir_transcription

from scoresep.errors import SettingsError


def frame_counts(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """True positives, false positives and false negatives over the last two axes (pitch, frame).

    Shape:
        prediction, target: ``(..., pitch, frame)`` bool (or 0/1)
        returns: ``(..., 3)`` int64 with ``[tp, fp, fn]``
    """
    if prediction.shape != target.shape:
        raise SettingsError(f"frame_counts: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
                            "must have the same shape (..., pitch, frame)")
    prediction, target = prediction.bool(), target.bool()
    tp = (prediction & target).sum(dim=(-2, -1))
    fp = (prediction & ~target).sum(dim=(-2, -1))
    fn = (~prediction & target).sum(dim=(-2, -1))
    return torch.stack([tp, fp, fn], dim=-1)


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall, F1 and accuracy from ``(..., 3)`` counts; NaN where undefined (0 / 0)."""
    tp, fp, fn = counts.double().unbind(-1)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=counts.device)

    def ratio(numerator, denominator):
        return torch.where(denominator > 0, numerator / denominator.clamp_min(1), nan)

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": ratio(tp, tp + fp + fn)}


def roll_note_frames(roll: np.ndarray) -> np.ndarray:
    """Notes of a bool roll ``(pitch, frame)`` as ``(notes, 3)`` int rows ``(pitch row, first frame, end frame)``
    (end exclusive): each run of active frames is one note. Sorted by pitch row, then first frame."""
    roll = np.asarray(roll, dtype=bool)
    padded = np.pad(roll, ((0, 0), (1, 1)))
    changes = np.diff(padded.astype(np.int8), axis=1)
    onset_pitch, onset_frame = np.nonzero(changes == 1)
    offset_pitch, offset_frame = np.nonzero(changes == -1)
    order_on, order_off = np.lexsort((onset_frame, onset_pitch)), np.lexsort((offset_frame, offset_pitch))
    return np.stack([onset_pitch[order_on], onset_frame[order_on], offset_frame[order_off]], axis=1).reshape(-1, 3)


def roll_to_notes(roll: np.ndarray, frame_rate: float, min_midi: int) -> tuple[np.ndarray, np.ndarray]:
    """Notes of a bool roll ``(pitch, frame)``: each run of active frames is one note.

    Returns ``(intervals (notes, 2) in seconds, pitches (notes,) in Hz)``, the format of mir_eval.
    A run from frame ``a`` to ``b`` (inclusive) is the interval ``[a, b + 1) / frame_rate``.
    """
    notes = roll_note_frames(roll)
    intervals = notes[:, 1:].astype(float) / frame_rate
    return intervals.reshape(-1, 2), 440.0 * 2.0 ** ((notes[:, 0] + min_midi - 69) / 12.0)


def note_onset_counts(prediction: np.ndarray, target: np.ndarray, frame_rate: float, min_midi: int,
                      onset_tolerance: float = 0.05) -> np.ndarray:
    """``[matched, reference notes, estimated notes]`` of note-level onset matching (mir_eval, no offsets).

    Notes are decoded from bool rolls ``(pitch, frame)`` with :func:`roll_to_notes`.
    """
    ref_intervals, ref_pitches = roll_to_notes(target, frame_rate, min_midi)
    est_intervals, est_pitches = roll_to_notes(prediction, frame_rate, min_midi)
    if len(ref_pitches) == 0 or len(est_pitches) == 0:
        return np.array([0, len(ref_pitches), len(est_pitches)])
    matched = mir_transcription.match_notes(ref_intervals, ref_pitches, est_intervals, est_pitches,
                                            onset_tolerance=onset_tolerance, offset_ratio=None)
    return np.array([len(matched), len(ref_pitches), len(est_pitches)])


def onset_f1(counts: np.ndarray) -> float:
    """F1 from summed ``[matched, reference, estimated]`` note counts (NaN when both are empty)."""
    matched, n_ref, n_est = (float(c) for c in counts)
    return 2 * matched / (n_ref + n_est) if n_ref + n_est > 0 else float("nan")


def wrong_channel_rate(prediction: torch.Tensor, target: torch.Tensor, channel: int) -> torch.Tensor:
    """Share of instrument ``channel``'s notes that a transcriptor fed that instrument's isolated stem
    reports in another instrument's channel.

    Shape:
        prediction: ``(batch, instrument, pitch, frame)`` bool, the transcription of the isolated stem
        target: ``(batch, pitch, frame)`` bool, the stem's own roll
        returns: ``(2,)`` int64 ``[notes heard in another channel, notes]`` (sum these, then divide)
    """
    others = torch.cat([prediction[:, :channel], prediction[:, channel + 1 :]], dim=1).any(dim=1)
    target = target.bool()
    return torch.stack([(others & target).sum(), target.sum()])


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8, min_db: float = -100.0,
           max_db: float = 100.0) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis, computed in fp32/fp64, clamped to [min_db, max_db].

    Both signals are made zero-mean. A perfect (scaled) estimate reaches ``max_db``; an all-zero estimate gets
    ``min_db`` (finite, never NaN). A silent reference makes SI-SDR undefined: NaN (skip it when averaging).

    Shape: ``(..., time)`` -> ``(...)``
    """
    if estimate.shape != reference.shape:
        raise SettingsError(f"si_sdr: estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must "
                            "have the same shape (..., time)")
    dtype = torch.float64 if estimate.dtype == torch.float64 else torch.float32
    estimate = estimate.to(dtype) - estimate.to(dtype).mean(-1, keepdim=True)
    reference = reference.to(dtype) - reference.to(dtype).mean(-1, keepdim=True)
    reference_energy = reference.pow(2).sum(-1)
    scale = (estimate * reference).sum(-1, keepdim=True) / reference_energy.clamp_min(eps)[..., None]
    target = scale * reference
    noise = estimate - target
    ratio = target.pow(2).sum(-1) / noise.pow(2).sum(-1).clamp_min(eps * eps)
    value = (10 * torch.log10(ratio.clamp_min(1e-30))).clamp(min_db, max_db)
    value = torch.where(estimate.pow(2).sum(-1) <= eps * eps, torch.full_like(value, min_db), value)
    return torch.where(reference_energy <= eps, torch.full_like(value, float("nan")), value)
