import math

import mir_eval
import numpy as np
import pytest
import torch

from scoresep.metrics import (
    frame_counts,
    note_onset_counts,
    onset_f1,
    roll_to_notes,
    scores_from_counts,
    wrong_channel_rate,
)


def test_frame_counts_and_scores_by_hand():
    target = torch.zeros(1, 4, 5, dtype=torch.bool)
    prediction = torch.zeros_like(target)
    target[0, 1, 0:4] = True  # 4 note cells
    prediction[0, 1, 1:4] = True  # 3 hits
    prediction[0, 2, 0:2] = True  # 2 false alarms
    counts = frame_counts(prediction, target)
    assert counts.tolist() == [[3, 2, 1]]
    scores = scores_from_counts(counts)
    assert scores["accuracy"].item() == pytest.approx(3 / 6)
    assert scores["precision"].item() == pytest.approx(3 / 5)
    assert scores["recall"].item() == pytest.approx(3 / 4)
    assert scores["f1"].item() == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))


def test_all_zero_prediction_scores_zero_and_empty_set_is_nan():
    target = torch.zeros(2, 88, 10, dtype=torch.bool)
    target[:, 40, 3:6] = True
    scores = scores_from_counts(frame_counts(torch.zeros_like(target), target).sum(0))
    assert scores["accuracy"].item() == 0.0 and scores["recall"].item() == 0.0
    assert math.isnan(scores["precision"].item())
    empty = scores_from_counts(frame_counts(torch.zeros_like(target), torch.zeros_like(target)).sum(0))
    assert math.isnan(empty["accuracy"].item())


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"prediction \(1, 88, 10\) and target \(1, 88, 11\)"):
        frame_counts(torch.zeros(1, 88, 10), torch.zeros(1, 88, 11))


def test_frame_scores_match_mir_eval_multipitch():
    rng = np.random.default_rng(0)
    target = rng.random((88, 200)) < 0.05
    prediction = target ^ (rng.random((88, 200)) < 0.02)
    frame_rate, min_midi = 62.5, 21
    times = np.arange(200) / frame_rate

    def to_freqs(roll):
        return [440.0 * 2 ** ((np.flatnonzero(roll[:, n]) + min_midi - 69) / 12) for n in range(roll.shape[1])]

    reference = mir_eval.multipitch.evaluate(times, to_freqs(target), times, to_freqs(prediction))
    ours = scores_from_counts(frame_counts(torch.from_numpy(prediction), torch.from_numpy(target)))
    assert ours["precision"].item() == pytest.approx(reference["Precision"], abs=1e-9)
    assert ours["recall"].item() == pytest.approx(reference["Recall"], abs=1e-9)
    assert ours["accuracy"].item() == pytest.approx(reference["Accuracy"], abs=1e-9)


def test_roll_to_notes_and_onset_f1():
    roll = np.zeros((88, 20), dtype=bool)
    roll[48, 2:6] = True  # A4 (69 - 21 = 48), frames 2..5
    roll[48, 10:12] = True
    roll[0, 0:1] = True  # A0 at frame 0
    intervals, pitches = roll_to_notes(roll, frame_rate=10.0, min_midi=21)
    order = np.argsort(intervals[:, 0])
    assert np.allclose(intervals[order], [[0.0, 0.1], [0.2, 0.6], [1.0, 1.2]])
    assert np.allclose(pitches[order], [27.5, 440.0, 440.0])
    prediction = roll.copy()
    prediction[48, 10:12] = False  # miss one note
    prediction[60, 15:18] = True  # one extra note
    counts = note_onset_counts(prediction, roll, frame_rate=10.0, min_midi=21)
    assert counts.tolist() == [2, 3, 3]
    assert onset_f1(counts) == pytest.approx(2 * 2 / 6)
    assert note_onset_counts(np.zeros_like(roll), roll, 10.0, 21).tolist() == [0, 3, 0]


def test_wrong_channel_rate_counts_notes_heard_elsewhere():
    target = torch.zeros(1, 88, 10, dtype=torch.bool)
    target[0, 30, :] = True  # 10 bass notes cells
    prediction = torch.zeros(1, 3, 88, 10, dtype=torch.bool)
    prediction[0, 0, 30, :5] = True  # heard as bass in 5 frames
    prediction[0, 1, 30, 3:7] = True  # heard as guitar in 4 frames
    assert wrong_channel_rate(prediction, target[:, :, :], channel=0).tolist() == [4, 10]


def test_threshold_calibration_picks_the_best_accuracy_per_instrument_by_hand():
    from scoresep.evaluation import ThresholdCalibration

    calibration = ThresholdCalibration(2, n_bins=10)
    # instrument 0: non-notes at 0.15 and 0.25, notes at 0.35 and 0.95 -> any threshold in [0.3, 0.3] separates
    # them perfectly; instrument 1 has no note cell at all -> keeps its fallback threshold
    probabilities = torch.tensor([[0.15, 0.25, 0.35, 0.95], [0.05, 0.55, 0.65, 0.75]]).view(1, 2, 1, 4)
    target = torch.tensor([[False, False, True, True], [False, False, False, False]]).view(1, 2, 1, 4)
    calibration.update(probabilities, target)
    chosen, _ = calibration.best(lambda tensor: tensor, fallback=torch.tensor([0.5, 0.8]))
    assert torch.allclose(chosen, torch.tensor([0.3, 0.8]))
    counts = ThresholdCalibration.counts(calibration.histogram)  # (instrument, candidate k = 1..9, [tp, fp, fn])
    assert counts[0, 2].tolist() == [2, 0, 0]  # threshold 0.3: both notes, no false note
    assert counts[0, 0].tolist() == [2, 2, 0]  # threshold 0.1: everything is a note
    assert counts[0, 8].tolist() == [1, 0, 1]  # threshold 0.9: only the confident note


def test_transcription_metrics_are_read_at_the_calibrated_thresholds():
    from scoresep.evaluation import TranscriptionEvaluation
    from scoresep.features import FeatureSettings

    features = FeatureSettings(("bass", "piano"), 16_000, 1024, 256, 21, 22)
    evaluation = TranscriptionEvaluation(features, notes=False, thresholds=0.5, onset_tolerance=0.05)
    # a transcriptor that is right but under-confident: notes at probability 0.3, silence at 0.1
    target = torch.zeros(1, 2, 2, 8, dtype=torch.bool)
    target[..., :4] = True
    logits = torch.logit(torch.where(target, torch.tensor(0.3), torch.tensor(0.1)))
    evaluation.update_mixture(logits, target)
    before = evaluation.results("val", lambda tensor: tensor)
    assert before["val/mix/accuracy/bass"] == 0.0  # nothing crosses 0.5
    thresholds = evaluation.calibrate(lambda tensor: tensor)
    assert ((thresholds > 0.1) & (thresholds <= 0.3)).all()
    after = evaluation.results("val", lambda tensor: tensor)
    assert after["val/mix/accuracy/bass"] == after["val/mix/accuracy/piano"] == 1.0
    assert after["val/threshold/bass"] == float(thresholds[0])
