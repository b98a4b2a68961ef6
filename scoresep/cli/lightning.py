"""``scoresep fit|validate|test|predict``: LightningCLI with the project's DataModule and any stage as the model.

Every value comes from the typed ``__init__`` signatures and the YAMLs under experiments/ (experiments/base/ read
first). A fit never replaces another run's checkpoints unless told to (``--overwrite``), can write them elsewhere
(``--checkpoint_dir``), says when it wrote no ``best.ckpt``, and a run stopped by a signal never looks finished.
"""

from __future__ import annotations

import signal
import sys

from scoresep.cli.errors import CommandLineError
from scoresep.cli.parse_errors import describe_parse_error

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

OVERWRITE_HELP = ("fit: replace the checkpoints an earlier run left where this run writes its own (without it a fit "
                  "refuses to start; --ckpt_path resumes that run instead). They are removed when training starts. "
                  "Never saved as true in a run's config.yaml")
RUN_LOG_FOLDER = "logger"  # --checkpoint_dir logger: each run's checkpoints in its own log folder
CHECKPOINT_DIR_HELP = ("fit: write every ModelCheckpoint's files (best.ckpt, last.ckpt) to this folder instead of the "
                       f"config's dirpath (checkpoints/<stage>); '{RUN_LOG_FOLDER}': in the run's own log folder "
                       "(<save_dir>/<name>/<version>/checkpoints, one per run: what a sweep's runs need)")


def lightning_main(args: list[str] | None) -> None:
    """Run a LightningCLI subcommand with the project's DataModule and any stage as the model.

    The feature settings (instruments, sample rate, STFT, pitch range: one ``FeatureSettings``) are declared once,
    as ``data.features``, and linked into the stage whole (``model.init_args.features``): they cannot drift apart.
    A fit never replaces another run's checkpoints unless told to (``--overwrite``), and says so when it wrote no
    ``best.ckpt``.
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
            parser.link_arguments("data.features", "model.init_args.features")
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
            # stage would silently replace the YAML's model and overwrite its checkpoints. Refuse it first. Then
            # what Lightning's own _parse_ckpt_path does, on hyper-parameters in today's form (checkpoint_model).
            subcommand = self.config.get("subcommand")
            if not subcommand:
                return
            checkpoint = check_ckpt_path(self.config[subcommand])
            if checkpoint is not None and (model := checkpoint_model(checkpoint.hyper_parameters)) is not None:
                self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

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

    from scoresep.class_paths import import_object

    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        class_path = getattr(callback, "class_path", None) or ""
        try:
            is_checkpoint = issubclass(import_object(class_path), ModelCheckpoint)
        except (ImportError, AttributeError, ValueError, TypeError):
            is_checkpoint = False
        if is_checkpoint:
            if callback.get("init_args") is None:
                callback.init_args = Namespace()
            callback.init_args.dirpath = None if folder == RUN_LOG_FOLDER else folder


# --ckpt_path values that Lightning resolves itself (the newest/best checkpoint of this run's own callbacks)
LIGHTNING_CKPT_ALIASES = ("last", "best", "hpc", "registry")


def check_ckpt_path(config):
    """The ``--ckpt_path`` checkpoint (of fit, validate, test or predict), read once (``StageCheckpoint``), after
    refusing one that is not a checkpoint of the run ``config`` (one subcommand's namespace) describes
    (``StageCheckpoint.check_run``). None when there is no file to read: no ``--ckpt_path``, or one of
    Lightning's own aliases (``last``, ``best``)."""
    from scoresep.checkpoints import StageCheckpoint
    from scoresep.features import FeatureSettings

    ckpt_path = config.get("ckpt_path")
    if not ckpt_path or str(ckpt_path) in LIGHTNING_CKPT_ALIASES or str(ckpt_path).lower().startswith("registry"):
        return None  # Lightning resolves these itself (``registry:<name>`` too)
    checkpoint = StageCheckpoint.read(ckpt_path)
    model = config.get("model")
    if model is not None and model.get("class_path"):
        features = FeatureSettings.from_dict(config.data.features)
        sources = [str(source) for source in (config.get("config") or []) if source]
        where = ", ".join(sources) if sources else "the config"
        checkpoint.check_run(model.class_path, features, dict(model.get("init_args") or {}), where)
    return checkpoint


def checkpoint_model(hyper_parameters: dict) -> dict | None:
    """The model config that LightningCLI rebuilds from a ``--ckpt_path``'s saved ``hyper_parameters`` (as
    Lightning 2.6's ``LightningCLI._parse_ckpt_path`` reads them): the hyper-parameters under their class path,
    with the separate feature settings of a checkpoint written before ``features`` existed gathered into them
    (``features.gather_features``; Lightning would hand them to the stage as unknown arguments). None when the
    checkpoint saved none."""
    from scoresep.features import gather_features

    hyper_parameters = gather_features(dict(hyper_parameters))
    hyper_parameters.pop("_instantiator", None)
    if not hyper_parameters:
        return None
    if "_class_path" in hyper_parameters:
        return {"class_path": hyper_parameters.pop("_class_path"), "dict_kwargs": hyper_parameters}
    return hyper_parameters


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
