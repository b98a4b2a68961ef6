"""GPU figures: both STFT backends' throughput, and stage-2 steps/s under 16-mixed with the paper-sized networks.

Exits 0 with one line when CUDA is not available. Run by ``benchmarks/gpu_check.sh``.

    .venv/bin/python benchmarks/gpu_stft_and_steps.py [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _time_cuda(function, repeats: int) -> float:
    function()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def stft_throughput(batch: int = 64, seconds: float = 4.0) -> None:
    from scoresep.features import STFT_BACKENDS, Spectrogram

    waveform = 0.1 * torch.randn(batch, int(seconds * 16_000), device="cuda")
    for backend in STFT_BACKENDS:
        spectrogram = Spectrogram(1024, 256, 16_000, inverse=True, backend=backend).cuda()
        spectrum = spectrogram.stft(waveform)
        forward = _time_cuda(lambda s=spectrogram: s.stft(waveform), 20)
        inverse = _time_cuda(lambda s=spectrogram, x=spectrum: s.istft(x, waveform.shape[-1]), 20)
        audio = batch * seconds
        print(f"STFT {backend:>8}: {audio / forward:,.0f} audio s/s forward, {audio / inverse:,.0f} audio s/s "
              f"inverse ({batch} x {seconds:g} s)")


def paper_sized_steps(steps: int) -> None:
    import pytorch_lightning as pl
    from train_step import _StepTimer, random_batch

    from scoresep.models import FrameSeparatorConfig, UNetConfig
    from scoresep.models.transcriptor import TranscriptorConfig
    from scoresep.stages import SeparatorStage, TranscriptorStage

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        critic = TranscriptorStage(model=TranscriptorConfig.paper())
        checkpoint = {"state_dict": critic.state_dict()}
        critic.on_save_checkpoint(checkpoint)
        torch.save(checkpoint, folder / "critic.ckpt")
        networks = {"U-Net (paper size)": asdict(UNetConfig.paper()),
                    "frame separator (hidden 512, 8 blocks)": {
                        "class_path": "scoresep.models.FrameSeparator",
                        "init_args": asdict(FrameSeparatorConfig(hidden=512, blocks=8))}}
        for name, network in networks.items():
            for precision in ("32", "16-mixed"):
                stage = SeparatorStage(model=network, transcriptor_checkpoint=str(folder / "critic.ckpt"),
                                       log_media=False, clip_mix_weight=0.1, harmonic_mix_weight=0.1)
                batch = random_batch(16, 4.0)
                spectrogram = stage.spectrogram

                def on_after_batch_transfer(item, dataloader_idx, spectrogram=spectrogram):
                    return spectrogram.to(item["mixture"].device).analyse(dict(item))

                stage.on_after_batch_transfer = on_after_batch_transfer
                loader = torch.utils.data.DataLoader([batch] * (steps + 2), batch_size=None,
                                                     collate_fn=lambda item: item)
                timer = _StepTimer(skip=2)
                torch.cuda.reset_peak_memory_stats()
                trainer = pl.Trainer(default_root_dir=folder, accelerator="gpu", devices=1, precision=precision,
                                     max_steps=steps + 2, logger=False, enable_checkpointing=False,
                                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                                     callbacks=[timer.callback])
                trainer.fit(stage, train_dataloaders=loader)
                peak = torch.cuda.max_memory_allocated() / 2**30
                print(f"stage 2, {name}, precision {precision}: {1 / timer.seconds():.2f} steps/s "
                      f"(batch 16 x 4 s), peak GPU memory {peak:.2f} GiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: GPU figures not measured")
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    stft_throughput()
    paper_sized_steps(args.steps)


if __name__ == "__main__":
    main()
