"""Throughput ratios between two measurements of one run, taken round by round.

Rounds interleave the variants, so round ``i`` of one variant ran right next to
round ``i`` of another. Dividing within each round cancels the drift of a
shared machine that the two had in common, and the median of those ratios
resists a round that a neighbour's burst of work spoiled. The lowest and highest
ratio show how far single rounds strayed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from benchmarks.measure import Measurement

DASH = "-"


@dataclass(frozen=True)
class Ratio:
    """Median, lowest and highest of the per-round ratios, and how many there were.

    ``rounds`` is 1 when the two measurements could not be paired, and the
    ratio is then one of their medians.
    """

    median: float
    low: float
    high: float
    rounds: int

    def meets(self, target: float) -> bool:
        return self.median >= target


def paired_ratio(ours: Measurement, base: Measurement) -> Ratio | None:
    """Return ``ours`` over ``base``, round by round; None if ``base`` served nothing.

    Measurements with the same number of rounds are paired round by round.
    Otherwise the ratio of the two medians is all there is.
    """
    ours_rates, base_rates = ours.rates, base.rates
    if len(ours_rates) == len(base_rates) and all(rate > 0 for rate in base_rates):
        ratios = [
            mine / theirs for mine, theirs in zip(ours_rates, base_rates, strict=True)
        ]
    elif base.requests_per_second > 0:
        ratios = [ours.requests_per_second / base.requests_per_second]
    else:
        return None
    return Ratio(statistics.median(ratios), min(ratios), max(ratios), len(ratios))


def round_down(value: float, digits: int) -> str:
    """Format ``value`` rounded down, so 0.949 never reads as a 0.95 target met."""
    scale = 10**digits
    # The small term keeps 0.95 computed as 0.9499999999 at 0.95.
    return f"{math.floor(value * scale + 1e-9) / scale:.{digits}f}"


def round_up(value: float, digits: int) -> str:
    """Format ``value`` rounded up, so a shortfall never reads as zero."""
    scale = 10**digits
    return f"{math.ceil(value * scale - 1e-9) / scale:.{digits}f}"


def ratio_cell(ratio: Ratio | None, digits: int = 2) -> str:
    """Format the median ratio, rounded down, as ``0.97x``."""
    return DASH if ratio is None else f"{round_down(ratio.median, digits)}x"


def spread_cell(ratio: Ratio | None) -> str:
    """Format the range of per-round ratios, as ``0.93-1.01x (5 rounds)``."""
    if ratio is None or ratio.rounds < 2:
        return DASH
    low, high = round_down(ratio.low, 2), round_down(ratio.high, 2)
    return f"{low}-{high}x ({ratio.rounds} rounds)"
