"""Reserve sniper: bids just above the announced reserve whenever its value clears it.

Rule: with visible reserve r, a value v >= r + margin bids ``r + margin``; lower values abstain.
Where few bidders clear the reserve (a high reserve, a thin market) the lone bidder wins at the
reserve instead of paying near its value in a first-price auction. A hidden reserve (r = 0 to the
agent) turns the strategy into a flat low bid.
"""

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1


class SnipeParams(StrictModel):
    margin: float = Field(0.01, ge=0, le=1, description="how far above the reserve it bids")


def act(context: MarketContext, params: SnipeParams, state, values: FloatArray, draws) -> FloatArray:
    bid = context.visible_reserve + params.margin
    return np.where(values >= bid, bid, 0.0)


AGENT = AgentType(name="reserve_snipe", version=VERSION, summary="bids just above the announced reserve",
                  act=act, params_model=SnipeParams)
