"""The discovery engine's one-shot search: a type-wise empirical best response to any population.

No deviation family is assumed. The target cell is played as it is (the deviator's seat keeps its
own agent), every market-round becomes one sample of what the rivals did (their bids, priorities,
order times), and :func:`mecharena.agents.respond.respond` searches, for each value on a grid, the
best bid over a wide range (abstaining, shading, overbidding to several times the largest value),
on those same samples for every candidate (common random numbers). The result is a bid table, a
replayable agent type (``best_response(low=..,high=..,bids=..)``) and a description in words.

The searched action grows with the market:

* multi-unit demand (``demand`` = K >= 2 in uniform price, pay as bid, VCG): a vector of K
  non-increasing marginal bids for each point of a grid of non-increasing marginal values, so
  demand reduction (shading the later units' bids) is found where it pays;
* two-sided markets: the deviator is the population's first agent, a buyer (the first seats buy);
  ``role="seller"`` makes it the first agent on a selling seat, whose asks are searched;
* false names (mechanisms that declare ``merges_identities``): with ``identities`` = 6 the deviator
  may hold m = 1..6 identities; for each m the cell is played with the deviator on m seats and the
  own bid and the false names' bid are searched together; the m with the highest in-sample gain wins
  (``best_response(identities=m,names=..)``).

The table's gain is in-sample (fitted and scored on the same markets, so biased upward). The
fuzzer scores it like any deviation: on the search seed, then on a fresh seed with more markets
and the cell's own rounds, fines and adaptation, which is the honest estimate with its 95% interval.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mecharena.agents.rank_report import orders, require_ranking_market
from mecharena.agents.respond import (MAX_IDENTITIES, MAX_TABLE, MAX_UNITS, Response, Sample, check_private_values,
                                      clear_many, format_table, respond, table_points)
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator
from mecharena.core.settings import MAX_SAMPLES
from mecharena.core.types import FloatArray
from mecharena.fuzz.score import Deviation, agent_seats, deviated_population, replace_cell
from mecharena.mechanisms.matching import other_side
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

MAX_GRID = 1025
MAX_POINTS = 4097
#: Identities searched for mechanisms that merge them (m = 1 .. SEARCH_IDENTITIES).
SEARCH_IDENTITIES = 6
#: Table entries of the default value grid with several marginal values (11 points per axis for 2 units).
VECTOR_TYPES = 66
VALUE_GRID = 129  # value points of a one-value table: finer than tick grids or narrow windows a rule may have
#: In-sample gain per round that more identities must add over fewer before the search uses them.
IDENTITY_MARGIN = 1e-3
Role = Literal["first", "buyer", "seller"]
ROLES = ("first", "buyer", "seller")


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


def deviator(episode, role: Role = "first") -> tuple[int, int]:
    """(agent index, own seat) of the deviator: the first agent, or the first on a buying or selling seat.

    Raises:
        ConfigError: an unknown role, or no agent of that role (e.g. a seller in a one-sided market).
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {str(role)[:40]!r}")
    seats = agent_seats(episode.owner, episode.owner.size)
    sellers = episode.context.spec.sellers
    selling = np.zeros(episode.owner.size, bool) if sellers is None else sellers
    if role == "first":
        return 0, int(seats[0])
    mine = np.flatnonzero(selling[seats] == (role == "seller"))
    if not mine.size:
        where = "a one-sided market" if sellers is None else f"this population of {seats.size} agents"
        raise ConfigError(f"role must name a side with an agent: {episode.context.mechanism.name} has no "
                          f"{role} in {where}")
    return int(mine[0]), int(seats[mine[0]])


def sample_cell(cell: Cell, role: Role = "first") -> Sample:
    """Play ``cell`` and stack every market-round, seen from the deviator's seat (see :func:`deviator`).

    The deviator may hold several consecutive seats (false names); the sample then responds for all
    of them (:attr:`Sample.identities`).
    """
    episode = cell.episode()
    _, seat = deviator(episode, role)
    spec = episode.context.spec
    if spec.orders_per_agent:
        raise ConfigError(f"the best-response search places one order per seat; {cell.mechanism} is configured "
                          f"for {spec.orders_per_agent} orders per agent")
    if spec.partners:
        raise ConfigError(f"the best-response search plays bids and marginal-bid vectors; {cell.mechanism}'s reports "
                          f"rank partners (utilities per member of the other side), which it does not search")
    if spec.units_per_agent > MAX_UNITS:
        raise ConfigError(f"demand must be <= {MAX_UNITS} for the best-response search (it searches vectors of up "
                          f"to {MAX_UNITS} marginal bids), got {spec.units_per_agent}")
    return sample_records(episode, list(play(episode, cell.rounds)), seat)


