"""The discovery engine's one-shot search: a type-wise empirical best response to any population.

No deviation family is assumed. The target cell is played as it is (the deviator's seat keeps its
own agent), every market-round becomes one sample of what the rivals did (their bids, priorities,
order times), and :func:`mecharena.agents.respond.respond` searches, for each value on a grid, the
best bid over a wide range (abstaining, shading, overbidding to several times the largest value),
on those same samples for every candidate (common random numbers). The result is a bid table, a
replayable agent type (``best_response(low=..,high=..,bids=..)``) and a description in words.

The table's gain is in-sample (fitted and scored on the same markets, so biased upward). The
fuzzer scores it like any deviation: on the search seed, then on a fresh seed with more markets
and the cell's own rounds, fines and adaptation, which is the honest estimate with its 95% interval.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena.agents.respond import Response, Sample, check_private_values, format_table, respond
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.fuzz.score import Deviation, agent_seats, replace_cell
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

MAX_GRID = 1025
MAX_POINTS = 4097
MAX_SAMPLES = 2_000_000


@dataclass(frozen=True, slots=True)
class Found:
    """A best response found by search: the table, the deviation that plays it, and what it does."""

    response: Response
    deviation: Deviation
    description: str
    samples: int  # market-rounds it was fitted on
    seed: int

    def as_dict(self) -> dict[str, Any]:
        r = self.response
        return {"values": r.values.tolist(), "bids": r.best.tolist(), "gain_in_sample": r.gain.tolist(),
                "mean_gain_in_sample": r.mean_gain, "description": self.description, "samples": self.samples,
                "candidates": int(r.candidates.size), "seed": self.seed, "agent": self.deviation.agent_spec}


def sample_cell(cell: Cell) -> Sample:
    """Play ``cell`` and stack every market-round, seen from its first agent's seat."""
    episode = cell.episode()
    seats = agent_seats(episode.owner, 1)
    if (episode.owner == seats[0]).sum() > 1:
        raise ConfigError("the deviator (the population's first agent) must hold one identity; "
                          "put a single-identity agent type first")
    spec = episode.context.spec
    if spec.units_per_agent or spec.orders_per_agent:
        raise ConfigError(f"the best-response search bids one unit per seat; {cell.mechanism} is configured for "
                          "several units or orders per agent")
    records = list(play(episode, cell.rounds))
    times = None if records[0].times is None else np.concatenate([r.times for r in records])
    return Sample(np.concatenate([r.values for r in records]), np.concatenate([r.bids for r in records]),
                  np.concatenate([r.priority for r in records]), times, int(seats[0]))


def describe(values: FloatArray, bids: FloatArray, tol: float = 0.02) -> str:
    """The bid function in words: value ranges where it abstains, bids its value, or a multiple of it.

    >>> describe(np.linspace(0, 1, 5), np.array([0.0, 0.0, 0.5, 1.35, 1.8]))
    'abstains for values up to 0.25; bids its value at 0.5; bids 1.8x value above 0.75'
    """
    kinds = []
    for v, b in zip(values, bids, strict=True):
        if b <= 0 and v > tol:
            kinds.append(("abstain", 0.0))
        elif abs(b - v) <= tol * max(1.0, abs(v)):
            kinds.append(("truthful", 1.0))
        else:
            kinds.append(("ratio", b / v if v > 0 else math.inf))
    segments: list[list[int]] = []
    for i, (kind, ratio) in enumerate(kinds):
        last = segments[-1][-1] if segments else None
        if last is not None and kinds[last][0] == kind and (
                kind != "ratio" or _close(ratio, np.median([kinds[j][1] for j in segments[-1]]))):
            segments[-1].append(i)
        else:
            segments.append([i])
    parts = []
    for k, seg in enumerate(segments):
        lo, hi = float(values[seg[0]]), float(values[seg[-1]])
        where = (f"for values up to {hi:.3g}" if k == 0 and len(segments) > 1 else
                 f"above {float(values[seg[0] - 1]):.3g}" if k == len(segments) - 1 and k > 0 else
                 f"at {lo:.3g}" if lo == hi else f"for values {lo:.3g}-{hi:.3g}")
        kind = kinds[seg[0]][0]
        if len(segments) == 1:
            where = "at every value"
        if kind == "abstain":
            parts.append(f"abstains {where}")
        elif kind == "truthful":
            parts.append(f"bids its value {where}")
        else:
            ratios = [kinds[j][1] for j in seg if math.isfinite(kinds[j][1])]
            if ratios:
                parts.append(f"bids {np.median(ratios):.2g}x value {where}")
            else:
                parts.append(f"bids {float(bids[seg[0]]):.3g} {where}")
    return "; ".join(parts)


