"""Adaptive shader: best-responds to the distribution of competing bids it has learned from
what the market revealed.

Rule (first price, and pay-as-bid with unit demand and k units): the agent keeps, per seat, a
histogram over ``bins`` price bins of Y, the competing bid it must beat (the highest other bid;
in pay-as-bid the k-th highest). It bids the grid price b maximising (v - b) * P(Y < b), with
bids below the visible reserve excluded (a value below the reserve bids its value and cannot win).
After each round it learns one observation of Y, as precise as the information policy allows:

* competing bids revealed: Y exactly;
* only the bid distribution revealed: Y exactly when it lost in first price (the top quantile is the
  winning bid), else as below;
* only the clearing price revealed (first price): Y = price when it lost; Y < its bid when it won;
* nothing revealed: Y < its bid when it won, Y >= its bid when it lost.

A censored observation (an interval) adds one unit of mass spread over the bins inside the
interval in proportion to the current histogram (the self-consistency step of Efron 1967 /
Turnbull 1976 for censored data). ``prior`` pseudo-counts start the histogram flat; ``forget``
discounts old counts each round. With symmetric opponents and revealed prices this is
fictitious play, which approaches the Bayes-Nash bid function of first-price auctions.
"""

from dataclasses import dataclass

import numba
import numpy as np
from pydantic import Field

from mecharena.agents._competitive import others_threshold
from mecharena.agents._sums import pairwise_sum
from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray, IntArray

VERSION = 1
SUPPORTED = ("first_price", "pay_as_bid")


class AdaptiveParams(StrictModel):
    bins: int = Field(64, ge=4, le=512, description="price bins of the learned competing-bid histogram")
    prior: float = Field(1.0, gt=0, le=1000, description="pseudo-count spread flat over the bins at the start")
    forget: float = Field(0.0, ge=0, le=0.5, description="share of old counts discounted each round")


@dataclass(frozen=True, slots=True)
class AdaptiveState:
    """The learned histogram of the competing bid Y, per seat, in one of two forms holding the same floats.

    While every count is the prior pseudo-count plus whole units (no forgetting and every observation exact,
    e.g. with competing bids revealed) it is kept as tallies: ``counts == levels[hits]``, where ``levels[h]`` is
    the prior pseudo-count with h units added one at a time, as the dense form adds them. Tallies take a byte
    (two once a bin holds 255 units) per bin instead of eight; the first censored observation, forgetting, or more than
    65,535 rounds turn the histogram dense.
    """

    dense: FloatArray | None  # (B, S, G)  counts; None: tallied
    hits: IntArray | None = None  # (B, S, G)  units per bin (uint8, then uint16)
    levels: FloatArray | None = None  # (H,)  count of a bin with h units, H = 1 + the most units its dtype holds
    most: int = 0  # the highest tally

    @property
    def counts(self) -> FloatArray:
        """(B, S, G) the learned histogram."""
        return self.dense if self.hits is None else self.levels[self.hits]

    @property
    def peak_nbytes(self) -> int:
        """Bytes of the dense histogram, which tallies can turn into at any round: what a memory budget holds."""
        return (self.dense if self.hits is None else self.hits).size * np.dtype(np.float64).itemsize


def _edges(context: MarketContext, params: AdaptiveParams) -> FloatArray:
    return np.linspace(0.0, context.values.high, params.bins + 1)


def _rank(context: MarketContext) -> int:
    """Which competing bid must be beaten: 1 in first price, k in a k-unit pay-as-bid."""
    return int(getattr(context.config, "units", 1))


def _check(context: MarketContext) -> None:
    require_mechanism(context, "adaptive", SUPPORTED, unit_demand=True)


def init(context: MarketContext, params: AdaptiveParams, seats: int, draws: Draws) -> AdaptiveState:
    _check(context)
    return AdaptiveState(None, np.zeros((draws.markets, seats, params.bins), np.uint8),
                         _levels(params.prior / params.bins, np.uint8))


def _levels(start: float, dtype: type) -> FloatArray:
    """``start`` plus 0, 1, 2, ... units added one at a time (a running sum, as the dense update adds them), one
    level per tally a bin of ``dtype`` can hold."""
    steps = np.ones(int(np.iinfo(dtype).max) + 1)
    steps[0] = start
    levels = np.cumsum(steps)
    levels.flags.writeable = False
    return levels