def sample_records(episode: Any, records: list[Any], seat: int) -> Sample:
    """Every market-round of ``records`` (played by ``episode``) stacked, seen from ``seat``."""
    times = None if records[0].times is None else np.concatenate([r.times for r in records])
    rules, dist = episode.context.enforcement, episode.context.values
    common, own_share = None, 1.0
    if dist.common > 0:  # the part of the seat's value that the others' signals make (see respond)
        signals = np.concatenate([r.signals for r in records])
        own = episode.owner == np.arange(episode.owner.size)
        agents_n = int(own.sum())
        common = dist.common / agents_n * (signals[:, own].sum(axis=1) - signals[:, seat])
        own_share = 1 - dist.common + dist.common / agents_n
    return Sample(np.concatenate([r.values for r in records]), np.concatenate([r.bids for r in records]),
                  np.concatenate([r.priority for r in records]), times, seat,
                  int((episode.owner == seat).sum()), rules.audit_probability * rules.shill_penalty, common, own_share)


def decision_regret(episode: Any, records: list[Any], seat: int, *, points: int = 257) -> FloatArray:
    """The regret of each of ``seat``'s bids in ``records``: what the best response to the rivals as they
    played earns at the seat's value that round, less what its bid earned, both over every recorded
    market-round (common random numbers; the best response is :func:`respond`'s search, without
    smoothing, over bids up to 4x the largest value).

    Returns:
        (R,) one regret per market-round, >= 0 up to the search's grid.

    Raises:
        ConfigError: a mechanism the search cannot play, or multi-unit demand (one bid per decision only).
    """
    ctx = episode.context
    if (ctx.spec.units_per_agent or 1) > 1 or ctx.spec.orders_per_agent or ctx.spec.partners:
        raise ConfigError(f"decision regret scores one bid per seat and round; {ctx.mechanism.name} takes more")
    sample = sample_records(episode, records, seat)
    values = sample.values[:, seat]
    high = min(4.0 * ctx.prior(seat).high, ctx.spec.action_high)
    best = respond(ctx.mechanism, ctx.config, sample, values, bid_high=high, points=points).best
    own = sample.bids[:, seat]
    allocation, payment = clear_many(ctx.mechanism, ctx.config, sample, np.concatenate([best, own]))
    utility = values * allocation.reshape(2, -1) - payment.reshape(2, -1)
    return np.maximum(utility[0] - utility[1], 0.0)


def describe(values: FloatArray, bids: FloatArray, tol: float = 0.02, selling: bool = False) -> str:
    """The bid function in words: value ranges where it abstains, bids its value, a multiple of it, or one
    price whatever the value. A point that fits both abstaining and bidding its value (a value near 0 bid 0)
    joins its neighbour's range. A seller's (``selling``) 0 is an ask that sells at any price, and it asks.

    >>> describe(np.linspace(0, 1, 5), np.array([0.0, 0.0, 0.5, 1.35, 1.8]))
    'abstains for values up to 0.25; bids its value at 0.5; bids 1.8x value from 0.75'
    >>> describe(np.linspace(0, 1, 5), np.array([0.0, 0.25, 0.5, 0.7, 0.7]))
    'bids its value for values up to 0.5; bids 0.7 from 0.75'
    """
    kinds: list[str | None] = []
    for v, b in zip(values, bids, strict=True):
        truthful = abs(b - v) <= tol * max(1.0, abs(v))
        kinds.append(None if truthful and b <= tol else "abstain" if b <= 0 else "truthful" if truthful else "bid")
    known = [i for i, kind in enumerate(kinds) if kind is not None]
    if not known:
        return "bids its value at every value"
    kinds = [kind or kinds[min((i for i in known if i > j), default=known[-1])] for j, kind in enumerate(kinds)]
    segments: list[list[int]] = []
    for i, kind in enumerate(kinds):
        seg = segments[-1] if segments else []
        if seg and kinds[seg[-1]] == kind and (kind != "bid" or _same_rule(values, bids, seg + [i], tol)):
            seg.append(i)
        else:
            segments.append([i])
    parts = []
    for k, seg in enumerate(segments):
        lo, hi = float(values[seg[0]]), float(values[seg[-1]])
        where = ("at every value" if len(segments) == 1 else f"for values up to {hi:.3g}" if k == 0 else
                 f"from {lo:.3g}" if k == len(segments) - 1 and lo != hi else
                 f"at {lo:.3g}" if lo == hi else f"for values {lo:.3g}-{hi:.3g}")
        kind, seg_bids = kinds[seg[0]], bids[seg]
        verb = "asks" if selling else "bids"
        if kind == "abstain":
            parts.append(f"asks 0 (sells at any price) {where}" if selling else f"abstains {where}")
        elif kind == "truthful":
            parts.append(f"{verb} its value {where}")
        elif len(seg) > 1 and np.ptp(seg_bids) <= tol * max(1.0, float(np.abs(seg_bids).max())):
            parts.append(f"{verb} {float(np.median(seg_bids)):.3g} {where}")
        else:
            ratios = [float(bids[j] / values[j]) for j in seg if values[j] > 0]
            parts.append(f"{verb} {np.median(ratios):.2g}x value {where}" if ratios else
                         f"{verb} {float(seg_bids[0]):.3g} {where}")
    return "; ".join(parts)