def _close(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 0.15 * max(abs(a), abs(b), 0.1)


def check_grid(grid: int, points: int, bid_high: float | None, samples: int) -> None:
    """Raise :class:`ConfigError` naming the first setting out of range."""
    if not 2 <= grid <= MAX_GRID:
        raise ConfigError(f"grid must be in [2, {MAX_GRID}] value points, got {grid}")
    if not 3 <= points <= MAX_POINTS:
        raise ConfigError(f"points must be in [3, {MAX_POINTS}] bids, got {points}")
    if bid_high is not None and not (math.isfinite(bid_high) and bid_high > 0):
        raise ConfigError(f"bid_high must be a finite number > 0, got {bid_high}")
    if not 2 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"samples must be in [2, {MAX_SAMPLES}] market-rounds, got {samples}")


def best_response(target: Cell, *, seed: int, samples: int = 20_000, grid: int = 41, points: int = 257,
                  bid_high: float | None = None, refine: int = 2, bandwidth: float | None = None) -> Found:
    """The first agent's type-wise best response to the rest of ``target``'s population.

    Args:
        target: the mechanism, population and rules (its markets and seed are replaced; its rounds kept).
        seed: seed of the fitting sample.
        samples: market-rounds to fit on (markets = ceil(samples / rounds)).
        grid: value points of the table, evenly spaced over the value distribution's support.
        points: bids of the coarse search grid.
        bid_high: the highest bid searched (default: 4x the largest value, capped by the mechanism's
            largest valid action).
        refine: refinement passes around each value's best bid.
        bandwidth: smoothing half-width over bids (default: 2% of the value range; 0: none).

    Raises:
        ConfigError: a setting out of range, or a mechanism the search cannot play (multi-unit
            demand, outcomes that depend on true values).
    """
    check_grid(grid, points, bid_high, samples)
    markets = max(2, math.ceil(samples / target.rounds))
    cell = replace_cell(target, seed=seed, markets=markets)
    episode = cell.episode()
    dist, ctx = episode.context.values, episode.context
    high = min(bid_high if bid_high is not None else 4.0 * dist.high, ctx.spec.action_high)
    sample = sample_cell(cell)
    check_private_values(ctx.mechanism, ctx.config, sample, bid=float(dist.low + dist.high) / 2)
    values = np.linspace(dist.low, dist.high, grid)
    smooth = 0.02 * dist.width if bandwidth is None else bandwidth
    response = respond(ctx.mechanism, ctx.config, sample, values, bid_high=high, points=points, refine=refine,
                       bandwidth=smooth)
    deviation = table_deviation(values, response.best)
    return Found(response, deviation, describe(values, response.best), sample.markets, seed)


def table_deviation(values: FloatArray, bids: FloatArray, deviators: int = 1,
                    interpolate: str = "nearest") -> Deviation:
    """The ``best_response`` deviation playing ``bids`` over the evenly spaced ``values``."""
    params = {"bids": format_table(bids, bids <= 0), "high": float(values[-1]), "interpolate": interpolate,
              "low": float(values[0])}
    return Deviation("best_response", tuple(sorted(params.items())), deviators)
