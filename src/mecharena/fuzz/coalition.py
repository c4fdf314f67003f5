"""The discovery engine's coalition search: the joint best response of a ring of K deviators.

No ring family is assumed. The population's first K agents (one identity each) form a ring that
knows its members' values; a joint strategy maps the ring's value profile to each member's bid.
The form searched is general but tractable: in every market the members are ranked by value
within the ring, and the member of role r (0: the ring's highest value) bids ``table_r(own
value)``, a bid table over a value grid with any bid (0 keeps the member out: suppression;
shading; overbidding up to several times the largest value).

The target cell is played as it is and every market-round becomes one sample: values, rivals'
bids, priorities, order times, and the members' utilities as their own agents played (the
baseline). The objective is the ring's total utility, sum over members of ``utility_i``, minus the
baseline, on those same markets for every candidate (common random numbers). Coordinate ascent
over roles, starting from truthful tables: fix the other roles' tables, and for each grid value
of role r choose the bid that maximizes the ring's total utility over the markets where role r's
value falls in that grid cell (the table plays one bid for the whole cell), re-clearing each
market with all members' bids, so a bid counts through its own gain and through its effect on the
other members (a lower member's bid that sets the price its ring partner pays). Each cell keeps
its bid unless a candidate is strictly better in sample; a coarse bid grid is refined around
each cell's choice; sweeps repeat until no role changes (or ``sweeps`` is reached). Utilities are
recomputed by the mechanism's kernel from true values, so no private-values structure is needed.

Side payments between members move utility inside the ring and leave its total unchanged, so
they do not enter the objective; they matter for whether every member wants to join. The search
reports a split: each role's own gain before transfers (``by_role``), the equal split (each
member's ex-ante Shapley value when members are symmetric), and the Shapley value of the roles'
deviations (``shapley``: v(S) is the ring's gain when the roles in S play their tables and the
others play as their own agents did), with the transfers that would implement it.

The gain is in-sample (fitted and scored on the same markets, so biased upward). The fuzzer
scores the ring like any deviation (``ring_table`` seats, deviators = K) on a fresh seed with its
95% interval: the honest estimate. Rivals are held at what they did in the sample, as for the
one-seat engine (:mod:`mecharena.fuzz.discover`); adaptive rivals answer in the fresh score.
"""

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena import agents
from mecharena.agents.respond import CHUNK_ROWS, format_table
from mecharena.agents.ring_table import MAX_RING, ROLE_SEPARATOR
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray
from mecharena.fuzz.discover import check_grid, describe
from mecharena.fuzz.score import Deviation, agent_seats, replace_cell
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

FAMILY = "coalition"
MAX_SWEEPS = 50
_OFFSETS = 17  # refinement bids around each cell's choice
_ORDINALS = ("highest", "second-highest", "third-highest")


@dataclass(frozen=True, slots=True)
class RingSample:
    """M markets with a ring of K seats: everything but the members' bids is fixed."""

    values: FloatArray  # (M, N)  true values
    bids: FloatArray  # (M, N)  bids as cleared (the members' columns: what their own agents bid)
    priority: FloatArray  # (M, N)
    times: FloatArray | None  # (M, N) order times, or None
    seats: IntArray  # (K,)  the members' seats
    played: FloatArray  # (M, K)  members' utility as their own agents played

    @property
    def markets(self) -> int:
        return self.values.shape[0]


@dataclass(frozen=True, slots=True)
class Split:
    """How the ring's gain per market-round would be shared (each (K,), by role)."""

    by_role: FloatArray  # (K,)  gain of the member holding role r, before transfers
    shapley: FloatArray  # (K,)  Shapley value of role r's deviation
    equal: float  # each member's share under the equal split

    @property
    def transfers(self) -> FloatArray:
        """(K,) what role r receives (negative: pays) to move from ``by_role`` to ``shapley``."""
        return self.shapley - self.by_role

    def as_dict(self) -> dict[str, Any]:
        return {"by_role": self.by_role.tolist(), "shapley": self.shapley.tolist(),
                "shapley_transfers": self.transfers.tolist(), "equal": self.equal,
                "every_member_gains": bool(self.equal > 0)}


