"""``scoresep separate``: audio files into one file per instrument plus the residual, with a checkpoint, the
recording's score, or both.

Everything it can check is checked before any work starts (device, output path, inputs, checkpoint, an earlier
separation it would replace), cheapest first, and nothing is created before those checks pass; every output
appears whole or not at all, and an output folder a failed run created and left empty is removed again. A
failing input in a batch is reported and the others still run; the command then exits non-zero."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from scoresep.cli.inputs import _progress, audio_inputs, each_input, end_of_batch, out_folder_argument
from scoresep.cli.options import (
    add_compute_options,
    add_score_check_options,
    at_least_one,
    positive,
    unit_interval,
)
from scoresep.constants import (
    DEFAULT_INSTRUMENTS,
    HARMONIC_TOLERANCE,
    LEARNED_WEIGHT,
    N_HARMONICS,
    PACK_LENGTH_TOLERANCE,
    SILENCE,
)
from scoresep.constants import n_frames as frame_count
from scoresep.data.audio import AudioError
from scoresep.errors import SettingsError
from scoresep.fileio import OutputExistsError, output_lock
from scoresep.inference.writers import AUDIO_FORMATS, StemWriter, output_folder

# What an audio-only checkpoint's masks gave `separate --score` at the default --learned-weight, against --score alone,
# on the 45 mini-Slakh test songs, both training seeds (average SI-SDRi; docs/results.md "Audio-only checkpoints with
# the score").
NOTE_SCORE_SUPERVISED = "+0.03 to +0.15"
NOTE_SUPERVISED = "+0.66 to +0.67"


def score_of(path: Path, score: str | None) -> Path | None:
    """The MIDI score of input ``path``: ``score`` itself (a .mid file, for one input) or ``score/<stem>.mid``."""
    if score is None:
        return None
    given = Path(score)
    if given.is_dir():
        for suffix in (".mid", ".midi"):
            if (given / f"{path.stem}{suffix}").is_file():
                return given / f"{path.stem}{suffix}"
        raise AudioError(f"{path}: no score {path.stem}.mid in --score folder {given}")
    if not given.is_file():
        raise FileNotFoundError(f"{given}: --score is neither a MIDI file nor a folder")
    return given


def load_score(separator, source, midi_path: Path, align: bool, min_quality: float,
               length_tolerance: float = PACK_LENGTH_TOLERANCE) -> np.ndarray:
    """Rolls ``(instrument, pitch, frame)`` of a score on the separator's frames for ``source``, once the score is
    checked against the recording (``data/score_check.py``: notes in the pitch range, lengths, agreement; with
    ``align`` it is aligned first and the alignment checked). Prints what it found."""
    from scoresep.data.midi import load_midi
    from scoresep.data.score_check import fit_score
    from scoresep.score import score_rolls

    midi = load_midi(midi_path)
    features = separator.features
    midi, fit = fit_score(midi, str(midi_path), source.read(0, source.n_samples), features.sample_rate, source.name,
                          features.instruments, features.min_midi, features.max_midi, align=align,
                          length_tolerance=length_tolerance, min_quality=min_quality)
    what = f"aligned (quality {fit.agreement:.2f}, {fit.stretch:.2f}x)" if align else \
        f"agrees with the recording (chroma agreement {fit.agreement:.2f})"
    outside = f"; {fit.notes - fit.notes_in_range} of {fit.notes} notes outside the pitch range go to the residual" \
        if fit.notes_in_range < fit.notes else ""
    print(f"{source.name}: note: score {what}{outside}", file=sys.stderr)
    n_frames = frame_count(source.n_samples, features.hop_length)
    rolls, _ = score_rolls(midi, features.instruments, n_frames, features.frame_rate, features.min_midi,
                           features.max_midi)
    return rolls


def stem_paths(separator, out_dir: Path, path: Path, audio_format: str) -> list[Path]:
    """The files separating ``path`` writes: ``out_dir/<stem>/<instrument>.<ext>`` and ``residual.<ext>``."""
    suffix = "flac" if audio_format == "flac" else "wav"
    return [out_dir / path.stem / f"{name}.{suffix}" for name in (*separator.instruments, "residual")]


def refuse_earlier_separation(paths: list[Path], overwrite: bool) -> None:
    """OutputExistsError when an input's output folder holds files this separation would replace (an earlier
    separation), unless ``overwrite``."""
    existing = [path for path in paths if os.path.lexists(path)]
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        raise OutputExistsError(f"{paths[0].parent}: holds an earlier separation ({names}); give --overwrite to "
                                "replace it, or another --out")


def separate_file(separator, path: Path, out_dir: Path, audio_format: str, show_progress: bool,
                  score: Path | None = None, align: bool = False, min_quality: float = 0.0,
                  length_tolerance: float = PACK_LENGTH_TOLERANCE, overwrite: bool = False) -> list[Path]:
    """Separate one file into ``out_dir/<file stem>/<instrument>.<ext>`` and ``residual.<ext>``, with its MIDI
    ``score`` when given (checked against the recording, aligned first with ``align``). An earlier separation
    there is replaced only with ``overwrite``; another run writing the same folder at the same time is refused."""
    from scoresep.inference.sources import FileSource

    source = FileSource(path, separator.sample_rate)
    for note in source.notes:
        print(f"{path}: note: {note}", file=sys.stderr)
    separator.check_length(source)  # before a score is read and aligned for it
    rolls = load_score(separator, source, score, align, min_quality, length_tolerance) if score is not None else None
    target = out_dir / path.stem
    if os.path.lexists(target) and not target.is_dir():
        raise AudioError(f"{target}: a file of that name is in the way of this input's output folder")
    paths = stem_paths(separator, out_dir, path, audio_format)
    peak = 0.0
    # the input's folder goes again if nothing was written into it, unless it was there before (the user's)
    with output_lock(target):
        refuse_earlier_separation(paths, overwrite)  # again: a run that ended since the first check wrote it
        with output_folder(target, check_writable=False), \
                StemWriter(paths, separator.sample_rate, audio_format) as writer, \
                _progress(source.n_samples / source.sample_rate, path.name, show_progress) as bar:
            for _, pieces in separator.stream(source, rolls):
                peak = max(peak, float(abs(pieces.sum(axis=0)).max()))
                writer.write(pieces)
                bar.update(pieces.shape[1] / source.sample_rate)
            if peak < SILENCE:
                raise AudioError(f"{path}: the audio is silent (peak {peak:.1e}); nothing to separate")
            written = writer.commit()
    if writer.clipped:
        print(f"{path}: note: {writer.clipped} samples clipped to [-1, 1]; use --format wav32 to keep them",
              file=sys.stderr)
    return written


def command_separate(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from scoresep.data.align import AlignmentError
    from scoresep.data.midi import MidiError
    from scoresep.features import FeatureSettings
    from scoresep.inference.separation import Separator, pick_device
    from scoresep.instruments import check_instruments
    from scoresep.score import HarmonicSettings

    if args.ckpt is None and args.learned_weight is not None:
        raise SettingsError("--learned-weight weighs a checkpoint's masks against the score's: give --ckpt and "
                            "--score")
    if args.ckpt is None and args.score is None:
        raise SettingsError("give --ckpt (a trained separator), --score (the recording's MIDI: training-free "
                            "score-informed separation) or both")
    if args.align and args.score is None:
        raise SettingsError("--align aligns a score: give --score as well")
    device = pick_device(args.device, "--device")
    out = out_folder_argument(args.out)
    files = audio_inputs(args.inputs)
    if args.score is not None and Path(args.score).is_file() and len(files) != 1:
        raise SettingsError(f"--score {args.score} is one MIDI file but {len(files)} inputs were given; give a folder "
                            "of scores named like the inputs")
    if args.ckpt is None and args.instruments is not None:
        check_instruments(args.instruments)  # before the output check below can name a folder
    if args.ckpt is not None:
        if args.instruments is not None:
            raise SettingsError("--instruments is for separating without --ckpt; a checkpoint separates its own "
                                "instruments")
        given = {key: value for key, value in (("n_harmonics", args.n_harmonics),
                                               ("tolerance", args.harmonic_tolerance)) if value is not None}
        learned_weight = LEARNED_WEIGHT if args.learned_weight is None else args.learned_weight
        separator = Separator.from_checkpoint(args.ckpt, chunk_seconds=args.chunk_seconds, device=device,
                                              learned_weight=learned_weight)
        if separator.network.reads_score and args.score is None:
            raise SettingsError(f"{args.ckpt}: its separator ({type(separator.network).__name__}) reads the score as "
                                "well as the audio; give each recording's score with --score")
        if args.learned_weight is not None and (args.score is None or separator.network.reads_score):
            raise SettingsError(f"{args.ckpt}: --learned-weight weighs an audio-only separator's masks against the "
                                "score's; it needs --score and a separator that hears only the audio")
        if args.score is not None and not separator.network.reads_score:
            print(f"{args.ckpt}: note: this separator hears only the audio; with --score each bin stays with the "
                  "instruments whose notes cover it, and the separator's masks split the bins several cover "
                  f"(weight {learned_weight:g} against an equal split, --learned-weight). At the default "
                  f"{LEARNED_WEIGHT:g}, on the mini-Slakh test songs, that is {NOTE_SCORE_SUPERVISED} dB against "
                  f"--score alone for the score-supervised checkpoints and {NOTE_SUPERVISED} dB for a supervised "
                  "one; a score-informed checkpoint reads the score itself (docs/usage.md)", file=sys.stderr)
        if separator.network.reads_score and given:
            raise SettingsError(f"{args.ckpt}: its separator reads the score through the harmonic masks it trained "
                                "with; --n-harmonics and --harmonic-tolerance cannot change them")
        if given:  # the options override the harmonic masks the checkpoint trained with
            separator = Separator(separator.network, separator.features, args.chunk_seconds, device,
                                  replace(separator.harmonics, **given), learned_weight=learned_weight)
    else:
        features = FeatureSettings.defaults(check_instruments(args.instruments or DEFAULT_INSTRUMENTS))
        harmonics = HarmonicSettings(N_HARMONICS if args.n_harmonics is None else args.n_harmonics,
                                     HARMONIC_TOLERANCE if args.harmonic_tolerance is None else args.harmonic_tolerance)
        separator = Separator.from_score(features, args.chunk_seconds, device, harmonics)
    for path in files:  # before any work: an earlier separation is replaced only when the user asks
        refuse_earlier_separation(stem_paths(separator, out, path, args.format), args.overwrite)
    with output_folder(out) as out_dir:
        def separate_one(path: Path) -> str:
            written = separate_file(separator, path, out_dir, args.format, not args.quiet, score_of(path, args.score),
                                    args.align, args.min_quality, args.length_tolerance, args.overwrite)
            return f"{path} -> {', '.join(str(p) for p in written)}"

        failures = each_input("separate", files, (AudioError, MidiError, AlignmentError, OSError), separate_one)
    end_of_batch("separate", failures, len(files))


def add_separate_command(commands) -> None:
    """Register ``separate`` on the CLI's sub-parsers."""
    separate = commands.add_parser("separate", help="separate audio files into one file per instrument")
    separate.add_argument("inputs", nargs="+", help="audio files (wav, flac, mp3, ogg, aiff) or folders of them")
    separate.add_argument("--ckpt", default=None, help="a stage-2, stage-3 or adapt checkpoint")
    separate.add_argument("--score", default=None,
                          help="the input's MIDI score (one input) or a folder of scores named like the inputs: "
                               "each instrument's mask is restricted to its notes' harmonics; without --ckpt the "
                               "score's masks alone (no training), with an audio-only --ckpt its masks split the "
                               "bins several instruments' notes cover (--learned-weight)")
    add_score_check_options(separate, "align each score to its recording first")
    separate.add_argument("--learned-weight", type=unit_interval, default=None, metavar="W",
                          help="--score with an audio-only --ckpt: the weight of the checkpoint's split of the bins "
                               "that several instruments' harmonics cover, against an equal split (0: the score's "
                               f"masks alone, 1: the checkpoint's split; default {LEARNED_WEIGHT:g}, chosen on "
                               "mini-Slakh's validation songs so that no checkpoint there does worse than --score "
                               "alone; a supervised checkpoint gained more at 0.75)")
    separate.add_argument("--instruments", nargs="+", default=None,
                          help="without --ckpt: the instruments to separate (default: bass guitar piano)")
    separate.add_argument("--n-harmonics", type=at_least_one, default=None,
                          help=f"score masks: harmonics per note (default: the checkpoint's, else {N_HARMONICS})")
    separate.add_argument("--harmonic-tolerance", type=positive, default=None,
                          help="score masks: half-width in semitones (default: the checkpoint's, else "
                               f"{HARMONIC_TOLERANCE:g})")
    separate.add_argument("--out", required=True, help="output folder (one sub-folder per input)")
    separate.add_argument("--overwrite", action="store_true",
                          help="replace an earlier separation in --out (without it, the run refuses to)")
    separate.add_argument("--format", choices=sorted(AUDIO_FORMATS), default="wav",
                          help="wav/flac: 16-bit; wav32: 32-bit float (default wav)")
    add_compute_options(separate)
    separate.add_argument("--quiet", action="store_true", help="no progress bar")
    separate.set_defaults(run=command_separate)
