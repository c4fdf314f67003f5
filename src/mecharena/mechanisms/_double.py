"""Shared rules of the two-sided auctions (McAfee, k-double auction, continuous double auction).

Agents ``0 .. buyers - 1`` buy one unit each (value, bid); the rest sell one unit each
(cost, ask). Values of sellers are their costs. A bid or ask that is not finite and >= 0 is
invalid and abstains. Buyers are ranked by (bid, priority) from the highest, sellers by
(ask from the lowest, then priority). ``q``, the number of crossing pairs, is the largest j
with the j-th highest bid >= the j-th lowest ask.
"""

from dataclasses import dataclass
from typing import Any

import numba
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


#: Up to this many orders a side, the compiled book ranks by insertion sort (no allocation); above,
#: by two stable merge sorts.
INSERTION = 32


@numba.njit(cache=True, nogil=True)
def _rank(keys: FloatArray, tiebreak: FloatArray, order: IntArray) -> None:
    """``order`` = the indices of ``keys`` from the highest, ties to the higher ``tiebreak``, then
    to the lower index (what ``np.lexsort((-tiebreak, -keys))`` gives)."""
    n = keys.size
    if n > INSERTION:
        first = np.argsort(-tiebreak, kind="mergesort")
        second = np.argsort(-keys[first], kind="mergesort")
        for j in range(n):
            order[j] = first[second[j]]
        return
    for i in range(n):
        j = i
        while j > 0 and (keys[order[j - 1]] < keys[i] or
                         (keys[order[j - 1]] == keys[i] and tiebreak[order[j - 1]] < tiebreak[i])):
            order[j] = order[j - 1]
            j -= 1
        order[j] = i


@numba.njit(cache=True, nogil=True)
def _sort_book(bids: FloatArray, priority: FloatArray, nb: int, buy_order: IntArray, sell_order: IntArray,
               sorted_bids: FloatArray, sorted_asks: FloatArray, q: IntArray, valid: BoolArray) -> None:
    """One pass per market: validity, both sides ranked, sorted prices and the crossing pairs (outputs filled)."""
    n_markets, n = bids.shape
    ns = n - nb
    buy_keys = np.empty(nb)
    sell_keys = np.empty(ns)  # minus the ask: the best ask ranks highest
    for m in range(n_markets):
        for i in range(n):
            x = bids[m, i]
            valid[m, i] = (x >= 0.0) & (x < np.inf)  # NaN fails both
        for i in range(nb):
            buy_keys[i] = bids[m, i] if valid[m, i] else -np.inf
        for i in range(ns):
            sell_keys[i] = -bids[m, nb + i] if valid[m, nb + i] else -np.inf
        _rank(buy_keys, priority[m, :nb], buy_order[m])
        _rank(sell_keys, priority[m, nb:], sell_order[m])
        for j in range(nb):
            sorted_bids[m, j] = buy_keys[buy_order[m, j]]
        for j in range(ns):
            sorted_asks[m, j] = -sell_keys[sell_order[m, j]]
        crossing = 0
        for j in range(min(nb, ns)):
            crossing += sorted_bids[m, j] >= sorted_asks[m, j]
        q[m] = crossing


def sort_book(config: DoubleAuctionConfig, bids: FloatArray, priority: FloatArray) -> Book:
    nb = config.buyers
    n_markets, n = bids.shape
    book = Book(np.empty((n_markets, nb), np.int64), np.empty((n_markets, n - nb), np.int64),
                np.empty((n_markets, nb)), np.empty((n_markets, n - nb)), np.empty(n_markets, np.int64),
                np.empty((n_markets, n), np.bool_))
    _sort_book(np.ascontiguousarray(bids, dtype=np.float64), np.ascontiguousarray(priority, dtype=np.float64), nb,
               book.buy_order, book.sell_order, book.bids, book.asks, book.q, book.valid)
    return book


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


@numba.njit(cache=True, nogil=True)
def _settle_sorted(values: FloatArray, buy_order: IntArray, sell_order: IntArray, trades: IntArray,
                   buyer_price: FloatArray, seller_price: FloatArray, nb: int, money: FloatArray) -> None:
    """Fill ``money`` (4, B, N): allocation, payments, receipts and value gains of the ``trades`` best pairs."""
    for m in range(values.shape[0]):
        for j in range(trades[m]):
            buyer = buy_order[m, j]
            seller = nb + sell_order[m, j]
            money[0, m, buyer] = 1.0
            money[1, m, buyer] = buyer_price[m]
            money[3, m, buyer] = values[m, buyer]
            money[0, m, seller] = -1.0
            money[2, m, seller] = seller_price[m]
            money[3, m, seller] = -values[m, seller]


def settle_sorted(config: DoubleAuctionConfig, values: FloatArray, book: Book, trades: IntArray,
                  buyer_price: FloatArray, seller_price: FloatArray) -> Outcome:
    """Outcome where the ``trades`` best buyers and sellers of each market trade at uniform prices (B,)."""
    money = np.zeros((4,) + values.shape)
    _settle_sorted(np.ascontiguousarray(values, dtype=np.float64), book.buy_order, book.sell_order,
                   np.ascontiguousarray(trades, dtype=np.int64), np.ascontiguousarray(buyer_price, dtype=np.float64),
                   np.ascontiguousarray(seller_price, dtype=np.float64), config.buyers, money)
    allocation, payments, receipts, gains = money
    return finish(allocation, payments, receipts, gains, book.valid, book.valid,
                  max_welfare=max_gains_from_trade(config, values))


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
