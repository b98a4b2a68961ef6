"""``scoresep reproduce``: train and evaluate every row of the paper's Tables 1 and 2, then render the report.

A preset (``experiments/reproduce/<name>.yaml``) lists the rows: each names an experiment YAML, overrides merged
into it (training length, model size) and which other rows' ``best.ckpt`` it takes as input checkpoints. Each
row gets its own folder ``<out>/rows/<row>/`` with the exact ``config.yaml`` it was trained with, its
checkpoints and logs; ``<out>/evaluations/<row>.json`` is its whole-track test evaluation.

Rows run as ``scoresep fit`` then ``scoresep evaluate`` subprocesses, ``parallel`` at a time (each with
``cores / parallel`` threads), as soon as the rows they need are done. Interrupted or crashed runs resume: a
row with ``done.json`` (and the same configuration) is not retrained, one with ``last.ckpt`` continues from
it, an evaluation that exists is not recomputed. A failed row is reported and the rows that need it are
skipped; the others still run.

``seed`` (``--seed``, default 0) is every row's training seed: ``seed_everything``, ``data.seed`` (crop order)
and, where the stage has one, ``model.init_args.seed`` (AML pairing). It does not change the rendered dataset
(the preset's ``synth.seed``), so every seed is scored on the same test tracks. Seed 0 is what the experiment
YAMLs already say, so its rows' configurations (and hashes) are the ones of runs made before ``--seed`` existed.
A results folder holds one seed: ``reproduce.json`` records it and another seed is refused there.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from scoresep.configs import PROJECT_ROOT, deep_merge, load_experiment
from scoresep.fileio import atomic_write_text
from scoresep.report import EVALUATED_ROWS as PAPER_ROWS
from scoresep.report import ReportError, record_seed

PRESET_KEYS = {"description", "data", "overrides", "synth", "parallel", "precision", "evaluate", "rows"}
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")  # the ones every stage supports (docs/clusters.md)
ROW_KEYS = {"config", "overrides", "checkpoints", "evaluate", "reference", "beyond_paper"}
REFERENCES = ("score_masks",)  # rows with nothing to train (see Row.reference)


class ReproduceError(ValueError):
    """A preset or a results folder cannot be used; the message names the file and the problem."""


@dataclass
class Row:
    """One table row: an experiment YAML, overrides merged into it, and input checkpoints from other rows."""

    name: str
    config: Path | None  # None for a reference row
    overrides: dict = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)  # model init arg -> row whose best.ckpt it takes
    evaluate: bool = True
    reference: str | None = None  # "score_masks": nothing to train, only `scoresep evaluate --score-masks`
    beyond_paper: bool = False  # not a row of the paper's tables: the report lists it after them, without paper numbers


@dataclass
class Preset:
    path: Path
    data: dict
    overrides: dict
    synth: dict | None
    parallel: int
    evaluate: dict
    rows: dict[str, Row]
    precision: str | None = None  # resolved (never "auto"); None: each experiment YAML's own
    seed: int = 0  # every row's training seed (see the module docstring); not the dataset's synth seed


def find_file(name: str | os.PathLike, what: str) -> Path:
    """A path as given (relative to the working folder) or else relative to the project's folder."""
    for candidate in (Path(name), PROJECT_ROOT / name):
        if candidate.is_file():
            return candidate.resolve()
    raise ReproduceError(f"{name}: {what} not found (looked in {Path.cwd()} and {PROJECT_ROOT})")


