"""Small builders shared by the stage tests: a fast data module and a quiet CPU trainer."""

import pytorch_lightning as pl

from scoresep.data.datamodule import SlakhDataModule


def tiny_datamodule(root, tmp_path, **kwargs) -> SlakhDataModule:
    """1-s crops, batches of 4, one crop per track: enough to run every hook in seconds."""
    settings = {"segment_seconds": 1.0, "batch_size": 4, "eval_crops_per_track": 1, "train_crops_per_track": 1,
                **kwargs}
    return SlakhDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), **settings)


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)
