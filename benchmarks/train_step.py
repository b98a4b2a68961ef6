"""Optimiser steps per second of every training row, where a step's time goes, and Lightning's overhead.

For each row kind (stage 1, stage 2 c+h, supervised, baseline, stage 3 with AML, stage 3 with ATL) it builds the
stage twice on random batches of the right shapes: with the *previous* defaults (nnAudio2 STFT, the 2-D U-Net
separator of 12 channels / depth 3, a transcriptor on linear STFT bins, 8 x 4-s crops, the stems' spectrograms
computed on every batch, fp32) and with the *current* defaults: each row's config as ``experiments/reproduce/mini.yaml``
builds it (so this script always measures what ``make reproduce`` runs). Rows 1-4 are
timed in a plain PyTorch loop, phase by phase; stage 3 (manual optimisation, two optimisers) through a Lightning
fit. Then stage 2's step time under ``Trainer.fit`` is compared with the plain loop on the same model and batch.

    .venv/bin/python benchmarks/train_step.py [--threads 2] [--steps 6]

Its last two lines are ``stage-2 speed-up over previous defaults: N.Nx`` and ``lightning/plain step time: R.RR``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import torch

PREVIOUS = {
    "precision": "32-true", "stft_backend": "nnaudio2", "segment_seconds": 4.0, "batch_size": 8, "sources_always": True,
    "separator": {"class_path": "scoresep.models.UNetSeparator", "init_args": {"channels": 12, "depth": 3}},
    "transcriptor": {"channels": 8, "conv_blocks": 1, "hidden": 256, "rnn_layers": 1, "dropout": 0.1,
                     "bands_per_semitone": 0, "log_eps": 1.0, "harmonics": []},
}
ROWS = ("stage1", "stage2", "supervised", "baseline", "stage3", "stage3_atl")


def current_settings(row: str) -> dict:
    """What ``make reproduce`` trains for ``row``: the row's config as the mini preset builds it."""
    from scoresep.reproduce import load_preset, row_config

    preset = load_preset("mini")
    return row_config(preset, preset.rows[row], Path(tempfile.gettempdir()) / "train_step")


def _current(row: str) -> dict:
    config = current_settings(row)
    data, init = config["data"], config["model"]["init_args"]
    critic_row = {"stage2": "stage1", "baseline": "baseline_classifier", "stage3": "stage1", "stage3_atl": "stage1",
                  "supervised": "stage1"}.get(row, row)
    critic = current_settings(critic_row)["model"]["init_args"]["model"]
    separator = init.get("model") if row in ("stage2", "supervised", "baseline") else current_settings(
        "stage2")["model"]["init_args"]["model"]
    return {"precision": config["trainer"].get("precision", "32-true"),
            "stft_backend": data.get("stft_backend", "torch"), "segment_seconds": data["segment_seconds"],
            "batch_size": data["batch_size"], "sources_always": False, "separator": separator,
            "transcriptor": critic if row != "stage1" else init["model"], "init": init}


def random_batch(batch_size: int, seconds: float, n_instruments: int = 3, n_pitches: int = 88) -> dict:
    """A batch of the data contract with random audio and 2 %-dense rolls (timing only)."""
    generator = torch.Generator().manual_seed(0)
    samples = int(seconds * 16_000) // 256 * 256
    sources = 0.05 * torch.randn(batch_size, n_instruments, samples, generator=generator)
    frames = 1 + samples // 256
    rolls = (torch.rand(batch_size, n_instruments, n_pitches, frames, generator=generator) < 0.02).float()
    return {"mixture": sources.sum(1), "sources": sources, "has_sources": torch.ones(batch_size, dtype=torch.bool),
            "rolls": rolls, "active": torch.ones(batch_size, n_instruments, dtype=torch.bool),
            "track": [f"random{i}" for i in range(batch_size)]}


