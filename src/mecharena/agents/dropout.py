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

import numba
import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, AgentType, Draws, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray, IntArray

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
    inside = np.asarray(feedback.active, dtype=np.bool_)
    utility = np.asarray(feedback.utility, dtype=np.float64)
    average, seen = np.empty(inside.shape), np.empty(inside.shape, np.int64)
    trial, away = np.empty(inside.shape, np.int64), np.empty(inside.shape, np.int64)
    _update(float(params.memory), float(params.outside), int(params.patience), inside, utility,
            state.average, state.seen, state.trial, state.away,
            average, seen, trial, away)
    return dataclasses.replace(state, average=average, seen=seen, trial=trial, away=away)


@numba.njit(cache=True, nogil=True)
def _update(memory: float, outside: float, patience: int, inside: BoolArray, utility: FloatArray,
            average: FloatArray, seen: IntArray, trial: IntArray, away: IntArray, new_average: FloatArray,
            new_seen: IntArray, new_trial: IntArray, new_away: IntArray) -> None:
    """One round of the moving average and the exit and re-entry rule, seat by seat (see the module docstring)."""
    for m in range(inside.shape[0]):
        for s in range(inside.shape[1]):
            i = inside[m, s]
            n = seen[m, s] + (1 if i else 0)
            step = max(memory, 1.0 / max(n, 1))
            avg = (1 - step) * average[m, s] + step * utility[m, s] if i else average[m, s]
            t = max(trial[m, s] - 1, 0) if i else trial[m, s]
            leaving = i and t == 0 and avg < outside
            back = not i and away[m, s] <= 1
            new_average[m, s] = avg
            new_seen[m, s] = 0 if back else n
            new_trial[m, s] = patience if back else t
            new_away[m, s] = patience if leaving else (0 if i else max(away[m, s] - 1, 0))


AGENT = AgentType(name="dropout", version=VERSION, summary="exits when surplus falls below its outside option",
                  act=act, init=init, update=update, params_model=DropoutParams)
