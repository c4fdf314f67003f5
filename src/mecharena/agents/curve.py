"""Bid-curve agent: a parameterized misreport, the fuzzer's basic deviation family.

Rule: a buyer bids ``max(0, scale * v^power + offset)``; a seller (two-sided markets) mirrors it
around the top of the value support ``h``: it asks ``h - max(0, scale * (h - c)^power + offset)``,
floored at 0. ``scale = power = 1, offset = 0`` is truthful; ``scale < 1`` shades, ``scale > 1``
overbids. In the continuous double auction every order pass repeats the bid. Contributions in
public-goods games are the same curve of the value, capped at the endowment.
"""

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 1


class CurveParams(StrictModel):
    scale: float = Field(1.0, ge=0, le=3, description="slope of the bid curve")
    power: float = Field(1.0, ge=0.2, le=5, description="curvature: bid grows as value^power")
    offset: float = Field(0.0, ge=-1, le=1, description="added to every bid (before the floor at 0)")


def act(context: MarketContext, params: CurveParams, state, values: FloatArray, draws) -> FloatArray:
    if context.spec.units_per_agent:
        raise ConfigError(f"curve bids one unit; {context.mechanism.name} is configured for multi-unit demand")
    high = context.values.high
    buy = np.maximum(params.scale * np.maximum(values, 0.0) ** params.power + params.offset, 0.0)
    sell = np.maximum(high - np.maximum(params.scale * np.maximum(high - values, 0.0) ** params.power
                                        + params.offset, 0.0), 0.0)
    bids = np.where(context.selling[None, :], sell, buy)
    bids = np.minimum(bids, context.spec.action_high)
    orders = context.spec.orders_per_agent
    return np.repeat(bids[:, :, None], orders, axis=2) if orders else bids


AGENT = AgentType(name="curve", version=VERSION, summary="bids scale * value^power + offset (sellers mirrored)",
                  act=act, params_model=CurveParams)