@dataclass(frozen=True, slots=True)
class Ring:
    """A ring's joint best response found by search: role tables, the deviation that plays them."""

    values: FloatArray  # (V,)  value grid
    tables: FloatArray  # (K, V)  bid of role r at each grid value (0: stays out)
    gain: float  # in-sample gain of the ring per market-round (sum over members)
    baseline: float  # ring utility per market-round as the members' own agents played
    split: Split
    sweeps: int  # coordinate-ascent sweeps run
    converged: bool  # the last sweep changed no role
    deviation: Deviation
    description: str
    samples: int  # market-rounds it was fitted on
    seed: int

    @property
    def members(self) -> int:
        return self.tables.shape[0]

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.values.tolist(), "tables": self.tables.tolist(), "gain_in_sample": self.gain,
                "gain_in_sample_per_member": self.gain / self.members, "baseline": self.baseline,
                "split": self.split.as_dict(), "sweeps": self.sweeps, "converged": self.converged,
                "description": self.description, "samples": self.samples, "seed": self.seed,
                "agent": self.deviation.agent_spec, "deviators": self.members}


def check_ring(spec: str, seed: int, deviators: int) -> None:
    """Raise :class:`ConfigError` unless the first ``deviators`` agents of ``spec`` can form a ring:
    2 <= K <= the agents there (and MAX_RING), each holding one identity."""
    population = agents.population(spec, seed)
    owner = population.owner
    total = int((owner == np.arange(owner.size)).sum())
    high = min(total, MAX_RING)
    if not (isinstance(deviators, int) and 2 <= deviators <= high):
        raise ConfigError(f"deviators (the ring's size K) must be an integer in [2, {high}] (at most the "
                          f"{total} agents of {population.spec!r} and {MAX_RING}), got {deviators!r}")
    for seat in agent_seats(owner, deviators):
        held = int((owner == seat).sum())
        if held > 1:
            raise ConfigError(f"ring members (the population's first {deviators} agents) must hold one identity "
                              f"each; the agent on seat {int(seat)} holds {held}: put single-identity agents first")


def sample_ring(cell: Cell, deviators: int) -> RingSample:
    """Play ``cell`` and stack every market-round, with its first ``deviators`` agents as the ring.

    Raises:
        ConfigError: a ring that cannot be formed (see :func:`check_ring`), a mechanism with
            several units or orders per agent, or common values.
    """
    check_ring(cell.population, cell.seed, deviators)
    episode = cell.episode()
    seats = agent_seats(episode.owner, deviators)
    spec = episode.context.spec
    if spec.value_width or spec.orders_per_agent:
        raise ConfigError(f"the coalition search bids one unit per seat; {cell.mechanism} is configured for "
                          "several units, partners or orders per agent")
    if episode.context.values.common > 0:
        raise ConfigError(f"the coalition search plays private values; values {cell.values!r} are common "
                          f"(common={episode.context.values.common})")
    records = list(play(episode, cell.rounds))
    times = None if records[0].times is None else np.concatenate([r.times for r in records])
    return RingSample(np.concatenate([r.values for r in records]), np.concatenate([r.bids for r in records]),
                      np.concatenate([r.priority for r in records]), times, seats,
                      np.concatenate([r.outcome.utility[:, seats] for r in records]))


class _Clearer:
    """Clears chosen markets of a sample with the ring's bids replaced; returns members' utilities."""

    def __init__(self, mechanism, config, sample: RingSample, high: float) -> None:
        self.mechanism, self.config, self.sample, self.high = mechanism, config, sample, high

    def members(self, rows: IntArray, bids: FloatArray) -> FloatArray:
        """(R, K) members' utility in markets ``rows`` (R,) with the members' bids ``bids`` (R, K)."""
        s = self.sample
        out = np.empty((rows.size, s.seats.size))
        for start in range(0, rows.size, CHUNK_ROWS):
            part = rows[start:start + CHUNK_ROWS]
            full = s.bids[part]
            full[:, s.seats] = np.minimum(bids[start:start + CHUNK_ROWS], self.high)
            times = None if s.times is None else s.times[part]
            result = self.mechanism.kernel(self.config, s.values[part], full, s.priority[part], times)
            out[start:start + part.size] = result.utility[:, s.seats]
        return out

    def total(self, rows: IntArray, bids: FloatArray) -> FloatArray:
        """(R,) the ring's total utility."""
        return self.members(rows, bids).sum(axis=1)


@dataclass(frozen=True, slots=True)
class _Roles:
    """Who holds which role in each market."""

    member: IntArray  # (M, K)  column (in sample.seats order) of the member holding role r
    value: FloatArray  # (M, K)  that member's value
    cell: IntArray  # (M, K)  the grid cell of that value

    def bids(self, tables: FloatArray) -> FloatArray:
        """(M, K) members' bids (columns in seat order) under ``tables`` (K, V)."""
        m, k = self.member.shape
        out = np.empty((m, k))
        role_bids = tables[np.arange(k)[None, :], self.cell]  # (M, K) by role
        np.put_along_axis(out, self.member, role_bids, axis=1)
        return out


