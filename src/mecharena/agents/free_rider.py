"""Free rider: contributes nothing to a public good unless its own money is about to tip it.

Rule, per seat and round:

* ``vcm``: contributes 0, whatever the MPCR and whatever others did. This is the "free rider"
  type of Fischbacher, Gächter and Fehr (2001), *Economics Letters* 71: 397-404 (about a third of
  their subjects), and the selfish Nash strategy when mpcr < 1 (Ledyard 1995); with mpcr >= 1 it
  forgoes money, as a behavioural type may.
* ``provision_point`` with threshold T: contributes 0, except right after a round in which the
  good *failed* by a shortfall ``d = T - sum(c)`` that the market revealed (every contribution
  is announced: ``InformationPolicy.competing_bids``) and ``0 < d < v``, its own value for the
  good this round: then it tops up, contributing ``min(endowment, c_last + share * d)`` where
  ``c_last`` is its own contribution of the failed round. It bets that the others repeat theirs.
  Once the good is provided (or the shortfall is unknown) it falls back to 0 and rides free.
  ``share = 0`` is the pure free rider. Nothing else the market reveals is read.

Every other mechanism raises :class:`~mecharena.core.errors.ConfigError`.
"""

from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1
SUPPORTED = ("vcm", "provision_point")


class FreeRiderParams(StrictModel):
    share: float = Field(0.5, ge=0, le=1, description="provision point: share of a revealed shortfall it covers")


@dataclass(frozen=True, slots=True)
class FreeRiderState:
    shortfall: FloatArray  # (B, S)  T - sum(c) of a failed last round; NaN: provided, unknown or first round
    last: FloatArray  # (B, S)  own contribution last round


def _check(context: MarketContext) -> None:
    require_mechanism(context, "free_rider", SUPPORTED, reason="plays public-goods games")


def init(context: MarketContext, params: FreeRiderParams, seats: int, draws: Draws) -> FreeRiderState:
    _check(context)
    shape = (draws.markets, seats)
    return FreeRiderState(shortfall=np.full(shape, np.nan), last=np.zeros(shape))


def act(context: MarketContext, params: FreeRiderParams, state: FreeRiderState | None, values: FloatArray,
        draws: Draws) -> FloatArray:
    """Contributions (B, S) for values (B, S)."""
    _check(context)
    if context.mechanism.name == "vcm" or state is None:
        return np.zeros_like(values)
    pivotal = (state.shortfall > 0) & (state.shortfall < values)  # NaN compares False
    top_up = np.minimum(context.config.endowment, state.last + params.share * np.nan_to_num(state.shortfall))
    return np.where(pivotal, top_up, 0.0)


def update(context: MarketContext, params: FreeRiderParams, state: FreeRiderState | None, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> FreeRiderState:
    if state is None:
        state = init(context, params, values.shape[1], draws)
    if context.mechanism.name != "provision_point" or observation.bids is None:
        return replace(state, shortfall=np.full_like(state.shortfall, np.nan), last=action.bids.copy())
    gap = context.config.threshold - observation.bids.sum(axis=1, keepdims=True)
    shortfall = np.broadcast_to(np.where(gap > 0, gap, np.nan), state.shortfall.shape).copy()
    return replace(state, shortfall=shortfall, last=action.bids.copy())


AGENT = AgentType(name="free_rider", version=VERSION,
                  summary="public goods: contributes 0; tops up a provision point it narrowly missed",
                  act=act, init=init, update=update, params_model=FreeRiderParams)
