"""Truthful agent: reports its value (its cost, as a seller; its sincere contribution in a
public-goods game). Optimal whenever the mechanism is dominant-strategy incentive compatible."""

from mecharena.agents.base import AgentType, MarketContext
from mecharena.core.types import FloatArray

VERSION = 1


def act(context: MarketContext, params, state, values: FloatArray, draws) -> FloatArray:
    return context.mechanism.truthful(context.config, values, context.spec)


AGENT = AgentType(name="truthful", version=VERSION, summary="bids its true value", act=act)
