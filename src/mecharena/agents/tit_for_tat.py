"""Tit-for-tat, generous or not: cooperate first, then do what the partner was seen to do last round.

For the repeated prisoner's dilemma (:mod:`mecharena.mechanisms.prisoners_dilemma`) only. Each seat
cooperates when it saw its partner cooperate last round (and in the first round), and otherwise
cooperates with probability ``generosity`` g (0: Rapoport's tit-for-tat, the winner of Axelrod's
tournaments; Axelrod 1984, *The Evolution of Cooperation*). It reads only its own state, the move it
saw through the mechanism's noisy channel, so under noise it retaliates against errors: two
tit-for-tat players echo each error until another error ends it. Generous tit-for-tat forgives a seen
defection with probability g; Molander (1985, *J. Conflict Resolution* 29(4)) and Nowak and Sigmund
(1992, *Nature* 355) give the best g against noise as ``min(1 - (T - R) / (R - S), (R - P) / (T - P))``
(:func:`best_generosity`). Every other mechanism raises :class:`~mecharena.core.errors.ConfigError`.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents.base import (Action, AgentType, Draws, Feedback, MarketContext, Observation, initial_own_state,
                                   require_mechanism)
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray
from mecharena.mechanisms.prisoners_dilemma import DilemmaConfig

VERSION = 1


class TitForTatParams(StrictModel):
    generosity: float = Field(0.0, ge=0, le=1, description="probability of cooperating after a seen defection")


@dataclass(frozen=True, slots=True)
class TitForTatState:
    seen: FloatArray  # (B, S)  the partner's move as each seat saw it last round (1: cooperated)


def best_generosity(config: DilemmaConfig) -> float:
    """Molander's generosity ``min(1 - (T - R) / (R - S), (R - P) / (T - P))``: 1/3 with Axelrod's payoffs.

    >>> round(best_generosity(DilemmaConfig()), 6)
    0.333333
    """
    t, r, p, s = config.temptation, config.reward, config.punishment, config.sucker
    return min(1 - (t - r) / (r - s), (r - p) / (t - p))


def _check(context: MarketContext) -> None:
    require_mechanism(context, "tit_for_tat", ("prisoners_dilemma",), reason="reciprocates a partner's moves")


def init(context: MarketContext, params: TitForTatParams, seats: int, draws: Draws) -> TitForTatState:
    _check(context)
    return TitForTatState(seen=initial_own_state(context, draws)["seen"])


def act(context: MarketContext, params: TitForTatParams, state: TitForTatState, values: FloatArray,
        draws: Draws) -> Action:
    """(B, S) probabilities of cooperating: 1 after a seen cooperation, the generosity after a seen defection."""
    _check(context)
    return Action(bids=np.where(state.seen > 0.5, 1.0, params.generosity))


def update(context: MarketContext, params: TitForTatParams, state: TitForTatState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> TitForTatState:
    return dataclasses.replace(state, seen=feedback.state["seen"].copy())


AGENT = AgentType(name="tit_for_tat", version=VERSION,
                  summary="prisoner's dilemma: cooperate first, then copy the partner's seen move (generous: "
                          "forgive a seen defection with probability generosity)",
                  act=act, init=init, update=update, params_model=TitForTatParams)