def load_preset(name_or_path: str) -> Preset:
    """Read and check a preset: ``mini``/``paper`` (``experiments/reproduce/<name>.yaml``) or a YAML path."""
    is_name = not name_or_path.endswith((".yaml", ".yml"))
    path = find_file(f"experiments/reproduce/{name_or_path}.yaml" if is_name else name_or_path, "preset")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ReproduceError(f"{path}: not valid YAML ({error})") from error
    if unknown := set(raw) - PRESET_KEYS:
        raise ReproduceError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(PRESET_KEYS)}")
    rows: dict[str, Row] = {}
    for name, spec in (raw.get("rows") or {}).items():
        if unknown := set(spec or {}) - ROW_KEYS:
            raise ReproduceError(f"{path}: row {name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ROW_KEYS)}")
        spec = spec or {}
        reference = spec.get("reference")
        if reference is not None:
            if reference not in REFERENCES:
                raise ReproduceError(f"{path}: row {name}: reference {reference!r} is not one of {list(REFERENCES)}")
            if extra := set(spec) - {"reference"}:
                raise ReproduceError(f"{path}: row {name} is a reference (nothing to train); it takes no "
                                     f"{sorted(extra)}")
            rows[name] = Row(name, None, reference=reference)
            continue
        if "config" not in spec:
            raise ReproduceError(f"{path}: row {name} names no experiment 'config'")
        beyond_paper = spec.get("beyond_paper", False)
        if not isinstance(beyond_paper, bool):
            raise ReproduceError(f"{path}: row {name}: beyond_paper must be true or false, got {beyond_paper!r}")
        if beyond_paper and name in PAPER_ROWS:
            raise ReproduceError(f"{path}: row {name} is a row of the paper's tables; it cannot be beyond_paper "
                                 "(give the row another name)")
        rows[name] = Row(name, find_file(spec["config"], f"experiment YAML of row {name}"),
                         spec.get("overrides") or {}, spec.get("checkpoints") or {}, spec.get("evaluate", True),
                         beyond_paper=beyond_paper)
    if not rows:
        raise ReproduceError(f"{path}: no rows")
    for row in rows.values():
        for argument, needed in row.checkpoints.items():
            if needed not in rows:
                raise ReproduceError(f"{path}: row {row.name} takes {argument} from row {needed!r}, which the "
                                     f"preset does not have")
    order_rows(rows, path)
    parallel = int(raw.get("parallel", 1))
    if parallel < 1:
        raise ReproduceError(f"{path}: parallel must be >= 1, got {parallel}")
    precision = raw.get("precision")
    if precision is not None and str(precision) not in PRECISIONS:
        raise ReproduceError(f"{path}: precision {precision!r} is not one of {list(PRECISIONS)}")
    return Preset(path, raw.get("data") or {}, raw.get("overrides") or {}, raw.get("synth"), parallel,
                  raw.get("evaluate") or {}, rows, None if precision is None else resolve_precision(str(precision)))


CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16)


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags: torch's own detection, else ``/proc/cpuinfo`` (``flags`` on x86,
    ``Features`` on Arm); empty when neither is available."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            return {name for name, present in capabilities().items() if present is True}
        except RuntimeError:
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() in ("flags", "Features"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> str | None:
    """Where this machine computes bf16 in hardware: ``"cuda"`` (a GPU with bf16 units, not emulation),
    ``"cpu"`` (AVX512-BF16, AMX or Arm's BF16 instructions), or None: bf16 would be emulated, slower than fp32
    (AVX-512 alone, which oneDNN accepts for its bf16 path, only converts)."""
    import torch

    if torch.cuda.is_available():
        return "cuda" if torch.cuda.is_bf16_supported(including_emulation=False) else None
    return "cpu" if cpu_flags() & CPU_BF16_FLAGS else None


def resolve_precision(precision: str) -> str:
    """A preset's ``precision``: ``auto`` is ``bf16-mixed`` where bf16 runs in hardware (``native_bf16``), else
    ``32-true``; any other value is Lightning's own. Spectrograms, losses and metrics stay fp32 either way
    (``features.py`` turns autocast off; the stages compute losses on fp32 outputs). It is resolved on the
    machine that runs, so a results folder moved to a machine that resolves it differently is refused for the
    rows that inherit it: they would train with another configuration."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if native_bf16() else "32-true"


def order_rows(rows: dict[str, Row], path: Path | str = "preset") -> list[str]:
    """Rows in an order where every row comes after the rows it needs (ReproduceError on a cycle)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ReproduceError(f"{path}: rows need each other in a cycle (at {name})")
        visiting.add(name)
        for needed in rows[name].checkpoints.values():
            visit(needed)
        visiting.discard(name)
        ordered.append(name)

    for name in rows:
        visit(name)
    return ordered


def row_folder(out: Path, name: str) -> Path:
    return out / "rows" / name


def best_checkpoint(out: Path, name: str) -> Path:
    return row_folder(out, name) / "checkpoints" / "best.ckpt"


def row_config(preset: Preset, row: Row, out: Path) -> dict:
    """The full LightningCLI config of a row: its experiment YAML, the preset's data settings and the row's
    overrides merged in, input checkpoints from other rows, and every output under the row's folder. A reference
    row has only the data section."""
    if row.config is None:
        data = dict(preset.data)
        for key in ("root", "cache_dir"):
            if key in data:
                data[key] = str(Path(data[key]).resolve())
        return {"data": data}
    config = load_experiment(row.config)  # experiments/base/ first, as the CLI reads it
    config = deep_merge(config, {"data": preset.data})
    if preset.precision is not None:
        config = deep_merge(config, {"trainer": {"precision": preset.precision}})
    config = deep_merge(config, preset.overrides)
    config = deep_merge(config, row.overrides)
    apply_seed(config, preset.seed)
    folder = row_folder(out, row.name).resolve()
    for argument, needed in row.checkpoints.items():
        config.setdefault("model", {}).setdefault("init_args", {})[argument] = str(best_checkpoint(out, needed)
                                                                                   .resolve())
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(folder)
    trainer["logger"] = {"class_path": "pytorch_lightning.loggers.CSVLogger",
                         "init_args": {"save_dir": str(folder / "logs"), "name": row.name}}
    for callback in trainer.get("callbacks") or []:
        if callback.get("class_path", "").endswith("ModelCheckpoint"):
            callback.setdefault("init_args", {})["dirpath"] = str(folder / "checkpoints")
    data = config.setdefault("data", {})
    for key in ("root", "cache_dir"):
        if key in data:
            data[key] = str(Path(data[key]).resolve())
    return config


def apply_seed(config: dict, seed: int) -> None:
    """Set a row's training seeds in place: ``seed_everything`` (network initialisation), ``data.seed`` (crop
    order) and ``model.init_args.seed`` where the stage has one (stage 3's AML pairing).

    Keys that exist keep their place, so with the seed the experiment YAMLs already hold (0) the composed config,
    its ``config.yaml`` and its hash are unchanged and rows trained before ``--seed`` existed are reused.
    """
    config["seed_everything"] = seed
    config.setdefault("data", {})["seed"] = seed
    init_args = (config.get("model") or {}).get("init_args")
    if isinstance(init_args, dict) and "seed" in init_args:
        init_args["seed"] = seed


def config_hash(config: dict, out: Path) -> str:
    """What a row was trained with, independent of where the results folder lives (it may be moved)."""
    text = json.dumps(config, sort_keys=True).replace(str(out.resolve()), "<out>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    atomic_write_text(path, text)


def machine_description() -> str:
    """Cores, CPU model and the GPU if one is visible, for the report."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cores} CPU cores ({cpu}){gpu}, torch {torch.__version__}"


class RowJob:
    """The commands of one row (fit, then evaluate), run one after the other as subprocesses.

    ``after_fit`` runs in this process once the fit command has succeeded (it marks the row as trained).
    """

    def __init__(self, name: str, commands: list[tuple[str, list[str]]], log: Path, env: dict[str, str],
                 after_fit=None, previous_seconds: float = 0.0, precision: str = "32-true"):
        self.name, self.commands, self.log, self.env = name, commands, log, env
        self.after_fit, self.previous_seconds = after_fit, previous_seconds
        self.precision = precision  # the row's trainer.precision, recorded in reproduce.json
        self.process: subprocess.Popen | None = None
        self.current = ""
        self.started = time.perf_counter()
        self.returncode: int | None = None

    def poll(self) -> bool:
        """Advance; True when every command has finished (``returncode`` 0) or one failed (its exit code)."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return False
            self.process = None
            if code != 0:
                self.returncode = code
                return True
            if self.current == "fit" and self.after_fit is not None:
                self.after_fit()
        if not self.commands:
            self.returncode = 0
            return True
        self.current, command = self.commands.pop(0)
        with self.log.open("a") as log:
            log.write(f"\n$ {' '.join(command)}\n")
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=PROJECT_ROOT)
        return False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def stop_jobs(jobs: list[RowJob], grace: float = 60.0) -> None:
    """Stop every running row at once: SIGUSR1 first (the fit saves ``last.ckpt`` at the end of its batch and
    stops, see PreemptionCheckpoint), SIGTERM after ``grace`` seconds, SIGKILL 10 s later."""
    for job in jobs:
        if job.alive:
            job.process.send_signal(signal.SIGUSR1 if job.current == "fit" else signal.SIGTERM)
    for escalate in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + (grace if escalate == signal.SIGTERM else 10.0)
        while any(job.alive for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.2)
        for job in jobs:
            if job.alive:
                job.process.send_signal(escalate)


def _scoresep(*args: str) -> list[str]:
    return [sys.executable, "-m", "scoresep", *args]


def prepare_data(preset: Preset, data_sections: list[dict], log: Path) -> None:
    """Render the mini-Slakh when the preset says how and it is missing; build the cache once for each distinct
    data setting the rows train on (``data_sections``: the rows' merged ``data`` configs)."""
    root = Path(preset.data["root"])
    if not root.exists():
        if not preset.synth:
            raise ReproduceError(f"{root}: dataset folder not found (this preset renders no data; give --data)")
        synth = preset.synth
        _run(_scoresep("synth", "--out", str(root), "--tracks", str(synth.get("tracks", 48)), "--seconds",
                       str(synth.get("seconds", 30)), "--seed", str(synth.get("seed", 0))), log, "synth")
    keys = ("root", "cache_dir", "instruments", "sample_rate", "hop_length", "min_midi", "max_midi")
    settings = {tuple(str(v) if not isinstance(v, list) else tuple(v) for v in (d[k] for k in keys))
                for d in data_sections}
    for root_dir, cache_dir, instruments, sample_rate, hop_length, min_midi, max_midi in sorted(settings):
        _run(_scoresep("prepare", "--root", root_dir, "--cache", cache_dir, "--instruments", *instruments,
                       "--sample-rate", sample_rate, "--hop-length", hop_length, "--min-midi", min_midi,
                       "--max-midi", max_midi), log, "prepare")


def _run(command: list[str], log: Path, what: str) -> None:
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    if code != 0:
        raise ReproduceError(f"{what} failed (exit {code}); see {log}")


def recorded_seed(summary_path: Path) -> int | None:
    """The seed a results folder was trained with, from its ``reproduce.json``: None when there is none yet, 0
    for a run from before ``--seed`` existed (the experiment YAMLs' own seed)."""
    if not summary_path.is_file():
        return None
    try:
        record = json.loads(summary_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReproduceError(f"{summary_path}: unreadable JSON ({error})") from error
    if not isinstance(record, dict):
        raise ReproduceError(f"{summary_path}: expected a JSON object")
    try:
        return record_seed(record, summary_path)
    except ReportError as error:
        raise ReproduceError(str(error)) from error


def seed_folder(out: Path, seed: int) -> Path:
    """Where another seed's results go by convention: ``results/seed1`` beside seed 0's ``results``, or
    ``results/seed2`` beside ``results/seed1``."""
    return out.parent / f"seed{seed}" if re.fullmatch(r"seed\d+", out.name) else out / f"seed{seed}"


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


def _has_last(out: Path, name: str) -> bool:
    return (row_folder(out, name) / "checkpoints" / "last.ckpt").is_file()


def _evaluate_arguments(preset: Preset, data: dict, *what: str) -> list[str]:
    """``scoresep evaluate`` of ``what`` (``--ckpt PATH`` or ``--score-masks ...``) on the preset's test split of
    the row's data, without ``--out``."""
    settings = {"split": "test", "chunk_seconds": 30.0, **preset.evaluate}
    return ["evaluate", *what, "--data", data["root"], "--cache", data["cache_dir"], "--mixture",
            data.get("mixture", "instruments"), "--split", settings["split"], "--chunk-seconds",
            str(settings["chunk_seconds"])]


def _plan_reference(preset: Preset, row: Row, out: Path, previous: dict, env: dict[str, str]) -> RowJob:
    """A reference row's one command (``scoresep evaluate --score-masks`` on the preset's data and features),
    unless its evaluation JSON exists."""
    folder = row_folder(out, row.name)
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = out / "evaluations" / f"{row.name}.json"
    data = row_config(preset, row, out)["data"]
    features = [option for key, flag in (("sample_rate", "--sample-rate"), ("n_fft", "--n-fft"),
                                         ("hop_length", "--hop-length"), ("min_midi", "--min-midi"),
                                         ("max_midi", "--max-midi")) if key in data
                for option in (flag, str(data[key]))]
    if "instruments" in data:
        features += ["--instruments", *map(str, data["instruments"])]
    arguments = _evaluate_arguments(preset, data, "--score-masks", *features)
    # The evaluation is reused only if it was made by this very command (the preset's data or features may change).
    digest = hashlib.sha1(json.dumps(arguments).encode()).hexdigest()[:16]
    stamp = folder / "command.hash"
    commands = []
    kept_seconds = float(previous.get("seconds", 0.0))
    if not evaluation.is_file() or not stamp.is_file() or stamp.read_text().strip() != digest:
        evaluation.unlink(missing_ok=True)
        atomic_write_text(stamp, digest)
        commands.append(("evaluate", _scoresep(*arguments, "--out", str(evaluation), "--quiet")))
        kept_seconds = 0.0  # evaluated from scratch: the earlier run's time is not part of this result
    return RowJob(row.name, commands, folder / "run.log", env, None, kept_seconds, "none (no training)")


def _plan_row(preset: Preset, row: Row, out: Path, previous: dict, env: dict[str, str]) -> RowJob:
    """The commands a row still needs: fit (unless ``done.json`` says it was trained with this very
    configuration; resumed from ``last.ckpt`` when there is one) and evaluate (unless its JSON exists)."""
    if row.reference is not None:
        return _plan_reference(preset, row, out, previous, env)
    folder = row_folder(out, row.name)
    folder.mkdir(parents=True, exist_ok=True)
    config = row_config(preset, row, out)
    digest = config_hash(config, out)
    done = folder / "done.json"
    evaluation = out / "evaluations" / f"{row.name}.json"
    retrain = (f"delete {folder} and {evaluation} to retrain it (or use another --out)")
    inputs = {needed: _finished_stamp(out, needed) for needed in row.checkpoints.values()}
    commands: list[tuple[str, list[str]]] = []
    # The row's minutes in the report count the earlier run's time only where its training is kept (done) or
    # resumed (last.ckpt); a row trained from scratch (its folder deleted) starts from 0.
    kept_seconds = float(previous.get("seconds", 0.0)) if done.is_file() or _has_last(out, row.name) else 0.0
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("config_hash") != digest:
            raise ReproduceError(f"{folder}: trained with another configuration (hash {record.get('config_hash')}, "
                                 f"now {digest}); {retrain}")
        for needed, stamp in inputs.items():
            if stamp is not None and record.get("inputs", {}).get(needed, stamp) != stamp:
                raise ReproduceError(f"{folder}: trained from an earlier {needed} (finished "
                                     f"{record['inputs'][needed]}, the current one {stamp}); {retrain}")
    else:
        started = folder / "config.hash"
        if _has_last(out, row.name) and started.is_file() and started.read_text().strip() != digest:
            raise ReproduceError(f"{folder}: its last.ckpt comes from another configuration (hash "
                                 f"{started.read_text().strip()}, now {digest}); {retrain}")
        atomic_write_text(started, digest)
        evaluation.unlink(missing_ok=True)  # it scored an earlier training of this row
        config_path = folder / "config.yaml"
        text = yaml.safe_dump(config, sort_keys=False)
        atomic_write_text(config_path, text)
        fit = _scoresep("fit", "--config", str(config_path))
        if _has_last(out, row.name):
            fit += ["--ckpt_path", str(folder / "checkpoints" / "last.ckpt")]
        elif any((folder / "checkpoints").glob("*.ckpt")):
            # an earlier attempt of this row stopped before its first last.ckpt: the row owns its folder, and a
            # fit refuses to replace checkpoints unless told to (the flag is not part of the config or its hash)
            fit += ["--overwrite", "true"]
        commands.append(("fit", fit))
    if row.evaluate and not evaluation.is_file():
        arguments = _evaluate_arguments(preset, config["data"], "--ckpt", str(best_checkpoint(out, row.name)))
        commands.append(("evaluate", _scoresep(*arguments, "--out", str(evaluation), "--quiet")))

    def mark_trained() -> None:
        stamps = {needed: _finished_stamp(out, needed) for needed in row.checkpoints.values()}
        _write_json(done, {"config_hash": digest, "finished": datetime.now(UTC).isoformat(timespec="microseconds"),
                           "inputs": stamps})

    return RowJob(row.name, commands, folder / "run.log", env, mark_trained, kept_seconds,
                  config.get("trainer", {}).get("precision", "32-true"))


def _finished_stamp(out: Path, name: str) -> str | None:
    """When row ``name`` finished training (None while it has not)."""
    done = row_folder(out, name) / "done.json"
    return json.loads(done.read_text()).get("finished") if done.is_file() else None


def _finish_row(out: Path, name: str, job: RowJob) -> dict:
    seconds = time.perf_counter() - job.started + job.previous_seconds
    if job.returncode == 0:
        return {"status": "done", "seconds": seconds}
    return {"status": "failed", "seconds": seconds, "step": job.current,
            "reason": f"{job.current} exited with {job.returncode}; see {job.log}"}


def _write_summary(path: Path, preset: Preset, started_at: str, started: float, status: dict, previous: dict,
                   finished: bool = False) -> dict:
    summary = {
        "preset": preset.path.stem, "preset_file": str(preset.path), "data": str(preset.data.get("root")),
        "machine": machine_description(), "started": started_at, "parallel": preset.parallel,
        "precision": preset.precision, "seed": preset.seed,
        "wall_seconds": time.perf_counter() - started, "rows": {
            name: {**info, "beyond_paper": preset.rows[name].beyond_paper} if name in preset.rows else info
            for name, info in {**previous, **status}.items()},
    }
    if finished:
        summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_json(path, summary)
    return summary
