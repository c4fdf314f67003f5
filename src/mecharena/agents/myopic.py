"""Myopic best responder: best-responds to what the market revealed last round, as if it repeats.

In the first-price auction and the k-unit pay-as-bid auction with unit demand, a seat of value
v beats the *threshold* h (the highest other bid; with k units the k-th highest other bid) and
the announced reserve r. Per round it bids, using the richest information announced in the
previous round of its market:

1. every bid announced (``InformationPolicy.competing_bids``): h is last round's threshold
   among the *other* bids (its own removed); it bids just above it,
   ``min(v, max(h + increment, r))``, when ``max(h, r) < v``, and its value otherwise (no bid that
   wins against h leaves a profit, so it stays at zero surplus);
2. else anonymous bid quantiles announced (``bid_distribution``): it takes the piecewise-linear
   CDF F through the five announced quantiles (of the positive bids, its own included) as the
   distribution of each rival's bid and bids the b on the grid ``v * j / 64``, j = 1..64, with
   b >= r, that maximises ``(v - b) * P(b wins)``,
   ``P = sum_{j<k} C(n-1, j) F(b)^(n-1-j) (1 - F(b))^j`` (F^(n-1) for k = 1); if no grid bid
   has a positive expected gain it bids v;
3. else the clearing price announced: h is last round's price (the winning bid in first price,
   the mean winning bid in pay-as-bid) and it bids as in 1; a round without a sale announces
   no price;
4. else (first round, or nothing announced): a fixed shade, ``(1 - shade) * v``.

This is the Cournot (best-reply) adjustment process applied to auctions; see Fudenberg and Levine
(1998), *The Theory of Learning in Games*, ch. 1-2. Where truthful bidding is dominant (second
price, uniform (k+1)-th price, VCG, posted price) it bids truthfully. An entry fee, multi-unit
demand or any other mechanism raises :class:`~mecharena.core.errors.ConfigError`.
"""

from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import others_threshold
from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation
from mecharena.agents.bne import order_statistic_cdf
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 1
GRID = 64
PAY_AS_BID = ("first_price", "pay_as_bid")
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)  # levels of Observation.bid_quantiles: min, quartiles, max


class MyopicParams(StrictModel):
    increment: float = Field(0.01, ge=0, le=0.5, description="how far above the revealed threshold it bids")
    shade: float = Field(0.2, ge=0, le=1, description="share of the value shaded when nothing was revealed")


@dataclass(frozen=True, slots=True)
class MyopicState:
    threshold: FloatArray  # (B, S)  bid to beat from revealed bids or price; NaN: not revealed
    quantiles: FloatArray  # (B, S, 5)  revealed bid quantiles; NaN: not revealed
    exact: FloatArray  # (B, S)  1.0 where the threshold came from every bid, 0.0 from the price


def _check(context: MarketContext) -> bool:
    """True where it best-responds (pay-your-bid rules); False where it bids truthfully."""
    name, config = context.mechanism.name, context.config
    if name in PAY_AS_BID:
        if getattr(config, "entry_fee", 0.0) > 0:
            raise ConfigError(f"myopic does not price an entry fee; set entry_fee=0 in {name}")
        if getattr(config, "demand", 1) != 1:
            raise ConfigError(f"myopic for {name} needs unit demand (demand=1), got demand={config.demand}")
        return True
    if "truthful" in context.mechanism.properties(config):
        return False
    raise ConfigError(f"myopic has no best response for {name} with this config; it supports first_price, "
                      "pay_as_bid (unit demand) and every config where truthful bidding is dominant")


def init(context: MarketContext, params: MyopicParams, seats: int, draws: Draws) -> MyopicState:
    _check(context)
    shape = (draws.markets, seats)
    return MyopicState(threshold=np.full(shape, np.nan), quantiles=np.full((*shape, len(QUANTILES)), np.nan),
                       exact=np.zeros(shape))


def quantile_cdf(quantiles: FloatArray, x: FloatArray) -> FloatArray:
    """The piecewise-linear CDF through ``quantiles`` (..., 5) at the levels of ``QUANTILES``, at x (...)."""
    cdf = np.zeros_like(x)
    for i in range(len(QUANTILES) - 1):
        lo, hi = quantiles[..., i], quantiles[..., i + 1]
        step = QUANTILES[i + 1] - QUANTILES[i]
        width = hi - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(width > 0, np.clip((x - lo) / width, 0.0, 1.0), (x >= hi).astype(float))
        cdf += step * part
    return cdf


def best_grid_bid(quantiles: FloatArray, values: FloatArray, rivals: int, k: int, reserve: float) -> FloatArray:
    """Grid bid (B, S) maximising (v - b) P(win) against rivals whose bids follow the quantiles (B, S, 5)."""
    best_bid = values.copy()
    best_gain = np.zeros_like(values)
    for j in range(1, GRID + 1):
        b = values * (j / GRID)
        gain = np.where(b >= reserve, (values - b) * order_statistic_cdf(quantile_cdf(quantiles, b), rivals, k), -1.0)
        better = gain > best_gain
        best_bid = np.where(better, b, best_bid)
        best_gain = np.where(better, gain, best_gain)
    return best_bid


def act(context: MarketContext, params: MyopicParams, state: MyopicState | None, values: FloatArray,
        draws: Draws) -> FloatArray:
    """Bids (B, S) for values (B, S)."""
    if not _check(context):
        return context.mechanism.truthful(context.config, values, context.spec)
    bids = (1.0 - params.shade) * values
    if state is None:
        return bids
    r = context.visible_reserve
    k = getattr(context.config, "units", 1)
    has_quantiles = np.isfinite(state.quantiles).all(axis=2)
    if has_quantiles.any():
        grid = best_grid_bid(np.where(has_quantiles[..., None], state.quantiles, 0.0), values,
                             context.n_agents - 1, k, r)
        bids = np.where(has_quantiles, grid, bids)
    h = np.maximum(state.threshold, r)
    beat = np.where(h < values, np.minimum(values, np.maximum(state.threshold + params.increment, r)), values)
    use_threshold = np.isfinite(state.threshold) & ((state.exact > 0) | ~has_quantiles)
    return np.where(use_threshold, beat, bids)


def update(context: MarketContext, params: MyopicParams, state: MyopicState | None, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> MyopicState:
    if state is None:
        state = init(context, params, values.shape[1], draws)
    shape = values.shape
    if observation.bids is not None:
        own = np.where(feedback.active, action.bids, 0.0)
        threshold = others_threshold(observation.bids, own, getattr(context.config, "units", 1))
        exact = np.ones(shape)
    else:
        threshold = np.broadcast_to(observation.price[:, None], shape).copy()
        exact = np.zeros(shape)
    quantiles = np.full((*shape, len(QUANTILES)), np.nan)
    if observation.bid_quantiles is not None:
        quantiles[:] = observation.bid_quantiles[:, None, :]
    return replace(state, threshold=threshold, quantiles=quantiles, exact=exact)


AGENT = AgentType(name="myopic", version=VERSION, summary="best-responds to last round's revealed bids or price",
                  act=act, init=init, update=update, params_model=MyopicParams)
