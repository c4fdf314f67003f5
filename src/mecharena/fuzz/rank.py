"""Ranking mechanisms under noisy outcomes, with common random numbers and paired intervals.

Every cell is evaluated once per seed in ``seeds`` (its own seed replaced); cells share the seeds,
so two mechanisms face the same value draws, priorities and agent randomness (common random
numbers) and the per-seed difference ``d_s = x_a(s) - x_b(s)`` cancels most of the noise the two
runs share. The comparison is the paired one-sample analysis of the ``d_s``:

* mean ``d = mean(d_s)``, standard deviation ``s_d`` (ddof 1), ``n = len(seeds)``;
* 95% interval ``d +- t_{0.975, n-1} s_d / sqrt(n)`` (Student t with n - 1 degrees of freedom:
  exact for normal differences, and honest with the handful of seeds a ranking usually has);
* the two are *separated* when that interval excludes 0.

Sample size (Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, 2nd ed., sec.
3.1, one-sample / paired mean, two-sided test, normal approximation): to detect a true mean
difference ``delta`` with standard deviation ``sd`` of the paired differences at level
``alpha = 1 - confidence`` with probability ``power``,

    n = ceil(((z_{1 - alpha/2} + z_{power}) * sd / delta)^2).

>>> seeds_needed(1.0, 0.5)
32
"""

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from mecharena.core.config import check_seed
from mecharena.core.errors import ConfigError
from mecharena.fuzz.score import replace_cell
from mecharena.metrics.harness import Cell, evaluate

#: Metrics of :func:`mecharena.metrics.harness.evaluate` a ranking may use.
METRICS = ("revenue", "efficiency", "welfare", "bidder_surplus", "participation", "entry", "negative_payoff_rate",
           "ic_regret", "deficit_rate", "gini", "top_share", "collusion_gain", "price_elevation", "sybil_gain",
           "volatility", "convergence", "collapse")


