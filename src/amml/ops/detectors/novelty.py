"""``amml``: AMML's streaming detector for NAB-style data (one parameter set for every series).

Three kinds of evidence, each turned into a calibrated score by HTM's anomaly likelihood
(``calibration.Likelihood``), are averaged, so that an alarm needs agreement or one very strong
signal:

1. **spike**: the robust z-score of the value and of its first difference against the last
   ``window`` values (median and MAD, floored at a share of the range seen so far);
2. **shape novelty**, at two lengths (``shapes``, default 8 and 16 rows): the distance from the
   newest sub-sequence to its nearest neighbour among all earlier ones kept in memory (the
   ``memory`` most recent, overlapping neighbours excluded), divided by the range seen so
   far. A pattern never seen before (a missing daily peak, a flat stretch, denser spikes)
   scores high even when every value is in the usual range: this is the part ARTime and CAD
   OSE get their strength from, and the part a z-score cannot see;
3. **beyond the range** (``beyond`` > 0; off by default): how far a value lies outside every
   value seen before it, over that range, divided by ``beyond`` and capped at 1. It joins the
   average by ``max``: one value far past the extremes of the whole history (an ad-exchange
   price spike, a latency burst) alarms on its own, where a z-score against a volatile window
   and its likelihood saw nothing unusual;
4. **record novelty** (``record`` > 0; default 0.5): a sub-sequence farther from its nearest
   earlier neighbour than every sub-sequence before it, by more than ``record`` times that
   farthest distance (in the series' own units), alarms on its own. The likelihood cannot
   see it early in a series: its history then holds the first sub-sequences' distances,
   large because there was little to compare with. Distances of the first ``record_warmup``
   rows are not kept, and records count once ``record_warmup`` more have been kept.
   Records are rare once much has been kept: on 80 anomaly-free series of 3,000 rows (ten
   each of Gaussian, Student-t, random walk, AR(1), seasonal, trend, Poisson and log-normal
   values) it added 5 alarms to the 62 of the rest, all before row 350, in heavy-tailed noise;
5. **time of day** (``daily`` > 0; default 0.1), where the rows have timestamps: the distance
   from the value to the nearest of the last seven days' values at the same minute of the day
   (each day's mean where a minute holds several rows), calibrated by the likelihood over
   12-row averages, joins by ``max`` once it passes 0.99 (a one-in-10^9.9 event), and only
   while the series follows its time of day: the mean squared distance of values to their
   minute's median is below ``daily`` times the values' variance. A day that misses its usual
   rise is then found even though every value and every short shape in it is an ordinary one.
   The nearest value, not the median, so that a weekend is compared with the last weekend;
   averaged, so that one odd row is not a missed pattern. On 40 anomaly-free daily series of
   28 days at five-minute rows (sine, square wave, weekly pattern, varying height, phase
   jitter, trend, counts) it added 4 alarms to the 70 of the rest and removed 1, all four on
   days whose height or phase varies (``scripts/daily_false_alarms.py``);
6. **stuck** (``stuck`` > 0; default 12): a series whose values rarely repeat (under 1% of the
   rows before equal the row before them, over at least 100 rows) that repeats one value for
   ``stuck`` rows in a row alarms on its own: a sensor stuck at its last reading, which every
   other part sees as ordinary values in an ordinary shape. Series where repeats are common
   (counts, on/off signals, quantised readings) are left alone, and so is a series flat from
   its start. On the 24 NAB series here it fires once, in ``art_daily_flatmiddle``'s flat
   stretch (the anomaly), after the other parts' alarm: it changes no NAB score;
7. after averaging, two causal filters make one alarm per event: a score counts only if it beats
   every score of the last ``peak_window`` rows, and after a score of at least ``alarm`` the next
   ``suppress`` rows are silenced.

Causal and self-normalising: the range, medians and likelihood statistics are learnt online,
nothing about the series (length, range, period) is given in advance; the time of day is read
from the timestamps.

``output="alarm"`` makes the detector decide: 1 on the rows that raise an alarm (a score of at
least ``alarm`` that passed both filters), 0 elsewhere. A threshold picked on some series
then means the same on others (any threshold in (0, 1] gives the detector's own alarms),
which is what carries NAB's score to categories it was not tuned on: with scores, NAB's
corpus-wide threshold moves with the corpus it is picked on (held out by category, 34.5
against 62.3 in-sample); with alarms, the held-out figure is the in-sample one.

>>> import numpy as np
>>> from amml.ops.detectors.novelty import NoveltyDetector
>>> t = np.arange(1500)
>>> values = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, 1500)
>>> values[1200:1230] = 0.0  # the oscillation stops for a while: every value is in range
>>> scores = NoveltyDetector().score_series(values)
>>> bool(1200 <= int(np.nanargmax(scores[300:])) + 300 < 1230)
True
>>> alarms = NoveltyDetector(output="alarm").score_series(values)
>>> sorted(set(alarms[np.isfinite(alarms)].tolist())), bool(alarms[1200:1230].max() == 1.0)
([0.0, 1.0], True)
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections import deque
from datetime import datetime
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, RingBuffer, clip01, register_detector
from amml.ops.detectors.calibration import Likelihood
from amml.ops.detectors.kernels import MAX_LENGTH as NEAREST_MAX_LENGTH
from amml.ops.detectors.kernels import nearest_sum, robust_z
from amml.ops.stats import mad_scale, median, pairwise_column_sums

#: What ``update`` returns: the calibrated ``score``, or the detector's own ``alarm`` (0/1).
OUTPUTS = ("score", "alarm")

#: The calibrated time-of-day score that joins the combined score on its own (a one-in-10^9.9
#: event under the likelihood's Gaussian), where the series follows its time of day.
DAILY_ALARM = 0.99
#: Residuals (one a day per minute of the day) the time-of-day part learns its scale from
#: before it scores or says whether the series follows its time of day.
MIN_RESIDUALS = 50
#: ``stuck``: rows a series must have shown, and the most of them that may repeat the row before,
#: for a run of equal values to mean a stuck sensor.
STUCK_HISTORY = 100
STUCK_SHARE = 0.01


class _RobustSpike:
    """Raw spike score: ``log1p`` of the larger robust |z| of the value and its difference."""

    def __init__(self, window: int, range_floor: float) -> None:
        self.range_floor = range_floor
        self._values = RingBuffer(window)
        self._diffs = RingBuffer(window)
        self._prev: float | None = None
        self._low = math.inf
        self._high = -math.inf

    @staticmethod
    def _robust_z(ring: RingBuffer, value: float, floor: float) -> float:
        past = ring.values()
        if robust_z is not None:
            return robust_z(past, value, floor)
        center = median(past)
        return min(abs(value - center) / max(mad_scale(past, center), floor, 1e-12), 1e6)

    def update(self, value: float) -> float:
        diff = value - self._prev if self._prev is not None else 0.0
        raw = 0.0
        if self._values.count >= 8:
            floor = self.range_floor * (self._high - self._low)
            raw = math.log1p(max(self._robust_z(self._values, value, floor),
                                 self._robust_z(self._diffs, diff, floor)))
        self._low, self._high = min(self._low, value), max(self._high, value)
        self._values.push(value)
        if self._prev is not None:
            self._diffs.push(diff)
        self._prev = value
        return raw


class _ShapeNovelty:
    """Raw novelty: RMS distance of the newest ``length``-row sub-sequence to its nearest
    earlier neighbour (the ``length`` overlapping ones excluded), over the range seen so far.

    Sub-sequences are kept in one array of twice the memory; when it fills up, the newest
    half is moved to the front, so each insert is amortised O(1) and memory stays bounded.
    With numba, one per row, searched by ``kernels.nearest_sum`` (several times faster);
    without, one per column, the squared differences summed a whole row of neighbours at a
    time (``pairwise_column_sums``). Both give the bits of a mean over each neighbour's values.
    """

    def __init__(self, length: int, memory: int) -> None:
        self.length, self.memory = length, memory
        self._recent: deque[float] = deque(maxlen=length)
        # numba's kernel reads one sub-sequence per row; numpy's path one per column
        self._fast = nearest_sum is not None and length <= NEAREST_MAX_LENGTH
        if self._fast:
            self._bank = np.zeros((2 * memory + length, length))
        else:
            self._bank = np.zeros((length, 2 * memory + length))
            self._work = np.empty((length, memory))
        self._hint = -1  # the last nearest neighbour's place: the next one is often beside it
        self._size = 0
        self._low = math.inf
        self._high = -math.inf
        self.distance = 0.0  # the newest sub-sequence's, in the series' units (0: none yet)

    def update(self, value: float) -> float:
        self._low, self._high = min(self._low, value), max(self._high, value)
        self._recent.append(value)
        self.distance = 0.0
        if len(self._recent) < self.length:
            return 0.0
        current = np.fromiter(self._recent, dtype=float, count=self.length)
        newest_allowed = self._size - self.length
        oldest = max(0, newest_allowed - self.memory)
        raw = 0.0
        if newest_allowed > oldest:
            if self._fast:
                smallest, nearest = nearest_sum(self._bank, oldest, newest_allowed, current,
                                                self._hint + 1)
                self._hint = nearest
            else:
                work = self._work[:, :newest_allowed - oldest]
                np.subtract(self._bank[:, oldest:newest_allowed], current[:, None], out=work)
                np.multiply(work, work, out=work)
                smallest = float(pairwise_column_sums(work).min())
            # the smallest sum is the smallest mean (dividing by the length keeps the order)
            self.distance = math.sqrt(smallest / self.length)
            raw = self.distance / max(self._high - self._low, 1e-12)
        keep = self.memory + self.length
        if self._fast:
            if self._size == self._bank.shape[0]:
                self._bank[:keep] = self._bank[self._size - keep:self._size]
                self._hint -= self._size - keep
                self._size = keep
            self._bank[self._size] = current
        else:
            if self._size == self._bank.shape[1]:
                self._bank[:, :keep] = self._bank[:, self._size - keep:self._size]
                self._size = keep
            self._bank[:, self._size] = current
        self._size += 1
        return raw


_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()  # day numbers as ``datetime.toordinal``'s


def time_of_day(timestamp: Any) -> tuple[int, int] | None:
    """``(day, minute)`` of a timestamp (an ISO string, a ``datetime``, a pandas ``Timestamp``
    or a ``numpy.datetime64``): a day number and the minute since midnight. ``None`` for
    anything else (a row number, no timestamp at all): the time-of-day part then stays silent.

    >>> time_of_day("2014-04-01 09:05:30")[1], time_of_day(None), time_of_day(3)
    (545, None, None)
    """
    if isinstance(timestamp, np.datetime64):
        if np.isnat(timestamp):
            return None
        seconds = int(timestamp.astype("datetime64[s]").astype(np.int64))
        return seconds // 86400 + _EPOCH_ORDINAL, seconds % 86400 // 60
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp)
        except ValueError:
            return None
    if isinstance(timestamp, datetime):  # pandas' Timestamp is one
        return timestamp.toordinal(), timestamp.hour * 60 + timestamp.minute
    return None


class _Slot:
    """One minute of the day: the mean of each earlier day's values in it, and today's sum."""

    __slots__ = ("count", "day", "earlier", "total")

    def __init__(self, day: int, days: int) -> None:
        self.day, self.total, self.count = day, 0.0, 0
        self.earlier: deque[float] = deque(maxlen=days)

    def roll(self, day: int) -> None:
        """Close the last day seen in this minute once a later day arrives."""
        if day != self.day:
            if self.count:
                self.earlier.append(self.total / self.count)
            self.day, self.total, self.count = day, 0.0, 0


class _TimeOfDay:
    """Calibrated novelty against the same time of day on earlier days: the distance from the
    value to the nearest of the last ``days`` days' values in the same minute of the day (each
    day's mean, where a minute holds several rows), over the mean distance to such a minute's
    median, through HTM's likelihood averaged over ``short`` rows (a missing daily peak lasts;
    one odd row does not). Memory is bounded: at most 1,440 minutes of ``days`` means each.

    ``informative`` says whether the series follows its time of day closely enough for the
    score to mean anything: the mean squared distance of values to their minute's median is
    below ``strength`` times the values' variance (both over the last ``long`` rows, one row per
    minute: they span days whatever the sampling). Series without a daily pattern, and
    timestamps that never repeat a minute of the day, leave it off.
    """

    def __init__(self, strength: float, days: int = 7, short: int = 12, long: int = 2000,
                 min_days: int = 3) -> None:
        self.strength, self.days, self.min_days = strength, days, min_days
        self._slots: dict[int, _Slot] = {}
        self._residuals = RingBuffer(long)  # |value - its minute's median|
        self._values = RingBuffer(long)
        self._calibrate = Likelihood(short=short, long=long, warmup=40)
        self._low = math.inf
        self._high = -math.inf
        self.informative = False

    def update(self, timestamp: Any, value: float) -> float:
        """The calibrated score (0.0 while nothing can be said: no timestamp, too few days,
        the calibration warming up)."""
        when = time_of_day(timestamp)
        if when is None:
            return 0.0
        day, minute = when
        slot = self._slots.get(minute)
        if slot is None:
            slot = self._slots[minute] = _Slot(day, self.days)
        slot.roll(day)
        # the strength is measured on one row per minute, so that its 2,000 rows span days
        # whatever the sampling (five-minute rows: every row)
        first_today = slot.count == 0
        score = 0.0
        if len(slot.earlier) >= self.min_days:
            # a handful of floats: plain Python is several times faster than numpy here
            residual = abs(value - statistics.median(slot.earlier))
            nearest = min(abs(value - earlier) for earlier in slot.earlier)
            typical = self._residuals.sum / self._residuals.count if self._residuals.count else 0.0
            scale = max(typical, 1e-3 * (self._high - self._low), 1e-12)
            if first_today:
                self._residuals.push(residual)
                if self._residuals.count >= MIN_RESIDUALS:
                    variance = self._values.mean_std()[1] ** 2
                    self.informative = (self._residuals.sumsq / self._residuals.count
                                        < self.strength * variance)
            # a distance over a scale learnt from a handful of residuals can be huge (the
            # first one's scale is the range's floor): kept in the likelihood's history, it
            # would widen it so much that a missing day, days later, looks ordinary
            if self._residuals.count >= MIN_RESIDUALS:
                score = self._calibrate.update(nearest / scale)
                score = 0.0 if score != score else score
        slot.total += value
        slot.count += 1
        if first_today:
            self._values.push(value)
        self._low, self._high = min(self._low, value), max(self._high, value)
        return score


class _Beyond:
    """Score of a value outside the range of every earlier one: ``min(1, d / (range * scale))``
    with ``d`` its distance past the nearer extreme (0 inside the range)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._low = math.inf
        self._high = -math.inf

    def update(self, value: float) -> float:
        score = 0.0
        if self._high > self._low:
            past = max(0.0, value - self._high, self._low - value)
            score = min(1.0, past / ((self._high - self._low) * self.scale))
        self._low, self._high = min(self._low, value), max(self._high, value)
        return score


