"""Hedge (exponential weights with full feedback; Freund and Schapire 1997) over bid multipliers.

Rule: arms are multipliers m in [low, high]; each round the agent draws an arm with
probability proportional to exp(eta * cumulative payoff) and bids m * value. Full feedback:
when the information policy reveals the competing bids (or, in first price, when it lost and the
clearing price is revealed, which then is the highest competing bid Y) it credits every arm with
the payoff it would have earned against Y (first price: v - m v if m v > Y; second price:
v - max(Y, reserve) if m v > Y). Rounds where Y is unknown leave the scores unchanged. No-regret
dynamics in first-price auctions approach the Bayes-Nash shading factor (n-1)/n for uniform values.
"""

import dataclasses

import numpy as np

from mecharena.agents import _multiplier as mult
from mecharena.agents._competitive import others_threshold
from mecharena.agents.base import AgentType

VERSION = 1


def init(context, params, seats, draws):
    return mult.init(context, params, seats, draws, "hedge")


def act(context, params, state, values, draws):
    return mult.act(params, state, values, draws)


def update(context, params, state, values, action, observation, feedback, draws):
    competing = np.full(values.shape, np.nan)
    if observation.bids is not None:
        competing = others_threshold(observation.bids, observation.bids[:, context.seats], 1)
    elif context.mechanism.name == "first_price":
        competing = np.where(feedback.allocation > 0, np.nan, observation.price[:, None])
    known = np.isfinite(competing) & feedback.active
    return dataclasses.replace(state, scores=mult.credit(context, params, state.scores, values, competing, known))


AGENT = AgentType(name="hedge", version=VERSION, summary="Hedge over bid multipliers (full feedback)", act=act,
                  init=init, update=update, params_model=mult.MultiplierParams)
