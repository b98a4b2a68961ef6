"""The data and set-up commands: ``scoresep env``, ``synth`` (render a mini-Slakh), ``prepare`` (decode a
dataset once into a cache) and ``pack`` (a score-only dataset from a user's recordings and scores)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from pathlib import Path

from scoresep.cli.options import add_score_check_options
from scoresep.constants import DEFAULT_INSTRUMENTS, HOP_LENGTH, MAX_MIDI, MIN_MIDI, SAMPLE_RATE


def _versions() -> dict[str, str]:
    names = {"torch": "torch", "torchaudio": "torchaudio", "nnAudio2": "nnaudio2", "pytorch-lightning":
             "pytorch-lightning", "jsonargparse": "jsonargparse", "pretty_midi": "pretty_midi",
             "mir_eval": "mir_eval", "soundfile": "soundfile", "pyfluidsynth": "pyfluidsynth", "wandb": "wandb"}
    versions = {}
    for label, distribution in names.items():
        try:
            versions[label] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[label] = "not installed"
    return versions


def command_env(_: argparse.Namespace) -> None:
    """Print the versions that matter for bug reports and whether a GPU is visible."""
    import torch

    from scoresep import __version__

    print(f"{'scoresep':<18} {__version__}")
    print(f"{'python':<18} {platform.python_version()} ({platform.platform()})")
    for label, version in _versions().items():
        extra = f" (CUDA build {torch.version.cuda})" if label == "torch" and torch.version.cuda else ""
        print(f"{label:<18} {version}{extra}")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"{'GPU':<18} yes: {torch.cuda.device_count()} visible ({names})")
    else:
        print(f"{'GPU':<18} no CUDA device visible (training runs on the CPU)")


def command_synth(args: argparse.Namespace) -> None:
    from scoresep.data.synth import synthesise

    seconds = args.seconds if args.seconds is not None else (None if args.midi_dir else 30.0)
    summaries = synthesise(args.out, tracks=args.tracks, seconds=seconds, seed=args.seed,
                           sample_rate=args.sample_rate, soundfont=args.soundfont, midi_dir=args.midi_dir,
                           workers=args.workers)
    print(f"wrote {len(summaries)} tracks to {args.out}")


def command_prepare(args: argparse.Namespace) -> None:
    from scoresep.data.cache import prepare

    folder = prepare(args.root, args.cache, args.instruments, args.sample_rate, args.hop_length, args.min_midi,
                     args.max_midi, workers=args.workers, strict=args.strict)
    print(f"cache ready: {folder}")


def command_pack(args: argparse.Namespace) -> None:
    from scoresep.data.pack import INDEX_NAME, pack, parse_split

    fractions = parse_split(args.split)
    result = pack(args.inputs, args.midi, args.out, args.instruments, fractions, align=args.align,
                  length_tolerance=args.length_tolerance, min_quality=args.min_quality, seed=args.seed,
                  progress=not args.quiet)
    for skipped in result.skipped:
        print(f"scoresep pack: skipped: {skipped}", file=sys.stderr)
    empty = [split for split, count in result.splits.items() if count == 0]
    if result.packed and empty:
        print(f"scoresep pack: note: the dataset has no {' and no '.join(empty)} track (--split {args.split} gives "
              "them one each only from 3 new tracks on); training needs a validation track", file=sys.stderr)
    minutes = result.audio_seconds / 60
    rate = f", {result.seconds / minutes:.1f} s per minute of audio" if minutes > 0 else ""
    print(f"packed {len(result.packed)} track(s) into {args.out} ({result.reused} already there, "
          f"{len(result.packed) - result.reused} new: {minutes:.1f} min of audio in {result.seconds:.1f} s{rate}); "
          f"{len(result.skipped)} skipped; index {Path(args.out) / INDEX_NAME}")
    if result.skipped:
        raise SystemExit(f"scoresep pack: {len(result.skipped)} file(s) skipped (listed above and in "
                         f"{Path(args.out) / INDEX_NAME})")


def add_data_commands(commands) -> None:
    """Register env, synth, prepare and pack on the CLI's sub-parsers."""
    env = commands.add_parser("env", help="print versions and whether a GPU is visible")
    env.set_defaults(run=command_env)

    synth = commands.add_parser("synth", help="render a mini-Slakh (Slakh2100 layout) with FluidSynth")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--tracks", type=int, default=48, help="number of tracks (with --midi-dir: at most)")
    synth.add_argument("--seconds", type=float, default=None,
                       help="track length (default 30; with --midi-dir: whole files unless given)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    # every soundfont option lands in args.soundfont (a list of specs that synthesise() reads, see
    # scoresep.data.synth.resolve_soundfonts): --test-soundfont PATH is stored as the spec "test:PATH"
    synth.add_argument("--soundfont", "--soundfonts", dest="soundfont", action="extend", nargs="+", default=None,
                       metavar="SF", help="soundfont(s) for train/validation, one drawn per track from (seed, track): "
                                          ".sf2/.sf3 paths, 'default' (pretty_midi's TimGM6mb.sf2, the default) or "
                                          "'all' (every GM soundfont installed here); repeatable")
    synth.add_argument("--test-soundfont", dest="soundfont", action="append", metavar="SF",
                       type=lambda path: f"test:{path}",
                       help="render the test split only with this soundfont, never used by train/validation "
                            "(held-out timbre; same as --soundfont test:SF); repeatable")
    synth.add_argument("--midi-dir", default=None, help="render these MIDI files instead of composing music")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.set_defaults(run=command_synth)

    prep = commands.add_parser("prepare", help="decode and resample a dataset once into a cache")
    prep.add_argument("--root", required=True, help="Slakh-layout dataset folder")
    prep.add_argument("--cache", default="data/cache", help="cache folder (default data/cache)")
    prep.add_argument("--instruments", nargs="+", default=list(DEFAULT_INSTRUMENTS))
    prep.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    prep.add_argument("--hop-length", type=int, default=HOP_LENGTH)
    prep.add_argument("--min-midi", type=int, default=MIN_MIDI)
    prep.add_argument("--max-midi", type=int, default=MAX_MIDI)
    prep.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    prep.add_argument("--strict", action="store_true", help="stop at the first bad file")
    prep.set_defaults(run=command_prepare)

    pack = commands.add_parser("pack", help="a score-only dataset (Slakh layout) from recordings and their MIDI "
                                            "scores, optionally aligned")
    pack.add_argument("inputs", nargs="+", help="recordings (flac, wav, mp3, ogg, aiff) or folders of them")
    pack.add_argument("--midi", required=True, help="folder of the MIDI scores, matched by name (song.flac + song.mid)")
    pack.add_argument("--out", required=True, help="dataset folder to create or extend")
    pack.add_argument("--split", default="0.8,0.1,0.1", help="train,validation,test fractions (default 0.8,0.1,0.1)")
    add_score_check_options(pack, "align each score to its recording (synctoolbox MrMsDTW)")
    pack.add_argument("--instruments", nargs="+", default=list(DEFAULT_INSTRUMENTS),
                      help="a score must hold at least one of them (default: bass guitar piano)")
    pack.add_argument("--seed", type=int, default=0, help="split assignment of new tracks")
    pack.add_argument("--quiet", action="store_true", help="no progress bar")
    pack.set_defaults(run=command_pack)
