"""Symmetric approximate Bayes-Nash equilibria of any sealed-bid mechanism, by iterated best responses.

All n bidders play one bid function b(v), a table over an evenly spaced value grid (linear in
between). Iteration k draws a fresh sample of M markets (values i.i.d. from the prior, seeded
priorities), lets n - 1 rivals bid b_k and computes one bidder's type-wise best response BR_k on
the grid (:func:`mecharena.agents.respond.respond`: any bid in [0, bid_high], no shape assumed).
The profile moves part of the way, ``b_{k+1} = b_k + step (BR_k - b_k)`` (damped best-response
dynamics, as in Bosshard et al. 2020, "Computing Bayes-Nash equilibria in combinatorial auctions
with verification"); the answer is the average of the iterates of the second half (Polyak
averaging: the best responses' sampling noise averages out over independent samples).

The certificate is NashConv (Lanctot et al. 2017) restricted to symmetric profiles: the gain of
one bidder's best response against the answer, fitted on one sample and measured on a fresh one,
with a 95% interval over markets. A symmetric profile's NashConv over all n players is n times
that gain; we report the single deviator's gain, the quantity a fuzzer would find.

Known results it reproduces (values uniform on [0, 1], no reserve): first price ``(n-1)/n v``
(Vickrey 1961); all-pay ``(n-1)/n v^n`` (Krishna, *Auction Theory*, 2nd ed., sec. 2.5); second
price truthful. Solutions are cached (memory and disk, ``$MECHARENA_CACHE`` or
``~/.cache/mecharena``) by mechanism id, version, config, n, value distribution and settings.
"""

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.agents.respond import Sample, check_private_values, respond
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator, lattice_uniforms
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism

VERSION = 1
Z95 = 1.959963984540054  # two-sided 95% normal quantile
_MEMORY: dict[str, "Equilibrium"] = {}


@dataclass(frozen=True, slots=True)
class Equilibrium:
    """A symmetric bid function and its certificate."""

    values: FloatArray  # (V,)  value grid
    bids: FloatArray  # (V,)  the equilibrium bid at each grid value
    gain: float  # best single deviation's gain per round (fresh sample)
    gain_ci95: tuple[float, float]
    iterations: int
    moves: tuple[float, ...]  # max |BR_k - b_k| per iteration

    def bid(self, values: FloatArray) -> FloatArray:
        """Bids for values of any shape (linear between grid values, constant beyond)."""
        return np.interp(values, self.values, self.bids)

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.values.tolist(), "bids": self.bids.tolist(), "gain": self.gain,
                "gain_ci95": list(self.gain_ci95), "iterations": self.iterations, "moves": list(self.moves)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Equilibrium":
        return cls(np.asarray(data["values"], float), np.asarray(data["bids"], float), float(data["gain"]),
                   tuple(data["gain_ci95"]), int(data["iterations"]), tuple(data["moves"]))


def _sample(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, bids: FloatArray, grid: FloatArray,
            markets: int, seed: int, key: tuple) -> Sample:
    """M markets on a shifted lattice (values, priorities[, times]), rivals bidding the table ``bids``."""
    points = lattice_uniforms(seed, key, markets, (3 if mechanism.uses_times else 2) * n)
    values = dist.ppf(points[:, :n])
    times = points[:, 2 * n:] if mechanism.uses_times else None
    return Sample(values, np.interp(values, grid, bids), points[:, n:2 * n], times, 0)


def _seat_utility(mechanism: Mechanism, config: Any, sample: Sample, bids: FloatArray) -> FloatArray:
    """(M,) the seat's utility when it bids ``bids`` (M,) and the rivals keep theirs."""
    all_bids = sample.bids.copy()
    all_bids[:, sample.seat] = bids
    return mechanism.kernel(config, sample.values, all_bids, sample.priority, sample.times).utility[:, sample.seat]


def deviation_gain(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, grid: FloatArray,
                   profile: FloatArray, response: FloatArray, *, markets: int, seed: int,
                   key: tuple = ("gain",)) -> tuple[float, float, float]:
    """Mean gain of one bidder playing ``response`` (nearest grid value) instead of ``profile`` while
    n - 1 rivals play ``profile``, on a fresh sample: (mean, lo, hi) of the 95% interval."""
    sample = _sample(mechanism, config, n, dist, profile, grid, markets, seed, key)
    own = sample.values[:, 0]
    nearest = np.clip(np.rint((own - grid[0]) / (grid[-1] - grid[0]) * (grid.size - 1)), 0, grid.size - 1)
    deviating = _seat_utility(mechanism, config, sample, response[nearest.astype(np.int64)])
    diff = deviating - _seat_utility(mechanism, config, sample, sample.bids[:, 0])
    mean, half = float(diff.mean()), Z95 * float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return mean, mean - half, mean + half


