"""The paper's side of the report: the rows of Hung, Wichern & Le Roux (ICASSP 2021) Tables 1 and 2 with their
labels and loss marks, the paper's numbers keyed by our row ids, and the order in which the paper expects the main
rows' averages (``DIFFERENCE_CHAIN``).

Why apart: these are facts copied from the paper, not computed. Every other module of the report reads them and
this one imports none of those, so a row or a number changed here changes the tables, the CSVs, the chart and the
claims across seeds at once.
"""

from __future__ import annotations

from dataclasses import dataclass

LOSS_FLAGS = ("L_c-mix", "L_h-mix", "AML", "ATL")
INPUT_MIXTURE = "input_mixture"
TRANSCRIPTION_SETS = (("mix", "mixture"), ("iso", "isolated tracks"))
STAGE3_ROWS = ("stage3_noadv", "stage3", "stage3_atl")
BEST_STAGE3 = "best stage 3"  # placeholder in DIFFERENCE_CHAIN for the step-3 row with the highest average
# The main rows in the order the paper expects their averages to be (highest first): each adjacent pair is tested.
DIFFERENCE_CHAIN = ("supervised", BEST_STAGE3, "stage2", "baseline", INPUT_MIXTURE)
READS_SCORE = "(reads the test score)"  # appended to the label of a row whose evaluation read the test score
BEYOND_PAPER = "(beyond the paper)"  # appended to the preset's name of a row that is not in the paper's tables


@dataclass(frozen=True)
class RowSpec:
    """One line of a paper table: our row id (the evaluation file's stem), the paper's label and loss marks."""

    row: str
    label: str
    flags: tuple[str, ...] = ()
    reads_score: bool = False  # the label already says that the row reads the test score


SCORE_MASKS = "score_masks"  # a reference row: no training, reads the test score (not a row of the paper)
TABLE1_ROWS = (
    RowSpec("supervised", "supervised (stems)"),
    RowSpec("stage2_cmix", "step 2", ("L_c-mix",)),
    RowSpec("stage2_hmix", "step 2", ("L_h-mix",)),
    RowSpec("stage2", "step 2", ("L_c-mix", "L_h-mix")),
    RowSpec("stage3_noadv", "step 3 fine-tune", ("L_c-mix", "L_h-mix")),
    RowSpec("stage3", "step 3 fine-tune", ("L_c-mix", "L_h-mix", "AML")),
    RowSpec("stage3_atl", "step 3 fine-tune", ("L_c-mix", "L_h-mix", "ATL")),
    RowSpec(INPUT_MIXTURE, "input mixture"),
    RowSpec("baseline", "baseline [16] classifier critic"),
    RowSpec(SCORE_MASKS, "score harmonic masks (no training; uses the test score)", reads_score=True),
)
TABLE2_ROWS = (
    RowSpec("stage1", "step 1"),
    RowSpec("stage3_noadv", "step 3"),
    RowSpec("stage3", "step 3", ("AML",)),
    RowSpec("stage3_atl", "step 3", ("ATL",)),
)

# Hung, Wichern & Le Roux, ICASSP 2021, Table 1: SI-SDR (dB) on Slakh2100 test, keyed by our row id.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "supervised": {"bass": 11.1, "guitar": 5.7, "piano": 7.7, "avg": 8.2},
    "stage2_cmix": {"bass": 7.5, "guitar": 1.2, "piano": 4.2, "avg": 4.3},
    "stage2_hmix": {"bass": 7.8, "guitar": 0.4, "piano": 4.1, "avg": 4.1},
    "stage2": {"bass": 8.4, "guitar": 1.6, "piano": 5.0, "avg": 5.0},
    "stage3_noadv": {"bass": 9.0, "guitar": 2.7, "piano": 5.3, "avg": 5.6},
    "stage3": {"bass": 9.1, "guitar": 2.8, "piano": 5.4, "avg": 5.8},
    "stage3_atl": {"bass": 9.0, "guitar": 2.5, "piano": 5.7, "avg": 5.7},
    "input_mixture": {"bass": 1.2, "guitar": -5.8, "piano": -2.3, "avg": -2.3},
    "baseline": {"bass": 7.3, "guitar": 0.5, "piano": 3.5, "avg": 3.8},
}
# Same paper, Table 2: note accuracy, evaluated on the mixture ("mix") and on isolated tracks ("iso").
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "stage1": {
        "mix": {"bass": 0.85, "guitar": 0.44, "piano": 0.58},
        "iso": {"bass": 0.91, "guitar": 0.52, "piano": 0.66},
    },
    "stage3_noadv": {
        "mix": {"bass": 0.84, "guitar": 0.42, "piano": 0.54},
        "iso": {"bass": 0.90, "guitar": 0.53, "piano": 0.63},
    },
    "stage3": {
        "mix": {"bass": 0.86, "guitar": 0.51, "piano": 0.61},
        "iso": {"bass": 0.91, "guitar": 0.58, "piano": 0.68},
    },
    "stage3_atl": {
        "mix": {"bass": 0.85, "guitar": 0.50, "piano": 0.60},
        "iso": {"bass": 0.91, "guitar": 0.57, "piano": 0.66},
    },
}
ROW_LABELS = {spec.row: spec.label for spec in TABLE2_ROWS + TABLE1_ROWS}
EVALUATED_ROWS = tuple(dict.fromkeys(spec.row for spec in TABLE1_ROWS + TABLE2_ROWS if spec.row != INPUT_MIXTURE))
