"""Approximate Bayes-Nash equilibria of any sealed-bid mechanism with one bid per bidder.

Bidders come in groups (a count and a value prior each); the members of a group share one
strategy. Strategies are *mixed* while they are learnt: each group keeps, for every value of an
evenly spaced value grid, a distribution over an evenly spaced bid grid on [0, bid_high]. A rival
whose value falls between two grid values plays one of theirs (chosen with the linear weights),
draws a bid cell from it and a bid uniformly inside the cell (cell 0 is bid 0, abstaining), so the
rivals' bids have no atoms and the best responses no jumps.

Iteration t draws a fresh randomly shifted lattice of M markets, lets every agent but one seat
play the current strategies and clears every market once per grid bid of the seat
(:func:`mecharena.agents.respond.clear_many`), which gives ``U_t(v, b) = v A(b) - P(b)`` for every
grid value and bid on common random numbers. Each value's strategy then moves by optimistic
entropic mirror ascent, ``log s_{t+1} = log s_t + eta (2 u_t - u_{t-1})`` on the relative utility
``u_t = U_t / max_b U_t(v, b)``, so that a value that seldom wins learns as fast as one that often
does (optimistic steps: Rakhlin and Sridharan 2013; mirror ascent over discretised auction
strategies: Bichler, Fichtl and Oberlechner, "Computing Bayes-Nash equilibrium strategies in
auction games via simultaneous online dual averaging", SODA). Plain best-response dynamics cycle on the all-pay
auction (its best response to a pooled bid jumps just above it); the optimistic step damps the
cycle, and the mixed strategies keep every rival distribution continuous. The answer is each grid
value's mean bid, averaged over the last third of the iterates (Polyak averaging of the sampling
noise). Strategies are kept for the centres of V equal value cells, so that every cell's rivals
surround its centre; the answer's table on the grid from the lowest to the highest value
interpolates them (linearly extrapolated over the half cell at either end).

The certificate is NashConv (Lanctot et al. 2017) for one deviator per group: the gain of the
global best response (:func:`mecharena.agents.respond.respond` over [0, 2x the largest value])
against the answer played as pure bid functions, fitted on one sample and measured on a fresh one,
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.agents.respond import Sample, check_private_values, clear_many, respond
from mecharena.agents.values import ValueDistribution
from mecharena.core.config import check_seed
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator, lattice_uniforms
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism

VERSION = 2
Z95 = 1.959963984540054  # two-sided 95% normal quantile
_MEMORY: dict[str, tuple["Equilibrium", ...]] = {}


@dataclass(frozen=True, slots=True)
class Equilibrium:
    """A bid function (one group's, or every bidder's when symmetric) and its certificate."""

    values: FloatArray  # (V,)  value grid
    bids: FloatArray  # (V,)  the equilibrium bid at each grid value
    gain: float  # best single deviation's gain per round (fresh sample)
    gain_ci95: tuple[float, float]
    iterations: int
    moves: tuple[float, ...]  # per iteration: the largest change of a grid value's mean bid

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


Group = tuple[int, ValueDistribution]  # (bidders, their value prior)


@dataclass(frozen=True, slots=True)
class _Game:
    """Everything fixed during a solve: the rules, the groups and the grids."""

    mechanism: Mechanism
    config: Any
    counts: tuple[int, ...]  # (K,) bidders per group
    dists: tuple[ValueDistribution, ...]  # (K,)
    values: tuple[FloatArray, ...]  # (K,) each (V,) the centres of the group's V equal value cells
    bids: FloatArray  # (G,) the bid grid, bids[0] = 0

    @property
    def owner(self) -> np.ndarray:
        """(N,) the group of each seat."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    def seat(self, group: int) -> int:
        """The seat that responds for ``group`` (its first member)."""
        return int(sum(self.counts[:group]))


def _points(game: _Game, markets: int, seed: int, key: tuple, per_agent: int) -> tuple[FloatArray, ...]:
    """Lattice uniforms of M markets: (values, priorities, times or None, extra (M, N, per_agent))."""
    n = int(sum(game.counts))
    blocks = 3 if game.mechanism.uses_times else 2
    points = lattice_uniforms(seed, key, markets, (blocks + per_agent) * n)
    owner = game.owner
    values = np.empty((markets, n))
    for k, dist in enumerate(game.dists):
        values[:, owner == k] = dist.ppf(points[:, :n][:, owner == k])
    times = points[:, 2 * n:3 * n] if game.mechanism.uses_times else None
    return values, points[:, n:2 * n], times, points[:, blocks * n:].reshape(markets, n, per_agent)


