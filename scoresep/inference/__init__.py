"""Inference on users' audio: chunked separation and transcription of files of any length."""
