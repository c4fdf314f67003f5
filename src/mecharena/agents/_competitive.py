"""The competitive (non-collusive) bid several agent types fall back on, and the bid they must beat."""

import numpy as np

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


def others_threshold(bids: FloatArray, own: FloatArray, k: int) -> FloatArray:
    """The k-th highest bid among the others (B, S): ``bids`` (B, N) every bid, ``own`` (B, S) each
    seat's own bid (0 when there are fewer than k others)."""
    n = bids.shape[1]
    ranked = -np.sort(-bids, axis=1)
    kth = ranked[:, k - 1, None] if k <= n else np.zeros((bids.shape[0], 1))
    next_one = ranked[:, k, None] if k < n else np.zeros((bids.shape[0], 1))
    return np.where(own >= kth, next_one, kth)  # among the top k, its own bid makes way for the (k+1)-th
