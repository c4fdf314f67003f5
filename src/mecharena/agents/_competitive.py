"""The competitive (non-collusive) bid several agent types fall back on, and the bid they must beat."""

import numba
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
    if bids.ndim == 2 and own.ndim == 2 and 1 <= k < n and bids.dtype == own.dtype == np.float64:
        out = np.empty(own.shape)
        if _others_threshold(bids, own, k, out):
            return out
    ranked = -np.sort(-bids, axis=1)
    kth = ranked[:, k - 1, None] if k <= n else np.zeros((bids.shape[0], 1))
    next_one = ranked[:, k, None] if k < n else np.zeros((bids.shape[0], 1))
    return np.where(own >= kth, next_one, kth)  # among the top k, its own bid makes way for the (k+1)-th


@numba.njit(cache=True, nogil=True)
def _others_threshold(bids: FloatArray, own: FloatArray, k: int, out: FloatArray) -> bool:
    """:func:`others_threshold` for 1 <= k < N without sorting: the k-th and (k+1)-th highest bids of each market
    kept in a short descending list. False (``out`` unfinished) where a bid is NaN or -0.0, whose place in
    NumPy's sort this does not reproduce."""
    top = np.empty(k + 1)
    for m in range(bids.shape[0]):
        unusual = False
        if k == 1:  # the running top two, with selects
            first, second = -np.inf, -np.inf
            for i in range(bids.shape[1]):
                x = bids[m, i]
                unusual |= not (x > 0.0 or x < 0.0 or (x == 0.0 and not np.signbit(x)))  # NaN or -0.0
                higher = x > first
                lower = first if higher else x
                second = lower if lower > second else second
                first = x if higher else first
            kth, next_one = first, second
        else:
            size = 0
            for i in range(bids.shape[1]):
                x = bids[m, i]
                unusual |= (x != x) | ((x == 0.0) & np.signbit(x))
                if size == k + 1 and x <= top[k]:
                    continue
                j = min(size, k)  # insert x after every kept value at least as high
                while j > 0 and top[j - 1] < x:
                    top[j] = top[j - 1]
                    j -= 1
                top[j] = x
                size = min(size + 1, k + 1)
            kth, next_one = top[k - 1], top[k]
        if unusual:
            return False
        for s in range(own.shape[1]):
            out[m, s] = next_one if own[m, s] >= kth else kth
    return True
