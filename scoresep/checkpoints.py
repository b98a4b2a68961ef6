"""Stage checkpoints: what a stage writes into its Lightning checkpoint (``write_section``, the one place) and
``StageCheckpoint``, the one type that reads a checkpoint file (once) and rebuilds the models it holds, validated.

Every stage adds a ``"scoresep"`` section to its Lightning checkpoint with primitives only (loadable with
``torch.load(weights_only=True)``)::

    {"format": 1, "stage": "transcriptor", "features": {...FeatureSettings...},
     "models": {"transcriptor": {"config": {...}, "n_pitches": 88, "label": "notes", "thresholds": [...]}}}

``models`` holds ``separator`` (stages 2 and 3: the network's ``class_path`` and ``init_args``) and the
transcriptor: as ``transcriptor`` when the stage trained it (stages 1 and 3), as ``critic`` when it judged the
separator frozen (stage 2). The weights stay in Lightning's ``state_dict`` under ``<model name>.``. Spectrogram
kernels are never there (they are non-persistent buffers).
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from scoresep.class_paths import import_object
from scoresep.errors import UserError
from scoresep.features import FeatureSettings
from scoresep.models import SeparatorNetwork, build_separator, network_spec
from scoresep.models.transcriptor import Transcriptor, TranscriptorConfig

FORMAT = 1
# What a transcriptor read before its input settings existed (linear STFT bins, log1p, no harmonic stack):
# checkpoints without those keys were trained that way, whatever the defaults are now.
LEGACY_TRANSCRIPTOR_INPUT = {"bands_per_semitone": 0, "log_eps": 1.0, "harmonics": []}
# Under which name each stage stores its transcriptor: trained (stages 1 and 3) or a frozen critic (stage 2).
TRANSCRIPTOR_ENTRY = {"transcriptor": "transcriptor", "separator": "critic", "adversarial": "transcriptor"}
# What `--ckpt_path` must share with the run it resumes or tests, beyond the stage class and the feature settings:
# the settings that make a stage another row of the paper (stage 1 vs the baseline's activity classifier, stage 2
# vs the supervised upper bound). LightningCLI takes every model setting from the checkpoint, so a checkpoint that
# differs here would silently turn the YAML's run into another one and overwrite its checkpoints.
RUN_IDENTITY = ("label", "supervised", "critic")
# The stage class of a checkpoint written outside LightningCLI (no ``_class_path`` among its hyper-parameters).
STAGE_CLASS_PATHS = {"transcriptor": "scoresep.stages.TranscriptorStage",
                     "separator": "scoresep.stages.SeparatorStage",
                     "adversarial": "scoresep.stages.AdversarialStage"}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be used where it was given; the message names the file and the mismatch."""


def write_section(checkpoint: dict, stage: str, features: FeatureSettings,
                  separator: SeparatorNetwork | None = None, transcriptor: Transcriptor | None = None,
                  label: str = "notes", thresholds: torch.Tensor | list[float] | None = None) -> None:
    """Add the ``"scoresep"`` section of a ``stage`` (``transcriptor``, ``separator``, ``adversarial``) to a
    Lightning ``checkpoint`` (its ``on_save_checkpoint``): the feature settings, the separator network's spec and
    the transcriptor's config, ``label`` (``notes``/``activity``) and calibrated per-instrument ``thresholds``
    (None: not calibrated)."""
    models: dict[str, dict] = {}
    if separator is not None:
        models["separator"] = network_spec(separator)
    if transcriptor is not None:
        if isinstance(thresholds, torch.Tensor):
            thresholds = thresholds.tolist()
        models[TRANSCRIPTOR_ENTRY[stage]] = {"config": asdict(transcriptor.config),
                                             "n_pitches": transcriptor.n_pitches, "label": label,
                                             "thresholds": thresholds}
    checkpoint["scoresep"] = {"format": FORMAT, "stage": stage, "features": features.to_dict(), "models": models}


