"""Audio examples of a validation batch for the experiment logger (W&B or TensorBoard): the mixture and each
separated instrument, so a user can hear what a run learnt."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

log = logging.getLogger(__name__)


def log_media(module: pl.LightningModule, batch: dict, masks: torch.Tensor, estimates: torch.Tensor,
              keep: torch.Tensor) -> None:
    """Separated audio and mask images of the first item with stems, for W&B or TensorBoard loggers.

    Other loggers (CSV) get nothing: scalars only. ``masks``: (batch, instrument, freq, frame);
    ``estimates``: (items with stems, instrument, time).
    """
    loggers = [lg for lg in module.loggers if isinstance(lg, WandbLogger | TensorBoardLogger)]
    if not loggers or not module.trainer.is_global_zero:
        return
    sample_rate = module.features.sample_rate
    item = int(torch.nonzero(keep)[0])
    mask_image = masks[item].detach().float().cpu().flip(-2)  # (instrument, freq, frame), low frequencies down
    mixture = batch["mixture"][item].detach().float().cpu()
    step = module.global_step
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            media = {"val/media/mixture": wandb.Audio(mixture.numpy(), sample_rate=sample_rate)}
            for index, name in enumerate(module.features.instruments):
                media[f"val/media/{name}"] = wandb.Audio(estimates[0, index].float().cpu().numpy(),
                                                         sample_rate=sample_rate)
                media[f"val/media/mask_{name}"] = wandb.Image(np.uint8(255 * mask_image[index].numpy()))
            logger.experiment.log({**media, "trainer/global_step": step})
        else:
            writer = logger.experiment
            writer.add_audio("val/media/mixture", mixture[None], step, sample_rate=sample_rate)
            for index, name in enumerate(module.features.instruments):
                writer.add_audio(f"val/media/{name}", estimates[0, index].float().cpu()[None], step,
                                 sample_rate=sample_rate)
                writer.add_image(f"val/media/mask_{name}", mask_image[index], step, dataformats="HW")
