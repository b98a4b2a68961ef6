"""Stage-to-stage handoff: what a stage checkpoint carries, and loading it back, validated.

Every stage adds a ``"scoresep"`` section to its Lightning checkpoint with primitives only (loadable with
``torch.load(weights_only=True)``)::

    {"format": 1, "stage": "transcriptor", "features": {...FeatureSettings...},
     "models": {"transcriptor": {"config": {...}, "n_pitches": 88, "label": "notes"}}}

The weights stay in Lightning's ``state_dict`` under ``<model name>.``. Spectrogram kernels are never there
(they are non-persistent buffers).
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from scoresep.errors import UserError
from scoresep.features import FeatureSettings
from scoresep.models import SeparatorNetwork, build_separator, network_spec
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig

FORMAT = 1
# What a transcriptor read before its input settings existed (linear STFT bins, log1p, no harmonic stack):
# checkpoints without those keys were trained that way, whatever the defaults are now.
LEGACY_TRANSCRIPTOR_INPUT = {"bands_per_semitone": 0, "log_eps": 1.0, "harmonics": []}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be used where it was given; the message names the file and the mismatch."""


def section(stage: str, features: FeatureSettings, models: dict[str, dict]) -> dict:
    """The ``"scoresep"`` section a stage writes into its checkpoint."""
    return {"format": FORMAT, "stage": stage, "features": features.to_dict(), "models": models}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file safely (``weights_only=True``); CheckpointError when missing or foreign."""
    path = Path(path)
    if not path.is_file():
        last = path.with_name("last.ckpt")
        hint = (f"; {last} is there: a fit that never validated writes no best.ckpt, only last.ckpt with its final "
                "weights; give that file to use them" if path.name == "best.ckpt" and last.is_file() else "")
        raise CheckpointError(f"{path}: checkpoint file not found{hint}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it fails on foreign files
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, not a torch file, unsafe pickle
        raise CheckpointError(f"{path}: cannot read checkpoint ({describe_load_error(error)})") from None
    if not isinstance(checkpoint, dict) or "scoresep" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a scoresep stage checkpoint (no 'scoresep' section)")
    return checkpoint


def describe_load_error(error: Exception) -> str:
    """One line saying why ``torch.load`` failed, without torch's multi-paragraph advice (which suggests
    ``weights_only=False``: never right for a file that is not a trusted checkpoint)."""
    message = str(error)
    if isinstance(error, EOFError) or not message.strip():
        return "the file is empty or ends too early"
    if "zip archive" in message or "central directory" in message:
        return "truncated or corrupted: not a complete PyTorch archive"
    if isinstance(error, pickle.UnpicklingError):
        detail = message.split("WeightsUnpickler error:", 1)[-1].strip().split("\n", 1)[0].strip()
        return f"not a PyTorch checkpoint, or it holds objects other than tensors and plain data ({detail})"
    return f"{type(error).__name__}: {message.strip().splitlines()[0]}"


# What `--ckpt_path` must share with the run it resumes or tests, beyond the stage class and the feature settings:
# the settings that make a stage another row of the paper (stage 1 vs the baseline's activity classifier, stage 2
# vs the supervised upper bound). LightningCLI takes every model setting from the checkpoint, so a checkpoint that
# differs here would silently turn the YAML's run into another one and overwrite its checkpoints.
RUN_IDENTITY = ("label", "supervised", "critic")
# The stage class of a checkpoint written outside LightningCLI (no ``_class_path`` among its hyper-parameters).
STAGE_CLASS_PATHS = {"transcriptor": "scoresep.stages.TranscriptorStage",
                     "separator": "scoresep.stages.SeparatorStage",
                     "adversarial": "scoresep.stages.AdversarialStage"}


def _same_class(first: str, second: str) -> bool:
    """Whether two import paths name one class (``scoresep.stages.X`` and ``scoresep.stages.module.X`` do)."""
    if first == second:
        return True
    try:
        return _import_object(first) is _import_object(second)
    except (ImportError, AttributeError, ValueError):
        return False


def _import_object(path: str):
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_run_checkpoint(path: str | os.PathLike, class_path: str, features: FeatureSettings,
                         settings: dict, config: str = "the config") -> None:
    """Refuse a ``--ckpt_path`` that is not a checkpoint of the run ``config`` describes.

    ``--ckpt_path`` resumes (fit) or evaluates (validate, test, predict) the same stage; a checkpoint of another
    stage class, of another row (``RUN_IDENTITY``) or of other feature settings raises CheckpointError naming the
    file, what it holds and what the config asks for, before anything is built or written."""
    checkpoint = read_checkpoint(path)
    hyper_parameters = checkpoint.get("hyper_parameters") or {}
    stage = checkpoint["scoresep"].get("stage")
    saved_class = hyper_parameters.get("_class_path") or STAGE_CLASS_PATHS.get(stage)
    hint = ("--ckpt_path resumes or evaluates the same stage; to start from another stage's checkpoint give it to "
            "the model (transcriptor_checkpoint, separator_checkpoint)")
    if saved_class and not _same_class(saved_class, class_path):
        raise CheckpointError(f"{path}: a {stage} checkpoint ({saved_class}), but {config} trains {class_path}; "
                              f"{hint}")
    differing = [f"{key}={hyper_parameters[key]!r} (checkpoint) vs {key}={settings[key]!r} ({config})"
                 for key in RUN_IDENTITY
                 if key in hyper_parameters and key in settings and hyper_parameters[key] != settings[key]]
    if differing:
        raise CheckpointError(f"{path}: a checkpoint of another {stage} run: {'; '.join(differing)}; {hint}")
    saved = FeatureSettings.from_dict(checkpoint["scoresep"]["features"])
    if problems := features.mismatches(saved, config, "checkpoint"):
        raise CheckpointError(f"{path}: trained with other feature settings: {'; '.join(problems)}")


def _sub_state(state_dict: dict, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _model_section(path: str | os.PathLike, names: tuple[str, ...], expected: FeatureSettings | None,
                   hint: str) -> tuple[dict, FeatureSettings, str]:
    """Read a checkpoint that must hold one of the models ``names`` (first found wins) with the ``expected``
    feature settings; returns ``(checkpoint, its features, the model's name)``."""
    checkpoint = read_checkpoint(path)
    meta = checkpoint["scoresep"]
    name = next((n for n in names if n in meta.get("models", {})), None)
    if name is None:
        raise CheckpointError(f"{path}: a '{meta.get('stage')}' checkpoint holds no {names[0]} (give {hint})")
    features = FeatureSettings.from_dict(meta["features"])
    if expected is not None and (problems := expected.mismatches(features, "this run", "checkpoint")):
        raise CheckpointError(f"{path}: trained with other feature settings: {'; '.join(problems)}")
    return checkpoint, features, name


def load_transcriptor(path: str | os.PathLike, expected: FeatureSettings | None = None,
                      label: str | None = None) -> tuple[Transcriptor, dict]:
    """Rebuild the transcriptor of a stage-1 or stage-3 checkpoint (or the frozen critic that a stage-2
    checkpoint carries), weights loaded strictly.

    ``expected`` features and ``label`` (``notes``/``activity``) are checked when given; a mismatch raises
    CheckpointError naming the path and both values. Returns ``(model, its metadata)``.
    """
    checkpoint, features, name = _model_section(path, ("transcriptor", "critic"), expected,
                                                "a stage-1 transcriptor checkpoint")
    meta = checkpoint["scoresep"]
    info = meta["models"][name]
    if label is not None and info["label"] != label:
        raise CheckpointError(f"{path}: transcriptor was trained with label={info['label']!r}, "
                              f"this run needs label={label!r}")
    model = Transcriptor(features.n_bins, len(features.instruments), info["n_pitches"],
                         TranscriptorConfig(**{**LEGACY_TRANSCRIPTOR_INPUT, **info["config"]}), features.sample_rate,
                         features.min_midi)
    try:
        model.load_state_dict(_sub_state(checkpoint["state_dict"], f"{name}."), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: transcriptor weights do not fit its saved configuration ({error})") from error
    return model, {**info, "features": features, "stage": meta["stage"]}


def checkpoint_thresholds(info: dict, override: float | None = None) -> list[float]:
    """Per-instrument note thresholds for a transcriptor loaded by ``load_transcriptor``: ``override`` for every
    instrument when given, else the checkpoint's calibrated ones, else 0.5 (checkpoints written before
    calibration existed)."""
    n_instruments = len(info["features"].instruments)
    if override is not None:
        return [float(override)] * n_instruments
    return [float(t) for t in info.get("thresholds") or [0.5] * n_instruments]


def load_separator(path: str | os.PathLike,
                   expected: FeatureSettings | None = None) -> tuple[SeparatorNetwork, dict]:
    """Rebuild the separator of a stage-2 (or stage-3) checkpoint, any architecture, weights loaded strictly.

    The checkpoint names the network by ``class_path`` with its ``init_args``; checkpoints written before
    networks had class paths hold the U-Net's ``config`` and load as the U-Net."""
    checkpoint, features, _ = _model_section(path, ("separator",), expected, "a stage-2 or stage-3 checkpoint")
    meta = checkpoint["scoresep"]
    info = meta["models"]["separator"]
    spec = info if "class_path" in info else info.get("config", {})
    try:
        model = build_separator(spec, features.n_bins, len(features.instruments))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild its separator network ({error})") from error
    try:
        model.load_state_dict(_sub_state(checkpoint["state_dict"], "separator."), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: separator weights do not fit its saved configuration ({error})") from error
    hparams = checkpoint.get("hyper_parameters") or {}
    names = {"n_harmonics": "n_harmonics", "tolerance": "harmonic_tolerance"}
    harmonics = {key: hparams[name] for key, name in names.items() if name in hparams}  # what its L_h-mix used
    return model, {**info, "features": features, "stage": meta["stage"], "harmonics": harmonics}


def warm_start_weights(path: str | os.PathLike, network: SeparatorNetwork,
                       expected: FeatureSettings | None = None) -> dict[str, torch.Tensor]:
    """The separator weights of checkpoint ``path`` for starting ``network`` from them (a warm start).

    The checkpoint's network (class path and init arguments) must be ``network``'s; otherwise CheckpointError
    names both, since loading weights into another architecture would fail deep inside torch or, worse, fit.
    """
    loaded, _ = load_separator(path, expected=expected)
    saved, wanted = network_spec(loaded), network_spec(network)
    if saved != wanted:
        raise CheckpointError(f"{path}: its separator is {saved}, this run's model is {wanted}; give the same "
                              "model to warm-start from it")
    return loaded.state_dict()