def _same_rule(values: FloatArray, bids: FloatArray, seg: list[int], tol: float) -> bool:
    """The points ``seg`` follow one rule: the same multiple of the value, or the same bid."""
    same_bid = np.ptp(bids[seg]) <= tol * max(1.0, float(np.abs(bids[seg]).max()))
    ratios = [float(bids[j] / values[j]) for j in seg if values[j] > 0]
    return bool(same_bid) or (len(ratios) == len(seg) and _close(min(ratios), max(ratios)))


def _close(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 0.15 * max(abs(a), abs(b), 0.1)


def check_grid(grid: int, points: int, bid_high: float | None, samples: int, units: int = 1) -> None:
    """Raise :class:`ConfigError` naming the first setting out of range (``units``: marginal values)."""
    if not 2 <= grid <= MAX_GRID:
        raise ConfigError(f"grid must be in [2, {MAX_GRID}] value points, got {grid}")
    if units > 1 and math.comb(grid + units - 1, units) > MAX_TABLE:
        raise ConfigError(f"grid must give a table of at most {MAX_TABLE} entries with {units} units of demand "
                          f"(C(grid + {units - 1}, {units}) entries), got {grid}")
    if not 3 <= points <= MAX_POINTS:
        raise ConfigError(f"points must be in [3, {MAX_POINTS}] bids, got {points}")
    if bid_high is not None and not (math.isfinite(bid_high) and bid_high > 0):
        raise ConfigError(f"bid_high must be a finite number > 0, got {bid_high}")
    if not 2 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"samples must be in [2, {MAX_SAMPLES}] market-rounds, got {samples}")


