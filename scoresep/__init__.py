"""scoresep: music source separation trained with musical scores (MIDI) as the only supervision."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``scoresep.Separator`` and ``scoresep.Transcriber`` (imported on first use: ``import scoresep`` stays light)."""
    if name == "Separator":
        from scoresep.inference.separation import Separator

        return Separator
    if name == "Transcriber":
        from scoresep.inference.transcription import Transcriber

        return Transcriber
    raise AttributeError(f"module 'scoresep' has no attribute {name!r}")