@numba.njit(cache=True, nogil=True)
def _best_bids(counts: FloatArray, hits: IntArray, levels: FloatArray, tallied: bool, values: FloatArray,
               edges: FloatArray, reserve: float, bids: FloatArray) -> None:
    """Per market and seat: the grid price b >= reserve maximising (v - b) P(Y < b), P from the
    histogram's running sum (the first maximum; the lowest edge when no edge reaches the reserve);
    a value below the reserve bids itself. The histogram is ``levels[hits]`` if ``tallied``, else
    ``counts``; ``edges`` increasing.

    The scan of all edges in order stops at the first edge above v once a payoff >= 0 is found, and every
    edge from the reserve up to v pays (v - b) P >= 0 where the counts are >= 0: those payoffs, computed in
    a pass of their own, decide. Otherwise (negative or NaN payoffs, no edge in that range) :func:`_scan`
    runs the scan as written. A total of 0 raises as the scan's first division would."""
    n_markets, seats, bins = hits.shape if tallied else counts.shape
    below, payoff = np.empty(bins + 1), np.empty(bins + 1)
    first = 0  # the first edge at or above the reserve
    while first <= bins and edges[first] < reserve:
        first += 1
    for m in range(n_markets):
        for s in range(seats):
            total = 0.0
            if tallied:
                for j in range(bins):
                    below[j] = total
                    total += levels[hits[m, s, j]]
            else:
                for j in range(bins):
                    below[j] = total
                    total += counts[m, s, j]
            below[bins] = total
            if total == 0.0 and first <= bins:
                raise ZeroDivisionError("division by zero")
            v = values[m, s]
            if not v >= reserve:
                bids[m, s] = v
                continue
            last = first  # one past the last edge at or below v
            while last <= bins and edges[last] <= v:
                last += 1
            for j in range(first, last):
                payoff[j] = (v - edges[j]) * (below[j] / total)
            best, best_payoff = 0, -np.inf
            for j in range(first, last):
                if payoff[j] > best_payoff:
                    best, best_payoff = j, payoff[j]
            if not best_payoff >= 0.0:
                best = _scan(below, v, edges, reserve)
            bids[m, s] = min(edges[best], v)


@numba.njit(cache=True, nogil=True)
def _scan(below: FloatArray, v: float, edges: FloatArray, reserve: float) -> int:
    """The best edge by the scan as written, from ``below`` (G + 1,): the running sum before each edge, the
    total last."""
    total = below[edges.size - 1]
    best, best_payoff = 0, -np.inf
    for j in range(edges.size):
        if edges[j] > v and best_payoff >= 0.0:
            break  # every higher edge pays (v - b) P <= 0: none is a strictly better first maximum
        if edges[j] >= reserve:
            payoff = (v - edges[j]) * (below[j] / total)
            if payoff > best_payoff:
                best, best_payoff = j, payoff
    return best


_NO_COUNTS, _NO_HITS, _NO_LEVELS = np.zeros((0, 0, 0)), np.zeros((0, 0, 0), np.uint8), np.zeros(0)  # the unused form


def dense_best_bids(counts: FloatArray, values: FloatArray, edges: FloatArray, reserve: float, bids: FloatArray) -> None:
    """:func:`_best_bids` of a dense histogram ``counts`` (B, S, G), into ``bids`` (B, S)."""
    _best_bids(counts, _NO_HITS, _NO_LEVELS, False, values, edges, reserve, bids)


def act(context: MarketContext, params: AdaptiveParams, state: AdaptiveState, values: FloatArray,
        draws: Draws) -> Action:
    bids = np.empty(values.shape)
    values = np.asarray(values, dtype=np.float64)
    if state.hits is None:
        dense_best_bids(np.ascontiguousarray(state.dense), values, _edges(context, params), context.visible_reserve, bids)
    else:
        _best_bids(_NO_COUNTS, state.hits, state.levels, True, values, _edges(context, params),
                   context.visible_reserve, bids)
    return Action(bids=bids)


