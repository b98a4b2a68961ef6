"""What every separator network offers the stages and chunked inference, and building one from its class path.

A separator network maps a mixture magnitude ``(batch, freq, frame)`` to one mask in [0, 1] per instrument
``(batch, instrument, freq, frame)``. Besides ``forward`` it declares:

- ``frame_multiple``: inputs are padded to a multiple of this many frames (pooling); chunk starts align to it.
- ``receptive_field_frames``: frames on each side of an output frame that can change it (an upper bound);
  chunked inference keeps at least this much context, so it equals one pass over the whole recording.

Networks are chosen in the YAML by class path, like any LightningCLI component, and stored in checkpoints as
``{"class_path": ..., "init_args": ...}`` (primitives only), so stage 2, stage 3, ``separate``, ``transcribe``
and ``evaluate`` rebuild any architecture::

    model:
      class_path: scoresep.models.FrameSeparator
      init_args: {hidden: 256, blocks: 6}

``init_args`` are the fields of the network's ``config_class`` dataclass (an unknown or misspelled field is an
error naming the field); ``n_bins`` and ``n_instruments`` come from the feature settings, never from the YAML.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import asdict, fields, is_dataclass
from typing import Any, ClassVar

from torch import nn


class SeparatorNetwork(nn.Module, abc.ABC):
    """Base of the separator networks: ``__init__(n_bins, n_instruments, config)``, see the module docstring."""

    config_class: ClassVar[type]

    def __init__(self, n_bins: int, n_instruments: int, config: Any):
        super().__init__()
        self.n_bins, self.n_instruments, self.config = n_bins, n_instruments, config

    @property
    @abc.abstractmethod
    def frame_multiple(self) -> int:
        """Inputs are padded to a multiple of this many frames."""

    @property
    @abc.abstractmethod
    def receptive_field_frames(self) -> int:
        """Frames on each side of an output frame that can change it (an upper bound)."""

    def check_input(self, magnitude) -> None:
        if magnitude.ndim != 3 or magnitude.shape[1] != self.n_bins:
            raise ValueError(f"{type(self).__name__} expects a magnitude (batch, freq={self.n_bins}, frame), "
                             f"got shape {tuple(magnitude.shape)}")


def class_path_of(cls: type) -> str:
    """The public import path of a network class (``scoresep.models.FrameSeparator``)."""
    module = cls.__module__
    package = module.rsplit(".", 1)[0]
    if getattr(importlib.import_module(package), cls.__name__, None) is cls:
        return f"{package}.{cls.__name__}"
    return f"{module}.{cls.__name__}"


def _network_class(class_path: str) -> type[SeparatorNetwork]:
    module_name, _, name = str(class_path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name) if module_name else None
    except ImportError as error:
        raise ValueError(f"separator network {class_path!r}: cannot import {module_name!r} ({error})") from error
    if not (isinstance(cls, type) and issubclass(cls, SeparatorNetwork)):
        raise ValueError(f"separator network {class_path!r} is not a scoresep.models.SeparatorNetwork subclass "
                         "(e.g. scoresep.models.UNetSeparator or scoresep.models.FrameSeparator)")
    return cls


def separator_spec(model: Any) -> dict[str, Any]:
    """Normalise the stages' ``model`` argument to ``{"class_path", "init_args"}`` (primitives only).

    Accepts such a dict, a network config dataclass instance (the Python API), ``None`` (the frame separator's
    defaults, what the YAMLs train), or a dict of U-Net fields without ``class_path`` (the form of YAMLs before
    networks had class paths). Unknown ``init_args`` fields raise ValueError naming them.
    """
    from scoresep.models.frame_separator import FrameSeparator
    from scoresep.models.separator import UNetSeparator

    if model is None:
        model = {"class_path": class_path_of(FrameSeparator), "init_args": {}}
    if isinstance(model, dict) and "class_path" not in model and "init_args" not in model:
        model = {"class_path": class_path_of(UNetSeparator), "init_args": model}
    if is_dataclass(model) and not isinstance(model, type):
        owners = [cls for cls in _all_networks() if isinstance(model, cls.config_class)]
        if not owners:
            raise ValueError(f"no separator network takes a {type(model).__name__}")
        model = {"class_path": class_path_of(owners[0]), "init_args": asdict(model)}
    if not isinstance(model, dict) or set(model) - {"class_path", "init_args"} or "class_path" not in model:
        raise ValueError("separator model must be {class_path: scoresep.models.<Network>, init_args: {...}}, got "
                         f"{model!r}")
    cls = _network_class(model["class_path"])
    init_args = dict(model.get("init_args") or {})
    known = {f.name for f in fields(cls.config_class)}
    if unknown := sorted(set(init_args) - known):
        raise ValueError(f"{model['class_path']}: unknown init_args {unknown}; it takes {sorted(known)}")
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
    import scoresep.models  # noqa: F401 - registers the project's networks as subclasses

    found, stack = [], list(SeparatorNetwork.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
