"""Finding, checking and choosing soundfonts: which General-MIDI soundfonts this machine has, whether FluidSynth
renders sound with one, and which one each track is rendered with (``SoundfontPlan``, drawn from (seed, index)).

Specs (``"default"``, ``"all"``, ``"test:PATH"`` or a path) are resolved and every soundfont checked before the
first track is rendered (``resolve_soundfonts``), so a bad soundfont fails fast instead of giving silent stems.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from scoresep.data.synth.render import _fluidsynth
from scoresep.errors import SettingsError

log = logging.getLogger(__name__)

# Soundfonts looked for by ``available_soundfonts`` besides pretty_midi's own TimGM6mb, in this order (the order
# fixes which soundfont a seeded draw picks, so it must not change). Debian installs them with
# ``apt-get install --no-install-recommends fluid-soundfont-gm musescore-general-soundfont`` (``make install`` as
# root). musescore-general-soundfont ships only the Vorbis-compressed .sf3 (``dpkg -L``:
# /usr/share/sounds/sf3/MuseScore_General_Full.sf3; MuseScore_General.sf3 and default-GM.sf3 beside it are
# update-alternatives links that another package may repoint), the .sf2 spelling is for hand-made conversions.
# FluidSynth 2 reads .sf3 only when built with libsndfile and Vorbis (Debian's libfluidsynth3 is): elsewhere it
# fails to load or renders silence, so every candidate must render sound (``check_soundfont``) to be listed.
SYSTEM_SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3"),
    Path("/usr/share/sounds/sf2/MuseScore_General.sf2"),
)
DEFAULT_SOUNDFONT = "default"  # spec for pretty_midi's TimGM6mb
ALL_SOUNDFONTS = "all"  # spec for every soundfont of available_soundfonts()
TEST_PREFIX = "test:"  # spec prefix for a held-out test soundfont: what ``--test-soundfont PATH`` expands to
# FluidSynth dithers its 16-bit output, so even a synth with no instrument loaded gives RMS ~0.5 (int16 units),
# not 0: "renders sound" means well above that (a GM piano note renders RMS > 100 with each soundfont above).
_AUDIBLE_RMS = 8.0
_DRAW_SALT = 5_003  # separates the per-song soundfont draw from the composition's random stream


def default_soundfont() -> Path:
    """The General-MIDI soundfont that pretty_midi ships (TimGM6mb.sf2)."""
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"

@functools.cache
def _renders_sound(soundfont: Path, size: int, mtime_ns: int) -> str | None:
    """None when a GM piano note renders audibly with ``soundfont``, else why not (cached per file version)."""
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(100, 60, 0.0, 0.25))
    try:
        audio = _fluidsynth(piano, 16_000, soundfont)
    except (ValueError, OSError) as error:
        return str(error)
    if audio.size == 0 or not float(np.sqrt(np.mean(audio**2))) > _AUDIBLE_RMS:
        return (f"{soundfont}: renders silence for a General-MIDI piano note (not a GM soundfont, or FluidSynth "
                "cannot read it: .sf3 needs a FluidSynth built with libsndfile and Vorbis)")
    return None


def check_soundfont(soundfont: Path) -> None:
    """Raise ValueError naming ``soundfont`` unless FluidSynth loads it and renders sound with it.

    A soundfont FluidSynth cannot read does not fail the render, it gives silent stems, so it is caught here
    before a whole dataset is written with it.
    """
    stat = soundfont.stat()
    problem = _renders_sound(soundfont.resolve(), stat.st_size, stat.st_mtime_ns)
    if problem is not None:
        raise SettingsError(problem)


def available_soundfonts() -> list[Path]:
    """The General-MIDI soundfonts on this machine that render sound: TimGM6mb, then SYSTEM_SOUNDFONTS present.

    What ``--soundfonts all`` means. The order is fixed, so a seeded dataset drawn from them is reproducible on
    machines with the same soundfonts installed.
    """
    found = [default_soundfont()]
    for path in SYSTEM_SOUNDFONTS:
        if path.is_file():
            try:
                check_soundfont(path)
            except ValueError as error:
                log.warning("soundfont left out: %s", error)
                continue
            found.append(path)
    return found


@dataclass(frozen=True)
class SoundfontPlan:
    """Which soundfonts a dataset draws from: ``train`` for train and validation, ``test`` (if any) for test.

    ``test`` empty: every split draws from ``train``. Otherwise test tracks draw only from ``test`` and the
    train/validation tracks never use any of them: a held-out timbre.
    """

    train: tuple[Path, ...]
    test: tuple[Path, ...] = ()

    def pick(self, seed: int, index: int, split: str) -> Path:
        """The soundfont of track ``index``: drawn from (seed, index) alone, so a dataset is reproducible."""
        pool = self.test if split == "test" and self.test else self.train
        if len(pool) == 1:
            return pool[0]
        return pool[int(np.random.default_rng([seed, index, _DRAW_SALT]).integers(len(pool)))]


def _as_specs(value: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(item) for item in value]


def _expand(specs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for spec in specs:
        if spec == DEFAULT_SOUNDFONT:
            paths.append(default_soundfont())
        elif spec == ALL_SOUNDFONTS:
            paths.extend(available_soundfonts())
        else:
            paths.append(Path(spec).expanduser().absolute())  # absolute: metadata names the file wherever run
    unique: dict[Path, Path] = {}  # first spelling of each file, in order
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def resolve_soundfonts(
    soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    test_soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> SoundfontPlan:
    """Turn soundfont specs into a checked SoundfontPlan; raises before anything is rendered.

    A spec is a path to an .sf2/.sf3 file, ``"default"`` (pretty_midi's TimGM6mb), ``"all"``
    (``available_soundfonts()``) or ``"test:PATH"`` (held out for the test split; the same as passing PATH in
    ``test_soundfont``). No training spec: TimGM6mb. Duplicates count once. A held-out soundfont that is also
    among the training ones is dropped from the training pool (so ``all`` plus a held-out one means "all the
    others for train/validation"). Missing files: one FileNotFoundError naming every missing path; a file that
    FluidSynth cannot render with: ValueError naming it.
    """
    specs = _as_specs(soundfont)
    train_specs = [spec for spec in specs if not spec.startswith(TEST_PREFIX)]
    test_specs = [spec[len(TEST_PREFIX):] for spec in specs if spec.startswith(TEST_PREFIX)]
    test_specs += _as_specs(test_soundfont)
    train, test = _expand(train_specs or [DEFAULT_SOUNDFONT]), _expand(test_specs)
    missing = [str(path) for path in (*train, *test) if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}: soundfont not found (pass --soundfont PATH to an .sf2 or "
                                ".sf3 file, 'default' or 'all')")
    held_out = {path.resolve() for path in test}
    if any(path.resolve() in held_out for path in train):
        log.info("held-out test soundfont(s) %s left out of the train/validation soundfonts",
                 ", ".join(path.name for path in test))
        train = [path for path in train if path.resolve() not in held_out]
        if not train:
            raise SettingsError(f"{', '.join(map(str, test))}: the held-out test soundfont is the only training "
                                "soundfont; give train/validation another one (--soundfont PATH, default or all)")
    for path in (*train, *test):
        check_soundfont(path)
    return SoundfontPlan(tuple(train), tuple(test))
