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

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import others_threshold
from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

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


def act(context: MarketContext, params: AdaptiveParams, state: AdaptiveState, values: FloatArray,
        draws: Draws) -> Action:
    edges = _edges(context, params)
    below = np.concatenate([np.zeros(state.counts.shape[:2] + (1,)), np.cumsum(state.counts, axis=2)], axis=2)
    win_chance = below / below[:, :, -1:]  # P(Y < edge_j), (B, S, G + 1)
    payoff = (values[:, :, None] - edges[None, None, :]) * win_chance
    reserve = context.visible_reserve
    payoff = np.where(edges[None, None, :] >= reserve, payoff, -np.inf)
    best = edges[np.argmax(payoff, axis=2)]
    return Action(bids=np.where(values >= reserve, np.minimum(best, values), values))


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
    known = np.isfinite(exact)
    centers = (edges[:-1] + edges[1:]) / 2
    point = np.zeros_like(state.counts)
    index = np.clip(np.searchsorted(edges, np.where(known, exact, 0.0), side="right") - 1, 0, params.bins - 1)
    np.put_along_axis(point, index[:, :, None], 1.0, axis=2)
    inside = (centers[None, None, :] >= lo[:, :, None]) & (centers[None, None, :] < hi[:, :, None])
    inside |= ~inside.any(axis=2, keepdims=True) & (np.arange(params.bins) == np.clip(
        np.searchsorted(edges, lo, side="right") - 1, 0, params.bins - 1)[:, :, None])
    spread = state.counts * inside
    spread = spread / spread.sum(axis=2, keepdims=True)
    learned = np.where(known[:, :, None], point, spread) * feedback.active[:, :, None]
    return dataclasses.replace(state, counts=state.counts * (1.0 - params.forget) + learned)


AGENT = AgentType(name="adaptive", version=VERSION, summary="best-responds to the competing bids it has learned",
                  act=act, init=init, update=update, params_model=AdaptiveParams)
