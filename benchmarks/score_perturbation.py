"""How much do a real score's errors cost score-informed separation? SI-SDRi against the size of the error.

For each error kind (the whole score late by ``offset_s``, each note moved by up to ``jitter_s``, a share of the
notes dropped) and size, every separator named on the command line separates the split's whole tracks with the
same perturbed scores (``scoresep evaluate --perturb-score``: each track's draw is fixed): the training-free score
masks (``formula``) and any checkpoint (``NAME=PATH``; an audio-only checkpoint is restricted by the score,
``--score``). Writes ``<out>/<name>/<kind>_<size>.json`` (evaluation files; existing ones are reused, so an
interrupted run continues) and, with ``--plot``, one panel per kind: average SI-SDRi against the size.

    .venv/bin/python benchmarks/score_perturbation.py --data data/minislakh300 --split validation \\
        --out results/perturbation learned=results/rows/stage2_score_informed/checkpoints/best.ckpt \\
        --plot docs/score_perturbation.png

Prints one line per evaluation: ``name kind size avg bass guitar piano``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# kind -> sizes (seconds or shares); 0 is the true score, shared by the kinds
SIZES = {"offset_s": (0.0, 0.025, 0.05, 0.1), "jitter_s": (0.025, 0.05, 0.1), "drop": (0.05, 0.1, 0.2)}
COMBINED = "offset_s=0.05,drop=0.05"  # the case: a score 50 ms late with 5 % of its notes missing


def evaluate(name: str, checkpoint: str | None, perturbation: str, out: Path, args: argparse.Namespace) -> dict:
    """The evaluation file of ``name`` with ``perturbation`` (``""``: the true score), computed when missing."""
    from scoresep.cli.evaluate import score_perturbation
    from scoresep.evaluation.result_file import write_json
    from scoresep.evaluation.whole_tracks import evaluate_checkpoint, evaluate_score_masks

    if out.is_file():
        return json.loads(out.read_text())
    given = score_perturbation(perturbation) if perturbation else None
    if checkpoint is None:
        result = evaluate_score_masks(args.data, args.split, args.cache, chunk_seconds=args.chunk_seconds,
                                      workers=1, progress=False, perturbation=given)
    else:
        result = evaluate_checkpoint(checkpoint, args.data, args.split, args.cache, chunk_seconds=args.chunk_seconds,
                                     workers=1, progress=False, score=True, perturbation=given)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    return result


def plot(rows: dict[str, dict[str, list[tuple[float, float]]]], path: Path) -> None:
    """One panel per error kind: average SI-SDRi against its size, one line per separator."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = {"offset_s": "whole score late by (ms)", "jitter_s": "each note moved by up to (ms)",
              "drop": "notes dropped (%)"}
    figure = Figure(figsize=(11, 3.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(SIZES), sharey=True)
    for axis, kind in zip(axes, SIZES, strict=True):
        for name, kinds in rows.items():
            points = sorted(kinds.get(kind, []))
            axis.plot([size * (100 if kind == "drop" else 1000) for size, _ in points],
                      [value for _, value in points], marker="o", label=name)
        axis.set_xlabel(labels[kind])
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("average SI-SDRi (dB)")
    axes[0].legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("separators", nargs="+", help="NAME=CHECKPOINT, or 'formula' for the score masks")
    parser.add_argument("--data", default="data/minislakh300")
    parser.add_argument("--cache", default="data/cache")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--chunk-seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    separators = {entry.partition("=")[0]: (entry.partition("=")[2] or None) for entry in args.separators}
    settings = [("offset_s", size) for size in SIZES["offset_s"]] + [
        (kind, size) for kind in ("jitter_s", "drop") for size in SIZES[kind]] + [("combined", None)]
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in separators}
    for name, checkpoint in separators.items():
        for kind, size in settings:
            perturbation = COMBINED if kind == "combined" else ("" if size == 0 else f"{kind}={size}")
            tag = "combined" if kind == "combined" else f"{kind}_{size:g}"
            result = evaluate(name, checkpoint, perturbation, args.out / name / f"{tag}.json", args)
            scores = result["summary"]["separation"]
            average = scores["average"]["si_sdri"]
            print(name, kind, size, f"{average:+.2f}",
                  " ".join(f"{scores[i]['si_sdri']:+.2f}" for i in result["instruments"]), flush=True)
            if kind == "offset_s" and size == 0:
                for other in ("jitter_s", "drop"):
                    rows[name].setdefault(other, []).append((0.0, average))
            if kind != "combined":
                rows[name].setdefault(kind, []).append((size, average))
    if args.plot is not None:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
