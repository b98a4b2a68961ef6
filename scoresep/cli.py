"""The ``scoresep`` command.

``scoresep fit|validate|test|predict`` are LightningCLI subcommands (every value comes from the typed
``__init__`` signatures and the YAML under experiments/); ``synth``, ``pack``, ``prepare`` and ``env`` are plain
commands for data and set-up.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import platform
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from scoresep.constants import (
    ALIGN_MIN_QUALITY,
    DEFAULT_INSTRUMENTS,
    HOP_LENGTH,
    MAX_MIDI,
    MIN_MIDI,
    PACK_LENGTH_TOLERANCE,
    SAMPLE_RATE,
)

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
USER_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, NotADirectoryError, PermissionError, ValueError,
                                            FloatingPointError)


def _user_errors() -> tuple[type[Exception], ...]:
    from scoresep.checkpoints import CheckpointError
    from scoresep.data.align import AlignmentError
    from scoresep.data.audio import AudioError
    from scoresep.data.midi import MidiError
    from scoresep.data.slakh import DatasetError
    from scoresep.report import ReportError
    from scoresep.reproduce import ReproduceError

    return USER_ERRORS + (AudioError, MidiError, DatasetError, CheckpointError, ReportError, ReproduceError,
                          AlignmentError)


FEATURE_LINKS = ("instruments", "sample_rate", "n_fft", "hop_length", "min_midi", "max_midi", "stft_backend")


def lightning_main(args: list[str] | None) -> None:
    """Run a LightningCLI subcommand with the project's DataModule and any stage as the model.

    The feature settings (instruments, sample rate, STFT, pitch range) are declared once, under ``data``, and
    linked into the stage (``model.init_args.*``): they cannot drift apart.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningCLI

    from scoresep.configs import base_config_files
    from scoresep.data.datamodule import SlakhDataModule
    from scoresep.training import SaveConfig, Trainer

    class ScoresepCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for key in FEATURE_LINKS:
                parser.link_arguments(f"data.{key}", f"model.init_args.{key}")

        def _parse_ckpt_path(self) -> None:
            # LightningCLI rebuilds the model from a --ckpt_path's saved hyper-parameters: a checkpoint of another
            # stage would silently replace the YAML's model and overwrite its checkpoints. Refuse it first.
            subcommand = self.config.get("subcommand")
            if subcommand:
                check_ckpt_path(self.config[subcommand])
            super()._parse_ckpt_path()

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    # Lightning stops cleanly on SIGTERM with a SystemExit whose status is 0, and our PreemptionCheckpoint stops a
    # run on SIGUSR1 by returning normally: a run that did not reach its end must not look finished to a script,
    # a scheduler or `scoresep reproduce`, so both exit with 128 + the signal's number.
    try:
        # experiments/base/ is read before the experiment's --config (scoresep/configs.py)
        parser_kwargs = {name: {"default_config_files": base_config_files()} for name in LIGHTNING_COMMANDS}
        cli = ScoresepCLI(pl.LightningModule, SlakhDataModule, trainer_class=Trainer, subclass_mode_model=True,
                          args=args, parser_kwargs=parser_kwargs,
                          save_config_callback=SaveConfig, save_config_kwargs={"overwrite": True},
                          auto_configure_optimizers=False)
        stopped_by = interrupting_signal(cli.trainer) if cli.subcommand == "fit" else None
    except SIGTERMException:
        stopped_by = signal.SIGTERM
    except SystemExit as exit_:
        # Lightning answers a Ctrl-C that came before training started, or a second one, with exit(1): let
        # main() report it as every other Ctrl-C
        if exit_.code == 1 and isinstance(exit_.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        _close_process_group()
    if stopped_by is not None:
        saved = ("last.ckpt was saved at this step" if stopped_by != signal.SIGTERM else
                 "nothing was saved at this step; the newest last.ckpt is from the last epoch end, if any")
        print(f"scoresep: stopped by {stopped_by.name} before the end of training; {saved}. Resume with "
              "--ckpt_path last", file=sys.stderr)
        raise SystemExit(128 + stopped_by.value)


# --ckpt_path values that Lightning resolves itself (the newest/best checkpoint of this run's own callbacks)
LIGHTNING_CKPT_ALIASES = ("last", "best", "hpc", "registry")


def check_ckpt_path(config) -> None:
    """Refuse a ``--ckpt_path`` (of fit, validate, test or predict) that is not a checkpoint of the run
    ``config`` (one subcommand's namespace) describes: see ``checkpoints.check_run_checkpoint``."""
    from scoresep.checkpoints import check_run_checkpoint
    from scoresep.features import FeatureSettings

    ckpt_path = config.get("ckpt_path")
    model = config.get("model")
    if not ckpt_path or str(ckpt_path) in LIGHTNING_CKPT_ALIASES or model is None or not model.get("class_path"):
        return
    data = config.data
    features = FeatureSettings(tuple(data.instruments), data.sample_rate, data.n_fft, data.hop_length,
                               data.min_midi, data.max_midi)
    sources = [str(source) for source in (config.get("config") or []) if source]
    where = ", ".join(sources) if sources else "the config"
    check_run_checkpoint(ckpt_path, model.class_path, features, dict(model.get("init_args") or {}), where)


UNION_WRAPPER = "Does not validate against any of the Union subtypes"


def user_error(error: BaseException) -> BaseException:
    """The error to show the user: jsonargparse wraps an exception raised while building a class (an unreadable
    checkpoint, an unknown instrument) in a Union-validation message that ends with a dump of the namespace;
    the first error of the chain that is not such a wrapper says what is wrong."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not str(current).startswith(UNION_WRAPPER):
            return current
        current = current.__cause__ or current.__context__
    return error


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line: the user's last line must say what is wrong."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _close_process_group() -> None:
    """Shut the DDP process group down before the interpreter exits: gloo threads still running at exit can
    abort the process ("terminate called without an active exception"), turning a finished run into a crash."""
    import torch.distributed as distributed

    if distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def interrupting_signal(trainer) -> signal.Signals | None:
    """The signal that stopped a fit early (SIGTERM, or the pre-emption signal), None if it ran to its end."""
    from scoresep.training import PreemptionCheckpoint

    if trainer is None:
        return None
    if trainer.received_sigterm:
        return signal.SIGTERM
    for callback in trainer.callbacks:
        if isinstance(callback, PreemptionCheckpoint) and callback.stopped_by:
            return signal.Signals[callback.stopped_by]
    return None


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


def command_reproduce(args: argparse.Namespace) -> None:
    from scoresep.reproduce import reproduce

    reproduce(args.preset, args.out, data=args.data, rows=args.rows, parallel=args.parallel, threads=args.threads,
              seed=args.seed)
    print(f"report: {Path(args.out) / 'report.md'}")


def command_report(args: argparse.Namespace) -> None:
    from scoresep.report import load_seeds, render_report, render_seeds

    folders = args.results or ["results"]
    if len(folders) > 1:
        load_seeds(folders)  # refuse folders that cannot be compared before any report is rewritten
    for folder in folders:
        for kind, path in render_report(folder).items():
            print(f"{kind:>8}: {path}")
    if len(folders) > 1:
        print(f"{'seeds':>8}: {render_seeds(folders)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoresep", description="Score-supervised music source separation.",
                                     epilog="Training: scoresep {fit,validate,test,predict} --config FILE.yaml "
                                            "(LightningCLI; add --help for its options).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in LIGHTNING_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (scoresep {name} --help)", add_help=False)

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
    pack.add_argument("--align", action="store_true", help="align each score to its recording (synctoolbox MrMsDTW)")
    pack.add_argument("--length-tolerance", type=float, default=PACK_LENGTH_TOLERANCE,
                      help="without --align: largest difference of recording and score length in s "
                           f"(default {PACK_LENGTH_TOLERANCE:g})")
    pack.add_argument("--min-quality", type=float, default=ALIGN_MIN_QUALITY,
                      help="with --align: skip tracks whose alignment quality (0-1) is lower "
                           f"(default {ALIGN_MIN_QUALITY:g})")
    pack.add_argument("--instruments", nargs="+", default=list(DEFAULT_INSTRUMENTS),
                      help="a score must hold at least one of them (default: bass guitar piano)")
    pack.add_argument("--seed", type=int, default=0, help="split assignment of new tracks")
    pack.add_argument("--quiet", action="store_true", help="no progress bar")
    pack.set_defaults(run=command_pack)

    from scoresep.inference.commands import add_commands

    add_commands(commands)

    reproduce = commands.add_parser("reproduce", help="train and evaluate every row of the paper's tables")
    reproduce.add_argument("--preset", default="mini",
                           help="mini (CPU, mini-Slakh, <= 45 min on 2 cores), paper (GPU, Slakh2100) or a YAML")
    reproduce.add_argument("--data", default=None, help="dataset folder (default: the preset's data.root)")
    reproduce.add_argument("--out", default="results", help="results folder (default results/)")
    reproduce.add_argument("--rows", nargs="+", default=None, help="only these rows (and the rows they need)")
    reproduce.add_argument("--parallel", type=int, default=None, help="rows trained at once (default: preset)")
    reproduce.add_argument("--threads", type=int, default=None, help="threads per row (default: cores / parallel)")
    reproduce.add_argument("--seed", type=int, default=0,
                           help="training seed of every row (default 0); the dataset stays the preset's. One seed "
                                "per results folder: give a second seed its own --out, e.g. results/seed1")
    reproduce.set_defaults(run=command_reproduce)

    report = commands.add_parser("report", help="render the tables (Markdown, CSV) and the chart of a results folder")
    report.add_argument("results", nargs="*", default=None,
                        help="results folder (default results/); several, one per training seed (results "
                             "results/seed1): each gets its report and the first also seeds.md, whether each paired "
                             "difference under Table 1 holds in every seed")
    report.set_defaults(run=command_report)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` None means the process's command line."""
    args_given = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        _reporting_errors(argv[0], lambda: lightning_main(argv if args_given else None))
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if not getattr(args, "run", None):
        build_parser().print_help()
        raise SystemExit(2)
    _reporting_errors(args.command, lambda: args.run(args))


def _reporting_errors(command: str, run: Callable[[], None]) -> None:
    """Run ``run()``; a user error (bad data, checkpoint or settings: its message says which file and why) is
    one line and exit status 1, a Ctrl-C one line and 130. Every output is written to a temp file and renamed,
    and a fit's first Ctrl-C saves and stops by itself (PreemptionCheckpoint): nothing is half-written."""
    try:
        run()
    except _user_errors() as error:
        print(f"scoresep {command}: error: {one_line(user_error(error))}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"scoresep {command}: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None


if __name__ == "__main__":
    main()