def _mixed_sample(game: _Game, strategies: tuple[FloatArray, ...], markets: int, seed: int, key: tuple,
                  group: int) -> Sample:
    """M markets in which every agent draws its bid from its group's mixed strategy (see the module doc)."""
    values, priority, times, u = _points(game, markets, seed, key, 3)
    step = game.bids[1] - game.bids[0]
    bids = np.empty_like(values)
    for k, (grid, sigma) in enumerate(zip(game.values, strategies, strict=True)):
        cols = game.owner == k
        position = np.clip((values[:, cols] - grid[0]) / (grid[-1] - grid[0]) * (grid.size - 1), 0, grid.size - 1)
        lower = np.floor(position).astype(np.int64)
        row = np.minimum(lower + (u[:, cols, 0] < position - lower), grid.size - 1)
        cdf = np.cumsum(sigma, axis=1)
        cell = np.minimum((u[:, cols, 1][..., None] > cdf[row]).sum(axis=-1), game.bids.size - 1)
        jittered = np.clip(game.bids[cell] + (u[:, cols, 2] - 0.5) * step, 0.0, game.bids[-1])
        bids[:, cols] = np.where(cell == 0, 0.0, jittered)
    return Sample(values, bids, priority, times, game.seat(group))


def _pure_sample(game: _Game, tables: tuple[FloatArray, ...], markets: int, seed: int, key: tuple,
                 group: int) -> Sample:
    """M markets in which every agent bids its group's bid table (linear between grid values)."""
    values, priority, times, _ = _points(game, markets, seed, key, 0)
    bids = np.empty_like(values)
    for k, (grid, table) in enumerate(zip(game.values, tables, strict=True)):
        cols = game.owner == k
        bids[:, cols] = np.interp(values[:, cols], grid, table)
    return Sample(values, bids, priority, times, game.seat(group))


def _seat_utility(mechanism: Mechanism, config: Any, sample: Sample, bids: FloatArray) -> FloatArray:
    """(M,) the seat's utility when it bids ``bids`` (M,) and the rivals keep theirs."""
    all_bids = sample.bids.copy()
    all_bids[:, sample.seat] = bids
    return mechanism.kernel(config, sample.values, all_bids, sample.priority, sample.times).utility[:, sample.seat]


def _certify(game: _Game, tables: tuple[FloatArray, ...], group: int, *, markets: int, check_markets: int,
             seed: int) -> tuple[float, float, float]:
    """Gain of the group's global best response against ``tables``: fitted on one sample, measured
    on a fresh one. Returns (mean, lo, hi) of the 95% interval."""
    grid, dist = game.values[group], game.dists[group]
    fit = _pure_sample(game, tables, markets, seed, ("certificate", "fit", group), group)
    high = min(2.0 * max(d.high for d in game.dists), game.mechanism.market_spec(game.config, fit.values.shape[1])
               .action_high)
    response = respond(game.mechanism, game.config, fit, grid, bid_high=high, points=257, refine=2,
                       bandwidth=0.005 * dist.width, edges=False).best
    fresh = _pure_sample(game, tables, check_markets, seed, ("certificate", "check", group), group)
    own = fresh.values[:, fresh.seat]
    nearest = np.clip(np.rint((own - grid[0]) / (grid[-1] - grid[0]) * (grid.size - 1)), 0, grid.size - 1)
    deviating = _seat_utility(game.mechanism, game.config, fresh, response[nearest.astype(np.int64)])
    diff = deviating - _seat_utility(game.mechanism, game.config, fresh, fresh.bids[:, fresh.seat])
    mean, half = float(diff.mean()), Z95 * float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return mean, mean - half, mean + half


