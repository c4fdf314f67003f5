"""Outcome metrics with 95% confidence intervals.

Markets are the independent units: a metric is averaged over rounds within each market, then
the interval is the normal one over markets, ``mean +- 1.96 s / sqrt(B)``. With a single
market the rounds are the units. Efficiency is a ratio of sums (total realized welfare over
total maximum welfare); its interval uses the delta method for ratio estimators
(Cochran, *Sampling Techniques*, 3rd ed., sec. 6.4).
"""

from collections.abc import Callable

import numpy as np

from mecharena.core.types import FloatArray
from mecharena.sim.simulate import Trace

Z95 = 1.959963984540054


def _units(x: FloatArray) -> FloatArray:
    """Independent observations from a (T, B) array."""
    return x.mean(axis=0) if x.shape[1] > 1 else x[:, 0]


def _interval(mean: float, se: float) -> dict[str, object]:
    return {"mean": float(mean), "ci95": [float(mean - Z95 * se), float(mean + Z95 * se)]}


def mean_ci(x: FloatArray) -> dict[str, object]:
    """Mean of a (T, B) metric with its 95% interval."""
    u = _units(x)
    se = u.std(ddof=1) / np.sqrt(u.size) if u.size > 1 else 0.0
    return _interval(u.mean(), se)


def ratio_ci(numerator: FloatArray, denominator: FloatArray) -> dict[str, object]:
    """sum(numerator) / sum(denominator) over (T, B) arrays, with a delta-method interval."""
    num, den = _units(numerator), _units(denominator)
    if den.sum() <= 0:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")]}
    ratio = num.sum() / den.sum()
    n = num.size
    resid = num - ratio * den
    se = np.sqrt((resid**2).sum() / (n * (n - 1))) / den.mean() if n > 1 else 0.0
    return _interval(ratio, se)


def format_ci(stat: dict[str, object], digits: int = 3) -> str:
    """``mean [lo, hi]`` of a :func:`mean_ci` or :func:`ratio_ci` result, for tables."""
    lo, hi = stat["ci95"]
    return f"{stat['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def ci_table(corner: str, columns: dict[str, str], rows: dict[str, str],
             stat: Callable[[str, str], dict[str, object]], digits: int = 3) -> list[str]:
    """A markdown table of intervals, as lines: the header ``corner`` and each column's title (``columns``: key ->
    title), then a row per ``rows`` entry (key -> label) holding :func:`format_ci` of ``stat(column, row)``."""
    lines = [f"| {corner} | " + " | ".join(columns.values()) + " |", "|---|" + "---|" * len(columns)]
    for row, label in rows.items():
        lines.append(f"| {label} | " + " | ".join(format_ci(stat(column, row), digits) for column in columns) + " |")
    return lines


def summarize(trace: Trace) -> dict[str, dict[str, object]]:
    """The headline metrics of a simulation."""
    return {
        "revenue": mean_ci(trace.revenue),
        "efficiency": ratio_ci(trace.welfare, trace.max_welfare),
        "welfare": mean_ci(trace.welfare),
        "bidder_surplus": mean_ci(trace.surplus),
        "participation": mean_ci(trace.participation),
        "invalid_rate": mean_ci(trace.invalid),
    }
