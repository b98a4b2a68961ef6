"""Data: Slakh index, audio/MIDI I/O, mini-Slakh synthesiser, cache, dataset and DataModule."""
