"""Long-horizon rational player: plans its moves across rounds by backward induction, with discounting.

For the repeated prisoner's dilemma (:mod:`mecharena.mechanisms.prisoners_dilemma`) only, against a
partner it models as (generous) tit-for-tat with generosity ``partner_generosity`` g: the partner
cooperates in the first round, then cooperates when it saw this seat cooperate, and with probability g
when it saw a defection; it sees through the mechanism's noise e. So the partner's move this round
depends only on this seat's own last move a, which it knows: the partner cooperates with probability

    p(C) = (1 - e) + e g,   p(D) = e + (1 - e) g,   and p = 1 in the first round.

The seat maximises its discounted payoff ``sum_t discount^t u_t`` over ``horizon`` rounds (the episode
it expects) by backward induction (Bellman 1957; the finitely repeated dilemma: Kreps, Milgrom, Roberts
and Wilson 1982, *J. Economic Theory* 27): ``V_H = 0``, ``V_t(p) = max_a u(a, p) + discount
V_{t+1}(p(a))`` with ``u(C, p) = p R + (1 - p) S`` and ``u(D, p) = p T + (1 - p) P``. Against plain
tit-for-tat without noise and discount 1 it cooperates and defects in the last round only (T - R more
than tit-for-tat earns in its seat); a short-sighted one (low discount) defects at once. Past the
horizon it plays as in the last round. Every other mechanism raises
:class:`~mecharena.core.errors.ConfigError`.
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


class LongHorizonParams(StrictModel):
    discount: float = Field(1.0, gt=0, le=1, description="weight of each later round's payoff, per round")
    horizon: int = Field(20, ge=1, le=100_000, description="rounds it plans over (the episode it expects)")
    partner_generosity: float = Field(0.0, ge=0, le=1, description="generosity g of the tit-for-tat partner it "
                                                                   "models")


@dataclass(frozen=True, slots=True)
class LongHorizonState:
    cooperate: np.ndarray  # (horizon, 2)  the plan (see plan), made once for the episode
    round: int
    cooperated: FloatArray  # (B, S)  its own last move (1: cooperated)


def plan(config: DilemmaConfig, params: LongHorizonParams) -> tuple[np.ndarray, np.ndarray]:
    """(cooperate, value): ``cooperate[t, k]`` is True where cooperating is optimal in round t after its own
    last move k (0: defected, 1: cooperated; round 0 uses k = 1, the partner's opening cooperation) and
    ``value[t, k]`` the discounted payoff from round t on.

    Against plain tit-for-tat without noise it defects in the last round only:

    >>> cooperate, _ = plan(DilemmaConfig(), LongHorizonParams(horizon=4))
    >>> cooperate[:, 1].tolist()
    [True, True, True, False]
    """
    t_, r_, p_, s_ = config.temptation, config.reward, config.punishment, config.sucker
    g, h, noise = params.partner_generosity, params.horizon, config.noise
    partner = np.array([noise + (1 - noise) * g, (1 - noise) + noise * g])  # P(partner cooperates) after D, C
    partner_first = np.array([1.0, 1.0])  # round 0: the partner opens with cooperation whatever k says
    cooperate = np.zeros((h, 2), dtype=bool)
    value = np.zeros((h + 1, 2))
    for t in range(h - 1, -1, -1):
        p = partner_first if t == 0 else partner
        c = p * r_ + (1 - p) * s_ + params.discount * value[t + 1, 1]
        d = p * t_ + (1 - p) * p_ + params.discount * value[t + 1, 0]
        cooperate[t] = c >= d
        value[t] = np.maximum(c, d)
    return cooperate, value[:h]


def _check(context: MarketContext) -> None:
    require_mechanism(context, "long_horizon", ("prisoners_dilemma",), reason="plans against a reciprocating partner")


def init(context: MarketContext, params: LongHorizonParams, seats: int, draws: Draws) -> LongHorizonState:
    _check(context)
    cooperate, _ = plan(context.config, params)
    return LongHorizonState(cooperate, 0, initial_own_state(context, draws)["cooperated"])


def act(context: MarketContext, params: LongHorizonParams, state: LongHorizonState, values: FloatArray,
        draws: Draws) -> Action:
    """(B, S) moves: 1 (cooperate) or 0 (defect), the plan's for this round and its own last move."""
    row = state.cooperate[min(state.round, params.horizon - 1)]
    return Action(bids=row[(state.cooperated > 0.5).astype(int)].astype(float))


def update(context: MarketContext, params: LongHorizonParams, state: LongHorizonState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> LongHorizonState:
    return dataclasses.replace(state, round=state.round + 1, cooperated=feedback.state["cooperated"].copy())


AGENT = AgentType(name="long_horizon", version=VERSION,
                  summary="prisoner's dilemma: plans by backward induction (discounted) against a modelled "
                          "tit-for-tat partner",
                  act=act, init=init, update=update, params_model=LongHorizonParams)
