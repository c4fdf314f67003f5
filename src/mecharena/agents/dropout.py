"""Strategic dropout: bids competitively while the market pays at least its outside option.

Rule: the agent keeps a moving average of its realized utility per round in the market since it
(re-)entered: the plain mean over its first rounds, then an exponential average with weight
``memory`` (step size max(memory, 1/rounds seen)). After a trial of ``patience`` rounds in the
market it exits as soon as that average falls below ``outside`` (its outside option per round),
stays out ``patience`` rounds, then re-enters for a new trial with a fresh average (the re-entry
rule). While in, it bids competitively:
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

VERSION = 2


class DropoutParams(StrictModel):
    outside: float = Field(0.02, ge=0, le=1000, description="utility per round of the outside option")
    memory: float = Field(0.1, gt=0, le=1, description="least weight of the latest round in the moving average")
    patience: int = Field(8, ge=1, le=1000, description="rounds of a trial in the market, and of a stay outside")


@dataclass(frozen=True, slots=True)
class DropoutState:
    average: FloatArray  # (B, S)  moving average of realized utility while in
    seen: IntArray  # (B, S)  rounds in the market since it (re-)entered
    trial: IntArray  # (B, S)  rounds left before it may exit
    away: IntArray  # (B, S)  rounds left outside (0: in the market)


def init(context: MarketContext, params: DropoutParams, seats: int, draws: Draws) -> DropoutState:
    shape = (draws.markets, seats)
    zeros = np.zeros(shape, np.int64)
    return DropoutState(np.zeros(shape), zeros, np.full(shape, params.patience), zeros.copy())


def act(context: MarketContext, params: DropoutParams, state: DropoutState, values: FloatArray, draws) -> Action:
    return Action(bids=competitive_bids(context, values), enter=state.away == 0)


def update(context, params: DropoutParams, state: DropoutState, values, action, observation, feedback, draws):
    inside = feedback.active
    seen = state.seen + inside
    step = np.maximum(params.memory, 1.0 / np.maximum(seen, 1))
    average = np.where(inside, (1 - step) * state.average + step * feedback.utility, state.average)
    trial = np.where(inside, np.maximum(state.trial - 1, 0), state.trial)
    leaving = inside & (trial == 0) & (average < params.outside)
    back = ~inside & (state.away <= 1)
    away = np.where(leaving, params.patience, np.where(inside, 0, np.maximum(state.away - 1, 0)))
    trial = np.where(back, params.patience, trial)
    return dataclasses.replace(state, average=average, seen=np.where(back, 0, seen), trial=trial, away=away)


AGENT = AgentType(name="dropout", version=VERSION, summary="exits when surplus falls below its outside option",
                  act=act, init=init, update=update, params_model=DropoutParams)
