"""``scoresep reproduce`` (train and evaluate every row of the paper's tables) and ``scoresep report`` (render
a results folder's tables and chart, and what holds across seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path


def command_reproduce(args: argparse.Namespace) -> None:
    from scoresep.reproduce import reproduce

    reproduce(args.preset, args.out, data=args.data, rows=args.rows, parallel=args.parallel, threads=args.threads,
              seed=args.seed)
    print(f"report: {Path(args.out) / 'report.md'}")


def command_report(args: argparse.Namespace) -> None:
    from scoresep.report import load_seeds, render_report, render_seeds

    folders = args.results or ["results"]
    if len(folders) > 1:
        load_seeds(folders)  # refuse folders that cannot be compared before any report is rewritten
    for folder in folders:
        for kind, path in render_report(folder).items():
            print(f"{kind:>8}: {path}")
    if len(folders) > 1:
        print(f"{'seeds':>8}: {render_seeds(folders)}")


def add_results_commands(commands) -> None:
    """Register reproduce and report on the CLI's sub-parsers."""
    reproduce = commands.add_parser("reproduce", help="train and evaluate every row of the paper's tables")
    reproduce.add_argument("--preset", default="mini",
                           help="mini (CPU, mini-Slakh, about 43 min on 2 cores), paper (GPU, Slakh2100) or a YAML")
    reproduce.add_argument("--data", default=None, help="dataset folder (default: the preset's data.root)")
    reproduce.add_argument("--out", default="results", help="results folder (default results/)")
    reproduce.add_argument("--rows", nargs="+", default=None, help="only these rows (and the rows they need)")
    reproduce.add_argument("--parallel", type=int, default=None, help="rows trained at once (default: preset)")
    reproduce.add_argument("--threads", type=int, default=None, help="threads per row (default: cores / parallel)")
    reproduce.add_argument("--seed", type=int, default=0,
                           help="training seed of every row (default 0); the dataset stays the preset's. One seed "
                                "per results folder: give a second seed its own --out, e.g. results/seed1")
    reproduce.set_defaults(run=command_reproduce)

    report = commands.add_parser("report", help="render the tables (Markdown, CSV) and the chart of a results folder")
    report.add_argument("results", nargs="*", default=None,
                        help="results folder (default results/); several, one per training seed (results "
                             "results/seed1): each gets its report and the first also seeds.md, whether each paired "
                             "difference under Table 1 holds in every seed")
    report.set_defaults(run=command_report)