def solve_groups(mechanism: Mechanism, config: Any, groups: list[Group], *, grid: int = 41, bid_grid: int = 161,
                 markets: int = 1024, iterations: int = 400, rate: float = 8.0, bid_high: float | None = None,
                 seed: int = 0, certificate_markets: int = 20_000,
                 check_markets: int = 100_000) -> tuple[Equilibrium, ...]:
    """Approximate Bayes-Nash bid functions, one per group of bidders (see the module doc).

    Args:
        mechanism, config: the rules (config validated).
        groups: ``[(count, ValueDistribution), ...]``: bidders with a common prior share a strategy
            (at least 2 bidders in all).
        grid: value points of each bid table.
        bid_grid: bid points of the mixed strategies, evenly spaced on [0, bid_high].
        markets: markets of each iteration's sample.
        iterations: mirror-ascent iterations.
        rate: step ``eta`` per unit of relative utility (utility over the value's best one).
        bid_high: the highest bid played (default 1.5x the largest value).
        seed: root seed of every sample.
        certificate_markets: markets on which the certificate's best response is fitted.
        check_markets: markets of the certificate's fresh sample.

    Returns:
        One :class:`Equilibrium` per group, each with its own deviator's certificate.

    Raises:
        ConfigError: fewer than 2 bidders, settings out of range, or rules the search cannot play.
    """
    seed = check_seed(seed, "seed")
    counts = tuple(int(c) for c, _ in groups)
    if not groups or min(counts) < 1 or sum(counts) < 2:
        raise ConfigError(f"groups must hold counts >= 1 and at least 2 bidders in all, got counts {list(counts)}")
    if not (rate > 0 and iterations >= 1 and markets >= 2 and check_markets >= 2 and certificate_markets >= 2
            and 2 <= grid <= 1025 and 3 <= bid_grid <= 4097):
        raise ConfigError(f"rate must be > 0, iterations >= 1, markets, certificate_markets and check_markets >= 2, "
                          f"grid in [2, 1025] and bid_grid in [3, 4097], got rate={rate}, iterations={iterations}, "
                          f"markets={markets}, certificate_markets={certificate_markets}, "
                          f"check_markets={check_markets}, grid={grid}, bid_grid={bid_grid}")
    config = mechanism.config(config)
    n = sum(counts)
    spec = mechanism.market_spec(config, n)
    if spec.units_per_agent or spec.orders_per_agent or spec.sellers is not None:
        raise ConfigError(f"the equilibrium solver covers one-sided markets with one bid per bidder; {mechanism.name} "
                          "is configured otherwise")
    dists = tuple(d for _, d in groups)
    if any(d.common > 0 for d in dists):
        raise ConfigError("the equilibrium solver plays private values (common=0); closed forms cover first and second "
                          "price with common values")
    top = max(d.high for d in dists)
    high = min(1.5 * top if bid_high is None else bid_high, spec.action_high)
    if not (math.isfinite(high) and high > 0):
        raise ConfigError(f"bid_high must be a finite number > 0, got {high}")
    game = _Game(mechanism, config, counts, dists, tuple(d.low + (np.arange(grid) + 0.5) * d.width / grid
                                                         for d in dists), np.linspace(0.0, high, bid_grid))
    probe = _pure_sample(game, game.values, 64, seed, ("check",), 0)
    check_private_values(mechanism, config, probe, bid=float(dists[0].low + dists[0].high) / 2)
    # Start from every bid, tilted towards low ones, so that a value whose utility is flat in its
    # bid (it cannot win on the sample) bids low, as an exact best response would.
    logits = [np.tile(-3.0 * game.bids / high, (grid, 1)) for _ in groups]
    previous: list[FloatArray | None] = [None] * len(groups)
    moves, averaged, tail = [], [np.zeros(grid) for _ in groups], iterations - iterations // 3
    for t in range(iterations):
        strategies = tuple(_softmax(x) for x in logits)
        for k in range(len(groups)):
            sample = _mixed_sample(game, strategies, markets, seed, ("iteration", t, k), k)
            allocation, payment = clear_many(mechanism, config, sample, game.bids)
            utility = game.values[k][:, None] * allocation[None, :] - payment[None, :]  # (V, G)
            # Steps relative to what each value can earn: a low value's utility differs across bids
            # by its small chance of winning times the bid gap, and would otherwise barely move.
            scale = np.maximum(utility.max(axis=1, keepdims=True), 1e-3 * top)
            utility = utility / scale
            last = utility if previous[k] is None else previous[k]
            logits[k] = logits[k] + rate * (2 * utility - last)
            logits[k] -= logits[k].max(axis=1, keepdims=True)
            previous[k] = utility
        means = [_softmax(x) @ game.bids for x in logits]
        moves.append(float(max(np.abs(m - s @ game.bids).max() for m, s in zip(means, strategies, strict=True))))
        if t >= tail:
            averaged = [a + m / (iterations - tail) for a, m in zip(averaged, means, strict=True)]
    # The answer lives on the value grid from low to high; the cells' centres are half a cell in
    # from either end, so the end entries extrapolate the two nearest cells linearly.
    values = tuple(np.linspace(d.low, d.high, grid) for d in dists)
    tables = tuple(np.maximum(_extrapolate(v, c, a), 0.0) for v, c, a in zip(values, game.values, averaged,
                                                                               strict=True))
    played = replace(game, values=values)
    out = []
    for k in range(len(groups)):
        mean, lo, hi = _certify(played, tables, k, markets=certificate_markets, check_markets=check_markets,
                                seed=seed)
        out.append(Equilibrium(values[k], tables[k], mean, (lo, hi), iterations, tuple(moves)))
    return tuple(out)


