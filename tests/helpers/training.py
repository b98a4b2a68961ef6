"""Builders shared by the stage tests: network sizes, a fast data module, a quiet CPU trainer, tiny trained
stages, and a callback that signals the process mid-fit."""

import os

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from scoresep.data.datamodule import SlakhDataModule
from scoresep.models.transcriptor import TranscriptorConfig
from scoresep.models.unet import UNetConfig
from scoresep.stages import SeparatorStage, TranscriptorStage

TINY_T = {"channels": 4, "conv_blocks": 1, "hidden": 16, "rnn_layers": 1, "dropout": 0.0}  # transcriptor size
TINY_S = {"channels": 4, "depth": 2}  # U-Net separator size
TINY_FRAME = {"class_path": "scoresep.models.FrameSeparator", "init_args": {"hidden": 16, "blocks": 2}}  # YAMLs' net


def tiny_datamodule(root, tmp_path, **kwargs) -> SlakhDataModule:
    """1-s crops, batches of 4, one crop per track: enough to run every hook in seconds."""
    settings = {"segment_seconds": 1.0, "batch_size": 4, "eval_crops_per_track": 1, "train_crops_per_track": 1,
                **kwargs}
    return SlakhDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), **settings)


def tiny_batch(root, tmp_path, **kwargs) -> dict:
    """The first training batch of :func:`tiny_datamodule`, as a stage receives it (spectrograms computed)."""
    datamodule = tiny_datamodule(root, tmp_path, **kwargs)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


def train_tiny_stages(root, folder, steps: int = 2) -> tuple[TranscriptorStage, SeparatorStage]:
    """A few steps of a tiny stage 1 and of a tiny stage 2 trained through it, saved as ``folder/stage1.ckpt``
    and ``folder/stage2.ckpt``; returns both stages."""
    transcriptor = TranscriptorStage(model=TranscriptorConfig(**TINY_T))
    trainer = quiet_trainer(folder, max_steps=steps, limit_val_batches=0)
    trainer.fit(transcriptor, tiny_datamodule(root, folder))
    trainer.save_checkpoint(folder / "stage1.ckpt")
    separator = SeparatorStage(model=UNetConfig(**TINY_S), log_media=False,
                               transcriptor_checkpoint=str(folder / "stage1.ckpt"))
    trainer = quiet_trainer(folder, max_steps=steps, limit_val_batches=0)
    trainer.fit(separator, tiny_datamodule(root, folder))
    trainer.save_checkpoint(folder / "stage2.ckpt")
    return transcriptor, separator


class SignalAt(Callback):
    """Sends ``signum`` to this process at the start of the training batch where ``global_step == at``."""

    def __init__(self, signum: int, at: int):
        self.signum, self.at = signum, at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            os.kill(os.getpid(), self.signum)
