"""scoresep: music source separation trained with musical scores (MIDI) as the only supervision."""

__version__ = "0.1.0"
