"""The paper preset, smoke-sized: every row of ``scoresep reproduce --preset paper`` with its paper-sized networks
and its own precision, two training steps each, on a tiny Slakh-layout set rendered at 44.1 kHz like Slakh2100.

A GPU user's first run of the paper preset takes days; a row that fails after stage 1 (a network that does not
fit its checkpoint, a loss that breaks on the U-Net's output, a warm start whose network differs) must fail here,
in minutes, on the CPU.
"""

from __future__ import annotations

import json

import pytest
import yaml

from scoresep.configs import PROJECT_ROOT, deep_merge
from scoresep.data.synth import synthesise
from scoresep.reproduce import reproduce

pytestmark = pytest.mark.slow

SMOKE = {"trainer": {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0}}


def test_every_row_of_the_paper_preset_trains_and_is_evaluated(tmp_path):
    data = tmp_path / "slakh44k"
    synthesise(data, tracks=8, seconds=4.0, seed=0, sample_rate=44_100, workers=2, progress=False)
    preset = yaml.safe_load((PROJECT_ROOT / "experiments/reproduce/paper.yaml").read_text())
    preset["data"] = {**preset["data"], "root": str(data), "cache_dir": str(tmp_path / "cache"), "num_workers": 0,
                      "batch_size": 2, "train_crops_per_track": 1, "eval_crops_per_track": 1}
    preset["evaluate"] = {**preset.get("evaluate", {}), "chunk_seconds": 4}
    for row in preset["rows"].values():
        if "config" in row:  # the row's own training length comes after the preset's overrides: shorten it there
            row["overrides"] = deep_merge(row.get("overrides") or {}, SMOKE)
    path = tmp_path / "paper_smoke.yaml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))

    summary = reproduce(str(path), tmp_path / "results", report=True)

    statuses = {name: row["status"] for name, row in summary["rows"].items()}
    assert statuses == dict.fromkeys(preset["rows"], "done"), statuses
    assert summary["rows"]["stage2"]["precision"] == "bf16-mixed"
    evaluation = json.loads((tmp_path / "results/evaluations/stage3.json").read_text())
    assert evaluation["reads_score"] is False
    report = (tmp_path / "results/report.md").read_text()
    assert "stage2_score_target (beyond the paper)" in report