def solve(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, *, grid: int = 41,
          markets: int = 20_000, iterations: int = 24, step: float = 0.5, bid_high: float | None = None,
          seed: int = 0, check_markets: int = 100_000, start: FloatArray | None = None) -> Equilibrium:
    """A symmetric approximate Bayes-Nash equilibrium of ``mechanism`` with ``n`` bidders.

    Args:
        mechanism, config: the rules (config validated).
        n: bidders (>= 2).
        dist: the common prior of values.
        grid: value points of the bid table.
        markets: markets per iteration's sample.
        iterations: best-response iterations.
        step: how far the profile moves towards each best response (0, 1].
        bid_high: the highest bid searched (default 2x the largest value).
        seed: root seed of every sample.
        check_markets: markets of the certificate's fresh sample.
        start: initial bid table (default: truthful).

    Raises:
        ConfigError: n < 2, settings out of range, or rules the search cannot play.
    """
    if n < 2:
        raise ConfigError(f"an equilibrium needs n >= 2 bidders, got {n}")
    if not (0 < step <= 1 and iterations >= 1 and markets >= 2 and check_markets >= 2 and 2 <= grid <= 1025):
        raise ConfigError(f"step must be in (0, 1], iterations >= 1, markets >= 2, check_markets >= 2 and grid in "
                          f"[2, 1025], got step={step}, iterations={iterations}, markets={markets}, "
                          f"check_markets={check_markets}, grid={grid}")
    config = mechanism.config(config)
    spec = mechanism.market_spec(config, n)
    if spec.units_per_agent or spec.orders_per_agent or spec.sellers is not None:
        raise ConfigError(f"the equilibrium solver covers one-sided markets with one bid per bidder; {mechanism.name} "
                          "is configured otherwise")
    values = np.linspace(dist.low, dist.high, grid)
    high = min(2.0 * dist.high if bid_high is None else bid_high, spec.action_high)
    bids = values.copy() if start is None else np.asarray(start, float)
    check_private_values(mechanism, config, _sample(mechanism, config, n, dist, bids, values, 64, seed, ("check",)),
                         bid=float(dist.low + dist.high) / 2)
    history, moves = [], []
    for k in range(iterations):
        sample = _sample(mechanism, config, n, dist, bids, values, markets, seed, ("iteration", k))
        best = respond(mechanism, config, sample, values, bid_high=high, points=129, refine=2,
                       bandwidth=0.02 * dist.width).best
        moves.append(float(np.abs(best - bids).max()))
        bids = bids + step * (best - bids)
        history.append(bids)
    answer = np.mean(history[len(history) // 2:], axis=0)
    final = _sample(mechanism, config, n, dist, answer, values, markets * 2, seed, ("certificate", "fit"))
    response = respond(mechanism, config, final, values, bid_high=high, points=257, refine=2,
                       bandwidth=0.02 * dist.width).best
    mean, lo, hi = deviation_gain(mechanism, config, n, dist, values, answer, response, markets=check_markets,
                                  seed=seed)
    return Equilibrium(values, answer, mean, (lo, hi), iterations, tuple(moves))


def cache_key(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, settings: dict[str, Any]) -> str:
    """A stable id of everything a solution depends on."""
    data = {"mechanism": mechanism.name, "version": mechanism.version, "config": mechanism.config(config).model_dump(
        mode="json"), "n": n, "values": dist.model_dump(mode="json"), "settings": settings, "solver": VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where solutions are kept: ``$MECHARENA_CACHE/equilibria`` (default ``~/.cache/mecharena``)."""
    root = os.environ.get("MECHARENA_CACHE") or Path.home() / ".cache" / "mecharena"
    return Path(root) / "equilibria"


def cached_solve(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, **settings: Any) -> Equilibrium:
    """:func:`solve`, remembered in memory and on disk (a damaged cache file is solved again)."""
    key = cache_key(mechanism, config, n, dist, settings)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"{key}.json"
    try:
        found = Equilibrium.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        found = solve(mechanism, config, n, dist, seed=int(generator(0, ("equilibrium", key)).integers(2**31)),
                      **settings)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(found.as_dict()))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: the solution stays in memory
    _MEMORY[key] = found
    return found