def best_response(target: Cell, *, seed: int, samples: int = 20_000, grid: int | None = None, points: int = 257,
                  bid_high: float | None = None, refine: int = 2, bandwidth: float | None = None,
                  role: Role = "first", identities: int = 1) -> Found:
    """The deviator's type-wise best response to the rest of ``target``'s population.

    Args:
        target: the mechanism, population and rules (its markets and seed are replaced; its rounds kept).
        seed: seed of the fitting sample.
        samples: market-rounds to fit on (markets = ceil(samples / rounds)).
        grid: value points of the table per value axis, evenly spaced over the support of the
            deviator's value prior (default: VALUE_GRID for one value; with K marginal values, the most points per axis
            whose table has at most VECTOR_TYPES entries, e.g. 11 for K = 2).
        points: bids of the coarse search grid (about ``points ** (1/D)`` per coordinate of D bids).
        bid_high: the highest bid searched (default: 4x the largest value, capped by the mechanism's
            largest valid action).
        refine: refinement passes around each type's best action.
        bandwidth: smoothing half-width over bids (default: 2% of the value range; 0: none; one bid only).
        role: the deviator: the population's ``first`` agent, the first ``buyer`` or the first ``seller``
            (two-sided markets); that agent's place in the population is kept in the deviation.
        identities: the most identities searched (m = 1 .. identities; > 1 needs a mechanism that
            declares ``merges_identities`` and a unit-demand deviator that is the first agent).

    Raises:
        ConfigError: a setting out of range, or a mechanism the search cannot play (more than
            MAX_UNITS units of demand, several orders per agent, outcomes that depend on true values).
    """
    if not 1 <= identities <= MAX_IDENTITIES:
        raise ConfigError(f"identities must be in [1, {MAX_IDENTITIES}], got {identities}")
    markets = max(2, math.ceil(samples / target.rounds))
    cell = replace_cell(target, seed=seed, markets=markets)
    episode = cell.episode()
    ctx = episode.context
    after, seat = deviator(episode, role)
    dist = ctx.prior(seat)  # the deviator's own value prior: its table spans it
    units = ctx.spec.units_per_agent or 1
    if units > MAX_UNITS:
        raise ConfigError(f"demand must be <= {MAX_UNITS} for the best-response search (it searches vectors of up "
                          f"to {MAX_UNITS} marginal bids), got {units}")
    if grid is None:
        fits = (g for g in range(2, 42) if math.comb(g + units - 1, units) <= VECTOR_TYPES)
        grid = VALUE_GRID if units == 1 else max(fits)
    check_grid(grid, points, bid_high, samples, units)
    if identities > 1 and (not ctx.mechanism.merges_identities or units > 1 or role == "seller"):
        raise ConfigError(f"identities must be 1 for {target.mechanism}{' with demand > 1' if units > 1 else ''}: "
                          "false names need a one-sided unit-demand mechanism that declares merges_identities")
    high = min(bid_high if bid_high is not None else 4.0 * dist.high, ctx.spec.action_high)
    values = np.linspace(dist.low, dist.high, grid) if units == 1 else table_points(dist.low, dist.high, grid, units)
    smooth = 0.02 * dist.width if bandwidth is None else bandwidth
    found = None
    for m in range(1, identities + 1):
        if m == 1:
            sample = sample_cell(cell, role)
        else:
            truthful = f"best_response(identities={m},low={dist.low!r},high={dist.high!r},interpolate=linear," \
                       f"bids={dist.low!r}/{dist.high!r})"
            population = deviated_population(cell.population, seed, 1, truthful)
            sample = sample_cell(replace_cell(cell, population=population), role)
        if m == 1:
            check_private_values(ctx.mechanism, ctx.config, sample, bid=float(dist.low + dist.high) / 2)
        response = respond(ctx.mechanism, ctx.config, sample, values, bid_high=high, points=points, refine=refine,
                           bandwidth=smooth)
        # False names must beat one identity by IDENTITY_MARGIN: each m is fitted on its own sample, and
        # the largest of six noisy in-sample gains would otherwise pick false names that gain nothing.
        if found is None or response.mean_gain > found[0].mean_gain + IDENTITY_MARGIN:
            found = (response, sample, m)
    response, sample, m = found
    selling = ctx.spec.sellers is not None and bool(ctx.spec.sellers[seat])
    deviation = table_deviation(values, response.best, after=after, identities=m, selling=selling)
    return Found(response, deviation, describe_action(values, response.best, m, selling), sample.markets, seed)


def describe_action(values: FloatArray, best: FloatArray, identities: int = 1, selling: bool = False) -> str:
    """:func:`describe` for any action: per unit for marginal bids, own and false-name bids for identities (a
    seller's asks with ``selling``)."""
    if best.ndim == 1:
        return describe(values, best, selling=selling)
    if identities > 1:
        own, names = best[:, 0], best[:, 1]
        said = describe(values, names) if (names > 0).any() else "abstains"
        return f"bids under {identities} identities: its own seat {describe(values, own)}; each false name {said}"
    parts = []
    for k in range(best.shape[1]):
        v, b = values[:, k], best[:, k]
        zero = (b <= 0) & (v > 0.02 * max(1.0, float(values.max())))
        share = float(zero.mean()) if zero.size else 0.0
        ratio = b[v > 0] / v[v > 0]
        ratio = ratio[b[v > 0] > 0]
        median = f"{float(np.median(ratio)):.2g}x its marginal value (median) otherwise" if ratio.size else ""
        parts.append(f"unit {k + 1}: bids 0 for {share:.0%} of value vectors"
                     + (f", {median}" if median else ""))
    return "; ".join(parts)