@dataclass(frozen=True, eq=False)  # compared by identity: it holds tensors
class StageCheckpoint:
    """A stage checkpoint read once: its ``"scoresep"`` section, weights and hyper-parameters, from which the
    models it holds are rebuilt (``separator``, ``transcriptor``) and a ``--ckpt_path`` is checked
    (``check_run``). ``read`` is the one place scoresep loads a stage checkpoint to use its models
    (``weights_only=True``); Lightning's own loading (``--ckpt_path``, ``load_from_checkpoint``) is Lightning's.

    Attributes:
        path: the file; every error names it.
        stage: ``transcriptor``, ``separator`` or ``adversarial``.
        features: the feature settings it was trained with.
        models: ``{name: entry}`` of the ``"scoresep"`` section (module docstring).
        state_dict: Lightning's weights, ``<model name>.<parameter>``.
        hyper_parameters: the stage's ``__init__`` arguments as saved (empty when none were).
    """

    path: Path
    stage: str
    features: FeatureSettings
    models: dict[str, dict]
    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict

    @classmethod
    def read(cls, path: str | os.PathLike) -> StageCheckpoint:
        """Load ``path`` safely (``weights_only=True``); CheckpointError when missing, unreadable or foreign."""
        path = Path(path)
        if not path.is_file():
            last = path.with_name("last.ckpt")
            hint = (f"; {last} is there: a fit that never validated writes no best.ckpt, only last.ckpt with its "
                    "final weights; give that file to use them" if path.name == "best.ckpt" and last.is_file()
                    else "")
            raise CheckpointError(f"{path}: checkpoint file not found{hint}")
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols before it fails on foreign files
                warnings.simplefilter("ignore")
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated file, not a torch file, unsafe pickle
            raise CheckpointError(f"{path}: cannot read checkpoint ({describe_load_error(error)})") from None
        if not isinstance(checkpoint, dict) or "scoresep" not in checkpoint or "state_dict" not in checkpoint:
            raise CheckpointError(f"{path}: not a scoresep stage checkpoint (no 'scoresep' section)")
        meta = checkpoint["scoresep"]
        try:
            features = FeatureSettings.from_dict(meta["features"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: its feature settings cannot be read ({error})") from None
        return cls(path, str(meta.get("stage")), features, dict(meta.get("models") or {}), checkpoint["state_dict"],
                   dict(checkpoint.get("hyper_parameters") or {}))

    def holds(self, name: str) -> bool:
        """Whether it holds model ``name``: ``separator``, ``transcriptor`` (trained by this stage) or ``critic``
        (stage 2's frozen transcriptor)."""
        return name in self.models

    def _check_features(self, expected: FeatureSettings | None) -> None:
        if expected is not None and (problems := expected.mismatches(self.features, "this run", "checkpoint")):
            raise CheckpointError(f"{self.path}: trained with other feature settings: {'; '.join(problems)}")

    def _weights(self, name: str) -> dict[str, torch.Tensor]:
        prefix = f"{name}."
        return {key[len(prefix):]: value for key, value in self.state_dict.items() if key.startswith(prefix)}

    def transcriptor(self, expected: FeatureSettings | None = None,
                     label: str | None = None) -> tuple[Transcriptor, dict]:
        """The transcriptor of a stage-1 or stage-3 checkpoint (or the frozen critic of a stage-2 one), weights
        loaded strictly; ``expected`` features and ``label`` (``notes``/``activity``) are checked when given.
        Returns ``(model, its entry + features + stage)``."""
        name = next((n for n in ("transcriptor", "critic") if self.holds(n)), None)
        if name is None:
            raise CheckpointError(f"{self.path}: a '{self.stage}' checkpoint holds no transcriptor (give a stage-1 "
                                  "transcriptor checkpoint)")
        self._check_features(expected)
        info = self.models[name]
        if label is not None and info["label"] != label:
            raise CheckpointError(f"{self.path}: transcriptor was trained with label={info['label']!r}, "
                                  f"this run needs label={label!r}")
        features = self.features
        model = Transcriptor(features.n_bins, len(features.instruments), info["n_pitches"],
                             TranscriptorConfig(**{**LEGACY_TRANSCRIPTOR_INPUT, **info["config"]}),
                             features.sample_rate, features.min_midi)
        try:
            model.load_state_dict(self._weights(name), strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{self.path}: transcriptor weights do not fit its saved configuration "
                                  f"({error})") from error
        return model, {**info, "features": features, "stage": self.stage}

    def separator(self, expected: FeatureSettings | None = None) -> tuple[SeparatorNetwork, dict]:
        """The separator of a stage-2 or stage-3 checkpoint, any architecture, weights loaded strictly.

        The checkpoint names the network by ``class_path`` with its ``init_args``; checkpoints written before
        networks had class paths hold the U-Net's ``config`` and load as the U-Net. The info returned adds
        ``harmonics``: the harmonic-mask settings its stage trained ``L_h-mix`` with."""
        if not self.holds("separator"):
            raise CheckpointError(f"{self.path}: a '{self.stage}' checkpoint holds no separator (give a stage-2 or "
                                  "stage-3 checkpoint)")
        self._check_features(expected)
        info = self.models["separator"]
        spec = info if "class_path" in info else info.get("config", {})
        features = self.features
        try:
            model = build_separator(spec, features.n_bins, len(features.instruments))
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{self.path}: cannot rebuild its separator network ({error})") from error
        try:
            model.load_state_dict(self._weights("separator"), strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{self.path}: separator weights do not fit its saved configuration "
                                  f"({error})") from error
        names = {"n_harmonics": "n_harmonics", "tolerance": "harmonic_tolerance"}
        harmonics = {key: self.hyper_parameters[name] for key, name in names.items()
                     if name in self.hyper_parameters}
        return model, {**info, "features": features, "stage": self.stage, "harmonics": harmonics}

    def check_score_masks(self, network: SeparatorNetwork, n_harmonics: int, tolerance: float) -> None:
        """A separator that reads the score reads the harmonic masks its stage built; continuing it with other
        ``n_harmonics`` / ``tolerance`` would feed it masks it never saw, so CheckpointError names both. Networks
        that hear only the audio may change them (they are ``L_h-mix``'s)."""
        if not network.reads_score:
            return
        names = {"n_harmonics": "n_harmonics", "tolerance": "harmonic_tolerance"}
        saved = {key: self.hyper_parameters[name] for key, name in names.items() if name in self.hyper_parameters}
        wanted = {"n_harmonics": n_harmonics, "tolerance": tolerance}
        if any(saved.get(key, value) != value for key, value in wanted.items()):
            raise CheckpointError(f"{self.path}: its separator reads the score through harmonic masks of {saved}; "
                                  f"this run builds {wanted}. Give the checkpoint's n_harmonics and "
                                  "harmonic_tolerance")

    def warm_start_weights(self, network: SeparatorNetwork,
                           expected: FeatureSettings | None = None) -> dict[str, torch.Tensor]:
        """Its separator weights for starting ``network`` from them (a warm start). The checkpoint's network
        (class path and init arguments) must be ``network``'s; otherwise CheckpointError names both, since
        loading weights into another architecture would fail deep inside torch or, worse, fit."""
        loaded, _ = self.separator(expected=expected)
        saved, wanted = network_spec(loaded), network_spec(network)
        if saved != wanted:
            raise CheckpointError(f"{self.path}: its separator is {saved}, this run's model is {wanted}; give the "
                                  "same model to warm-start from it")
        return loaded.state_dict()

    def check_run(self, class_path: str, features: FeatureSettings, settings: dict,
                  config: str = "the config") -> None:
        """Refuse it as the ``--ckpt_path`` of a run ``config`` describes when it is not a checkpoint of that run.

        ``--ckpt_path`` resumes (fit) or evaluates (validate, test, predict) the same stage; a checkpoint of
        another stage class, of another row (``RUN_IDENTITY``) or of other feature settings raises
        CheckpointError naming the file, what it holds and what the config asks for, before anything is built or
        written."""
        saved_class = self.hyper_parameters.get("_class_path") or STAGE_CLASS_PATHS.get(self.stage)
        hint = ("--ckpt_path resumes or evaluates the same stage; to start from another stage's checkpoint give it "
                "to the model (transcriptor_checkpoint, separator_checkpoint)")
        if saved_class and not _same_class(saved_class, class_path):
            raise CheckpointError(f"{self.path}: a {self.stage} checkpoint ({saved_class}), but {config} trains "
                                  f"{class_path}; {hint}")
        saved = self.hyper_parameters
        differing = [f"{key}={saved[key]!r} (checkpoint) vs {key}={settings[key]!r} ({config})"
                     for key in RUN_IDENTITY if key in saved and key in settings and saved[key] != settings[key]]
        if differing:
            raise CheckpointError(f"{self.path}: a checkpoint of another {self.stage} run: {'; '.join(differing)}; "
                                  f"{hint}")
        if problems := features.mismatches(self.features, config, "checkpoint"):
            raise CheckpointError(f"{self.path}: trained with other feature settings: {'; '.join(problems)}")


def checkpoint_thresholds(info: dict, override: float | None = None) -> list[float]:
    """Per-instrument note thresholds for a transcriptor of ``StageCheckpoint.transcriptor``: ``override`` for every
    instrument when given, else the checkpoint's calibrated ones, else 0.5 (checkpoints written before
    calibration existed)."""
    n_instruments = len(info["features"].instruments)
    if override is not None:
        return [float(override)] * n_instruments
    return [float(t) for t in info.get("thresholds") or [0.5] * n_instruments]


def _same_class(first: str, second: str) -> bool:
    """Whether two import paths name one class (``scoresep.stages.X`` and ``scoresep.stages.module.X`` do)."""
    if first == second:
        return True
    try:
        return import_object(first) is import_object(second)
    except (ImportError, AttributeError, ValueError):
        return False


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
