"""Continuous double auction: an order book with price-time priority, for sequential order flow.

Rule: each agent submits one unit order (buyers bid, sellers ask; see ``_double``) at its
order time in [0, 1] (ties and missing times: higher priority first). Orders are processed
in time order. An incoming bid trades with the lowest standing ask if it is at least that ask;
an incoming ask trades with the highest standing bid if it is at most that bid; the trade
price is the standing order's price (the earlier order sets the price), and among equal
prices the earliest standing order trades first. An order that does not trade stands;
orders still standing at the close expire.

Known results: strongly budget balanced and IR for truthful orders (a buyer never pays above
its bid, a seller never receives below its ask); not incentive compatible, yet with
zero-intelligence constrained traders it reaches high efficiency (Gode and Sunder 1993,
*J. Political Economy* 101: 119-137). Late orders (sniping) see the whole book.
"""

from typing import Any

import numpy as np

from mecharena.mechanisms import _double as da
from mecharena.mechanisms.base import Mechanism, is_valid_number

VERSION = 1


def properties(config: da.DoubleAuctionConfig) -> frozenset[str]:
    return frozenset({"ir", "payments_le_bids", "budget_balance"})


def arrival_order(priority: Any, times: Any) -> Any:
    """(B, N) agent indices in processing order: earliest time, then highest priority."""
    t = np.zeros_like(priority) if times is None else np.where(np.isfinite(times), times, 0.0)
    return np.lexsort((-priority, t), axis=-1)


def kernel(config: da.DoubleAuctionConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n_markets, n_agents = bids.shape
    valid = da.valid_orders(bids)
    if times is not None:
        valid &= np.isfinite(times) & (times >= 0) & (times <= 1)
    sellers = np.arange(n_agents) >= config.buyers
    order = arrival_order(priority, times)
    step = np.empty_like(order)
    np.put_along_axis(step, order, np.arange(n_agents)[None, :].repeat(n_markets, 0), axis=1)
    # A score where higher is better for the side being matched against: bids as they are, asks negated.
    score = np.where(sellers, -bids, bids)
    standing = np.zeros((n_markets, n_agents), dtype=bool)
    price = np.zeros((n_markets, n_agents))
    traded = np.zeros((n_markets, n_agents), dtype=bool)
    rows = np.arange(n_markets)
    for s in range(n_agents):
        a = order[:, s]
        incoming_seller = sellers[a]
        opposite = standing & (sellers[None, :] != incoming_seller[:, None])
        masked = np.where(opposite, score, -np.inf)
        best = masked.max(axis=1)
        first = np.where(opposite & (masked == best[:, None]), step, n_agents).argmin(axis=1)
        quote = bids[rows, first]
        mine = bids[rows, a]
        crosses = valid[rows, a] & (best > -np.inf) & np.where(incoming_seller, mine <= quote, mine >= quote)
        hit = rows[crosses]
        traded[hit, a[crosses]] = traded[hit, first[crosses]] = True
        price[hit, a[crosses]] = price[hit, first[crosses]] = quote[crosses]
        standing[hit, first[crosses]] = False
        standing[rows, a] = valid[rows, a] & ~crosses
    nb = config.buyers
    return da.settle(config, values, valid, traded[:, :nb], traded[:, nb:], price[:, :nb], price[:, nb:])


def reference(config: da.DoubleAuctionConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n = len(bids)
    valid = [is_valid_number(bids[i]) and (times is None or is_valid_number(times[i], 0.0, 1.0)) for i in range(n)]
    arrival = sorted(range(n), key=lambda i: (times[i] if times is not None and times[i] == times[i] else 0.0,
                                              -priority[i]))
    book: list[tuple[int, int]] = []  # (arrival step, agent) standing orders
    prices: dict[int, float] = {}
    for step, i in enumerate(arrival):
        if not valid[i]:
            continue
        selling = i >= config.buyers
        others = [(t, j) for t, j in book if (j >= config.buyers) != selling]
        if others:
            # best price for the incoming order, then earliest
            t, j = min(others, key=lambda o: (-bids[o[1]] if selling else bids[o[1]], o[0]))
            crosses = bids[i] >= bids[j] if not selling else bids[i] <= bids[j]
            if crosses:
                prices[i] = prices[j] = bids[j]
                book.remove((t, j))
                continue
        book.append((step, i))
    return da.reference_settle(config, values, valid, prices)


MECHANISM = Mechanism(
    name="cda", version=VERSION, summary="continuous double auction: order book, price-time priority",
    config_model=da.DoubleAuctionConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=da.market_spec, uses_times=True,
    examples=({"buyers": 1}, {"buyers": 2}, {"buyers": 4}),
    doc=__doc__,
)
