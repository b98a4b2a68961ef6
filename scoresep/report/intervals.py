"""The report's statistics: the mean of per-track values with the half-width of its 95 % Student-t interval
(``mean_interval``, per Table-1 cell), and the paired difference of two rows over the tracks both were evaluated
on (``paired_difference``, ``average_difference`` -> ``Difference``).

Why intervals: the test split is a few tracks (7 on mini-Slakh) whose SI-SDRs spread by several dB, so a
difference of a few tenths between two rows, or between ours and the paper's, is often no difference at all.
Table 2 has no intervals: its accuracies come from frame counts summed over tracks (a ratio of sums, not a mean
over tracks), and the evaluation files hold per-track counts, not per-track accuracies.

Numbers only: nothing here reads files or renders, so the tables and the claims across seeds share one definition
of an interval. scipy is imported on the first interval, not at module load.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scoresep.errors import SettingsError
from scoresep.report.results import TrackValues

CONFIDENCE = 0.95


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean of ``values`` and the half-width of its two-sided Student-t confidence interval (``None``: < 2 values).

    Half-width = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n), s the sample standard deviation. Student-t rather
    than the normal quantile because the test split is a handful of tracks, where the normal interval is too
    narrow; the values are treated as independent draws (one per track). Raises ValueError for no values or a
    non-finite one (an undefined value has to be left out by the caller, not averaged).
    """
    data = [float(value) for value in values]
    if not data:
        raise SettingsError("mean_interval needs at least one value")
    if not all(math.isfinite(value) for value in data):
        raise SettingsError(f"mean_interval needs finite values, got {data}")
    if not 0.0 < confidence < 1.0:
        raise SettingsError(f"confidence must be in (0, 1), got {confidence}")
    mean = statistics.fmean(data)
    if len(data) < 2:
        return mean, None
    from scipy.stats import t  # here, not at module load: only rendering needs it

    quantile = float(t.ppf(0.5 + confidence / 2.0, len(data) - 1))
    return mean, quantile * statistics.stdev(data) / math.sqrt(len(data))


def paired_difference(first: Sequence[float], second: Sequence[float],
                      confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean of ``first[i] - second[i]`` and the half-width of its Student-t interval (``mean_interval``).

    Paired because both rows were scored on the same tracks: a track that is hard for one row is hard for the
    other, and that shared spread cancels in the per-track difference, whereas comparing the two rows' own
    intervals would count it twice. Raises ValueError when the sequences differ in length.
    """
    if len(first) != len(second):
        raise SettingsError(f"paired values need the same length, got {len(first)} and {len(second)}")
    return mean_interval([a - b for a, b in zip(first, second, strict=True)], confidence)


def _instrument_interval(tracks: TrackValues, name: str) -> float | None:
    """Half-width of one instrument's interval over the tracks where it has a value (a stem)."""
    values = [track[name] for track in tracks.values() if name in track]
    return mean_interval(values)[1] if values else None


def _average_interval(tracks: TrackValues, names: tuple[str, ...]) -> float | None:
    """Half-width of the avg column's interval: per track, the mean over that track's instruments with a value,
    then the t-interval over those per-track means.

    Per track first because the tracks, not the instrument cells, are the independent draws. The table's avg is
    the mean of the per-instrument means (the paper's); both agree when every track has every stem and differ a
    little otherwise. When an instrument has no per-track values at all, the per-track means would leave it out
    and describe another average, so there is no interval (``None``).
    """
    if any(all(name not in track for track in tracks.values()) for name in names):
        return None
    means = [statistics.fmean(track[name] for name in names if name in track)
             for track in tracks.values() if any(name in track for name in names)]
    return mean_interval(means)[1] if means else None


@dataclass(frozen=True)
class Difference:
    """A paired difference of two Table-1 rows' averages: ``mean`` (dB, first - second) over ``tracks`` common
    tracks; ``half_width`` None = fewer than 2 common tracks; ``mean`` None = none. ``instruments``: those that
    entered the comparison in at least one track (fewer than the table's when a row has no value for one)."""

    first: str
    second: str
    mean: float | None
    half_width: float | None
    tracks: int
    instruments: tuple[str, ...] = ()

    @property
    def measurable(self) -> bool | None:
        """Whether 0 lies outside the interval (a difference the tracks can tell); None without an interval."""
        if self.mean is None or self.half_width is None:
            return None
        return abs(self.mean) > self.half_width


def average_difference(first: TrackValues, second: TrackValues, names: tuple[str, ...],
                       labels: tuple[str, str] = ("first", "second")) -> Difference:
    """Paired difference of two rows' per-track averages over the tracks both rows have.

    Per common track, each row's mean over the instruments that both rows have a value for in that track (so a
    stem missing from one row does not turn into a difference), then ``paired_difference`` over those tracks.
    """
    own, other, used = [], [], set()
    for track, values in first.items():
        shared = [name for name in names if name in values and name in second.get(track, {})]
        if shared:
            own.append(statistics.fmean(values[name] for name in shared))
            other.append(statistics.fmean(second[track][name] for name in shared))
            used.update(shared)
    instruments = tuple(name for name in names if name in used)
    if not own:
        return Difference(*labels, None, None, 0, instruments)
    return Difference(*labels, *paired_difference(own, other), len(own), instruments)
