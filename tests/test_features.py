import pytest
import torch

from scoresep.constants import n_frames
from scoresep.data.midi import piano_roll
from scoresep.features import (
    DEFAULT_FEATURES,
    FEATURE_FIELDS,
    STFT_BACKENDS,
    FeatureSettings,
    Spectrogram,
    gather_features,
)


@pytest.fixture(scope="module", params=STFT_BACKENDS)
def spectrogram(request):
    return Spectrogram(n_fft=1024, hop_length=256, sample_rate=16_000, backend=request.param)


def test_stft_matches_torch_stft(spectrogram):
    waveform = torch.randn(3, 16_000, generator=torch.Generator().manual_seed(0))
    ours = spectrogram.stft(waveform)
    reference = torch.stft(waveform, 1024, 256, window=torch.hann_window(1024), center=True, pad_mode="reflect",
                           return_complex=True)
    assert ours.shape == reference.shape == (3, 513, 63)
    scale = reference.abs().max()
    assert (ours - reference).abs().max() / scale < 1e-5


def test_backends_agree_on_magnitude_and_round_trip():
    waveform = 0.3 * torch.randn(2, 3, 24_000, generator=torch.Generator().manual_seed(3))
    fft, conv = (Spectrogram(1024, 256, 16_000, backend=name) for name in ("torch", "nnaudio2"))
    spectra = [fft.stft(waveform), conv.stft(waveform)]
    scale = spectra[0].abs().max()
    assert (spectra[0].abs() - spectra[1].abs()).abs().max() / scale < 1e-5
    # each backend inverts the other's spectrum: the transforms are the same, not just similar
    assert (fft.istft(spectra[1], 24_000) - waveform).abs().max() < 1e-4
    assert (conv.istft(spectra[0], 24_000) - waveform).abs().max() < 1e-4


def test_istft_round_trip_and_leading_dims(spectrogram):
    waveform = torch.randn(2, 3, 8_000, generator=torch.Generator().manual_seed(1))
    spectrum = spectrogram.stft(waveform)
    assert spectrum.shape == (2, 3, 513, 32)
    restored = spectrogram.istft(spectrum, length=8_000)
    assert restored.shape == waveform.shape
    assert (restored - waveform).abs().max() < 1e-4


def test_roll_and_stft_have_the_same_frame_count(spectrogram):
    for n_samples in (4_000, 4_096, 64_000, 64_255):
        spectrum = spectrogram.stft(torch.zeros(1, n_samples))
        roll = piano_roll(torch.zeros(0, 3).numpy(), n_frames(n_samples, 256), 16_000 / 256)
        assert spectrum.shape[-1] == roll.shape[-1] == n_frames(n_samples, 256)


def test_kernels_stay_out_of_checkpoints(spectrogram):
    assert spectrogram.state_dict() == {}
    if spectrogram.backend == "nnaudio2":
        assert sum(b.numel() for b in spectrogram.buffers()) > 1_000_000  # the kernels exist, just not persisted


def test_stft_stays_fp32_under_autocast(spectrogram):
    waveform = torch.randn(2, 16_000, generator=torch.Generator().manual_seed(2))
    exact = spectrogram.stft(waveform)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = spectrogram.stft(waveform)
        restored = spectrogram.istft(under_autocast, 16_000)
    assert under_autocast.dtype == torch.complex64 and restored.dtype == torch.float32
    assert torch.equal(exact, under_autocast)


def test_source_magnitudes_are_computed_once_and_only_with_stems(spectrogram):
    sources = torch.randn(2, 3, 8_000, generator=torch.Generator().manual_seed(4))
    batch = {"sources": sources, "has_sources": torch.tensor([True, False])}
    first = spectrogram.source_magnitudes(batch)
    assert first.shape == (2, 3, 513, 32) and spectrogram.source_magnitudes(batch) is first
    assert spectrogram.source_magnitudes({"sources": sources, "has_sources": torch.tensor([False, False])}) is None


def test_too_short_waveform_and_unknown_backend_are_clear_errors(spectrogram):
    with pytest.raises(ValueError, match="too short for n_fft=1024"):
        spectrogram.stft(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="stft_backend must be one of"):
        Spectrogram(backend="nnaudio")


def test_feature_settings_are_one_value_with_the_project_defaults():
    assert DEFAULT_FEATURES == FeatureSettings.defaults() == FeatureSettings(("bass", "guitar", "piano"), 16_000, 1024,
                                                                           256, 21, 108, "torch")
    listed = FeatureSettings(["bass", "piano"], n_fft=512)  # a list, as YAML and checkpoints hold it
    settings = FeatureSettings(("bass", "piano"), n_fft=512)
    assert listed == settings and hash(listed) == hash(settings)
    assert FeatureSettings.from_dict(listed.to_dict()) == FeatureSettings.coerce(listed.to_dict()) == listed
    assert FeatureSettings.coerce(listed) is listed
    # a checkpoint's section written before the backend was stored lacks it
    old = {key: value for key, value in listed.to_dict().items() if key != "stft_backend"}
    assert FeatureSettings.from_dict(old) == listed
    # both backends compute the same transform: a model trained with one runs with the other
    nnaudio = FeatureSettings(stft_backend="nnaudio2")
    assert DEFAULT_FEATURES.mismatches(nnaudio) == []
    assert DEFAULT_FEATURES.mismatches(FeatureSettings(hop_length=128), "a", "b") == [
        "hop_length=256 (a) vs hop_length=128 (b)"]
    spectrogram = Spectrogram.of(FeatureSettings(n_fft=512, hop_length=128), inverse=False)
    assert (spectrogram.n_fft, spectrogram.hop_length, spectrogram.backend, spectrogram.inverse) == (512, 128, "torch",
                                                                                                     False)


def test_separate_feature_settings_of_old_checkpoints_are_gathered_in_place():
    old = {"_class_path": "x.Stage", "instruments": ["bass"], "sample_rate": 16_000, "n_fft": 512, "hop_length": 256,
           "min_midi": 21, "max_midi": 108, "stft_backend": "torch", "lr": 0.1}
    gathered = gather_features(old)
    assert list(gathered) == ["_class_path", "features", "lr"]
    assert tuple(gathered["features"]) == FEATURE_FIELDS
    assert FeatureSettings.from_dict(gathered["features"]) == FeatureSettings(("bass",), n_fft=512)
    today = {"features": gathered["features"], "lr": 0.1}
    assert gather_features(today) is today and gather_features({"lr": 0.1}) == {"lr": 0.1}
