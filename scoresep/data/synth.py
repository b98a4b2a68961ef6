"""Mini-Slakh: a Slakh2100-layout dataset rendered from MIDI with FluidSynth.

Two sources of MIDI: music composed here (seeded: key, tempo, chord progression, bass line, guitar and
piano parts with overlapping ranges, optional distractor stems) or a folder of the user's own MIDI files (as
Slakh itself was rendered from Lakh MIDI). Each stem is rendered alone, trimmed or padded to the song length,
quantised to 16 bit, and the mixture is the integer sum of the quantised stems, so
``mix.flac == sum(stems/*.flac)`` exactly.

Layout written (as Slakh2100)::

    OUT/{train,validation,test}/TrackNNNNN/
        metadata.yaml  mix.flac  all_src.mid  stems/SNN.flac  MIDI/SNN.mid

Every file is written atomically (temp file + rename) with the permissions the umask gives a new file (0644
under umask 022), so that the other users of a shared machine can read the dataset.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import yaml

from scoresep import __version__
from scoresep.data.audio import write_audio
from scoresep.data.loudness import integrated_loudness
from scoresep.data.midi import load_midi, write_midi
from scoresep.data.splits import assign_splits
from scoresep.fileio import atomic_write_text
from scoresep.instruments import GM_FAMILIES
from scoresep.processes import worker_pool

log = logging.getLogger(__name__)

_PEAK = 0.9  # mixture peak after scaling, leaves room for int16 rounding of every stem
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 3, 0, 4), (3, 4, 2, 5))


# ----------------------------------------------------------------------------------------------- soundfonts
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


def _fluidsynth(instrument: pretty_midi.Instrument, sample_rate: int, soundfont: Path) -> np.ndarray:
    """Render one instrument with a fresh FluidSynth instance (no state carried over from other stems).

    .sf2 goes through pretty_midi exactly as before (datasets rendered earlier stay bit-identical). .sf3 is
    loaded with ``synth.dynamic-sample-loading``: FluidSynth then decodes the Vorbis samples of the presets this
    stem selects only, instead of all of them (about 3-6 s per stem for MuseScore General, more than the render).
    """
    if soundfont.suffix.lower() != ".sf3" or not instrument.notes:
        return np.asarray(instrument.fluidsynth(fs=sample_rate, synthesizer=str(soundfont)), dtype=np.float64)
    import fluidsynth  # pyfluidsynth, imported by pretty_midi already

    synth = fluidsynth.Synth(samplerate=sample_rate, **{"synth.dynamic-sample-loading": 1})
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid == -1:
            raise ValueError(f"{soundfont}: FluidSynth cannot load this soundfont")
        return np.asarray(instrument.fluidsynth(fs=sample_rate, synthesizer=synth, sfid=sfid), dtype=np.float64)
    finally:
        synth.delete()


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
        raise ValueError(problem)


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
            raise ValueError(f"{', '.join(map(str, test))}: the held-out test soundfont is the only training "
                             "soundfont; give train/validation another one (--soundfont PATH, default or all)")
    for path in (*train, *test):
        check_soundfont(path)
    return SoundfontPlan(tuple(train), tuple(test))


@dataclass
class StemPart:
    """One stem to render: a single pretty_midi instrument plus its Slakh metadata."""

    instrument: pretty_midi.Instrument
    inst_class: str
    gain_db: float = 0.0


@dataclass
class Song:
    """A composed or loaded song: its stems, tempo and length in seconds."""

    parts: list[StemPart]
    tempo: float
    seconds: float
    source: str | None = None
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- composing
class _Composer:
    """Seeded composition of one song. Every random draw comes from ``rng``."""

    def __init__(self, rng: np.random.Generator, seconds: float):
        self.rng = rng
        self.seconds = seconds
        self.tempo = float(rng.integers(80, 141))
        self.beat = 60.0 / self.tempo
        self.root = int(rng.integers(0, 12))
        self.scale = _MAJOR if rng.random() < 0.6 else _MINOR
        n_bars = int(np.ceil(seconds / (4 * self.beat)))
        progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
        self.chords = [progression[bar % len(progression)] for bar in range(n_bars)]
        self.n_bars = n_bars

    def pitch_class(self, degree: int) -> int:
        return (self.root + self.scale[degree % 7]) % 12

    def chord_classes(self, degree: int) -> list[int]:
        return [self.pitch_class(degree + step) for step in (0, 2, 4)]

    @staticmethod
    def nearest(pitch_class: int, around: int) -> int:
        """The MIDI pitch of ``pitch_class`` closest to ``around``."""
        base = around - ((around - pitch_class) % 12)
        return base if around - base <= 6 else base + 12

    def scale_pitches(self, low: int, high: int) -> list[int]:
        members = {self.pitch_class(d) for d in range(7)}
        return [p for p in range(low, high + 1) if p % 12 in members]

    def note(self, instrument: pretty_midi.Instrument, pitch: int, start: float, duration: float,
             velocity: int | None = None) -> None:
        end = min(start + duration, self.seconds)
        if start >= self.seconds or end - start < 0.02:
            return
        velocity = int(self.rng.integers(70, 111)) if velocity is None else velocity
        instrument.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(pitch), start=start, end=end))

    def sections(self, probability: float) -> list[bool]:
        """Which 4-bar sections an instrument plays in (at least one)."""
        n_sections = max(1, int(np.ceil(self.n_bars / 4)))
        playing = [bool(self.rng.random() < probability) for _ in range(n_sections)]
        if not any(playing):
            playing[int(self.rng.integers(n_sections))] = True
        return playing

    def bars(self, playing: list[bool]):
        for bar, degree in enumerate(self.chords):
            if playing[bar // 4]:
                yield bar, bar * 4 * self.beat, degree

    def bass(self) -> pretty_midi.Instrument:
        program = int(self.rng.integers(32, 40))
        part = pretty_midi.Instrument(program=program, name="bass")
        style = int(self.rng.integers(4))
        for _, start, degree in self.bars(self.sections(0.85)):
            root = self.nearest(self.pitch_class(degree), 38)
            fifth = self.nearest(self.pitch_class(degree + 4), root + 7)
            if style == 0:  # half notes root-fifth
                self.note(part, root, start, 2 * self.beat * 0.95)
                self.note(part, fifth, start + 2 * self.beat, 2 * self.beat * 0.95)
            elif style == 1:  # driving eighths on the root
                for k in range(8):
                    self.note(part, root + (12 if k == 6 else 0), start + k * self.beat / 2, self.beat * 0.45)
            elif style == 2:  # walking quarters through the scale
                pitches = self.scale_pitches(28, 55)
                index = pitches.index(root) if root in pitches else len(pitches) // 2
                for k in range(4):
                    step = 0 if k == 0 else int(self.rng.choice([-2, -1, 1, 2]))
                    index = int(np.clip(index + step, 0, len(pitches) - 1))
                    self.note(part, pitches[index], start + k * self.beat, self.beat * 0.9)
            else:  # syncopated root and octave
                for onset, duration, octave in ((0, 1.5, 0), (1.5, 0.5, 12), (2, 1, 0), (3, 0.5, 0), (3.5, 0.5, 7)):
                    pitch = root + octave if octave != 7 else fifth
                    self.note(part, pitch, start + onset * self.beat, duration * self.beat * 0.9)
        return part

    def guitar(self) -> pretty_midi.Instrument:
        program = int(self.rng.integers(24, 32))
        part = pretty_midi.Instrument(program=program, name="guitar")
        arpeggio = bool(self.rng.random() < 0.5)
        centre = int(self.rng.integers(52, 65))
        for _, start, degree in self.bars(self.sections(0.8)):
            classes = self.chord_classes(degree)
            voicing = sorted(self.nearest(pc, centre + 4 * k) for k, pc in enumerate(classes))
            voicing.append(voicing[0] + 12)
            if arpeggio:
                order = [0, 1, 2, 3, 2, 1, 2, 3]
                for k, index in enumerate(order):
                    self.note(part, voicing[index], start + k * self.beat / 2, self.beat * 0.6)
            else:
                pattern = [(0, 1.0), (1.5, 0.5), (2, 1.0), (3, 0.5), (3.5, 0.5)]
                for onset, duration in pattern:
                    for k, pitch in enumerate(voicing):  # a strum: 15 ms between strings
                        self.note(part, pitch, start + onset * self.beat + 0.015 * k, duration * self.beat * 0.9, 85)
        return part

    def piano(self) -> pretty_midi.Instrument:
        program = int(self.rng.integers(0, 8))
        part = pretty_midi.Instrument(program=program, name="piano")
        melody_pitches = self.scale_pitches(60, 84)
        index = len(melody_pitches) // 2
        for _, start, degree in self.bars(self.sections(0.85)):
            left = sorted(self.nearest(pc, 52 + 3 * k) for k, pc in enumerate(self.chord_classes(degree)))
            for pitch in left:
                self.note(part, pitch, start, 2 * self.beat * 0.95, 75)
                self.note(part, pitch, start + 2 * self.beat, 2 * self.beat * 0.95, 70)
            onset = 0.0
            while onset < 4:
                duration = float(self.rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                duration = min(duration, 4 - onset)
                index = int(np.clip(index + self.rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(melody_pitches) - 1))
                self.note(part, melody_pitches[index], start + onset * self.beat, duration * self.beat * 0.9)
                onset += duration
        return part

    def drums(self) -> pretty_midi.Instrument:
        part = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        for _, start, _ in self.bars(self.sections(0.9)):
            for k in range(8):
                at = start + k * self.beat / 2
                self.note(part, 42, at, 0.1, 60)
                if k in (0, 4) or (k == 5 and self.rng.random() < 0.3):
                    self.note(part, 36, at, 0.1, 100)
                if k in (2, 6):
                    self.note(part, 38, at, 0.1, 95)
        return part

    def strings(self) -> tuple[pretty_midi.Instrument, str]:
        program = int(self.rng.integers(48, 52))
        part = pretty_midi.Instrument(program=program, name="strings")
        for _, start, degree in self.bars(self.sections(0.7)):
            for k, pc in enumerate(self.chord_classes(degree)):
                self.note(part, self.nearest(pc, 62 + 4 * k), start, 4 * self.beat * 0.98, 60)
        return part, "Strings (continued)"

    def synth_lead(self) -> tuple[pretty_midi.Instrument, str]:
        program = int(self.rng.integers(80, 88))
        part = pretty_midi.Instrument(program=program, name="synth")
        pitches = self.scale_pitches(67, 91)
        index = len(pitches) // 2
        for _, start, _ in self.bars(self.sections(0.5)):
            for k in range(4):
                index = int(np.clip(index + self.rng.choice([-1, 0, 1, 2]), 0, len(pitches) - 1))
                self.note(part, pitches[index], start + k * self.beat, self.beat * 0.8, 70)
        return part, "Synth Lead"


def compose_song(seed: int, index: int, seconds: float) -> Song:
    """Compose track ``index`` of a dataset with ``seed``: bass, guitar, piano and maybe distractors.

    About one track in five leaves out one of bass/guitar/piano entirely; within a track each instrument
    also rests for whole 4-bar sections, so crops see every combination of active instruments.
    """
    rng = np.random.default_rng([seed, index])
    composer = _Composer(rng, seconds)
    targets = {"Bass": composer.bass, "Guitar": composer.guitar, "Piano": composer.piano}
    absent = None
    if rng.random() < 0.2:
        absent = str(rng.choice(list(targets)))
    parts = [StemPart(make(), inst_class) for inst_class, make in targets.items() if inst_class != absent]
    if rng.random() < 0.4:
        parts.append(StemPart(composer.drums(), "Drums"))
    if rng.random() < 0.25:
        parts.append(StemPart(*composer.strings()))
    if rng.random() < 0.2:
        parts.append(StemPart(*composer.synth_lead()))
    for part in parts:
        part.gain_db = float(rng.uniform(-6.0, 0.0))
    return Song(parts, composer.tempo, seconds, info={"absent": absent})


def song_from_midi(path: Path, max_seconds: float | None, seed: int, index: int) -> Song:
    """A user's MIDI file as a song: one stem per non-empty MIDI instrument, cut to ``max_seconds``."""
    midi = load_midi(path)
    rng = np.random.default_rng([seed, index])
    seconds = midi.get_end_time()
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    parts = []
    for instrument in midi.instruments:
        notes = [n for n in instrument.notes if n.start < seconds]
        if not notes:
            continue
        copy = pretty_midi.Instrument(program=instrument.program, is_drum=instrument.is_drum, name=instrument.name)
        copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, seconds)) for n in notes]
        copy.control_changes = [c for c in instrument.control_changes if c.time < seconds]
        copy.pitch_bends = [b for b in instrument.pitch_bends if b.time < seconds]
        inst_class = "Drums" if instrument.is_drum else GM_FAMILIES[instrument.program // 8]
        if inst_class == "Ensemble":
            inst_class = "Strings (continued)"
        parts.append(StemPart(copy, inst_class, float(rng.uniform(-3.0, 0.0))))
    if not parts:
        raise ValueError(f"{path}: MIDI file has no notes")
    return Song(parts, midi.estimate_tempo() if len(midi.get_onsets()) > 1 else 120.0, seconds, source=str(path))


# ----------------------------------------------------------------------------------------------- rendering
def render_stem(part: StemPart, sample_rate: int, n_samples: int, soundfont: Path) -> np.ndarray:
    """Render one stem alone with FluidSynth, trimmed or zero-padded to ``n_samples``: ``(time,)`` float64."""
    audio = _fluidsynth(part.instrument, sample_rate, Path(soundfont))[:n_samples]
    if audio.size < n_samples:
        audio = np.pad(audio, (0, n_samples - audio.size))
    return audio


def quantise_song(stems: list[np.ndarray], gains_db: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Level stems, scale the mixture to peak 0.9 and quantise: ``(stems int16 (S, T), mix int16 (T,))``.

    Each stem is first normalised to unit RMS and given its gain, then all share one scale so that the
    mixture peaks at 0.9; the mixture is the integer sum of the int16 stems, hence exact.
    """
    levelled = []
    for audio, gain_db in zip(stems, gains_db, strict=True):
        rms = float(np.sqrt(np.mean(audio**2)))
        levelled.append(audio / rms * 10 ** (gain_db / 20) if rms > 0 else audio)
    stacked = np.stack(levelled)
    peak = float(np.abs(stacked.sum(axis=0)).max())
    scale = _PEAK * 32767 / peak if peak > 0 else 1.0
    quantised = np.round(stacked * scale).astype(np.int32)
    mix = quantised.sum(axis=0)
    if np.abs(mix).max() > 32767:  # cannot happen with _PEAK < 1 - S / 32767, kept as a guard
        raise RuntimeError("mixture overflows int16 after quantisation")
    return quantised.astype(np.int16), mix.astype(np.int16)


def _write_yaml(path: Path, data: dict) -> None:
    """Write ``data`` as YAML atomically, readable as the umask allows (``fileio``)."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def _write_midi(path: Path, instruments: list[pretty_midi.Instrument], tempo: float) -> None:
    """Write a MIDI file of ``instruments`` atomically, readable as the umask allows (``midi.write_midi``)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    midi.instruments.extend(instruments)
    write_midi(path, midi)


def write_track(track_dir: Path, song: Song, sample_rate: int, soundfont: Path, held_out: bool = False) -> dict:
    """Render ``song`` into ``track_dir`` in the Slakh layout with ``soundfont``; returns a one-line summary dict.

    metadata.yaml records the soundfont (``soundfont``: file name, ``soundfont_path``, and ``soundfont_held_out``:
    whether it is a held-out test soundfont) besides Slakh's own ``plugin_name`` per stem and ``synthesizer``.
    """
    (track_dir / "stems").mkdir(parents=True, exist_ok=True)
    (track_dir / "MIDI").mkdir(exist_ok=True)
    n_samples = int(round(song.seconds * sample_rate))
    rendered = [render_stem(part, sample_rate, n_samples, soundfont) for part in song.parts]
    stems, mix = quantise_song(rendered, [part.gain_db for part in song.parts])
    stem_meta = {}
    for number, (part, audio) in enumerate(zip(song.parts, stems, strict=True)):
        stem_id = f"S{number:02d}"
        write_audio(track_dir / "stems" / f"{stem_id}.flac", audio, sample_rate)
        _write_midi(track_dir / "MIDI" / f"{stem_id}.mid", [part.instrument], song.tempo)
        program = part.instrument.program
        stem_meta[stem_id] = {
            "audio_rendered": True,
            "inst_class": part.inst_class,
            "integrated_loudness": round(integrated_loudness(audio / 32768.0, sample_rate), 3),
            "is_drum": bool(part.instrument.is_drum),
            "midi_program_name": ("Drums" if part.instrument.is_drum
                                  else pretty_midi.program_to_instrument_name(program)),
            "midi_saved": True,
            "plugin_name": soundfont.name,
            "program_num": int(program),
        }
    write_audio(track_dir / "mix.flac", mix, sample_rate)
    _write_midi(track_dir / "all_src.mid", [part.instrument for part in song.parts], song.tempo)
    metadata = {
        "UUID": uuid.uuid5(uuid.NAMESPACE_URL, str(track_dir.name) + repr(song.info) + str(song.source)).hex,
        "audio_dir": "stems",
        "midi_dir": "MIDI",
        "lmd_midi_dir": song.source,
        "normalization_factor": round(integrated_loudness(mix / 32768.0, sample_rate), 3),
        "overall_gain": 1.0,
        "target_peak": round(20 * math.log10(_PEAK), 3),
        "sample_rate": sample_rate,
        "synthesizer": f"scoresep {__version__} (FluidSynth, {soundfont.name})",
        "soundfont": soundfont.name,
        "soundfont_path": str(soundfont),
        "soundfont_held_out": held_out,
        "stems": stem_meta,
    }
    _write_yaml(track_dir / "metadata.yaml", metadata)  # written last: a track without it is incomplete
    return {"track": track_dir.name, "stems": len(song.parts), "seconds": song.seconds, "soundfont": soundfont.name}


@dataclass
class _Job:
    index: int
    track_dir: Path
    seed: int
    seconds: float | None
    sample_rate: int
    soundfont: Path
    midi_path: Path | None
    held_out: bool = False


def _run_job(job: _Job) -> dict:
    if job.midi_path is None:
        song = compose_song(job.seed, job.index, job.seconds)
    else:
        song = song_from_midi(job.midi_path, job.seconds, job.seed, job.index)
    return write_track(job.track_dir, song, job.sample_rate, job.soundfont, job.held_out)


def synthesise(
    out: str | os.PathLike,
    tracks: int = 48,
    seconds: float | None = 30.0,
    seed: int = 0,
    sample_rate: int = 16_000,
    soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    midi_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    *,
    soundfonts: Sequence[str | os.PathLike] | None = None,
    test_soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> list[dict]:
    """Write a mini-Slakh under ``out``; returns one summary per track.

    With ``midi_dir`` the ``*.mid``/``*.midi`` files found there (recursively, sorted) are rendered instead
    of composed music; ``tracks`` then caps their number and ``seconds`` (None: whole files) their length.

    Timbre variety: ``soundfont`` (one spec or several, as ``--soundfont`` gives them) and ``soundfonts`` are
    pooled (specs: see ``resolve_soundfonts``; none: TimGM6mb) and each track draws one from (seed, track index),
    so the same arguments give the same dataset. ``test_soundfont``: the test split is rendered only with it (or
    them) and train/validation never are, to measure how far learnt timbre carries over. Every soundfont is
    checked before the first track is rendered.
    """
    out = Path(out)
    plan = resolve_soundfonts([*_as_specs(soundfont), *_as_specs(soundfonts)], test_soundfont)
    if midi_dir is not None:
        midi_files = sorted(p for p in Path(midi_dir).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        if not midi_files:
            raise FileNotFoundError(f"{midi_dir}: no .mid/.midi files found")
        midi_files = midi_files[:tracks] if tracks else midi_files
        n_tracks = len(midi_files)
    else:
        if seconds is None or seconds <= 0:
            raise ValueError("seconds must be positive for composed tracks")
        midi_files, n_tracks = [], tracks
    splits = assign_splits(n_tracks, seed)
    if plan.test and "test" not in splits:
        log.warning("%d tracks give no test split: the held-out test soundfont is not used", n_tracks)
    jobs = [
        _Job(i, out / splits[i] / f"Track{i + 1:05d}", seed, seconds, sample_rate,
             plan.pick(seed, i, splits[i]), midi_files[i] if midi_files else None,
             held_out=bool(plan.test) and splits[i] == "test")
        for i in range(n_tracks)
    ]
    workers = workers or min(os.cpu_count() or 1, n_tracks)
    started = time.perf_counter()
    summaries = []
    if workers > 1:
        with worker_pool(workers) as pool:
            results = pool.imap_unordered(_run_job, jobs)
            for done, summary in enumerate(results, start=1):
                summaries.append(summary)
                _progress(progress, done, n_tracks, summary, started)
    else:
        for done, job in enumerate(jobs, start=1):
            summaries.append(_run_job(job))
            _progress(progress, done, n_tracks, summaries[-1], started)
    return sorted(summaries, key=lambda s: s["track"])


def _progress(enabled: bool, done: int, total: int, summary: dict, started: float) -> None:
    if enabled:
        elapsed = time.perf_counter() - started
        print(f"[synth {done:>4}/{total}] {summary['track']}: {summary['stems']} stems, "
              f"{summary['seconds']:.1f} s, {summary['soundfont']}  ({elapsed:.1f} s elapsed)",
              file=sys.stderr, flush=True)