def _roles(sample: RingSample, grid: FloatArray) -> _Roles:
    ring_values = sample.values[:, sample.seats]  # (M, K)
    member = np.argsort(-ring_values, axis=1, kind="stable")  # ties to the lower seat, as ring_table ranks
    value = np.take_along_axis(ring_values, member, axis=1)
    v = grid.size
    # the nearest grid value, as ring_table's nearest lookup
    cell = np.rint(np.clip((value - grid[0]) / (grid[-1] - grid[0]) * (v - 1), 0, v - 1)).astype(np.int64)
    return _Roles(member, value, cell)


def _improve_role(clearer: _Clearer, roles: _Roles, tables: FloatArray, r: int, coarse: FloatArray,
                  step: float, refine: int) -> tuple[FloatArray, bool]:
    """Role ``r``'s table re-chosen cell by cell for the ring's total utility, other roles fixed."""
    m, v = roles.cell.shape[0], tables.shape[1]
    every = np.arange(m)
    current = roles.bids(tables)
    column = roles.member[:, r]
    cells = roles.cell[:, r]
    incumbent = np.bincount(cells, clearer.total(every, current), minlength=v)  # (V,)
    # every coarse candidate on every market, summed by cell
    per_call = max(1, CHUNK_ROWS // m)
    sums = np.empty((coarse.size, v))
    for start in range(0, coarse.size, per_call):
        chunk = coarse[start:start + per_call]
        rows = np.tile(every, chunk.size)
        bids = np.tile(current, (chunk.size, 1))
        bids[np.arange(rows.size), np.tile(column, chunk.size)] = np.repeat(chunk, m)
        total = clearer.total(rows, bids).reshape(chunk.size, m)
        for g in range(chunk.size):
            sums[start + g] = np.bincount(cells, total[g], minlength=v)
    table, value = tables[r].copy(), incumbent.copy()
    _take(table, value, coarse[np.argmax(sums, axis=0)], sums.max(axis=0))
    occupied = np.bincount(cells, minlength=v) > 0
    for _ in range(refine):
        offsets = np.linspace(-step, step, _OFFSETS)
        trial = np.clip(table[:, None] + offsets[None, :], 0.0, clearer.high)  # (V, O)
        rows = np.tile(every, _OFFSETS)
        bids = np.tile(current, (_OFFSETS, 1))
        bids[np.arange(rows.size), np.tile(column, _OFFSETS)] = trial[np.tile(cells, _OFFSETS),
                                                                     np.repeat(np.arange(_OFFSETS), m)]
        total = clearer.total(rows, bids).reshape(_OFFSETS, m)
        sums = np.stack([np.bincount(cells, total[o], minlength=v) for o in range(_OFFSETS)], axis=1)  # (V, O)
        best = np.argmax(sums, axis=1)
        _take(table, value, trial[np.arange(v), best], sums[np.arange(v), best])
        step /= 8
    table = np.where(occupied, table, tables[r])
    return table, bool((table != tables[r]).any())


def _take(table: FloatArray, value: FloatArray, bids: FloatArray, sums: FloatArray) -> None:
    """Move each cell to ``bids`` where its in-sample total ``sums`` is strictly better (in place)."""
    better = sums > value + 1e-9 * np.maximum(1.0, np.abs(value))
    table[better], value[better] = bids[better], sums[better]


def _split(clearer: _Clearer, roles: _Roles, sample: RingSample, tables: FloatArray) -> Split:
    """Each role's own gain, the equal split and the Shapley value of the roles' deviations."""
    m, k = roles.member.shape
    every = np.arange(m)
    found = roles.bids(tables)
    original = sample.bids[:, sample.seats]
    played = sample.played.sum(axis=1).mean()
    by_member = clearer.members(every, found) - sample.played  # (M, K) in seat order
    by_role = np.take_along_axis(by_member, roles.member, axis=1).mean(axis=0)
    worth = {}
    for subset in itertools.product((False, True), repeat=k):
        playing = np.zeros((m, k), bool)  # (M, K) in seat order: the member holds a role in the subset
        np.put_along_axis(playing, roles.member, np.broadcast_to(np.array(subset), (m, k)), axis=1)
        worth[subset] = float(clearer.total(every, np.where(playing, found, original)).mean() - played)
    shapley = np.zeros(k)
    for subset, w in worth.items():
        size = sum(subset)
        for r in range(k):
            if subset[r]:
                without = tuple(False if q == r else s for q, s in enumerate(subset))
                weight = math.factorial(size - 1) * math.factorial(k - size) / math.factorial(k)
                shapley[r] += weight * (w - worth[without])
    return Split(by_role, shapley, float(by_member.sum(axis=1).mean() / k))


def ring_response(target: Cell, deviators: int, *, seed: int, samples: int = 20_000, grid: int = 41,
                  points: int = 129, bid_high: float | None = None, refine: int = 2, sweeps: int = 6) -> Ring:
    """The joint best response of ``target``'s first ``deviators`` agents to the rest of its population.

    Args:
        target: the mechanism, population and rules (its markets and seed are replaced; its rounds kept).
        deviators: K, the ring's size (its first K agents, one identity each).
        seed: seed of the fitting sample.
        samples: market-rounds to fit on (markets = ceil(samples / rounds)).
        grid: value points of each role's table, evenly spaced over the members' value priors' support.
        points: bids of the coarse search grid, evenly spaced on [0, bid_high].
        bid_high: the highest bid searched (default: 4x the largest value, capped by the mechanism's
            largest valid action).
        refine: refinement passes around each cell's bid (each 8x finer).
        sweeps: most coordinate-ascent sweeps over the roles.

    Returns:
        The :class:`Ring`: its tables, in-sample gain, split, and the ``ring_table`` deviation.

    Raises:
        ConfigError: a setting out of range, a ring that cannot be formed (K < 2, K above the
            population's agents, a member with several identities), or a mechanism with several
            units or orders per agent.
    """
    check_grid(grid, points, bid_high, samples)
    if not 1 <= sweeps <= MAX_SWEEPS:
        raise ConfigError(f"sweeps must be in [1, {MAX_SWEEPS}], got {sweeps}")
    check_ring(target.population, target.seed, deviators)
    cell = replace_cell(target, seed=seed, markets=max(2, math.ceil(samples / target.rounds)))
    episode = cell.episode()
    ctx = episode.context
    members = [ctx.prior(int(s)) for s in agent_seats(episode.owner, deviators)]
    low, top = min(p.low for p in members), max(p.high for p in members)  # where the members' values lie
    high = min(bid_high if bid_high is not None else 4.0 * top, ctx.spec.action_high)
    sample = sample_ring(cell, deviators)
    values = np.linspace(low, top, grid)
    clearer = _Clearer(ctx.mechanism, ctx.config, sample, high)
    roles = _roles(sample, values)
    tables = np.tile(np.clip(values, 0.0, high), (deviators, 1))  # truthful
    coarse = np.unique(np.concatenate([np.linspace(0.0, high, points), np.clip(values, 0.0, high)]))
    done, converged = 0, False
    while done < sweeps and not converged:
        changed = False
        for r in range(deviators):
            tables[r], moved = _improve_role(clearer, roles, tables, r, coarse, high / (points - 1), refine)
            changed |= moved
        done += 1
        converged = not changed
    every = np.arange(sample.markets)
    baseline = float(sample.played.sum(axis=1).mean())
    gain = float(clearer.total(every, roles.bids(tables)).mean()) - baseline
    split = _split(clearer, roles, sample, tables)
    deviation = ring_deviation(values, tables)
    return Ring(values, tables, gain, baseline, split, done, converged, deviation, describe_ring(values, tables, split),
                sample.markets, seed)


def ring_deviation(values: FloatArray, tables: FloatArray, interpolate: str = "nearest") -> Deviation:
    """The ``coalition`` deviation (``ring_table`` seats) playing ``tables`` (K, V) over ``values`` (V,)."""
    text = ROLE_SEPARATOR.join(format_table(t) for t in tables)
    params = {"high": float(values[-1]), "interpolate": interpolate, "low": float(values[0]), "tables": text}
    return Deviation(FAMILY, tuple(sorted(params.items())), tables.shape[0])


def describe_ring(values: FloatArray, tables: FloatArray, split: Split) -> str:
    """Each role's bid function in words, then how the gain would be shared."""
    parts = []
    for r, table in enumerate(tables):
        who = _ORDINALS[r] if r < len(_ORDINALS) else f"{r + 1}th-highest"
        parts.append(f"the member with the ring's {who} value {describe(values, table)}")
    shares = ", ".join(f"{s:.3g}" for s in split.shapley)
    return "; ".join(parts) + f". Split by Shapley value of the roles: {shares} per market-round"
