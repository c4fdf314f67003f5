"""Continuous double auction: an order book with price-time priority, for sequential order flow.

Rule: each agent (one unit to buy or sell; see ``_double``) submits ``orders`` limit orders
per period, each at its own time in [0, 1] (without times: pass p of every agent before pass
p + 1, agents within a pass in priority order). Orders are processed in time order (ties: higher
priority, then earlier order). An incoming bid trades with the lowest standing ask if it is at
least that ask; an incoming ask trades with the highest standing bid if it is at most that
bid; the trade price is the standing order's price (the earlier order sets the price), and
among equal prices the earliest standing order trades first. An agent's new order replaces its
standing one; once it has traded its later orders are ignored; orders still standing at the
close expire. An agent with any invalid order (price not finite and >= 0, or time outside
[0, 1]) abstains for the period.

Known results: strongly budget balanced and IR for truthful orders (a buyer never pays above
its bid, a seller never receives below its ask); not incentive compatible, yet zero-intelligence
constrained traders submitting repeated random orders reach high allocative efficiency (Gode and
Sunder 1993, *J. Political Economy* 101: 119-137). Late orders (sniping) see the whole book.
"""

from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import _double as da
from mecharena.mechanisms.base import MarketSpec, Mechanism, is_valid_number

VERSION = 2


class CDAConfig(da.DoubleAuctionConfig):
    orders: int = Field(1, ge=1, le=64, description="orders per agent and period (a new one replaces the last)")


def properties(config: CDAConfig) -> frozenset[str]:
    return frozenset({"ir", "payments_le_bids", "budget_balance"})


def market_spec(config: CDAConfig, n_agents: int) -> MarketSpec:
    return replace(da.market_spec(config, n_agents), orders_per_agent=config.orders if config.orders > 1 else 0)


def truthful(config: CDAConfig, values: Any, spec: MarketSpec) -> Any:
    return np.repeat(values[:, :, None], config.orders, axis=2) if config.orders > 1 else values.copy()


def order_book_inputs(config: CDAConfig, bids: Any, priority: Any, times: Any):
    """Orders as (B, N, P) prices and times (default times: passes in priority order)."""
    n_markets, n_agents = priority.shape
    p = config.orders
    prices = bids.reshape(n_markets, n_agents, p)
    if times is None:
        times = (np.arange(p)[None, None, :] + 1.0 - priority[:, :, None]) / p
    return prices, times.reshape(n_markets, n_agents, p)


def kernel(config: CDAConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n_markets, n_agents = values.shape
    prices, when = order_book_inputs(config, bids, priority, times)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(prices) & (prices >= 0) & np.isfinite(when) & (when >= 0) & (when <= 1)
    valid = ok.all(axis=2)
    p = config.orders
    flat_price, flat_time = prices.reshape(n_markets, -1), when.reshape(n_markets, -1)
    agent_of = np.repeat(np.arange(n_agents), p)
    order_index = np.broadcast_to(np.tile(np.arange(p), n_agents), flat_price.shape)
    sequence = np.lexsort((order_index, -np.repeat(priority, p, axis=1), flat_time), axis=-1)
    sellers = np.arange(n_agents) >= config.buyers
    rows = np.arange(n_markets)
    standing = np.zeros((n_markets, n_agents), dtype=bool)
    quote_of = np.zeros((n_markets, n_agents))  # price of each agent's standing order
    since = np.zeros((n_markets, n_agents), dtype=np.int64)  # step at which it was placed
    traded = np.zeros((n_markets, n_agents), dtype=bool)
    price = np.zeros((n_markets, n_agents))
    for step in range(flat_price.shape[1]):
        order = sequence[:, step]
        a = agent_of[order]
        mine = flat_price[rows, order]
        live = valid[rows, a] & ~traded[rows, a]
        standing[rows, a] &= ~live  # a new order replaces the agent's standing one
        incoming_seller = sellers[a]
        opposite = standing & (sellers[None, :] != incoming_seller[:, None])
        score = np.where(opposite, np.where(sellers, -quote_of, quote_of), -np.inf)  # higher is better
        best = score.max(axis=1)
        first = np.where(opposite & (score == best[:, None]), since, np.iinfo(np.int64).max).argmin(axis=1)
        quote = quote_of[rows, first]
        crosses = live & (best > -np.inf) & np.where(incoming_seller, mine <= quote, mine >= quote)
        hit = rows[crosses]
        traded[hit, a[crosses]] = traded[hit, first[crosses]] = True
        price[hit, a[crosses]] = price[hit, first[crosses]] = quote[crosses]
        standing[hit, first[crosses]] = False
        rest = live & ~crosses
        standing[rows[rest], a[rest]] = True
        quote_of[rows[rest], a[rest]] = mine[rest]
        since[rows[rest], a[rest]] = step
    nb = config.buyers
    return da.settle(config, values, valid, traded[:, :nb], traded[:, nb:], price[:, :nb], price[:, nb:])


def reference(config: CDAConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n, p = len(values), config.orders
    prices = [b if isinstance(b, list) else [b] for b in bids]
    if times is None:
        when = [[(k + 1.0 - priority[i]) / p for k in range(p)] for i in range(n)]
    else:
        when = [t if isinstance(t, list) else [t] for t in times]
    valid = [all(is_valid_number(x) for x in prices[i]) and all(is_valid_number(t, 0.0, 1.0) for t in when[i])
             for i in range(n)]
    orders = sorted((when[i][k], -priority[i], k, i) for i in range(n) for k in range(p))
    book: dict[int, tuple[float, int]] = {}  # agent -> (price, step placed)
    prices_paid: dict[int, float] = {}
    for step, (_, _, k, i) in enumerate(orders):
        if not valid[i] or i in prices_paid:
            continue
        book.pop(i, None)
        selling = i >= config.buyers
        mine = prices[i][k]
        others = [(j, q, t) for j, (q, t) in book.items() if (j >= config.buyers) != selling]
        if others:
            j, q, _ = min(others, key=lambda o: (-o[1] if selling else o[1], o[2]))
            if (mine <= q) if selling else (mine >= q):
                prices_paid[i] = prices_paid[j] = q
                del book[j]
                continue
        book[i] = (mine, step)
    return da.reference_settle(config, values, valid, prices_paid)


MECHANISM = Mechanism(
    name="cda", version=VERSION, summary="continuous double auction: order book, price-time priority",
    config_model=CDAConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=market_spec, truthful=truthful, uses_times=True,
    examples=({"buyers": 1}, {"buyers": 2}, {"buyers": 4}, {"buyers": 2, "orders": 3}, {"buyers": 3, "orders": 5}),
    doc=__doc__,
)
