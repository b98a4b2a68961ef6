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
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from scoresep.constants import (
    DEFAULT_INSTRUMENTS,
    HOP_LENGTH,
    MAX_MIDI,
    MIN_MIDI,
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


OVERWRITE_HELP = ("fit: replace the checkpoints an earlier run left where this run writes its own (without it a fit "
                  "refuses to start; --ckpt_path resumes that run instead). They are removed when training starts. "
                  "Never saved as true in a run's config.yaml")
RUN_LOG_FOLDER = "logger"  # --checkpoint_dir logger: each run's checkpoints in its own log folder
CHECKPOINT_DIR_HELP = ("fit: write every ModelCheckpoint's files (best.ckpt, last.ckpt) to this folder instead of the "
                       f"config's dirpath (checkpoints/<stage>); '{RUN_LOG_FOLDER}': in the run's own log folder "
                       "(<save_dir>/<name>/<version>/checkpoints, one per run: what a sweep's runs need)")


class CommandLineError(Exception):
    """A command line or config file that does not parse: exit status 2, the message naming the option or file."""


def lightning_main(args: list[str] | None) -> None:
    """Run a LightningCLI subcommand with the project's DataModule and any stage as the model.

    The feature settings (instruments, sample rate, STFT, pitch range) are declared once, under ``data``, and
    linked into the stage (``model.init_args.*``): they cannot drift apart. A fit never replaces another run's
    checkpoints unless told to (``--overwrite``), and says so when it wrote no ``best.ckpt``.
    """
    import pytorch_lightning as pl
    from jsonargparse import ArgumentError
    from pytorch_lightning.cli import LightningCLI

    from scoresep.configs import base_config_files
    from scoresep.data.datamodule import SlakhDataModule
    from scoresep.training import FitOutputs, SaveConfig, Trainer, earlier_checkpoints

    argv = list(args) if args is not None else sys.argv[1:]
    command = argv[0] if argv else "fit"

    class ScoresepCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for key in FEATURE_LINKS:
                parser.link_arguments(f"data.{key}", f"model.init_args.{key}")
            # every subcommand has both, so that a fit's saved config.yaml also serves `scoresep test --config`
            parser.add_argument("--overwrite", type=bool, nargs="?", const=True, default=False, help=OVERWRITE_HELP)
            parser.add_argument("--checkpoint_dir", type=str | None, default=None, help=CHECKPOINT_DIR_HELP)

        def parse_arguments(self, parser, args) -> None:
            try:
                super().parse_arguments(parser, args)
            except ArgumentError as error:
                subcommand_parser = getattr(self, "_subcommand_parsers", {}).get(command)
                raise CommandLineError(describe_parse_error(str(error), argv, subcommand_parser)) from None

        def _parse_ckpt_path(self) -> None:
            # LightningCLI rebuilds the model from a --ckpt_path's saved hyper-parameters: a checkpoint of another
            # stage would silently replace the YAML's model and overwrite its checkpoints. Refuse it first.
            subcommand = self.config.get("subcommand")
            if subcommand:
                check_ckpt_path(self.config[subcommand])
            super()._parse_ckpt_path()

        def before_instantiate_classes(self) -> None:
            config = self.config[self.subcommand] if self.subcommand else self.config
            if config.get("checkpoint_dir"):
                redirect_checkpoints(config, config.checkpoint_dir)

        def before_fit(self) -> None:
            # every process checks, before anything is written (the config, the log folder, a checkpoint)
            config = self.config[self.subcommand]
            replaced = earlier_checkpoints(self.trainer, config.get("ckpt_path"), bool(config.get("overwrite")))
            callbacks = self.trainer.callbacks  # checkpoint callbacks stay last, as Lightning orders them
            at = next((i for i, callback in enumerate(callbacks) if isinstance(callback, pl.callbacks.Checkpoint)),
                      len(callbacks))
            callbacks.insert(at, FitOutputs(replaced))

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    # Lightning stops cleanly on SIGTERM with a SystemExit whose status is 0, and our PreemptionCheckpoint stops a
    # run on SIGUSR1 by returning normally: a run that did not reach its end must not look finished to a script,
    # a scheduler or `scoresep reproduce`, so both exit with 128 + the signal's number.
    cli, stopped_by, failed = None, None, True
    try:
        # experiments/base/ is read before the experiment's --config (scoresep/configs.py); parse errors are
        # raised (ArgumentError), not printed with the whole usage, so that the last line says what is wrong
        parser_kwargs = {name: {"default_config_files": base_config_files(), "exit_on_error": False}
                         for name in LIGHTNING_COMMANDS}
        cli = ScoresepCLI(pl.LightningModule, SlakhDataModule, trainer_class=Trainer, subclass_mode_model=True,
                          args=args, parser_kwargs={"exit_on_error": False, **parser_kwargs},
                          save_config_callback=SaveConfig, save_config_kwargs={"overwrite": True},
                          auto_configure_optimizers=False)
        stopped_by = interrupting_signal(cli.trainer) if cli.subcommand == "fit" else None
        failed = False
    except (CommandLineError, ArgumentError) as error:
        message = str(error) if isinstance(error, CommandLineError) else describe_parse_error(str(error), argv)
        print(f"scoresep {command}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except SIGTERMException:
        stopped_by, failed = signal.SIGTERM, False
    except SystemExit as exit_:
        # Lightning answers a Ctrl-C that came before training started, or a second one, with exit(1): let
        # main() report it as every other Ctrl-C
        if exit_.code == 1 and isinstance(exit_.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        # W&B would print its summary at exit, after our last line (and an in-process caller would keep the run)
        _finish_wandb(1 if failed else (128 + stopped_by.value) if stopped_by is not None else 0)
        _close_process_group()
    if stopped_by is not None:
        saved = ("last.ckpt was saved at this step" if stopped_by != signal.SIGTERM else
                 "nothing was saved at this step; the newest last.ckpt is from the last epoch end, if any")
        print(f"scoresep: stopped by {stopped_by.name} before the end of training; {saved}. Resume with "
              "--ckpt_path last", file=sys.stderr)
        raise SystemExit(128 + stopped_by.value)
    if cli is not None and cli.subcommand == "fit" and cli.trainer.is_global_zero:
        guard = next((callback for callback in cli.trainer.callbacks if isinstance(callback, FitOutputs)), None)
        if guard is not None and (note := guard.missing_best(cli.trainer)):
            print(f"scoresep fit: {note}", file=sys.stderr)


def _finish_wandb(exit_code: int) -> None:
    """End this process's W&B run, if one is open."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def redirect_checkpoints(config, folder: str) -> None:
    """Point every ModelCheckpoint callback of ``config`` (one subcommand's namespace) at ``folder``
    (``--checkpoint_dir``), before the callbacks are built: the saved config.yaml says where they went."""
    from jsonargparse import Namespace
    from pytorch_lightning.callbacks import ModelCheckpoint

    from scoresep.checkpoints import _import_object

    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        class_path = getattr(callback, "class_path", None) or ""
        try:
            is_checkpoint = issubclass(_import_object(class_path), ModelCheckpoint)
        except (ImportError, AttributeError, ValueError, TypeError):
            is_checkpoint = False
        if is_checkpoint:
            if callback.get("init_args") is None:
                callback.init_args = Namespace()
            callback.init_args.dirpath = None if folder == RUN_LOG_FOLDER else folder


_UNKNOWN_IN_CLASS = re.compile(r"Option '([^']+)' is not accepted")
_CLASS_PROBLEM = re.compile(r"Problem with given class_path '([^']+)'")
_UNKNOWN_OPTION = re.compile(r"(?:Subcommand|Group) '[^']+' does not accept option '([^']+)'")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_EXPECTED = re.compile(r"Expected an? (.+?)(?:\. Got value: (.*))?$")
_PARSE_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
                "- Expected a <class 'NoneType'>", "tip:")
NON_FINITE = {"nan", "+nan", "-nan", ".nan", "inf", "+inf", "-inf", ".inf", "-.inf", "infinity", "-infinity"}


def describe_parse_error(message: str, argv: list[str], parser=None) -> str:
    """One line for a jsonargparse error (which spans up to ~70 lines with a dump of the namespace): where the bad
    value comes from (``--option`` or ``FILE: key.path``) and what is wrong, with the closest valid key for an
    unknown one (difflib over the keys at that level).

    ``argv`` is the subcommand's command line; ``parser`` its parser (for the keys a level holds)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if (match := _UNKNOWN_IN_CLASS.search(message)) is not None:
        key, before = match.group(1), message[: match.start()]
        chain = _PARSER_KEY.findall(before)
        classes = _CLASS_PROBLEM.findall(before)
        valid = _class_keys(classes[-1]) if classes else []
        if valid and key.split(".")[0] not in valid:  # 'model.init_args.hidden' where the class has no 'model'
            key = key.split(".")[0]
        return _unknown_key(chain + [key], valid, argv)
    if (match := _UNKNOWN_OPTION.search(message)) is not None:
        parts = match.group(1).split(".")
        return _unknown_key(parts, _parser_keys(parser, parts[:-1]), argv)
    if lines and lines[0].startswith("unrecognized arguments:"):
        options = [token for token in lines[0].split(":", 1)[1].split() if token.startswith("--")]
        if options:
            parts = options[0][2:].split("=", 1)[0].split(".")
            return _unknown_key(parts, _parser_keys(parser, parts[:-1]), argv)
    for index, line in enumerate(lines):
        expected = _EXPECTED.search(line.lstrip("- "))
        if expected is None or "NoneType" in expected.group(1):
            continue
        chain = _PARSER_KEY.findall("\n".join(lines[: index + 1]))
        value = expected.group(2)
        if value is None:
            value = next((rest.split(":", 1)[1].strip() for rest in lines[index:] if rest.startswith("Given value:")),
                         None)
        if not chain:
            break
        source = _source(chain, argv)
        kind = _type_name(expected.group(1))
        if expected.group(1) == "<class 'float'>" and value is not None and value.strip().lower() in NON_FINITE:
            return f"{source}: must be a finite number, got {value.strip()}"
        return f"{source}: expected {kind}, got {value!r}" if value is not None else f"{source}: expected {kind}"
    kept = [re.sub(r'Parser key "([^"]+)":?', lambda m: f"--{m.group(1)}:", line).rstrip(":") for line in lines
            if not line.startswith(_PARSE_NOISE) and not (line.startswith("Given value:") and "NestedArg(" in line)]
    return "; ".join(kept) or message.strip()


def _type_name(text: str) -> str:
    """``<class 'float'>`` -> ``a float``; ``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    if (match := re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", text)) is not None:
        name = match.group(1)
        return f"an {name}" if name[0] in "aeiou" else f"a {name}"
    if (match := re.fullmatch(r"typing\.Literal\[(.*)\]", text)) is not None:
        return f"one of {match.group(1)}"
    return text


def _unknown_key(parts: list[str], valid: list[str], argv: list[str]) -> str:
    """``SOURCE: unknown key 'KEY' in LEVEL (did you mean 'CLOSEST'?)``."""
    import difflib

    parts = [part for chunk in parts for part in chunk.split(".")]
    key = parts[-1]
    source, written = _locate(parts, argv)
    level = ".".join(written[:-1]) if written else ".".join(parts[:-1])
    where = f" in {level}" if level else ""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean '{close[0]}'?)"
    elif valid and len(valid) <= 12:
        hint = f" (the keys there: {', '.join(sorted(valid))})"
    else:
        hint = f" (scoresep {argv[0] if argv else 'fit'} --help lists the options)"
    return f"{source}: unknown key '{key}'{where}{hint}"


def _source(chain: list[str], argv: list[str]) -> str:
    parts = [part for chunk in chain for part in chunk.split(".")]
    source, written = _locate(parts, argv)
    if source.startswith("--"):
        return source
    return f"{source}: {'.'.join(written or parts)}"


def _normal(parts) -> list[str]:
    """A key path as jsonargparse nests it: ``init_args`` and list positions left out."""
    return [part for part in parts if part not in ("init_args", "dict_kwargs") and not part.startswith("[")]


def _locate(parts: list[str], argv: list[str]) -> tuple[str, list[str]]:
    """Where the user wrote the key path ``parts``: ``("--a.init_args.b", [its parts])`` for the command line,
    ``(config file, [the path in it])`` for a YAML (the last one given that holds it; experiments/base/ last),
    ``("the config", [])`` when neither is found."""
    import yaml

    from scoresep.configs import base_config_files

    wanted = _normal(parts)
    files: list[str] = []
    for index, token in enumerate(argv):
        name, _, value = token.partition("=")
        if name in ("--config", "-c"):
            files.append(value or (argv[index + 1] if index + 1 < len(argv) else ""))
            continue
        if not token.startswith("--"):
            continue
        prefix = name[2:].split(".")
        if _normal(prefix) == wanted:
            return name, prefix
        value = value or (argv[index + 1] if index + 1 < len(argv) else "")
        if value.lstrip().startswith("{"):  # --model.init_args.model='{"class_path": ..., "init_args": {...}}'
            try:
                document = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            for written in _key_paths(document):
                if _normal(prefix + written) == wanted:
                    return name, prefix + written
    for path in [*reversed(files), *base_config_files()]:
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        for written in _key_paths(document):
            if _normal(written) == wanted:
                return path, written
    return "the config", []


def _key_paths(node, prefix: tuple[str, ...] = ()):
    """Every key path of a parsed YAML document (list items as ``[i]``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield [*prefix, str(key)]
            yield from _key_paths(value, (*prefix, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _key_paths(value, (*prefix, f"[{index}]"))


def _class_keys(class_path: str) -> list[str]:
    """The init arguments of a class (for a class taking ``**kwargs``, its bases' too, as jsonargparse reads
    them)."""
    import inspect

    from scoresep.checkpoints import _import_object

    try:
        target = _import_object(class_path)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in getattr(target, "__mro__", (target,)):
        init = getattr(klass, "__init__", None)
        if klass is object or init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))


def _parser_keys(parser, level: list[str]) -> list[str]:
    """The keys a subcommand's parser holds at ``level`` (``[]``: the top, ``["trainer"]``: the trainer's)."""
    if parser is None:
        return []
    prefix = ".".join(level)
    keys = []
    for action in parser._actions:
        dest = action.dest
        if dest.endswith(".help") or dest in ("help", "print_config"):
            continue
        if not prefix:
            keys.append(dest.split(".")[0])
        elif dest.startswith(prefix + "."):
            keys.append(dest[len(prefix) + 1 :].split(".")[0])
    return list(dict.fromkeys(keys))


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
    from scoresep.inference.options import add_score_check_options

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
    add_score_check_options(pack, "align each score to its recording (synctoolbox MrMsDTW)")
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
    """Entry point; ``argv`` None means the process's command line. A Ctrl-C at any moment, while the command
    line is read and the modules load too, ends in one line and exit status 130."""
    try:
        _main(argv)
    except KeyboardInterrupt:
        print("scoresep: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None


def _main(argv: list[str] | None) -> None:
    args_given = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        _reporting_errors(argv[0], lambda: lightning_main(argv if args_given else None))
        return
    # our own INFO lines (prepare, pack); other libraries' only from WARNING on (torch logs cache statistics at
    # exit at INFO, which would follow a Ctrl-C's last line)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("scoresep").setLevel(logging.INFO)
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