def _transcriptor_checkpoint(folder: Path, config: dict, label: str) -> Path:
    from scoresep.stages import TranscriptorStage

    stage = TranscriptorStage(model=config, label=label)
    path = folder / f"critic-{label}-{abs(hash(str(config)))}.ckpt"
    checkpoint = {"state_dict": stage.state_dict()}
    stage.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def _separator_checkpoint(folder: Path, settings: dict, critic: Path) -> Path:
    from scoresep.stages import SeparatorStage

    stage = SeparatorStage(model=settings["separator"], transcriptor_checkpoint=str(critic), log_media=False)
    path = folder / f"separator-{abs(hash(str(settings['separator'])))}.ckpt"
    checkpoint = {"state_dict": stage.state_dict()}
    stage.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def build_stage(row: str, settings: dict, folder: Path):
    """The row's stage with ``settings``' networks (the row's own loss settings from its YAML)."""
    from scoresep.features import FeatureSettings
    from scoresep.stages import AdversarialStage, SeparatorStage, TranscriptorStage

    init = {k: v for k, v in current_settings(row)["model"]["init_args"].items() if k not in (
        "model", "transcriptor_checkpoint", "separator_checkpoint")}
    init["features"] = FeatureSettings(stft_backend=settings["stft_backend"])
    if row == "stage1":
        return TranscriptorStage(**{**init, "model": settings["transcriptor"]})
    label = "activity" if row == "baseline" else "notes"
    critic = _transcriptor_checkpoint(folder, settings["transcriptor"], label)
    if row in ("stage2", "supervised", "baseline"):
        return SeparatorStage(**{**init, "model": settings["separator"], "log_media": False,
                                 "transcriptor_checkpoint": None if init.get("supervised") else str(critic)})
    separator = _separator_checkpoint(folder, settings, critic)
    return AdversarialStage(**{**init, "log_media": False}, separator_checkpoint=str(separator),
                            transcriptor_checkpoint=str(critic))