def _t_cdf(x: float, df: int) -> float:
    """Student t CDF for an integer ``df`` >= 1 (Abramowitz & Stegun 26.7.3-26.7.4, finite sums)."""
    theta = math.atan2(x, math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:  # odd: 2 theta / pi + 2/pi sin cos (1 + 2/3 cos^2 + ...)
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c * c * (2 * k) / (2 * k + 1)
        a = (2 / math.pi) * (theta + (s * total if df > 1 else 0.0))
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        total, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):
            total += term
            term *= c * c * (2 * k - 1) / (2 * k)
        a = s * total
    return 0.5 + 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the exact CDF).

    >>> round(t_quantile(0.975, 4), 4)
    2.7764
    >>> round(t_quantile(0.975, 1), 3)
    12.706
    """
    if not 0.0 < p < 1.0 or df < 1:
        raise ConfigError(f"t_quantile needs p in (0, 1) and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def seeds_needed(sd: float, delta: float, confidence: float = 0.95, power: float = 0.8) -> int:
    """Seeds (paired replications) needed to separate a true mean difference ``delta``.

    ``ceil(((z_{1-alpha/2} + z_power) * sd / delta)^2)`` with ``alpha = 1 - confidence`` (Chow,
    Shao & Wang, sec. 3.1); at least 1.

    Args:
        sd: standard deviation of the per-seed paired differences, >= 0.
        delta: the true difference to detect, != 0 (its sign is ignored).
        confidence: 1 - alpha of the two-sided test, in (0, 1).
        power: probability of separating the two when the difference is ``delta``, in (0, 1).

    Raises:
        ConfigError: a value outside those ranges or not finite.
    """
    for name, value in (("sd", sd), ("delta", delta), ("confidence", confidence), ("power", power)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if sd < 0:
        raise ConfigError(f"sd must be >= 0, got {sd!r}")
    if delta == 0:
        raise ConfigError(f"delta must be non-zero (a difference to detect), got {delta!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if not 0.0 < power < 1.0:
        raise ConfigError(f"power must be in (0, 1), got {power!r}")
    z = NormalDist()
    n = ((z.inv_cdf(1 - (1 - confidence) / 2) + z.inv_cdf(power)) * sd / abs(delta)) ** 2
    return max(1, math.ceil(n - 1e-9))  # the tolerance keeps an exact integer from rounding up


def _check_seeds(seeds: list[int]) -> list[int]:
    seeds = list(seeds)
    if len(seeds) < 2:
        raise ConfigError(f"seeds must hold at least 2 seeds (a paired interval needs two), got {seeds!r}")
    for s in seeds:
        check_seed(s, "each of seeds")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct (a repeated seed is the same run twice), got {seeds!r}")
    return seeds


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def per_seed(cell: Cell, metric: str, seeds: list[int]) -> np.ndarray:
    """(S,) the point estimate of ``metric`` for ``cell`` played on each seed."""
    return np.array([evaluate(replace_cell(cell, seed=s))["metrics"][metric]["mean"] for s in seeds], float)


def _summary(x: np.ndarray) -> dict[str, Any]:
    n = x.size
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "n": int(n)}


def paired(xa: np.ndarray, xb: np.ndarray) -> dict[str, Any]:
    """The paired comparison of per-seed values ``xa`` and ``xb`` (same seeds, same order).

    Returns:
        ``{"difference": {"mean", "sd", "ci95", "n"}, "separated": bool, "higher": "a" | "b" | None,
        "seeds_needed": int | None}``: ``higher`` names the side with the larger mean when
        separated; ``seeds_needed`` is the count that would separate the observed difference with
        80% power (None when the difference is 0 or not finite).
    """
    d = np.asarray(xa, float) - np.asarray(xb, float)
    if not np.isfinite(d).all():
        nan = float("nan")
        return {"difference": {"mean": nan, "sd": nan, "ci95": [nan, nan], "n": int(d.size)}, "separated": False,
                "higher": None, "seeds_needed": None}
    diff = _summary(d)
    lo, hi = diff["ci95"]
    separated = bool(lo > 0 or hi < 0)
    higher = None if not separated else ("a" if diff["mean"] > 0 else "b")
    needed = seeds_needed(diff["sd"], diff["mean"]) if diff["mean"] != 0 else None
    return {"difference": diff, "separated": separated, "higher": higher, "seeds_needed": needed}


def compare(a: Cell, b: Cell, metric: str, seeds: list[int]) -> dict[str, Any]:
    """Compare two cells on ``metric`` with common random numbers over ``seeds``.

    Args:
        a, b: the cells (their own seeds are replaced by each of ``seeds``).
        metric: a metric of :func:`~mecharena.metrics.harness.evaluate` (see :data:`METRICS`).
        seeds: at least two distinct seeds >= 0; both cells play every one.

    Returns:
        ``{"metric", "seeds", "a": {"mean", "sd", "ci95", "n", "per_seed"}, "b": {...}, **paired(a, b)}``:
        the difference is a - b with its 95% Student-t interval.

    Raises:
        ConfigError: an unknown metric, fewer than two seeds, repeated or negative seeds, or a bad cell.
    """
    _check_metric(metric)
    seeds = _check_seeds(seeds)
    xa, xb = per_seed(a, metric, seeds), per_seed(b, metric, seeds)
    return {"metric": metric, "seeds": seeds, "a": {**_summary(xa), "per_seed": xa.tolist()},
            "b": {**_summary(xb), "per_seed": xb.tolist()}, **paired(xa, xb)}


def rank(cells: dict[str, Cell], metric: str, seeds: list[int], *, descending: bool = True) -> list[dict[str, Any]]:
    """Order cells by their mean ``metric`` over ``seeds``, with every pairwise paired comparison.

    Args:
        cells: label -> cell, at least two.
        metric: a metric of :func:`~mecharena.metrics.harness.evaluate`.
        seeds: at least two distinct seeds >= 0, shared by every cell.
        descending: highest mean first (False: lowest first, e.g. for ``ic_regret``).

    Returns:
        One dict per label, best first: ``{"label", "place", "tier", "mean", "sd", "ci95", "n",
        "per_seed", "versus": {other label: paired(this, other)}}``. ``tier`` starts at 1 and goes up
        at each entry that is separated from the one before it, so labels in one tier are not
        distinguishable from their neighbours at these seeds.

    Raises:
        ConfigError: fewer than two cells, an unknown metric, or bad seeds.
    """
    if len(cells) < 2:
        raise ConfigError(f"rank needs at least 2 mechanisms to compare, got {len(cells)}: {list(cells)!r}")
    _check_metric(metric)
    seeds = _check_seeds(seeds)
    values = {label: per_seed(cell, metric, seeds) for label, cell in cells.items()}
    sign = -1.0 if descending else 1.0
    order = sorted(values, key=lambda k: (sign * float(values[k].mean()) if np.isfinite(values[k]).all()
                                          else math.inf, list(cells).index(k)))
    out, tier = [], 1
    for place, label in enumerate(order, start=1):
        versus = {other: paired(values[label], values[other]) for other in order if other != label}
        if place > 1 and versus[order[place - 2]]["separated"]:
            tier += 1
        out.append({"label": label, "place": place, "tier": tier, **_summary(values[label]),
                    "per_seed": values[label].tolist(), "versus": versus})
    return out