def _extrapolate(x: FloatArray, xp: FloatArray, fp: FloatArray) -> FloatArray:
    """``np.interp`` inside [xp[0], xp[-1]], linear through the two end points outside it."""
    inside = np.interp(x, xp, fp)
    if xp.size < 2:
        return inside
    below = fp[0] + (x - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    above = fp[-1] + (x - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return np.where(x < xp[0], below, np.where(x > xp[-1], above, inside))


def _softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax of (V, G) logits."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def solve(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, **settings: Any) -> Equilibrium:
    """A symmetric approximate Bayes-Nash equilibrium of ``mechanism`` with ``n`` bidders of prior ``dist``
    (:func:`solve_groups` with one group; ``settings`` as there).

    Raises:
        ConfigError: n < 2, settings out of range, or rules the search cannot play.
    """
    return solve_groups(mechanism, config, symmetric(n, dist), **settings)[0]


def symmetric(n: int, dist: ValueDistribution) -> list[Group]:
    """The one group of ``n`` bidders with prior ``dist``.

    Raises:
        ConfigError: n < 2.
    """
    if n < 2:
        raise ConfigError(f"an equilibrium needs n >= 2 bidders, got {n}")
    return [(n, dist)]


def cache_key(mechanism: Mechanism, config: Any, groups: list[Group], settings: dict[str, Any]) -> str:
    """A stable id of everything a solution depends on."""
    # a one-shot equilibrium depends on the priors, not on whether values persist across rounds
    priors = [[int(n), dist.model_dump(mode="json", exclude={"persistent"})] for n, dist in groups]
    # one group keeps the symmetric key (n, values), and with it the seed a solve draws from the key
    rivals = {"n": priors[0][0], "values": priors[0][1]} if len(priors) == 1 else {"groups": priors}
    data = {"mechanism": mechanism.name, "version": mechanism.version, "config": mechanism.config(config).model_dump(
        mode="json"), **rivals, "settings": settings, "solver": VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where solutions are kept: ``$MECHARENA_CACHE/equilibria`` (default ``~/.cache/mecharena``)."""
    root = os.environ.get("MECHARENA_CACHE") or Path.home() / ".cache" / "mecharena"
    return Path(root) / "equilibria"


def cached_solve(mechanism: Mechanism, config: Any, n: int, dist: ValueDistribution, **settings: Any) -> Equilibrium:
    """:func:`solve`, remembered (see :func:`cached_groups`)."""
    return cached_groups(mechanism, config, symmetric(n, dist), **settings)[0]


def cached_groups(mechanism: Mechanism, config: Any, groups: list[Group], **settings: Any) -> tuple[Equilibrium, ...]:
    """:func:`solve_groups`, remembered in memory and on disk (a damaged cache file is solved again)."""
    key = cache_key(mechanism, config, groups, settings)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"{key}.json"
    try:
        found = tuple(Equilibrium.from_dict(d) for d in json.loads(path.read_text())["groups"])
        if len(found) != len(groups):
            raise ValueError(f"{len(found)} groups cached for {len(groups)}")
    except (OSError, ValueError, KeyError, TypeError):
        found = solve_groups(mechanism, config, groups,
                             seed=int(generator(0, ("equilibrium", key)).integers(2**31)), **settings)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"groups": [e.as_dict() for e in found]}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: the solution stays in memory
    _MEMORY[key] = found
    return found
