"""Audio of one song: each stem rendered alone with FluidSynth, then levelled and quantised to 16 bit so that the
mixture is the integer sum of the quantised stems (``mix.flac == sum(stems/*.flac)`` exactly).

``_fluidsynth`` is also what ``soundfonts.check_soundfont`` renders a test note with, so a soundfont is checked
by the same code path that will render the dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi

from scoresep.data.synth.song import StemPart
from scoresep.errors import SettingsError

_PEAK = 0.9  # mixture peak after scaling, leaves room for int16 rounding of every stem


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
            raise SettingsError(f"{soundfont}: FluidSynth cannot load this soundfont")
        return np.asarray(instrument.fluidsynth(fs=sample_rate, synthesizer=synth, sfid=sfid), dtype=np.float64)
    finally:
        synth.delete()



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
