"""The instrument vocabulary: how Slakh's ``inst_class`` / GM ``program_num`` map to our instruments.

Slakh2100 names 16 General-MIDI families (plus ``Drums``) in ``inst_class``; the spelling varies between
releases (``Strings (continued)``, ``Sound effects`` / ``Sound Effects``), so names are normalised before
they are compared. When ``inst_class`` is missing or unknown the GM program number decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scoresep.errors import SettingsError


@dataclass(frozen=True)
class Instrument:
    """One instrument we separate: its name, Slakh class, GM program range and a default program."""

    name: str
    inst_class: str
    programs: range
    default_program: int


# GM families in program order (program // 8), as Slakh spells them in metadata.yaml.
GM_FAMILIES = (
    "Piano",
    "Chromatic Percussion",
    "Organ",
    "Guitar",
    "Bass",
    "Strings",
    "Ensemble",
    "Brass",
    "Reed",
    "Pipe",
    "Synth Lead",
    "Synth Pad",
    "Synth Effects",
    "Ethnic",
    "Percussive",
    "Sound Effects",
)

INSTRUMENTS: dict[str, Instrument] = {
    family.lower().replace(" ", "_"): Instrument(
        name=family.lower().replace(" ", "_"),
        inst_class=family,
        programs=range(8 * index, 8 * index + 8),
        default_program=8 * index + (1 if family in ("Bass", "Guitar") else 0),
    )
    for index, family in enumerate(GM_FAMILIES)
}
# Slakh's "Strings (continued)" is GM's "Ensemble" family (programs 48-55).
_ALIASES = {
    "strings (continued)": "ensemble",
    "strings continued": "ensemble",
    "sound effects": "sound_effects",
    "sfx": "sound_effects",
    "synth fx": "synth_effects",
    "chromatic percussion": "chromatic_percussion",
    "synth lead": "synth_lead",
    "synth pad": "synth_pad",
    "synth effects": "synth_effects",
    "drum": "drums",
    "percussion": "percussive",
}


def normalise_class(inst_class: str | None) -> str | None:
    """Map an ``inst_class`` spelling to a vocabulary name (``'drums'`` for drums, None when unknown)."""
    if inst_class is None:
        return None
    key = re.sub(r"\s+", " ", str(inst_class).strip().lower().replace("_", " "))
    if key in _ALIASES:
        return _ALIASES[key]
    key = key.replace(" ", "_")
    if key == "drums" or key in INSTRUMENTS:
        return key
    return None


def instrument_of(inst_class: str | None, program_num: int | None, is_drum: bool) -> str | None:
    """Vocabulary name of a Slakh stem: ``inst_class`` first, GM ``program_num`` as fallback.

    Returns ``'drums'`` for drum stems and None when neither field identifies the instrument.
    """
    if is_drum:
        return "drums"
    name = normalise_class(inst_class)
    if name is not None:
        return name
    if program_num is not None and 0 <= int(program_num) < 128:
        return GM_FAMILIES[int(program_num) // 8].lower().replace(" ", "_")
    return None


def check_instruments(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate a configured instrument list; raises ValueError naming the unknown entries."""
    names = tuple(names)
    if not names:
        raise SettingsError("instruments: at least one instrument is required")
    if "drums" in names:
        raise SettingsError("instruments: drums cannot be separated by score (their piano roll is empty)")
    unknown = [name for name in names if name not in INSTRUMENTS]
    if unknown:
        raise SettingsError(f"instruments: unknown {unknown}; known instruments are {sorted(INSTRUMENTS)}")
    if len(set(names)) != len(names):
        raise SettingsError(f"instruments: duplicated entries in {list(names)}")
    return names
