"""Zero-intelligence constrained trader (ZI-C; Gode and Sunder 1993, *J. Political Economy*
101: 119-137).

Rule: every order price is drawn afresh and uniformly from the range where a trade cannot lose
money: a buyer bids U[low, value], a seller asks U[cost, high], where [low, high] is the support
of the value distribution. In the continuous double auction each of the ``orders`` passes gets
a new price at a random time within its pass, as in Gode and Sunder's markets, where such traders
reach allocative efficiency near 97-99%. In one-sided auctions a ZI-C bidder bids U[0, value].
Stateless: there is no learning, which is the point of the benchmark.
"""

import numpy as np

from mecharena.agents.base import Action, AgentType, Draws, MarketContext
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 1


def act(context: MarketContext, params, state, values: FloatArray, draws: Draws) -> Action:
    if context.spec.units_per_agent:
        raise ConfigError(f"zic bids one unit; {context.mechanism.name} is configured for multi-unit demand")
    orders = context.spec.orders_per_agent
    tail = (orders,) if orders else ()
    u = draws.uniform("price", values.shape[1], *tail)
    v = values.reshape(values.shape + (1,) * len(tail))
    low, high = context.values.low, context.values.high
    selling = context.selling.reshape((1, -1) + (1,) * len(tail))
    bids = np.where(selling, v + u * (high - v), low + u * np.maximum(v - low, 0.0))
    times = None
    if context.mechanism.uses_times:
        jitter = draws.uniform("time", values.shape[1], *tail)
        times = (np.arange(orders)[None, None, :] + jitter) / orders if orders else jitter
    return Action(bids=bids, times=times)


AGENT = AgentType(name="zic", version=VERSION, summary="zero-intelligence constrained random orders", act=act)
