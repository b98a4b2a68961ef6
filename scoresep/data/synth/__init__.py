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

One job per module, imported in this order (each only from those above it):

- ``song``: Song and StemPart (what is rendered) and ``song_from_midi`` (a user's MIDI file as a Song)
- ``compose``: seeded composition of a Song (``compose_song``)
- ``render``: FluidSynth rendering of one stem and the int16 levelling of a song's stems
- ``soundfonts``: finding, checking and choosing soundfonts (``resolve_soundfonts``, ``SoundfontPlan``)
- ``layout``: one track written in the Slakh layout (``write_track``)
- ``driver``: ``synthesise``, the whole dataset, in a worker pool

This package re-exports their public names, so ``from scoresep.data.synth import synthesise`` keeps working.
"""

from scoresep.data.synth.compose import compose_song
from scoresep.data.synth.driver import synthesise
from scoresep.data.synth.layout import write_track
from scoresep.data.synth.render import quantise_song, render_stem
from scoresep.data.synth.song import Song, StemPart, song_from_midi
from scoresep.data.synth.soundfonts import (
    ALL_SOUNDFONTS,
    DEFAULT_SOUNDFONT,
    SYSTEM_SOUNDFONTS,
    TEST_PREFIX,
    SoundfontPlan,
    available_soundfonts,
    check_soundfont,
    default_soundfont,
    resolve_soundfonts,
)

__all__ = [
    "ALL_SOUNDFONTS",
    "DEFAULT_SOUNDFONT",
    "SYSTEM_SOUNDFONTS",
    "TEST_PREFIX",
    "Song",
    "SoundfontPlan",
    "StemPart",
    "available_soundfonts",
    "check_soundfont",
    "compose_song",
    "default_soundfont",
    "quantise_song",
    "render_stem",
    "resolve_soundfonts",
    "song_from_midi",
    "synthesise",
    "write_track",
]
