"""EXP3 (exponential weights for bandit feedback; Auer, Cesa-Bianchi, Freund and Schapire 2002)
over bid multipliers.

Rule: arms are multipliers m in [low, high]; the agent plays arm a with probability
``(1 - gamma) * softmax(eta * S)_a + gamma / A`` and bids m * value. It sees only its own realized
utility u (net of fines) and adds the importance-weighted estimate ``u / p_a`` to the score of the
arm it played. It needs no information from the market and no model of the rules, so it learns
under any information policy and in any market where every seat sends one bid as a buyer: the
built-in auctions and posted prices, and plug-ins it knows nothing about (an all-pay auction).
"""

import dataclasses

import numpy as np
from pydantic import Field

from mecharena.agents import _multiplier as mult
from mecharena.agents.base import AgentType

VERSION = 1


class Exp3Params(mult.MultiplierParams):
    eta: float = Field(0.1, gt=0, le=100, description="learning rate of the exponential weights")
    gamma: float = Field(0.05, ge=0, le=1, description="share of uniform exploration")


def init(context, params, seats, draws):
    return mult.init(context, params, seats, draws, "exp3", None)


def act(context, params, state, values, draws):
    return mult.act(params, state, values, draws, params.gamma)


def update(context, params, state, values, action, observation, feedback, draws):
    drawn = action.memo
    estimate = np.where(feedback.active, feedback.utility / drawn.probability, 0.0)
    hit = np.arange(params.arms)[None, None, :] == drawn.arm[:, :, None]
    return dataclasses.replace(state, scores=state.scores + hit * estimate[:, :, None])


AGENT = AgentType(name="exp3", version=VERSION, summary="EXP3 over bid multipliers (bandit feedback)", act=act,
                  init=init, update=update, params_model=Exp3Params)
