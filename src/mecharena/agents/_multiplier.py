"""Shared pieces of the no-regret learners (Hedge, EXP3): arms are bid multipliers, bid = m * value."""

from dataclasses import dataclass

import numba
import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, Draws, MarketContext, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray

SUPPORTED = ("first_price", "second_price")  # where counterfactual payoffs follow from the competing bid
ONE_SIDED = ("first_price", "second_price", "uniform_price", "pay_as_bid", "vcg", "posted_price")


class MultiplierParams(StrictModel):
    arms: int = Field(20, ge=2, le=200, description="number of bid multipliers, evenly spaced in [low, high]")
    low: float = Field(0.05, ge=0, le=2, description="smallest multiplier")
    high: float = Field(1.0, gt=0, le=2, description="largest multiplier")
    eta: float = Field(1.0, gt=0, le=100, description="learning rate of the exponential weights")


@dataclass(frozen=True, slots=True)
class MultiplierState:
    scores: FloatArray  # (B, S, A)  cumulative (estimated) payoff of each arm


@dataclass(frozen=True, slots=True)
class Draw:
    arm: IntArray  # (B, S)  arm played
    probability: FloatArray  # (B, S)  probability with which it was played


def check(context: MarketContext, name: str, supported: tuple[str, ...] = SUPPORTED) -> None:
    require_mechanism(context, name, supported, unit_demand=True)


def multipliers(params: MultiplierParams) -> FloatArray:
    if params.high <= params.low:
        raise ConfigError(f"high must be > low ({params.low}), got {params.high}")
    return np.linspace(params.low, params.high, params.arms)


def init(context: MarketContext, params: MultiplierParams, seats: int, draws: Draws, name: str,
         supported: tuple[str, ...] = SUPPORTED) -> MultiplierState:
    check(context, name, supported)
    multipliers(params)
    return MultiplierState(np.zeros((draws.markets, seats, params.arms)))


def policy(params: MultiplierParams, scores: FloatArray, gamma: float = 0.0) -> FloatArray:
    """Exponential weights over arms, mixed with gamma uniform exploration. (B, S, A)."""
    z = params.eta * (scores - scores.max(axis=2, keepdims=True))
    p = np.exp(z)
    p /= p.sum(axis=2, keepdims=True)
    return (1.0 - gamma) * p + gamma / params.arms


def act(params: MultiplierParams, state: MultiplierState, values: FloatArray, draws: Draws,
        gamma: float = 0.0) -> Action:
    """Draw an arm per seat; the draw travels to ``update`` in ``Action.memo``."""
    p = policy(params, state.scores, gamma)
    u = draws.uniform("arm", values.shape[1])
    arm = np.minimum((np.cumsum(p, axis=2) < u[:, :, None]).sum(axis=2), params.arms - 1)
    chosen = np.take_along_axis(p, arm[:, :, None], axis=2)[:, :, 0]
    return Action(bids=multipliers(params)[arm] * values, memo=Draw(arm, chosen))


def counterfactual(context: MarketContext, params: MultiplierParams, values: FloatArray,
                   competing: FloatArray) -> FloatArray:
    """Payoff of every arm against the highest competing bid Y (B, S) -> (B, S, A); ties lose."""
    out = np.empty(values.shape + (params.arms,))
    _payoffs(multipliers(params), np.ascontiguousarray(values, dtype=np.float64),
             np.ascontiguousarray(competing, dtype=np.float64), float(getattr(context.config, "reserve_price", 0.0)),
             context.mechanism.name == "first_price", out)
    return out


@numba.njit(cache=True, nogil=True)
def _payoffs(multipliers: FloatArray, values: FloatArray, competing: FloatArray, reserve: float, first_price: bool,
             out: FloatArray) -> None:
    """``out[b, s, a]``: the value less the price where bid = multiplier x value beats Y (strictly) and
    the reserve, and is positive; 0 where it loses. The price is the bid (first price) or max(Y, reserve)."""
    for m in range(values.shape[0]):
        for s in range(values.shape[1]):
            v, y = values[m, s], competing[m, s]
            for a in range(multipliers.size):
                bid = multipliers[a] * v
                wins = (bid > y) & (bid >= reserve) & (bid > 0)
                out[m, s, a] = v - (bid if first_price else max(y, reserve)) if wins else 0.0
