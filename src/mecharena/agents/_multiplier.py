"""Shared pieces of the no-regret learners (Hedge, EXP3): arms are bid multipliers, bid = m * value."""

from dataclasses import dataclass

import numba
import numpy as np
from pydantic import Field

from mecharena.agents._sums import block_sum, pairwise_sum
from mecharena.agents.base import Action, Draws, MarketContext, require_mechanism, require_one_bid
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray

SUPPORTED = ("first_price", "second_price")  # where counterfactual payoffs follow from the competing bid


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


def check(context: MarketContext, name: str, supported: tuple[str, ...] | None = SUPPORTED) -> None:
    """``supported`` mechanisms only; None: any market where every seat sends one bid as a buyer."""
    if supported is not None:
        require_mechanism(context, name, supported, unit_demand=True)
        return
    require_one_bid(context, name)
    if context.spec.sellers is not None:
        raise ConfigError(f"{name} bids as a buyer; {context.mechanism.name} is configured with sellers")


def multipliers(params: MultiplierParams) -> FloatArray:
    if params.high <= params.low:
        raise ConfigError(f"high must be > low ({params.low}), got {params.high}")
    return np.linspace(params.low, params.high, params.arms)


def init(context: MarketContext, params: MultiplierParams, seats: int, draws: Draws, name: str,
         supported: tuple[str, ...] | None = SUPPORTED) -> MultiplierState:
    check(context, name, supported)
    multipliers(params)
    return MultiplierState(np.zeros((draws.markets, seats, params.arms)))


def policy(params: MultiplierParams, scores: FloatArray, gamma: float = 0.0) -> FloatArray:
    """Exponential weights over arms, mixed with gamma uniform exploration. (B, S, A).

    ``p = exp(eta (s - max s))``, normalised, then ``(1 - gamma) p + gamma / A``: the exponential is
    NumPy's, the rest compiled in NumPy's order of operations and summation, so the weights are the same
    bits as the plain NumPy formulation's."""
    z = np.empty(scores.shape)
    _shifted(np.ascontiguousarray(scores, dtype=np.float64), float(params.eta), z)
    p = np.exp(z, out=z)
    _normalised(p, 1.0 - gamma, gamma / params.arms)
    return p


def act(params: MultiplierParams, state: MultiplierState, values: FloatArray, draws: Draws,
        gamma: float = 0.0) -> Action:
    """Draw an arm per seat: the first whose cumulative probability reaches the seat's uniform draw; the
    draw travels to ``update`` in ``Action.memo``."""
    p = policy(params, state.scores, gamma)
    u = draws.uniform("arm", values.shape[1])
    arm, chosen = np.empty(u.shape, np.int64), np.empty(u.shape)
    _draw(p, np.ascontiguousarray(u, dtype=np.float64), arm, chosen)
    return Action(bids=multipliers(params)[arm] * values, memo=Draw(arm, chosen))


@numba.njit(cache=True, nogil=True)
def _shifted(scores: FloatArray, eta: float, out: FloatArray) -> None:
    """``out`` = eta x (scores - their maximum over arms)."""
    for m in range(scores.shape[0]):
        for s in range(scores.shape[1]):
            top = scores[m, s, 0]
            for a in range(1, scores.shape[2]):
                top = max(top, scores[m, s, a])
            for a in range(scores.shape[2]):
                out[m, s, a] = eta * (scores[m, s, a] - top)


@numba.njit(cache=True, nogil=True)
def _normalised(p: FloatArray, keep: float, spread: float) -> None:
    """``p`` divided by its sum over arms (NumPy's pairwise order), then x keep + spread, in place. ``p``
    C-contiguous (a row per seat)."""
    arms = p.shape[2]
    rows = p.reshape(-1, arms)
    for r in range(rows.shape[0]):
        total = block_sum(rows[r], 0, arms) if arms <= 128 else pairwise_sum(rows[r], 0, arms)
        for a in range(arms):
            rows[r, a] = keep * (rows[r, a] / total) + spread


@numba.njit(cache=True, nogil=True)
def _draw(p: FloatArray, u: FloatArray, arm: IntArray, chosen: FloatArray) -> None:
    """Per seat: the number of arms whose running probability sum (added in order, as ``np.cumsum``) is
    below ``u`` (at most A - 1), and that arm's probability."""
    arms = p.shape[2]
    for m in range(p.shape[0]):
        for s in range(p.shape[1]):
            running, below = 0.0, 0
            for a in range(arms):
                running += p[m, s, a]
                below += running < u[m, s]
            pick = min(below, arms - 1)
            arm[m, s], chosen[m, s] = pick, p[m, s, pick]


def credit(context: MarketContext, params: MultiplierParams, scores: FloatArray, values: FloatArray,
           competing: FloatArray, known: FloatArray) -> FloatArray:
    """``scores`` (B, S, A) plus, where the highest competing bid Y (B, S) is ``known``, every arm's payoff
    against it (:func:`_payoff`); other seats' scores unchanged."""
    out = np.empty(scores.shape)
    _credit(multipliers(params), np.ascontiguousarray(scores, dtype=np.float64),
            np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(competing, dtype=np.float64),
            np.ascontiguousarray(known), float(getattr(context.config, "reserve_price", 0.0)),
            context.mechanism.name == "first_price", out)
    return out


@numba.njit(cache=True, nogil=True)
def _payoff(bid: float, v: float, y: float, reserve: float, first_price: bool) -> float:
    """The value less the price where ``bid`` beats Y (strictly) and the reserve, and is positive; 0 where it
    loses. The price is the bid (first price) or max(Y, reserve)."""
    wins = (bid > y) & (bid >= reserve) & (bid > 0)
    return v - (bid if first_price else max(y, reserve)) if wins else 0.0


@numba.njit(cache=True, nogil=True)
def _credit(multipliers: FloatArray, scores: FloatArray, values: FloatArray, competing: FloatArray,
            known: FloatArray, reserve: float, first_price: bool, out: FloatArray) -> None:
    for m in range(values.shape[0]):
        for s in range(values.shape[1]):
            for a in range(multipliers.size):
                gain = 0.0
                if known[m, s]:
                    gain = _payoff(multipliers[a] * values[m, s], values[m, s], competing[m, s], reserve, first_price)
                out[m, s, a] = scores[m, s, a] + gain
