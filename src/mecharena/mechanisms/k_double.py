"""k-double auction, a call market (Chatterjee and Samuelson 1983; Rustichini, Satterthwaite
and Williams 1994, *Econometrica* 62: 1041-1063).

Rule: with ``q`` crossing pairs (see ``_double``), every price in
``[max(s_q, b_{q+1}), min(b_q, s_{q+1})]`` clears the market; the price is
``lower + k (upper - lower)``. All q pairs trade at that one price.

Known results: strongly budget balanced and ex post IR; efficient under truthful orders but
not incentive compatible (k = 1 lets sellers set the price, k = 0 buyers), with
misrepresentation vanishing as the market grows (Rustichini et al. 1994).
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import _double as da
from mecharena.mechanisms.base import Mechanism

VERSION = 1


class KDoubleConfig(da.DoubleAuctionConfig):
    k: float = Field(0.5, ge=0, le=1, description="weight of the upper end of the clearing interval")


def properties(config: KDoubleConfig) -> frozenset[str]:
    return frozenset({"ir", "payments_le_bids", "budget_balance", "efficient"})


def kernel(config: KDoubleConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    book = da.sort_book(config, bids, priority)
    q = book.q
    lower = np.maximum(da.at(book.asks, q - 1, np.nan), da.at(book.bids, q, -np.inf))
    upper = np.minimum(da.at(book.bids, q - 1, np.nan), da.at(book.asks, q, np.inf))
    price = lower + config.k * (upper - lower)
    return da.settle_sorted(config, values, book, q, price, price)


def reference(config: KDoubleConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    book = da.reference_book(config, bids, priority)
    q, prices = book.q, {}
    if q > 0:
        lower = max([bids[book.sellers[q - 1]]] + [bids[i] for i in book.buyers[q: q + 1]])
        upper = min([bids[book.buyers[q - 1]]] + [bids[i] for i in book.sellers[q: q + 1]])
        price = lower + config.k * (upper - lower)
        prices = {i: price for i in book.buyers[:q] + book.sellers[:q]}
    return da.reference_settle(config, values, book.valid, prices)


MECHANISM = Mechanism(
    name="k_double", version=VERSION, summary="call market: all crossing pairs trade at one k-weighted price",
    config_model=KDoubleConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=da.market_spec,
    examples=({"buyers": 1}, {"buyers": 2, "k": 0.0}, {"buyers": 3, "k": 1.0}, {"buyers": 4, "k": 0.3}),
    doc=__doc__,
)
