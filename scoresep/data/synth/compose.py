"""Seeded composition of a mini-Slakh song: key, tempo, chord progression, bass line, guitar and piano parts
with overlapping ranges, and optional distractor stems (drums, strings, synth lead).

Every random draw comes from ``np.random.default_rng([seed, index])`` in a fixed order, so the same (seed, track
index) always gives the same song: the order of the draws here is part of the dataset and must not change.
"""

from __future__ import annotations

import numpy as np
import pretty_midi

from scoresep.data.synth.song import Song, StemPart

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 3, 0, 4), (3, 4, 2, 5))


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
