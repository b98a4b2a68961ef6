"""Score perturbations (score/perturb.py) with known answers: what each error does to the notes of a roll."""

import numpy as np
import pytest

from scoresep.score import ScorePerturbation, perturb_rolls
from scoresep.score.perturb import notes_of

FRAME_RATE = 62.5  # 16 kHz, hop 256: 16 ms per frame


def _rolls(n_notes: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rolls = np.zeros((3, 88, 2000), dtype=bool)
    for index in range(n_notes):  # notes apart from each other, away from the ends
        instrument, pitch, start = index % 3, int(rng.integers(20, 70)), 100 + 40 * index
        rolls[instrument, pitch, start:start + 10] = True
    return rolls


def _notes(rolls: np.ndarray) -> list[tuple[int, int, int, int]]:
    return sorted((instrument, *note) for instrument, roll in enumerate(rolls) for note in notes_of(roll))


def test_no_perturbation_is_the_score_itself_and_bad_settings_are_refused():
    rolls = _rolls()
    assert np.array_equal(perturb_rolls(rolls, ScorePerturbation(), FRAME_RATE, np.random.default_rng(0)), rolls)
    assert len(_notes(rolls)) == 40
    for bad in ({"drop": 1.5}, {"add": 1.5}, {"jitter_s": -0.01}, {"stretch": 1.0}, {"offset_s": float("nan")}):
        with pytest.raises(ValueError, match="score perturbation"):
            ScorePerturbation(**bad)


def test_an_offset_moves_every_note_by_the_same_frames():
    rolls = _rolls()
    moved = perturb_rolls(rolls, ScorePerturbation(offset_s=0.048), FRAME_RATE, np.random.default_rng(0))
    assert [(i, p, s + 3, e + 3) for i, p, s, e in _notes(rolls)] == _notes(moved)  # 48 ms = 3 frames


def test_jitter_moves_each_note_by_its_own_amount_within_the_bound_and_keeps_its_length():
    rolls = _rolls()
    jittered = _notes(perturb_rolls(rolls, ScorePerturbation(jitter_s=0.05), FRAME_RATE, np.random.default_rng(1)))
    original = _notes(rolls)
    assert len(jittered) == len(original)
    shifts = []
    for (i, p, s, e), (i2, p2, s2, e2) in zip(original, jittered, strict=True):
        assert (i, p, e - s) == (i2, p2, e2 - s2)
        shifts.append(s2 - s)
    assert max(abs(shift) for shift in shifts) <= round(0.05 * FRAME_RATE) and len(set(shifts)) > 3


def test_drop_and_add_change_the_number_of_notes_by_their_share():
    rolls = _rolls(n_notes=45)
    assert not perturb_rolls(rolls, ScorePerturbation(drop=1.0), FRAME_RATE, np.random.default_rng(0)).any()
    kept = [len(_notes(perturb_rolls(rolls, ScorePerturbation(drop=0.2), FRAME_RATE, np.random.default_rng(seed))))
            for seed in range(20)]
    assert 0.75 * 45 < np.mean(kept) < 0.85 * 45
    added = perturb_rolls(rolls, ScorePerturbation(add=1.0), FRAME_RATE, np.random.default_rng(0))
    assert added.sum() > 1.8 * rolls.sum()  # every note and about as many copies (overlaps merge a few)


def test_a_stretch_scales_the_time_axis():
    rolls = _rolls()
    stretched = _notes(perturb_rolls(rolls, ScorePerturbation(stretch=0.1), FRAME_RATE, np.random.default_rng(3)))
    original = _notes(rolls)
    scale = (stretched[-1][2] - stretched[0][2]) / (original[-1][2] - original[0][2])
    assert scale != 1 and 0.9 <= scale <= 1.1


def test_evaluate_reads_a_perturbed_score_records_it_and_refuses_a_bad_key(minislakh, tmp_path, capsys):
    """The score masks with every note dropped separate nothing: their SI-SDRi falls far below the true score's."""
    import json

    from tests.helpers import run_cli

    results = {}
    for name, flags in [("true", []), ("dropped", ["--perturb-score", "drop=1"])]:
        out = tmp_path / f"{name}.json"
        code, _, stderr = run_cli(["evaluate", "--score-masks", "--data", str(minislakh), "--cache",
                                   str(tmp_path / "cache"), "--out", str(out), "--quiet", *flags], capsys)
        assert code == 0, stderr
        results[name] = json.loads(out.read_text())
    assert "score_perturbation" not in results["true"]
    assert results["dropped"]["score_perturbation"]["drop"] == 1.0
    true, dropped = (results[name]["summary"]["separation"]["average"]["si_sdri"] for name in ("true", "dropped"))
    assert dropped < true - 10
    code, _, stderr = run_cli(["evaluate", "--score-masks", "--data", str(minislakh), "--out",
                               str(tmp_path / "x.json"), "--perturb-score", "shift=0.05"], capsys)
    assert code == 2 and "unknown key 'shift'" in stderr and not (tmp_path / "x.json").exists()
