"""Conditional cooperator: contributes in proportion to what the others contributed last round.

Rule, per seat and round, with endowment e (Fischbacher, Gächter and Fehr 2001, *Economics
Letters* 71: 397-404: about half of their subjects contribute more the more others contribute):

    c_t = min(e, slope * m_{t-1}),        c_0 = initial * e,

where m_{t-1} is the seat's estimate of the *average contribution of the other agents* in the
previous round. Until it has an estimate it contributes ``initial * e``. The estimate comes
from what the market shows, in this order:

1. every contribution announced (``InformationPolicy.competing_bids``):
   ``m = (sum(c) - c_own) / (N - 1)``, exact;
2. else anonymous quantiles announced (``bid_distribution``): m = their median. The quantiles
   cover the *positive* contributions only, its own included (0 when nobody contributed), so
   zero contributions of free riders are hidden and the estimate overstates cooperation;
3. else what it can infer from its own money: in ``vcm`` its net payment is
   ``paid = c_own - mpcr * sum(c)``, so ``sum(c) = (c_own - paid) / mpcr`` and m follows exactly;
   in ``provision_point`` a provided good with the clearing price announced reveals
   ``sum(c) = N * price`` (everyone is allocated the good and pays its contribution); a failed
   good (or a hidden price) reveals nothing and the previous estimate is kept.

With ``slope = 1`` a population of conditional cooperators sustains its first contribution;
with free riders among them (or ``slope < 1``) contributions decay geometrically toward zero,
the classic decline of repeated public-goods games, which Fischbacher and Gächter (2010),
*American Economic Review* 100: 541-556, trace to imperfect conditional cooperation.
Every mechanism other than ``vcm`` and ``provision_point`` raises
:class:`~mecharena.core.errors.ConfigError`.
"""

from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1
SUPPORTED = ("vcm", "provision_point")
_MEDIAN = 2  # column of the median in Observation.bid_quantiles


class ConditionalParams(StrictModel):
    slope: float = Field(1.0, ge=0, le=1, description="contribution per unit of the others' average")
    initial: float = Field(0.5, ge=0, le=1, description="first contribution, as a share of the endowment")


@dataclass(frozen=True, slots=True)
class ConditionalState:
    others: FloatArray  # (B, S)  estimated average contribution of the others last round; NaN: unknown


def _check(context: MarketContext) -> None:
    require_mechanism(context, "conditional", SUPPORTED, reason="plays public-goods games")


def init(context: MarketContext, params: ConditionalParams, seats: int, draws: Draws) -> ConditionalState:
    _check(context)
    return ConditionalState(others=np.full((draws.markets, seats), np.nan))


def act(context: MarketContext, params: ConditionalParams, state: ConditionalState | None, values: FloatArray,
        draws: Draws) -> FloatArray:
    """Contributions (B, S); ``values`` (B, S) only give the shape."""
    _check(context)
    e = context.config.endowment
    if state is None:
        return np.full_like(values, params.initial * e)
    return np.where(np.isnan(state.others), params.initial * e, np.minimum(e, params.slope * state.others))


def estimate_others(context: MarketContext, own: FloatArray, observation: Observation,
                    feedback: Feedback) -> FloatArray:
    """Average contribution of the other N - 1 agents (B, S) as far as the market reveals it; NaN: unknown.

    ``own`` (B, S) is the seat's own contribution.
    """
    others = max(context.n_agents - 1, 1)
    if observation.bids is not None:
        return (observation.bids.sum(axis=1, keepdims=True) - own) / others
    if observation.bid_quantiles is not None:
        median = observation.bid_quantiles[:, _MEDIAN, None]
        return np.broadcast_to(np.nan_to_num(median, nan=0.0), own.shape).copy()
    if context.mechanism.name == "vcm":
        total = (own - feedback.paid) / context.config.mpcr
        return (total - own) / others
    total = context.n_agents * observation.price[:, None]  # NaN when not provided or hidden
    return np.broadcast_to((total - own) / others, own.shape).copy()


def update(context: MarketContext, params: ConditionalParams, state: ConditionalState | None, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> ConditionalState:
    if state is None:
        state = init(context, params, values.shape[1], draws)
    own = np.where(feedback.active, action.bids, 0.0)
    seen = estimate_others(context, own, observation, feedback)
    return replace(state, others=np.where(np.isnan(seen), state.others, np.maximum(seen, 0.0)))


AGENT = AgentType(name="conditional", version=VERSION,
                  summary="public goods: contributes slope x the others' last average (conditional cooperator)",
                  act=act, init=init, update=update, params_model=ConditionalParams)
