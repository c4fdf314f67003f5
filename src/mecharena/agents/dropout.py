"""Strategic dropout: bids competitively while the market pays at least its outside option.

Rule: the agent keeps an exponential moving average (weight ``memory``) of its realized utility
per round in the market. After a trial of ``patience`` rounds in the market it exits as soon
as that average falls below ``outside`` (its outside option per round), stays out ``patience``
rounds, then re-enters for a new trial (the re-entry rule). While in, it bids competitively:
truthfully where that is dominant, the Bayes-Nash shade in first price and pay-as-bid.
Raising a reserve price lowers bidders' surplus; past the outside option they leave, which
thins competition for those who stay (the dropout cascade).
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, AgentType, Draws, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray, IntArray

VERSION = 1


class DropoutParams(StrictModel):
    outside: float = Field(0.02, ge=0, le=1000, description="utility per round of the outside option")
    memory: float = Field(0.2, gt=0, le=1, description="weight of the latest round in the moving average")
    patience: int = Field(5, ge=1, le=1000, description="rounds of a trial in the market, and of a stay outside")


@dataclass(frozen=True, slots=True)
class DropoutState:
    average: FloatArray  # (B, S)  moving average of realized utility while in
    trial: IntArray  # (B, S)  rounds left before it may exit
    away: IntArray  # (B, S)  rounds left outside (0: in the market)


def init(context: MarketContext, params: DropoutParams, seats: int, draws: Draws) -> DropoutState:
    shape = (draws.markets, seats)
    return DropoutState(np.full(shape, params.outside), np.full(shape, params.patience), np.zeros(shape, np.int64))


def act(context: MarketContext, params: DropoutParams, state: DropoutState, values: FloatArray, draws) -> Action:
    return Action(bids=competitive_bids(context, values), enter=state.away == 0)


def update(context, params: DropoutParams, state: DropoutState, values, action, observation, feedback, draws):
    inside = feedback.active
    average = np.where(inside, (1 - params.memory) * state.average + params.memory * feedback.utility, state.average)
    trial = np.where(inside, np.maximum(state.trial - 1, 0), state.trial)
    leaving = inside & (trial == 0) & (average < params.outside)
    back = ~inside & (state.away <= 1)
    away = np.where(leaving, params.patience, np.where(inside, 0, np.maximum(state.away - 1, 0)))
    trial = np.where(back, params.patience, trial)
    return dataclasses.replace(state, average=average, trial=trial, away=away)


AGENT = AgentType(name="dropout", version=VERSION, summary="exits when surplus falls below its outside option",
                  act=act, init=init, update=update, params_model=DropoutParams)
