"""Classes named by import path, as YAMLs and checkpoints name them (``scoresep.models.FrameSeparator``,
``mypackage.losses.SpectralFluxLoss``): import one, check what it is, and write a class's path back.

Separator networks and separator loss terms are both named this way, so a user's own class in a user's own
package plugs in without an edit to scoresep.
"""

from __future__ import annotations

import importlib

from scoresep.errors import SettingsError


def import_object(path: str):
    """The object at import path ``package.module.Name``; ImportError, AttributeError or ValueError otherwise."""
    module, _, name = str(path).rpartition(".")
    if not module:
        raise ValueError(f"{path!r} is not an import path (package.module.Name)")
    return getattr(importlib.import_module(module), name)


def import_subclass(class_path: str, base: type, what: str, examples: str) -> type:
    """The class at ``class_path``, which must subclass ``base``; SettingsError naming ``what`` and the path
    otherwise (``examples`` says what a valid path looks like)."""
    module = str(class_path).rpartition(".")[0]
    try:
        cls = import_object(class_path)
    except ImportError as error:
        raise SettingsError(f"{what} {class_path!r}: cannot import {module!r} ({error})") from error
    except (AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SettingsError(f"{what} {class_path!r} is not a {class_path_of(base)} subclass "
                            f"(e.g. {examples})")
    return cls


def class_path_of(cls: type) -> str:
    """The public import path of ``cls``: through its package when the package exports it
    (``scoresep.models.FrameSeparator``), else through its module."""
    module = cls.__module__
    package = module.rsplit(".", 1)[0]
    if getattr(importlib.import_module(package), cls.__name__, None) is cls:
        return f"{package}.{cls.__name__}"
    return f"{module}.{cls.__name__}"
