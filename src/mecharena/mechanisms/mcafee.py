"""McAfee's trade-reduction double auction (McAfee 1992, *J. Econ. Theory* 56: 434-450).

Rule: with ``q`` crossing pairs (see ``_double``), let ``p0`` be the midpoint of the
(q+1)-th highest bid and the (q+1)-th lowest ask. If both exist and ``s_q <= p0 <= b_q``, all
q pairs trade at ``p0``. Otherwise the q-th pair is dropped: q - 1 pairs trade, buyers pay
``b_q`` and sellers receive ``s_q``; the difference stays with the mechanism.

Known results (McAfee 1992, Theorem 1 and section 3):

* truthful bidding is weakly dominant for buyers and sellers;
* ex post individually rational; weakly budget balanced (the mechanism never loses money);
* at most one efficient trade is lost, so efficiency >= 1 - 1/q when q trades are efficient.
"""

from typing import Any

import numpy as np

from mecharena.mechanisms import _double as da
from mecharena.mechanisms.base import Mechanism

VERSION = 1


def properties(config: da.DoubleAuctionConfig) -> frozenset[str]:
    return frozenset({"truthful", "ir", "payments_le_bids", "weak_budget_balance"})


def kernel(config: da.DoubleAuctionConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    book = da.sort_book(config, bids, priority)
    q = book.q
    b_q, s_q = da.at(book.bids, q - 1, np.nan), da.at(book.asks, q - 1, np.nan)
    b_next, s_next = da.at(book.bids, q, -np.inf), da.at(book.asks, q, np.inf)
    with np.errstate(invalid="ignore"):
        p0 = (b_next + s_next) / 2  # NaN or infinite when a side has no (q+1)-th valid order
        full = (q > 0) & np.isfinite(p0) & (s_q <= p0) & (p0 <= b_q)
    trades = np.where(full, q, np.maximum(q - 1, 0))
    return da.settle_sorted(config, values, book, trades,
                            np.where(full, p0, b_q), np.where(full, p0, s_q))


def reference(config: da.DoubleAuctionConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    book = da.reference_book(config, bids, priority)
    q, prices = book.q, {}
    if q > 0:
        b_q, s_q = bids[book.buyers[q - 1]], bids[book.sellers[q - 1]]
        if q < len(book.buyers) and q < len(book.sellers):
            p0 = (bids[book.buyers[q]] + bids[book.sellers[q]]) / 2
        else:
            p0 = None
        if p0 is not None and s_q <= p0 <= b_q:
            prices = {i: p0 for i in book.buyers[:q] + book.sellers[:q]}
        else:
            prices = {i: b_q for i in book.buyers[: q - 1]} | {i: s_q for i in book.sellers[: q - 1]}
    return da.reference_settle(config, values, book.valid, prices)


MECHANISM = Mechanism(
    name="mcafee", version=VERSION, summary="double auction with McAfee trade reduction (truthful, IR)",
    config_model=da.DoubleAuctionConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=da.market_spec,
    examples=({"buyers": 1}, {"buyers": 2}, {"buyers": 4}),
    doc=__doc__,
)
