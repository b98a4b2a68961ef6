"""Planning a row: the configuration it trains with (``row_config``: its experiment YAML with the preset's data,
precision and overrides, its seed, its input checkpoints and every output under ``<out>/rows/<row>/``; written
for LightningCLI by ``lightning_config``), that configuration's hash (``config_hash``), and what the row still
needs (``_plan_row``: a ``RowJob`` with the fit unless ``done.json`` holds this very hash, the evaluate unless its
JSON exists; ``_plan_reference`` for a row with nothing to train).

Why the hash: a results folder is resumed, not redone, so a row is reused only when it was trained with exactly
the configuration it would be trained with now (and from the same input rows' training, ``_finished_stamp``);
anything else is refused, naming what to delete. The hash leaves out where the results folder lives, so a folder
may be moved. Planning writes the row's ``config.yaml`` and ``config.hash`` (a reference row's ``command.hash``)
and removes an evaluation of an earlier training; it starts nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from scoresep.configs import deep_merge, load_experiment
from scoresep.features import gather_features
from scoresep.fileio import atomic_write_text
from scoresep.reproduce.jobs import RowJob, _scoresep
from scoresep.reproduce.preset import Preset, ReproduceError, Row
from scoresep.reproduce.records import _write_json


def row_folder(out: Path, name: str) -> Path:
    return out / "rows" / name


def best_checkpoint(out: Path, name: str) -> Path:
    return row_folder(out, name) / "checkpoints" / "best.ckpt"


def row_config(preset: Preset, row: Row, out: Path) -> dict:
    """The full config of a row: its experiment YAML, the preset's data settings and the row's overrides merged
    in, input checkpoints from other rows, and every output under the row's folder. A reference row has only the
    data section.

    The feature settings stand in it flat (``data.instruments``, ``data.sample_rate``, ...), as the CLI took them
    before they were one ``data.features``: that is the form every results folder's ``config_hash`` was computed
    on, so its trained rows are still recognised. ``lightning_config`` gathers them for LightningCLI."""
    if row.config is None:
        data = spread_features(preset.data)
        for key in ("root", "cache_dir"):
            if key in data:
                data[key] = str(Path(data[key]).resolve())
        return {"data": data}
    config = _spread_data(load_experiment(row.config))  # experiments/base/ first, as the CLI reads it
    config = deep_merge(config, {"data": spread_features(preset.data)})
    if preset.precision is not None:
        config = deep_merge(config, {"trainer": {"precision": preset.precision}})
    config = deep_merge(config, _spread_data(preset.overrides))
    config = deep_merge(config, _spread_data(row.overrides))
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


def spread_features(data: dict) -> dict:
    """A data section with its ``features`` spread into it, where ``features`` stood (the inverse of
    ``features.gather_features``)."""
    spread: dict = {}
    for key, value in data.items():
        if key == "features" and isinstance(value, dict):
            spread.update(value)
        else:
            spread[key] = value
    return spread


def _spread_data(config: dict) -> dict:
    return {**config, "data": spread_features(config["data"])} if isinstance(config.get("data"), dict) else config


def lightning_config(config: dict) -> dict:
    """A ``row_config`` as LightningCLI reads it: the feature settings gathered into ``data.features``."""
    return {**config, "data": gather_features(config["data"])} if isinstance(config.get("data"), dict) else config


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
        text = yaml.safe_dump(lightning_config(config), sort_keys=False)
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