def update(context: MarketContext, params: AdaptiveParams, state: AdaptiveState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> AdaptiveState:
    edges = _edges(context, params)
    won = feedback.allocation > 0
    exact = np.full(won.shape, np.nan)
    if observation.bids is not None:
        exact = others_threshold(observation.bids, observation.bids[:, context.seats], _rank(context))
    elif context.mechanism.name == "first_price":
        revealed = observation.price if observation.bid_quantiles is None else observation.bid_quantiles[:, -1]
        exact = np.where(~won, revealed[:, None], np.nan)  # the winning bid is the competing bid
    exact = np.ascontiguousarray(exact, dtype=np.float64)
    active = np.asarray(feedback.active)
    keep = 1.0 - params.forget
    if state.hits is not None and keep == 1.0 and state.most < _MOST and (np.isfinite(exact) | ~active).all():
        hits, levels = state.hits, state.levels
        if state.most == np.iinfo(hits.dtype).max:
            hits, levels = hits.astype(np.uint16), _levels(levels[0], np.uint16)
        tallied = hits.copy()
        return AdaptiveState(None, tallied, levels, max(state.most, _tally(exact, active, edges, tallied)))
    own = np.where(feedback.active, action.bids, 0.0)
    lo, hi = np.where(won, 0.0, own), np.where(won, own, context.values.high + 1.0)  # censored: Y in [lo, hi)
    counts = np.empty(state.counts.shape)
    _learn(np.ascontiguousarray(state.counts), lo, hi, exact, active, edges, keep, counts)
    return AdaptiveState(counts)


_MOST = int(np.iinfo(np.uint16).max)


@numba.njit(cache=True, nogil=True)
def _tally(exact: FloatArray, active: BoolArray, edges: FloatArray, hits: IntArray) -> int:
    """:func:`_learn` with keep = 1 and every active seat's ``exact`` finite, on tallies, in place: one more unit
    in the bin of ``exact``. Returns the highest tally it added to (0 if none)."""
    n_markets, seats, bins = hits.shape
    most = 0
    for m in range(n_markets):
        for s in range(seats):
            if active[m, s]:
                j = min(max(_right(edges, exact[m, s]) - 1, 0), bins - 1)
                hits[m, s, j] += 1
                most = max(most, int(hits[m, s, j]))
    return most


@numba.njit(cache=True, nogil=True)
def _right(edges: FloatArray, x: float) -> int:
    """``np.searchsorted(edges, x, side="right")`` for increasing ``edges``: how many edges are <= x (all of
    them for NaN). The first guess takes the edges as evenly spaced and is moved until it is exact, so any
    increasing edges give the binary search's answer."""
    n = edges.size
    if x != x or x >= edges[n - 1]:
        return n
    if x < edges[0]:
        return 0
    guess = (x - edges[0]) * ((n - 1) / (edges[n - 1] - edges[0]))  # edges[0] <= x < edges[n - 1]
    j = min(int(guess), n - 2) if guess < n else n - 2
    while j > 0 and edges[j] > x:
        j -= 1
    while j < n - 2 and edges[j + 1] <= x:
        j += 1
    return j + 1


@numba.njit(cache=True, nogil=True)
def _learn(counts: FloatArray, lo: FloatArray, hi: FloatArray, exact: FloatArray, active: BoolArray,
           edges: FloatArray, keep: float, out: FloatArray) -> None:
    """``out`` = ``counts`` x ``keep`` plus one observation per active seat: a unit in the bin of ``exact``
    where it is finite, else a unit spread over the bins whose centres lie in [lo, hi), in proportion to
    the counts (the bin of ``lo`` when no centre does)."""
    n_markets, seats, bins = counts.shape
    spread = np.empty(bins)
    for m in range(n_markets):
        for s in range(seats):
            for j in range(bins):
                out[m, s, j] = counts[m, s, j] * keep
            if not active[m, s]:
                continue
            if np.isfinite(exact[m, s]):
                out[m, s, min(max(np.searchsorted(edges, exact[m, s], side="right") - 1, 0), bins - 1)] += 1.0
                continue
            found = False
            for j in range(bins):
                centre = (edges[j] + edges[j + 1]) / 2
                inside = (centre >= lo[m, s]) & (centre < hi[m, s])
                spread[j] = counts[m, s, j] if inside else 0.0
                found |= inside
            if not found:
                j = min(max(np.searchsorted(edges, lo[m, s], side="right") - 1, 0), bins - 1)
                spread[j] = counts[m, s, j]
            total = 0.0 + pairwise_sum(spread, 0, bins)
            for j in range(bins):
                out[m, s, j] += spread[j] / total


AGENT = AgentType(name="adaptive", version=VERSION, summary="best-responds to the competing bids it has learned",
                  act=act, init=init, update=update, params_model=AdaptiveParams)
