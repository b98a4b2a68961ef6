"""The separator networks behind one interface: chosen by class path, rebuilt from checkpoints, exact in chunks."""

import numpy as np
import pytest
import torch

from scoresep.checkpoints import StageCheckpoint
from scoresep.features import FeatureSettings
from scoresep.inference.separation import Separator
from scoresep.inference.sources import ArraySource
from scoresep.models import (
    FrameSeparator,
    FrameSeparatorConfig,
    UNetConfig,
    UNetSeparator,
    build_separator,
    separator_spec,
)
from scoresep.stages import AdversarialStage, SeparatorStage
from tests.helpers import TINY_S, quiet_trainer, tiny_datamodule, train_tiny_stages

FRAME = {"class_path": "scoresep.models.FrameSeparator", "init_args": {"hidden": 16, "blocks": 3}}


def _randomise_batchnorm(network: torch.nn.Module) -> None:
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)


def test_specs_name_the_network_and_refuse_unknown_fields():
    assert separator_spec(None)["class_path"] == "scoresep.models.FrameSeparator"
    assert separator_spec({"channels": 4, "depth": 2}) == separator_spec(UNetConfig(channels=4, depth=2))
    spec = separator_spec(FrameSeparatorConfig(hidden=8))
    assert spec == {"class_path": "scoresep.models.FrameSeparator",
                    "init_args": {"hidden": 8, "blocks": 6, "dilation_cycle": 6, "dropout": 0.0, "log_eps": 1e-3}}
    assert isinstance(build_separator(spec, 65, 2), FrameSeparator)
    with pytest.raises(ValueError, match=r"unknown init_args \['hiden'\]"):
        separator_spec({"class_path": "scoresep.models.FrameSeparator", "init_args": {"hiden": 8}})
    with pytest.raises(ValueError, match="not a scoresep.models.SeparatorNetwork subclass"):
        separator_spec({"class_path": "torch.nn.Linear"})
    with pytest.raises(ValueError, match="log_eps must be > 0"):
        separator_spec({"class_path": "scoresep.models.FrameSeparator", "init_args": {"log_eps": 0.0}})


@pytest.mark.parametrize("blocks, cycle", [(3, 3), (6, 4)])
def test_frame_separator_receptive_field_is_exact(blocks, cycle):
    torch.manual_seed(blocks)
    network = FrameSeparator(65, 2, FrameSeparatorConfig(hidden=8, blocks=blocks, dilation_cycle=cycle)).eval()
    torch.nn.init.normal_(network.expand[-1].weight)  # the head starts at zero: give it weights to see through
    magnitude = torch.rand(1, 65, 300)
    changed = magnitude.clone()
    changed[..., 150] += 3.0
    with torch.no_grad():
        difference = (network(changed) - network(magnitude)).abs().amax(dim=(0, 1, 2))
    reached = difference.nonzero().flatten() - 150
    assert reached.abs().max() == network.receptive_field_frames  # bound reached: it is tight, not just safe


def test_frame_separator_masks_are_in_unit_range_and_start_neutral():
    network = FrameSeparator(513, 3, FrameSeparatorConfig(hidden=16, blocks=2))
    masks = network(torch.rand(2, 513, 63) * 50)
    assert masks.shape == (2, 3, 513, 63)
    assert torch.allclose(masks, torch.full_like(masks, 0.5))  # zero-initialised head: an even split at start
    with pytest.raises(ValueError, match=r"FrameSeparator expects a magnitude \(batch, freq=513, frame\)"):
        network(torch.rand(2, 257, 63))


@pytest.mark.parametrize("network", [
    FrameSeparator(513, 3, FrameSeparatorConfig(hidden=8, blocks=4)),
    UNetSeparator(513, 3, UNetConfig(channels=2, depth=2)),
])
def test_chunked_separation_is_exact_for_every_network(network):
    torch.manual_seed(0)
    _randomise_batchnorm(network)
    torch.nn.init.normal_(list(network.parameters())[-2], std=0.1)
    features = FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024, 256, 21, 108)
    waveform = np.random.default_rng(1).standard_normal(16_000 * 6).astype(np.float32) * 0.1
    whole = Separator(network.eval(), features, chunk_seconds=100.0, device="cpu").separate_source(
        ArraySource(waveform, 16_000))
    chunked = Separator(network, features, chunk_seconds=0.5, device="cpu")
    assert len(chunked.chunks(len(waveform))) >= 10
    pieces = chunked.separate_source(ArraySource(waveform, 16_000))
    assert np.abs(pieces - whole).max() < 1e-5 * np.abs(whole).max()


def test_a_frame_separator_goes_from_stage_2_to_stage_3_and_to_separate(minislakh, tmp_path):
    train_tiny_stages(minislakh, tmp_path, steps=1)
    stage2 = SeparatorStage(model=FRAME, log_media=False, transcriptor_checkpoint=str(tmp_path / "stage1.ckpt"))
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(stage2, tiny_datamodule(minislakh, tmp_path))
    trainer.save_checkpoint(tmp_path / "frame.ckpt")
    network, info = StageCheckpoint.read(tmp_path / "frame.ckpt").separator()
    assert isinstance(network, FrameSeparator) and info["init_args"]["hidden"] == 16
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, stage2.separator.state_dict()[name]), name
    stage3 = AdversarialStage(separator_checkpoint=str(tmp_path / "frame.ckpt"), log_media=False)
    assert isinstance(stage3.separator, FrameSeparator)
    trainer = quiet_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(stage3, tiny_datamodule(minislakh, tmp_path))
    trainer.save_checkpoint(tmp_path / "frame3.ckpt")
    separated = Separator.from_checkpoint(tmp_path / "frame3.ckpt", device="cpu")(
        np.zeros(16_000, dtype=np.float32) + 0.01, 16_000)
    assert set(separated) == {"bass", "guitar", "piano", "residual"}


def test_old_unet_checkpoints_without_a_class_path_still_load(minislakh, tmp_path):
    _, stage2 = train_tiny_stages(minislakh, tmp_path, steps=1)
    checkpoint = torch.load(tmp_path / "stage2.ckpt", weights_only=True)
    checkpoint["scoresep"]["models"]["separator"] = {"config": dict(TINY_S, dropout=0.0)}  # the format before
    torch.save(checkpoint, tmp_path / "old.ckpt")
    network, _ = StageCheckpoint.read(tmp_path / "old.ckpt").separator()
    assert isinstance(network, UNetSeparator) and network.config.channels == TINY_S["channels"]
