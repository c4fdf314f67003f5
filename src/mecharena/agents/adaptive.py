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

import dataclasses
from dataclasses import dataclass

import numba
import numpy as np
from pydantic import Field

from mecharena.agents._competitive import others_threshold
from mecharena.agents._sums import pairwise_sum
from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray

VERSION = 1
SUPPORTED = ("first_price", "pay_as_bid")


class AdaptiveParams(StrictModel):
    bins: int = Field(64, ge=4, le=512, description="price bins of the learned competing-bid histogram")
    prior: float = Field(1.0, gt=0, le=1000, description="pseudo-count spread flat over the bins at the start")
    forget: float = Field(0.0, ge=0, le=0.5, description="share of old counts discounted each round")


@dataclass(frozen=True, slots=True)
class AdaptiveState:
    counts: FloatArray  # (B, S, G)  learned histogram of the competing bid Y


def _edges(context: MarketContext, params: AdaptiveParams) -> FloatArray:
    return np.linspace(0.0, context.values.high, params.bins + 1)


def _rank(context: MarketContext) -> int:
    """Which competing bid must be beaten: 1 in first price, k in a k-unit pay-as-bid."""
    return int(getattr(context.config, "units", 1))


def _check(context: MarketContext) -> None:
    require_mechanism(context, "adaptive", SUPPORTED, unit_demand=True)


def init(context: MarketContext, params: AdaptiveParams, seats: int, draws: Draws) -> AdaptiveState:
    _check(context)
    return AdaptiveState(np.full((draws.markets, seats, params.bins), params.prior / params.bins))


@numba.njit(cache=True, nogil=True)
def _best_bids(counts: FloatArray, values: FloatArray, edges: FloatArray, reserve: float, bids: FloatArray) -> None:
    """Per market and seat: the grid price b >= reserve maximising (v - b) P(Y < b), P from the
    histogram's running sum (the first maximum; the lowest edge when no edge reaches the reserve);
    a value below the reserve bids itself. One pass per seat, no temporaries."""
    n_markets, seats, bins = counts.shape
    for m in range(n_markets):
        for s in range(seats):
            total = 0.0
            for j in range(bins):
                total += counts[m, s, j]
            v = values[m, s]
            best, best_payoff, below = 0, -np.inf, 0.0
            for j in range(bins + 1):
                if edges[j] > v and best_payoff >= 0.0:
                    break  # every higher edge pays (v - b) P <= 0: none is a strictly better first maximum
                if edges[j] >= reserve:
                    payoff = (v - edges[j]) * (below / total)
                    if payoff > best_payoff:
                        best, best_payoff = j, payoff
                if j < bins:
                    below += counts[m, s, j]
            bids[m, s] = min(edges[best], v) if v >= reserve else v


def act(context: MarketContext, params: AdaptiveParams, state: AdaptiveState, values: FloatArray,
        draws: Draws) -> Action:
    bids = np.empty(values.shape)
    _best_bids(np.ascontiguousarray(state.counts), np.ascontiguousarray(values, dtype=np.float64),
               _edges(context, params), context.visible_reserve, bids)
    return Action(bids=bids)


def update(context: MarketContext, params: AdaptiveParams, state: AdaptiveState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> AdaptiveState:
    edges = _edges(context, params)
    own = np.where(feedback.active, action.bids, 0.0)
    won = feedback.allocation > 0
    top = context.values.high + 1.0
    lo, hi = np.where(won, 0.0, own), np.where(won, own, top)  # censored: Y in [lo, hi)
    exact = np.full(own.shape, np.nan)
    if observation.bids is not None:
        exact = others_threshold(observation.bids, observation.bids[:, context.seats], _rank(context))
    elif context.mechanism.name == "first_price":
        revealed = observation.price if observation.bid_quantiles is None else observation.bid_quantiles[:, -1]
        exact = np.where(~won, revealed[:, None], np.nan)  # the winning bid is the competing bid
    counts = np.empty(state.counts.shape)
    _learn(np.ascontiguousarray(state.counts), lo, hi, np.ascontiguousarray(exact, dtype=np.float64),
           np.ascontiguousarray(feedback.active), edges, 1.0 - params.forget, counts)
    return dataclasses.replace(state, counts=counts)


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