class _Stuck:
    """Whether the newest value completes a run of ``rows`` equal values in a series whose
    values rarely repeat (see the module docstring, part 6)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._previous = math.nan
        self._run = 0  # equal values in a row, the newest included
        self._counted = 0  # rows before the run began
        self._repeats = 0  # of those, rows equal to the row before them

    def update(self, value: float) -> bool:
        if not math.isfinite(value):  # a gap is not a reading: it ends a run, repeats nothing
            self._counted += self._run
            self._previous, self._run = math.nan, 0
            return False
        if value == self._previous:
            self._run += 1
        else:
            self._counted += self._run
            self._repeats += max(self._run - 1, 0)
            self._previous, self._run = value, 1
        return (self._run == self.rows and self._counted >= STUCK_HISTORY
                and self._repeats < STUCK_SHARE * self._counted)


@register_detector
class NoveltyDetector(Detector):
    """Spike and shape novelty, calibrated and averaged (see the module docstring)."""

    name = "amml"

    def __init__(self, window: int = 256, shapes: tuple[int, ...] = (8, 16), memory: int = 4096,
                 spike_long: int = 1500, shape_long: int = 500, peak_window: int = 100,
                 alarm: float = 0.5, suppress: int = 50, range_floor: float = 1e-3,
                 output: str = "score", beyond: float = 0.0, record: float = 0.5,
                 record_warmup: int = 100, daily: float = 0.1, stuck: int = 12) -> None:
        if window < 8:
            raise OpError(f"'window' must be at least 8, got {window}")
        if isinstance(shapes, numbers.Number | str) or not all(
                isinstance(s, numbers.Real) and float(s).is_integer() for s in shapes):
            raise OpError(f"'shapes' must be a list of whole sub-sequence lengths, such as "
                          f"[8, 16], got {shapes!r}")
        shapes = tuple(int(s) for s in shapes)
        if not shapes or min(shapes) < 2:
            raise OpError(f"'shapes' must be sub-sequence lengths of at least 2, got {shapes}")
        if memory < 1:
            raise OpError(f"'memory' must be positive, got {memory}")
        self.window, self.shapes, self.memory = window, shapes, memory
        self.spike_long, self.shape_long = spike_long, shape_long
        self.peak_window, self.alarm, self.suppress = peak_window, alarm, suppress
        self.range_floor = range_floor
        if output not in OUTPUTS:
            raise OpError(f"'output' must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.output = output
        if not (isinstance(beyond, int | float) and math.isfinite(beyond) and beyond >= 0):
            raise OpError(f"'beyond' must be a number >= 0 (0: off), got {beyond!r}")
        self.beyond = beyond
        if not (isinstance(record, int | float) and math.isfinite(record) and record >= 0):
            raise OpError(f"'record' must be a number >= 0 (0: off), got {record!r}")
        if record_warmup < 0:
            raise OpError(f"'record_warmup' must be >= 0, got {record_warmup}")
        self.record, self.record_warmup = record, record_warmup
        if not (isinstance(daily, int | float) and math.isfinite(daily) and daily >= 0):
            raise OpError(f"'daily' must be a number >= 0 (0: off), got {daily!r}")
        self.daily = daily
        if (isinstance(stuck, bool) or not isinstance(stuck, numbers.Integral) or stuck < 0
                or stuck == 1):
            raise OpError(f"'stuck' must be a whole number of rows >= 2 (0: off), got {stuck!r}")
        self.stuck = stuck = int(stuck)
        self._stuck = _Stuck(stuck) if stuck else None
        self._daily = _TimeOfDay(daily) if daily > 0 else None
        self._farthest = [0.0 for _ in shapes]  # per shape length, the farthest distance kept
        self._beyond = _Beyond(beyond) if beyond > 0 else None
        self._spike = _RobustSpike(window, range_floor)
        self._spike_score = Likelihood(long=spike_long, warmup=64)
        self._shapes = [_ShapeNovelty(length, memory) for length in shapes]
        self._shape_scores = [Likelihood(long=shape_long, warmup=40) for _ in shapes]
        self._recent_scores: deque[float] = deque(maxlen=max(peak_window, 1))
        self._since_alarm = suppress + 1
        self._last = 0.0
        self._seen = 0

    def _is_record(self, k: int, distance: float) -> bool:
        """Whether ``distance`` beats the farthest kept for shape ``k`` by the ``record``
        margin; then keeps it (see the module docstring)."""
        found = (self.record > 0 and self._seen > 2 * self.record_warmup
                 and self._farthest[k] > 0
                 and distance > self._farthest[k] * (1.0 + self.record))
        if self._seen > self.record_warmup:
            self._farthest[k] = max(self._farthest[k], distance)
        return found

    def update(self, timestamp: Any, value: float) -> float:
        value = float(value)
        stuck = self._stuck is not None and self._stuck.update(value)
        if not math.isfinite(value):
            value = self._last
        self._last = value
        self._seen += 1
        parts = [self._spike_score.update(self._spike.update(value))]
        record = False
        for k, (shape, calibrate) in enumerate(zip(self._shapes, self._shape_scores,
                                                   strict=True)):
            raw = shape.update(value)
            record |= self._is_record(k, shape.distance)
            if self._seen >= shape.length:  # a shape score exists once a sub-sequence does
                parts.append(calibrate.update(raw))
            else:
                parts.append(0.0)
        warming = any(p != p for p in parts)  # a part still in its warm-up: no score yet
        combined = sum(0.0 if p != p else p for p in parts) / len(parts)
        if self._beyond is not None:
            combined = max(combined, self._beyond.update(value))
        if self._daily is not None:
            daily = self._daily.update(timestamp, value)
            if daily >= DAILY_ALARM and self._daily.informative:
                combined = max(combined, daily)
        if record or stuck:
            combined = 1.0
        score = combined
        if self.peak_window and self._recent_scores and combined <= max(self._recent_scores):
            score = 0.0
        self._recent_scores.append(combined)
        self._since_alarm += 1
        if self._since_alarm <= self.suppress:
            score = 0.0
        elif score >= self.alarm:
            self._since_alarm = 0
        if warming:
            return math.nan
        if self.output == "alarm":
            return 1.0 if self._since_alarm == 0 else 0.0
        return clip01(score)
