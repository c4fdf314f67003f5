"""Shared rules of the two-sided auctions (McAfee, k-double auction, continuous double auction).

Agents ``0 .. buyers - 1`` buy one unit each (value, bid); the rest sell one unit each
(cost, ask). Values of sellers are their costs. A bid or ask that is not finite and >= 0 is
invalid and abstains. Buyers are ranked by (bid, priority) from the highest, sellers by
(ask from the lowest, then priority). ``q``, the number of crossing pairs, is the largest j
with the j-th highest bid >= the j-th lowest ask.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.core.errors import ConfigError
from mecharena.core.types import BoolArray, FloatArray, IntArray
from mecharena.mechanisms.base import MarketSpec, MechanismConfig, Outcome, finish, is_valid_number, scalar_outcome


class DoubleAuctionConfig(MechanismConfig):
    """Config of a two-sided market: the first ``buyers`` agents buy, the others sell."""

    buyers: int = Field(1, ge=1, le=100_000, description="agents 0..buyers-1 buy; the rest sell")


def market_spec(config: DoubleAuctionConfig, n_agents: int) -> MarketSpec:
    if n_agents and config.buyers >= n_agents:
        raise ConfigError(
            f"buyers must be < the number of agents ({n_agents}) so that someone sells, got {config.buyers}"
        )
    return MarketSpec(sellers=np.arange(n_agents) >= config.buyers,
                      action_rule="each bid or ask must be finite and >= 0")


@dataclass(frozen=True, slots=True)
class Book:
    """Both sides of B call markets, sorted."""

    buy_order: IntArray  # (B, nb)  buyer indices, best bid first
    sell_order: IntArray  # (B, ns)  seller indices (0-based within sellers), best ask first
    bids: FloatArray  # (B, nb)  sorted bids, -inf for invalid
    asks: FloatArray  # (B, ns)  sorted asks, +inf for invalid
    q: IntArray  # (B,)  crossing pairs
    valid: BoolArray  # (B, N)


def valid_orders(bids: FloatArray) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(bids) & (bids >= 0)


def sort_book(config: DoubleAuctionConfig, bids: FloatArray, priority: FloatArray) -> Book:
    nb = config.buyers
    valid = valid_orders(bids)
    b = np.where(valid[:, :nb], bids[:, :nb], -np.inf)
    a = np.where(valid[:, nb:], bids[:, nb:], np.inf)
    buy_order = np.lexsort((-priority[:, :nb], -b), axis=-1)
    sell_order = np.lexsort((-priority[:, nb:], a), axis=-1)
    sb, sa = np.take_along_axis(b, buy_order, 1), np.take_along_axis(a, sell_order, 1)
    m = min(sb.shape[1], sa.shape[1])
    q = (sb[:, :m] >= sa[:, :m]).sum(axis=1)
    return Book(buy_order, sell_order, sb, sa, q, valid)


def at(sorted_side: FloatArray, index: IntArray, missing: float) -> FloatArray:
    """``sorted_side[b, index[b]]``, or ``missing`` where the index is out of range."""
    inside = (index >= 0) & (index < sorted_side.shape[1])
    picked = np.take_along_axis(sorted_side, np.clip(index, 0, sorted_side.shape[1] - 1)[:, None], 1)[:, 0]
    return np.where(inside, picked, missing)


def max_gains_from_trade(config: DoubleAuctionConfig, values: FloatArray) -> FloatArray:
    v = -np.sort(-values[:, : config.buyers], axis=1)
    c = np.sort(values[:, config.buyers:], axis=1)
    m = min(v.shape[1], c.shape[1])
    return np.maximum(v[:, :m] - c[:, :m], 0).sum(axis=1)


def settle(config: DoubleAuctionConfig, values: FloatArray, valid: BoolArray, buyer_trades: BoolArray,
           seller_trades: BoolArray, buyer_price: FloatArray, seller_price: FloatArray) -> Outcome:
    """Outcome from per-agent trade flags (B, nb)/(B, ns) and per-agent prices (same shapes)."""
    nb = config.buyers
    trades = np.concatenate([buyer_trades, seller_trades], axis=1)
    allocation = np.concatenate([buyer_trades, np.where(seller_trades, -1.0, 0.0)], axis=1).astype(float)
    payments = np.zeros(values.shape)
    receipts = np.zeros(values.shape)
    payments[:, :nb] = np.where(buyer_trades, buyer_price, 0.0)
    receipts[:, nb:] = np.where(seller_trades, seller_price, 0.0)
    gains = np.where(trades, values * np.sign(allocation), 0.0)
    return finish(allocation, payments, receipts, gains, valid, valid,
                  max_welfare=max_gains_from_trade(config, values))


def settle_sorted(config: DoubleAuctionConfig, values: FloatArray, book: Book, trades: IntArray,
                  buyer_price: FloatArray, seller_price: FloatArray) -> Outcome:
    """Outcome where the ``trades`` best buyers and sellers of each market trade at uniform prices (B,)."""
    n_markets = values.shape[0]
    rows = np.arange(n_markets)[:, None]
    buyer_trades = np.zeros(book.bids.shape, dtype=bool)
    seller_trades = np.zeros(book.asks.shape, dtype=bool)
    buyer_trades[rows, book.buy_order] = np.arange(book.bids.shape[1]) < trades[:, None]
    seller_trades[rows, book.sell_order] = np.arange(book.asks.shape[1]) < trades[:, None]
    return settle(config, values, book.valid, buyer_trades, seller_trades,
                  buyer_price[:, None], seller_price[:, None])


# ---- scalar reference helpers (plain Python, one market) ----


@dataclass(frozen=True)
class ScalarBook:
    valid: list[bool]
    buyers: list[int]  # agent indices, best bid first
    sellers: list[int]  # agent indices, best ask first
    q: int


def reference_book(config: DoubleAuctionConfig, bids: list[float], priority: list[float]) -> ScalarBook:
    valid = [is_valid_number(x) for x in bids]
    nb = config.buyers
    buyers = sorted((i for i in range(nb) if valid[i]), key=lambda i: (-bids[i], -priority[i]))
    sellers = sorted((i for i in range(nb, len(bids)) if valid[i]), key=lambda i: (bids[i], -priority[i]))
    q = 0
    while q < min(len(buyers), len(sellers)) and bids[buyers[q]] >= bids[sellers[q]]:
        q += 1
    return ScalarBook(valid, buyers, sellers, q)


def reference_settle(config: DoubleAuctionConfig, values: list[float], valid: list[bool],
                     prices: dict[int, float]) -> dict[str, Any]:
    """One market's outcome from ``{agent: price}`` for every agent that traded."""
    n, nb = len(values), config.buyers
    buyer = [i < nb for i in range(n)]
    allocation = [(1.0 if buyer[i] else -1.0) if i in prices else 0.0 for i in range(n)]
    payments = [prices[i] if i in prices and buyer[i] else 0.0 for i in range(n)]
    receipts = [prices[i] if i in prices and not buyer[i] else 0.0 for i in range(n)]
    gains = [values[i] * allocation[i] for i in range(n)]
    vs = sorted(values[:nb], reverse=True)
    cs = sorted(values[nb:])
    best = sum(max(v - c, 0.0) for v, c in zip(vs, cs, strict=False))
    return scalar_outcome(gains, allocation, payments, receipts, valid, valid, max_welfare=best)
