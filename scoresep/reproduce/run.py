"""``reproduce``: one ``scoresep reproduce`` run, from the preset to the report. It reads the preset, refuses a
results folder that holds another seed, runs the data step, plans every wanted row, then schedules the rows: a
row starts as soon as the rows it needs have trained and fewer than ``parallel`` rows run, a row whose input row
failed is skipped, and ``reproduce.json`` is rewritten on every turn. At the end it renders the report and raises
``ReproduceError`` listing the rows that are not done.

Why the scheduler waits in this process: it is the one place that knows which rows are running, so a SIGTERM (a
cluster scheduler's kill) or Ctrl-C stops their fits here, each saving its ``last.ckpt``, and the same command
run again resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from scoresep.report import ReportError
from scoresep.reproduce.jobs import _finish_row, prepare_data, stop_jobs
from scoresep.reproduce.planning import _has_last, _plan_row, row_config, row_folder
from scoresep.reproduce.preset import ReproduceError, load_preset, order_rows
from scoresep.reproduce.records import _write_summary, recorded_seed, seed_folder


def reproduce(preset_name: str = "mini", out: str | os.PathLike = "results", data: str | None = None,
              rows: list[str] | None = None, parallel: int | None = None, threads: int | None = None,
              report: bool = True, seed: int = 0) -> dict:
    """Run the preset's rows (or only ``rows`` and what they need) into ``out`` with training seed ``seed``;
    returns the run summary (also written to ``out/reproduce.json``). Raises ReproduceError listing failed rows
    at the end, or at once when ``out`` holds another seed's results."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ReproduceError(f"--seed must be an integer >= 0, got {seed!r}")
    preset = load_preset(preset_name)
    preset.seed = seed
    if data is not None:
        preset.data = {**preset.data, "root": data}
    # Relative data paths mean the working folder, for the data step and for every row alike.
    preset.data = {**preset.data, "root": str(Path(preset.data.get("root", "data/minislakh")).resolve()),
                   "cache_dir": str(Path(preset.data.get("cache_dir", "data/cache")).resolve())}
    if parallel is not None:
        preset.parallel = max(1, parallel)
    out = Path(out).resolve()
    summary_path = out / "reproduce.json"
    trained_with = recorded_seed(summary_path)
    if trained_with is not None and trained_with != seed:
        # Mixing seeds in one folder would put rows of two trainings into one table.
        raise ReproduceError(f"{out}: holds the results of --seed {trained_with}, not {seed}; give --seed "
                             f"{trained_with} to continue it, or another --out for seed {seed} (e.g. --out "
                             f"{seed_folder(out, seed)})")
    out.mkdir(parents=True, exist_ok=True)
    order = order_rows(preset.rows, preset.path)
    if rows:
        unknown = [name for name in rows if name not in preset.rows]
        if unknown:
            raise ReproduceError(f"{preset.path}: no row(s) {unknown}; rows are {order}")
        wanted: set[str] = set()
        stack = list(rows)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack += preset.rows[name].checkpoints.values()
        order = [name for name in order if name in wanted]
    started_at, started = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
    log = out / "reproduce.log"
    print(f"[reproduce] preset {preset.path.name}, {len(order)} rows, {preset.parallel} at a time, seed {seed} -> "
          f"{out}", flush=True)
    prepare_data(preset, [row_config(preset, preset.rows[name], out)["data"] for name in order
                          if preset.rows[name].reference is None], log)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = threads or max(1, cores // preset.parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    previous = json.loads(summary_path.read_text()).get("rows", {}) if summary_path.is_file() else {}
    status: dict[str, dict] = {}
    jobs = {name: _plan_row(preset, preset.rows[name], out, previous.get(name, {}), env) for name in order}
    pending, running = list(order), {}

    def stop_on_sigterm(signum, frame):  # a scheduler's kill: stop the rows' processes too, then exit
        raise SystemExit(f"reproduce: stopped by signal {signum}; run the same command again to resume")

    previous_handler = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        while pending or running:
            for name in list(running):
                job = running[name]
                if job.poll():
                    del running[name]
                    status[name] = {**_finish_row(out, name, job), "precision": job.precision}
                    print(f"[reproduce] {name}: {status[name]['status']} ({status[name]['seconds']:.0f} s)",
                          flush=True)
            for name in list(pending):
                needs = set(preset.rows[name].checkpoints.values())
                trained = {n for n in needs if (row_folder(out, n) / "done.json").is_file()}
                if any(status.get(n, {}).get("status") in ("failed", "skipped") for n in needs - trained):
                    pending.remove(name)
                    status[name] = {"status": "skipped", "seconds": 0.0,
                                    "reason": f"needs {sorted(needs)}, which did not finish"}
                    print(f"[reproduce] {name}: skipped (a row it needs failed)", flush=True)
                elif needs <= trained and len(running) < preset.parallel:
                    pending.remove(name)
                    job = jobs[name]
                    if job.commands:
                        print(f"[reproduce] {name}: {'resuming' if _has_last(out, name) else 'starting'}",
                              flush=True)
                        job.started = time.perf_counter()
                        running[name] = job
                    else:
                        status[name] = {**previous.get(name, {}), "status": "done"}
                        print(f"[reproduce] {name}: already done", flush=True)
            _write_summary(summary_path, preset, started_at, started, status, previous)
            time.sleep(1.0)
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not orphan the rows' processes
        stop_jobs(list(running.values()))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    summary = _write_summary(summary_path, preset, started_at, started, status, previous, finished=True)
    if report:
        from scoresep.report import render_report

        try:
            render_report(out)
        except ReportError as error:  # e.g. no row finished yet: say so, the row failures come next
            print(f"[reproduce] no report: {error}", flush=True)
    failed = [name for name, row in status.items() if row["status"] != "done"]
    if failed:
        raise ReproduceError(f"rows not done: {', '.join(failed)} (logs under {out / 'rows'}); run the same "
                             "command again to resume")
    return summary