def table_deviation(values: FloatArray, bids: FloatArray, deviators: int = 1, interpolate: str = "nearest",
                    after: int = 0, identities: int = 1, selling: bool = False) -> Deviation:
    """The ``best_response`` deviation playing ``bids`` over the evenly spaced ``values``: a bid of 0 sits
    out, except a seller's (``selling``), whose ask of 0 sells at any price (it sits out by asking more than
    any buyer bids).

    Args:
        values: (V,) the value grid, or (V, K) its points with K marginal values (see
            :func:`mecharena.agents.respond.table_points`).
        bids: (V,) bids, (V, K) marginal bids, or (V, 2) own and false-name bids (``identities`` >= 2).
        deviators: agents that play it.
        interpolate: between grid values (one bid per entry).
        after: agents of the population that keep their place before the deviator.
        identities: seats the deviator holds.
        selling: the deviator sells (its ask of 0 is an ask).
    """
    if bids.ndim == 1 or identities > 1:
        own = bids if bids.ndim == 1 else bids[:, 0]
        params = {"bids": format_table(own, (own <= 0) & (not selling)), "high": float(values[-1]),
                  "interpolate": interpolate, "low": float(values[0])}
        if identities > 1:
            params |= {"identities": identities, "names": format_table(bids[:, 1], bids[:, 1] <= 0)}
    else:
        params = {"bids": format_table(bids, (bids <= 0).all(axis=1)), "high": float(values[:, 0].max()),
                  "interpolate": interpolate, "low": float(values[:, 0].min())}
    return Deviation("best_response", tuple(sorted(params.items())), deviators, after)


#: The discovery engine's family for markets of preference rankings (:mod:`mecharena.agents.rank_report`).
RANKING = "ranking"


def report_strategies(target: Cell, *, limit: int, seed: int) -> list[Deviation]:
    """Every ranking report (a reordering and a truncation of the true list) of the first agent on each side of a
    matching market: the first proposer and the first receiver, each as the one deviator; ``limit`` of them, drawn
    without replacement from ``seed``'s stream (the truthful reports always among them), where there are more.

    The report space is finite (m! orders x (m + 1) truncations for m members on the other side), so the search
    is exhaustive where ``limit`` allows: for deferred acceptance with 3 a side, 48 strategies.

    Raises:
        ConfigError: the market is not one of preference rankings.
    """
    ctx = target.episode().context
    require_ranking_market(target.mechanism, ctx.spec, ctx.config, "the ranking search")
    proposers = ctx.config.proposers
    sides = [(after, int(other_side(ctx.config, ctx.n_agents, after))) for after in (0, proposers)]  # (seat, m)
    found = [Deviation(RANKING, (("keep", keep), ("order", order)), 1, after)
             for after, m in sides for order in range(len(orders(m))) for keep in range(m + 1)]
    if len(found) <= limit:
        return found
    truthful = [Deviation(RANKING, (("keep", m), ("order", 0)), 1, after) for after, m in sides]
    rest = [d for d in found if d not in truthful]
    picked = generator(seed, ("ranking",)).choice(len(rest), size=max(0, limit - len(truthful)), replace=False)
    return truthful + [rest[i] for i in sorted(picked)]


def describe_report(deviation: Deviation, target: Cell) -> str:
    """What a ranking report (:func:`report_strategies`) does, in words.

    >>> describe_report(Deviation(RANKING, (("keep", 2), ("order", 0)), 1, 3),
    ...                 Cell(mechanism="deferred_acceptance", population="truthful:6"))
    'a receiver reports its true ranking of the 3 proposers truncated to its top 2 (the rest unacceptable)'
    """
    ctx = target.episode().context
    proposers, params = ctx.config.proposers, dict(deviation.params)
    side, other = ("a proposer", "receivers") if deviation.after < proposers else ("a receiver", "proposers")
    m = int(other_side(ctx.config, ctx.n_agents, deviation.after))
    order = orders(m)[params["order"]]
    listed = ("its true ranking" if params["order"] == 0 else
              f"its true ranks in the order {', '.join(str(r + 1) for r in order)}")
    keep = params["keep"]
    cut = ("" if keep >= m else " and declares nobody acceptable" if keep == 0 else
           f" truncated to its top {keep} (the rest unacceptable)")
    return f"{side} reports {listed} of the {m} {other}{cut}"
