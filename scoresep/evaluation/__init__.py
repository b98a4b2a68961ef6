"""Scoring separations and transcriptions: the accumulators the stages and ``scoresep evaluate`` share
(``accumulators``), the whole-track evaluation of a checkpoint or of the score's masks (``whole_tracks``), and the
result file both write and the report reads (``result_file``, the one place its format is declared).

The accumulators are importable from here, on first use: the report reads ``result_file`` without loading torch,
and whole-track evaluation, which loads checkpoints and separators, stays out of the stages' import graph.
"""

_ACCUMULATORS = ("SeparationEvaluation", "ThresholdCalibration", "TranscriptionEvaluation")
__all__ = list(_ACCUMULATORS)


def __getattr__(name: str):
    if name in _ACCUMULATORS:
        from scoresep.evaluation import accumulators

        return getattr(accumulators, name)
    raise AttributeError(f"module 'scoresep.evaluation' has no attribute {name!r}")