class _Clock:
    def __init__(self):
        self.phases: dict[str, float] = {}
        self.last = time.perf_counter()

    def tick(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now


def plain_loop(stage, batch: dict, steps: int, sources_always: bool,
               precision: str = "32-true") -> tuple[float, dict[str, float]]:
    """Seconds per optimiser step of stage 1/2 rows in a hand-written loop, and the seconds of each phase
    (forward and losses under bf16 autocast for ``bf16-mixed``, as Lightning runs them)."""
    from scoresep.stages import TranscriptorStage
    from scoresep.stages.separating_base import separate

    stage.train()
    is_transcriptor = isinstance(stage, TranscriptorStage)
    network = stage.transcriptor if is_transcriptor else stage.separator
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    clock = None
    for step in range(steps + 1):  # the first step warms up (allocations, kernel choice)
        if step == 1:
            clock = _Clock()
            started = time.perf_counter()
        elif clock is not None:
            clock.last = time.perf_counter()
        item = dict(batch)
        stage.spectrogram.analyse(item)
        if sources_always:
            stage.spectrogram.source_magnitudes(item)
        if clock:
            clock.tick("features (STFT)")
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
        if is_transcriptor:
            with autocast:
                logits = stage.transcriptor(item["mixture_mag"])
            if clock:
                clock.tick("model forward")
            with autocast:
                loss = stage.bce(logits, stage.target(item["rolls"]))
        else:
            with autocast:
                _, separated = separate(stage.separator, item["mixture_mag"])
            if clock:
                clock.tick("model forward")
            with autocast:
                loss = stage.total(stage.losses(item, separated))
        if clock:
            clock.tick("critic + losses" if not is_transcriptor else "losses")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clock:
            clock.tick("backward")
        optimizer.step()
        if clock:
            clock.tick("optimiser")
    total = time.perf_counter() - started
    return total / steps, {phase: seconds / steps for phase, seconds in clock.phases.items()}


class _StepTimer:
    """Lightning callback: wall time of each training batch (start to end), after ``skip`` warm-up batches."""

    def __init__(self, skip: int = 1):
        import pytorch_lightning as pl

        class Timer(pl.Callback):
            def __init__(inner):
                inner.times: list[float] = []

            def on_train_batch_start(inner, trainer, module, batch, batch_idx):
                inner.started = time.perf_counter()

            def on_train_batch_end(inner, trainer, module, outputs, batch, batch_idx):
                inner.times.append(time.perf_counter() - inner.started)

        self.callback, self.skip = Timer(), skip

    def seconds(self) -> float:
        times = self.callback.times[self.skip:]
        return sum(times) / len(times)


def lightning_step_seconds(stage, batch: dict, steps: int, folder: Path, precision: str = "32-true") -> float:
    """Seconds per training batch of ``stage`` under ``Trainer.fit`` on ``batch`` repeated (STFT included)."""
    import pytorch_lightning as pl

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return steps + 1

        def __getitem__(self, index):
            return batch

    spectrogram = stage.spectrogram

    def on_after_batch_transfer(item, dataloader_idx):
        return spectrogram.analyse(dict(item))

    stage.on_after_batch_transfer = on_after_batch_transfer
    timer = _StepTimer()
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None, collate_fn=lambda item: item)
    trainer = pl.Trainer(default_root_dir=folder, accelerator="cpu", devices=1, max_steps=steps + 1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[timer.callback], gradient_clip_val=None,
                         precision=precision)
    trainer.fit(stage, train_dataloaders=loader)
    return timer.seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per row (after one warm-up step)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"threads {args.threads}, {args.steps} timed steps per row, torch {torch.__version__}")
    print("| row | defaults | precision | batch | steps/s | audio s/s | where a step's time goes (ms) |")
    print("|---|---|---|---|---:|---:|---|")
    speedups: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        for row in args.rows:
            seconds = {}
            for name, settings in (("previous", PREVIOUS), ("current", _current(row))):
                stage = build_stage(row, settings, folder)
                batch = random_batch(settings["batch_size"], settings["segment_seconds"])
                if row.startswith("stage3"):
                    step = lightning_step_seconds(stage, batch, args.steps, folder, settings["precision"])
                    phases = {"whole step under Lightning (two half-steps)": step}
                else:
                    step, phases = plain_loop(stage, batch, args.steps, settings["sources_always"],
                                              settings["precision"])
                seconds[name] = step
                audio = settings["batch_size"] * settings["segment_seconds"] / step
                where = ", ".join(f"{phase} {1000 * value:.0f}" for phase, value in phases.items())
                crops = f"{settings['batch_size']} x {settings['segment_seconds']:g} s"
                print(f"| {row} | {name} | {settings['precision']} | {crops} | {1 / step:.2f} | {audio:.1f} | "
                      f"{where} |", flush=True)
            speedups[row] = seconds["previous"] / seconds["current"]
            print(f"| {row} | speed-up | | | {speedups[row]:.1f}x | | |", flush=True)
        ratio = None
        if "stage2" in args.rows:
            settings = _current("stage2")
            batch = random_batch(settings["batch_size"], settings["segment_seconds"])
            plain, _ = plain_loop(build_stage("stage2", settings, folder), batch, args.steps, False,
                                  settings["precision"])
            lightning = lightning_step_seconds(build_stage("stage2", settings, folder), batch, args.steps, folder,
                                               settings["precision"])
            ratio = lightning / plain
            print(f"stage 2, current defaults: plain loop {1000 * plain:.0f} ms/step, Lightning fit "
                  f"{1000 * lightning:.0f} ms/step")
    if "stage2" in speedups:
        print(f"stage-2 speed-up over previous defaults: {speedups['stage2']:.1f}x")
    if ratio is not None:
        print(f"lightning/plain step time: {ratio:.2f}")


if __name__ == "__main__":
    main()
