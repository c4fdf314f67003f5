"""The competitive (non-collusive) bid that several agent types fall back on."""

from mecharena.agents.base import MarketContext
from mecharena.agents.bne import shaded_bids
from mecharena.core.types import FloatArray


def competitive_bids(context: MarketContext, values: FloatArray, rivals: int | None = None) -> FloatArray:
    """Truthful where truthful bidding is dominant; the symmetric BNE shade in first price and
    unit-demand pay-as-bid (with ``rivals + 1`` bidders, default: everyone); truthful elsewhere."""
    name, config = context.mechanism.name, context.config
    if name in ("first_price", "pay_as_bid") and not context.spec.units_per_agent:
        n = context.n_agents if rivals is None else rivals + 1
        return shaded_bids(context.values, values, n, int(getattr(config, "units", 1)), context.visible_reserve)
    return context.mechanism.truthful(config, values, context.spec)
