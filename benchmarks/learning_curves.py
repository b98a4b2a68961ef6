"""Learning curves: validation SI-SDRi against optimiser steps and against CPU-minutes, row by row.

Each named row of a reproduce preset is trained as ``make reproduce`` trains it (its composed config, its input
checkpoints taken from a finished results folder), except that it runs for ``--steps`` optimiser steps with a
validation every ``--every`` steps, and a ``scoresep.training.LearningCurve`` callback records each validation
with the wall-clock and CPU seconds since the fit started. The learning-rate schedule spans the whole run, so a
point at step ``n`` of a longer run is a lower bound on what a run of ``n`` steps would reach (its rate has not
decayed yet).

    .venv/bin/python benchmarks/learning_curves.py --results results --rows stage2 stage2_score_target \\
        --steps 1000 --every 125 --out results/curves --threads 2 --plot docs/learning_curves.png

It prints one line per validation (``row step minutes si_sdr (bass guitar piano)``) and writes
``<out>/<row>/curve.json``; ``--plot`` draws every curve found under ``--out`` (average validation SI-SDR
against steps and against minutes). Validation SI-SDR is on one 4-s crop per validation song (the preset's
``eval_crops_per_track``), not the whole test tracks of the report (see ``METRIC``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The curve's metric: SI-SDR of the separated crops, not the improvement over the input. On 4-s validation crops
# where one instrument plays alone the input mixture *is* that stem, and its SI-SDR sits at the metric's +100 dB
# clamp (3 of 36 guitar and 5 of 36 piano crops of the mini preset): they drive the averaged SI-SDRi far below
# 0 and hide the trend. The SI-SDR of the estimates is comparable between rows (same crops); the test report's
# whole tracks have no such crops.
METRIC = "val/si_sdr"


def curve_config(preset_name: str, row_name: str, results: Path, out: Path, steps: int, every: int) -> dict:
    """The row's reproduce config, run for ``steps`` steps with a validation every ``every`` and a learning curve;
    input checkpoints from ``results`` (a finished ``make reproduce`` folder), outputs under ``out/<row>``."""
    from scoresep.reproduce import best_checkpoint, lightning_config, load_preset, row_config

    preset = load_preset(preset_name)
    if row_name not in preset.rows:
        raise SystemExit(f"{preset.path}: no row {row_name!r}; rows are {sorted(preset.rows)}")
    row = preset.rows[row_name]
    if row.config is None:
        raise SystemExit(f"{row_name}: a reference row trains nothing")
    config = row_config(preset, row, out)
    for argument, needed in row.checkpoints.items():
        path = best_checkpoint(results, needed)
        if not path.is_file():
            raise SystemExit(f"{path}: row {row_name} needs row {needed}'s best.ckpt (run `scoresep reproduce "
                             f"--rows {needed} --out {results}` first)")
        config["model"]["init_args"][argument] = str(path.resolve())
    trainer = config["trainer"]
    trainer.update({"max_epochs": -1, "max_steps": steps, "val_check_interval": every,
                    "check_val_every_n_epoch": None})
    trainer["callbacks"] = [*trainer.get("callbacks", []),
                            {"class_path": "scoresep.training.LearningCurve",
                             "init_args": {"path": str((out / "rows" / row_name / "curve.json").resolve())}}]
    return lightning_config(config)


def run_row(config: dict, folder: Path, threads: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "curve_config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with open(folder / "curve.log", "w") as log:
        result = subprocess.run([sys.executable, "-m", "scoresep", "fit", "--config", str(config_path),
                                 "--overwrite", "true"],  # a re-measured curve replaces the benchmark's own row
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{folder / 'curve.log'}: fit failed with exit code {result.returncode}")


def read_curves(out: Path) -> dict[str, list[dict]]:
    """``{row: points}`` of every ``curve.json`` under ``out/rows``."""
    curves = {}
    for path in sorted((out / "rows").glob("*/curve.json")):
        curves[path.parent.name] = json.loads(path.read_text())["points"]
    return curves


def reproduce_curve(results: Path, row: str) -> list[dict]:
    """The validation points of a row that ``make reproduce`` trained (its CSV log, one validation per epoch).

    The CSV log has no clock: each point's seconds are the row's recorded training time (``reproduce.json``)
    shared out in proportion to its step, an estimate that includes the row's final evaluation."""
    import csv

    logs = sorted((results / "rows" / row / "logs").glob("*/version_*/metrics.csv"))
    if not logs:
        raise SystemExit(f"{results / 'rows' / row}: no metrics.csv (has the row been trained by reproduce?)")
    points = []
    records = [record for log in logs for record in csv.DictReader(log.open())]  # a resumed row logs twice
    for record in records:
        if record.get("val/si_sdri"):
            metrics = {name: float(value) for name, value in record.items() if name.startswith("val/") and value}
            points.append({"step": int(record["step"]) + 1, "epoch": int(record["epoch"]), "metrics": metrics})
    seconds = json.loads((results / "reproduce.json").read_text())["rows"][row]["seconds"]
    for point in points:
        point["seconds"] = seconds * point["step"] / points[-1]["step"]
    return points


def print_curve(row: str, points: list[dict]) -> None:
    for point in points:
        metrics = point["metrics"]
        per = " ".join(f"{metrics.get(f'{METRIC}/{name}', float('nan')):+6.2f}"
                       for name in ("bass", "guitar", "piano"))
        print(f"{row:36s} step {point['step']:5d}  {point['seconds'] / 60:6.2f} min  "
              f"si_sdr {metrics.get(METRIC, float('nan')):+6.2f}  ({per})", flush=True)


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    """Average validation SI-SDR against steps (left) and wall-clock minutes (right), one line per row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    by_steps, by_minutes = figure.subplots(1, 2, sharey=True)
    for row, points in curves.items():
        values = [point["metrics"].get(METRIC, float("nan")) for point in points]
        by_steps.plot([point["step"] for point in points], values, marker="o", markersize=3, label=row)
        by_minutes.plot([point["seconds"] / 60 for point in points], values, marker="o", markersize=3, label=row)
    by_steps.set_xlabel("optimiser steps")
    by_minutes.set_xlabel("wall-clock minutes (as trained)")
    by_steps.set_ylabel("validation SI-SDR (dB), average of the instruments")
    for axes in (by_steps, by_minutes):
        axes.grid(alpha=0.3)
    by_minutes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="a finished reproduce folder: the input checkpoints of the rows")
    parser.add_argument("--rows", nargs="*", default=[], help="rows to train (none: only print and plot)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=125)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/curves"))
    parser.add_argument("--plot", type=Path, default=None, help="PNG of every curve under --out")
    parser.add_argument("--reproduced", nargs="*", default=[],
                        help="also show these rows as `make reproduce` trained them in --results (their CSV logs)")
    args = parser.parse_args()
    for row in args.rows:
        config = curve_config(args.preset, row, args.results.resolve(), args.out.resolve(), args.steps, args.every)
        run_row(config, args.out.resolve() / "rows" / row, args.threads)
    curves = read_curves(args.out)
    for row in args.reproduced:
        curves[f"{row} (make reproduce)"] = reproduce_curve(args.results, row)
    for row, points in curves.items():
        print_curve(row, points)
    if args.plot is not None:
        plot(curves, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
