"""Separator networks by class path: normalise a stage's ``model`` argument to ``{"class_path", "init_args"}``,
build the network it names, and describe a built one for a checkpoint.

It is the one module of ``models/`` that knows the project's networks (the default when a YAML names none, the
U-Net for the YAMLs written before networks had class paths); ``base.py`` is the interface they implement and
knows none of them, so the package has no import circle.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any

from scoresep.class_paths import class_path_of, import_subclass
from scoresep.errors import SettingsError
from scoresep.models.base import SeparatorNetwork
from scoresep.models.frame_separator import FrameSeparator
from scoresep.models.score_informed import ScoreInformedSeparator  # noqa: F401  (found by _all_networks)
from scoresep.models.unet import UNetSeparator


def _network_class(class_path: str) -> type[SeparatorNetwork]:
    return import_subclass(class_path, SeparatorNetwork, "separator network",
                           "scoresep.models.UNetSeparator, scoresep.models.FrameSeparator or "
                           "scoresep.models.ScoreInformedSeparator")


def separator_spec(model: Any) -> dict[str, Any]:
    """Normalise the stages' ``model`` argument to ``{"class_path", "init_args"}`` (primitives only).

    Accepts such a dict, a network config dataclass instance (the Python API), ``None`` (the frame separator's
    defaults, what the YAMLs train), or a dict of U-Net fields without ``class_path`` (the form of YAMLs before
    networks had class paths). Unknown ``init_args`` fields raise ValueError naming them.
    """
    if model is None:
        model = {"class_path": class_path_of(FrameSeparator), "init_args": {}}
    if isinstance(model, dict) and "class_path" not in model and "init_args" not in model:
        model = {"class_path": class_path_of(UNetSeparator), "init_args": model}
    if is_dataclass(model) and not isinstance(model, type):
        owners = [cls for cls in _all_networks() if type(model) is cls.config_class]  # exact: configs subclass
        if not owners:
            raise SettingsError(f"no separator network takes a {type(model).__name__}")
        model = {"class_path": class_path_of(owners[0]), "init_args": asdict(model)}
    if not isinstance(model, dict) or set(model) - {"class_path", "init_args"} or "class_path" not in model:
        raise SettingsError("separator model must be {class_path: scoresep.models.<Network>, init_args: {...}}, got "
                            f"{model!r}")
    cls = _network_class(model["class_path"])
    init_args = dict(model.get("init_args") or {})
    known = {f.name for f in fields(cls.config_class)}
    if unknown := sorted(set(init_args) - known):
        raise SettingsError(f"{model['class_path']}: unknown init_args {unknown}; it takes {sorted(known)}")
    config = cls.config_class(**init_args)  # validates the values (__post_init__)
    return {"class_path": class_path_of(cls), "init_args": asdict(config)}


def build_separator(spec: dict[str, Any], n_bins: int, n_instruments: int) -> SeparatorNetwork:
    """The network of a ``separator_spec`` for ``n_bins`` frequency bins and ``n_instruments`` masks."""
    spec = separator_spec(spec)
    cls = _network_class(spec["class_path"])
    return cls(n_bins, n_instruments, cls.config_class(**spec["init_args"]))


def network_spec(network: SeparatorNetwork) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of a built network (what checkpoints store)."""
    return {"class_path": class_path_of(type(network)), "init_args": asdict(network.config)}


def _all_networks() -> list[type[SeparatorNetwork]]:
    """Every SeparatorNetwork subclass defined so far (the project's, imported above, and a user's)."""
    found, stack = [], list(SeparatorNetwork.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
