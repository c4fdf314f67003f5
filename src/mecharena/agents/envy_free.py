"""Envy-free bidder: the locally envy-free equilibrium of the generalized second-price position auction.

Edelman, Ostrovsky and Schwarz (2007, *AER* 97(1)): under complete information, GSP has an
equilibrium whose positions and payments are VCG's; the bidder ranked k >= 2 by value bids the
per-click VCG price of position k - 1 (see :func:`mecharena.mechanisms.position.envy_free_bids`).
It needs what every bidder knows there: all values. So the group must hold every seat of the
market (``envy_free:N`` as the whole population), and it plays ``position`` only.
"""

from mecharena.agents.base import AgentType, MarketContext, require_mechanism
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.position import envy_free_bids

VERSION = 1


def act(context: MarketContext, params, state, values: FloatArray, draws) -> FloatArray:
    require_mechanism(context, "envy_free", ("position",), reason="bids the GSP equilibrium with VCG's payments")
    if values.shape[1] != context.n_agents:
        raise ConfigError(f"envy_free plays a complete-information equilibrium: its group must hold every seat of the "
                          f"market ({context.n_agents}), got {values.shape[1]}; use envy_free:{context.n_agents}")
    return envy_free_bids(context.config, values)


AGENT = AgentType(name="envy_free", version=VERSION, summary="GSP's envy-free equilibrium (VCG payments; complete "
                  "information)", act=act)
