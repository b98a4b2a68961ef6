"""Runs one stage under real DDP on CPU (gloo) for tests/test_distributed.py.

Lightning's ``ddp`` strategy relaunches this script once per extra process (as it does ``scoresep fit``), so it
must be a file, not pytest itself. Rank 0 writes a JSON with the validation results, how many evaluation
crops each process saw, and a checksum of every process's weights.
"""

import argparse
import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.helpers
from scoresep.models.transcriptor import TranscriptorConfig  # noqa: E402
from scoresep.models.unet import UNetConfig  # noqa: E402
from scoresep.stages import AdversarialStage, SeparatorStage, TranscriptorStage  # noqa: E402
from scoresep.training import AtomicCheckpointIO  # noqa: E402
from tests.helpers import tiny_datamodule  # noqa: E402


class CountEvaluated(Callback):
    """Evaluation crops seen by this process, gathered to every process at the end of validation."""

    def __init__(self):
        self.seen, self.per_rank = 0, []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen += len(batch["mixture"])

    def on_validation_epoch_end(self, trainer, pl_module):
        gathered = pl_module.all_gather(torch.tensor([self.seen]))
        self.per_rank = gathered.flatten().tolist()


def build_stage(kind: str, checkpoints: Path):
    if kind == "transcriptor":
        return TranscriptorStage(model=TranscriptorConfig(channels=4, conv_blocks=1, hidden=16, rnn_layers=1,
                                                          dropout=0.0))
    if kind == "separator":
        return SeparatorStage(model=UNetConfig(channels=4, depth=2), log_media=False,
                              transcriptor_checkpoint=str(checkpoints / "stage1.ckpt"))
    return AdversarialStage(separator_checkpoint=str(checkpoints / "stage2.ckpt"), aml=True, log_media=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True, choices=["transcriptor", "separator", "adversarial"])
    parser.add_argument("--mode", required=True, choices=["validate", "fit"])
    parser.add_argument("--root", required=True)
    parser.add_argument("--work", required=True, help="cache, checkpoints of the earlier stages, outputs")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    pl.seed_everything(0)
    stage = build_stage(args.stage, work)
    counter = CountEvaluated()
    callbacks = [counter]
    if args.mode == "fit":
        callbacks.append(ModelCheckpoint(dirpath=work / "ddp_checkpoints", filename="last", monitor=None,
                                         save_top_k=1, enable_version_counter=False))
    trainer = pl.Trainer(accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
                         max_epochs=1, limit_train_batches=2, enable_progress_bar=False, enable_model_summary=False,
                         logger=CSVLogger(work / "ddp_logs", name=args.stage) if args.mode == "fit" else False,
                         enable_checkpointing=args.mode == "fit", callbacks=callbacks,
                         plugins=[AtomicCheckpointIO()])
    # 3 crops x 2 validation tracks in batches of 4: uneven shares per process and a short last batch
    datamodule = tiny_datamodule(args.root, work, eval_crops_per_track=3)
    if args.mode == "validate":
        stage.load_state_dict(torch.load(work / f"{args.stage}_weights.pt", weights_only=True))
        results = trainer.validate(stage, datamodule, verbose=False)[0]
    else:
        trainer.fit(stage, datamodule)
        results = {}
    checksum = torch.tensor([float(sum(p.double().sum() for p in stage.parameters()))])
    checksums = stage.all_gather(checksum).flatten().tolist() if args.devices > 1 else checksum.tolist()
    if trainer.is_global_zero:
        Path(args.out).write_text(json.dumps({"results": results, "per_rank": counter.per_rank,
                                              "checksums": checksums, "world_size": trainer.world_size}))
    if torch.distributed.is_initialized():  # gloo threads left running at exit can abort the interpreter
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
