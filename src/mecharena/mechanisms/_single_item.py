"""Shared rules of the single-item sealed-bid auctions (first and second price).

Only bids that are valid, positive and at least the reserve take part; a bid of 0 abstains.
Every participant pays the entry fee. The highest participating bid wins, ties going to the
higher priority. The compiled kernel makes one pass per market (it is the hottest path of the
arena: see ``mecharena bench engine``); the scalar reference sorts in plain Python.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import numba
import numpy as np
from pydantic import Field

from mecharena.core.types import BoolArray, FloatArray
from mecharena.mechanisms.base import (SMALLEST_BID, Mechanism, MechanismConfig, Outcome, is_valid_number,
                                       scalar_outcome)


class SealedBidConfig(MechanismConfig):
    """Config of a single-item sealed-bid auction."""

    reserve_price: float = Field(0.0, ge=0, description="lowest bid that can win")
    reserve_visibility: Literal["public", "secret"] = Field(
        "public", description="whether bidders are told the reserve (secret: they plan with 0)"
    )
    entry_fee: float = Field(0.0, ge=0, description="paid by every bidder who submits a bid > 0")


@numba.njit(cache=True, nogil=True)
def _kernel(
    values: FloatArray,  # (B, N)
    bids: FloatArray,  # (B, N)
    priority: FloatArray,  # (B, N)
    reserve: float,
    fee: float,
    second_price: bool,
    money: FloatArray,  # (3, B, N) out: payments, utility, allocation
    flags: BoolArray,  # (2, B, N) out: valid, participated
    totals: FloatArray,  # (3, B) out: revenue, welfare, max_welfare
) -> None:
    n_markets, n_agents = bids.shape
    lowest = max(reserve, SMALLEST_BID)  # a participating bid is > 0, >= reserve and finite (NaN fails)
    for m in range(n_markets):
        # Branchless running top two and best value: selects, not if/elif (several times
        # faster); the winner is found in a second branchless pass, which keeps both loops cheap.
        top = -np.inf
        second = -np.inf
        best_value = 0.0
        for i in range(n_agents):
            x = bids[m, i]
            y = x if (x >= lowest) & (x < np.inf) else -np.inf
            second = max(second, min(top, y))
            top = max(top, y)
            best_value = max(best_value, values[m, i])
        winner = -1
        for i in range(n_agents - 1, -1, -1):
            winner = i if (bids[m, i] == top) & (top > -np.inf) else winner
        if second == top and top > -np.inf:  # a tie for the highest bid: highest priority wins
            best = -1.0
            for i in range(n_agents):
                if bids[m, i] == top and priority[m, i] > best:
                    best = priority[m, i]
                    winner = i
        entrants = 0
        for i in range(n_agents):
            x = bids[m, i]
            enters = (x >= lowest) & (x < np.inf)
            flags[0, m, i] = (x >= 0.0) & (x < np.inf)
            flags[1, m, i] = enters
            entrants += enters
            charge = fee if enters else 0.0
            money[0, m, i] = charge
            money[1, m, i] = -charge
            money[2, m, i] = 0.0
        price = max(second, reserve) if second_price else top
        totals[0, m] = fee * entrants
        totals[1, m] = 0.0
        totals[2, m] = best_value
        if winner >= 0:
            money[0, m, winner] += price
            money[1, m, winner] += values[m, winner] - price
            money[2, m, winner] = 1.0
            totals[0, m] += price
            totals[1, m] = values[m, winner]


def kernel(config: SealedBidConfig, values: FloatArray, bids: FloatArray, priority: FloatArray,
           times: None = None, *, second_price: bool) -> Outcome:
    """Batched clearing of B single-item auctions; arrays (B, N)."""
    # One block per dtype: a few large allocations are reused by the allocator without page faults.
    money = np.empty((3, *bids.shape))
    flags = np.empty((2, *bids.shape), dtype=np.bool_)
    totals = np.empty((3, bids.shape[0]))
    _kernel(np.ascontiguousarray(values), np.ascontiguousarray(bids), np.ascontiguousarray(priority),
            config.reserve_price, config.entry_fee, second_price, money, flags, totals)
    return Outcome(allocation=money[2], payments=money[0], receipts=np.broadcast_to(0.0, bids.shape),
                   utility=money[1], valid=flags[0], participated=flags[1],
                   revenue=totals[0], welfare=totals[1], max_welfare=totals[2])


def reference(config: SealedBidConfig, values: list[float], bids: list[float],
              priority: list[float], times: None = None, *, second_price: bool) -> dict[str, Any]:
    """One market in plain Python: sort participants by (bid, priority), highest first."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = [i for i in range(n) if valid[i] and bids[i] > 0 and bids[i] >= config.reserve_price]
    ranked = sorted(entrants, key=lambda i: (bids[i], priority[i]), reverse=True)
    payments = [config.entry_fee if i in entrants else 0.0 for i in range(n)]
    allocation, gains = [0.0] * n, [0.0] * n
    if ranked:
        winner = ranked[0]
        others = [bids[i] for i in ranked[1:]]
        price = max([config.reserve_price, *others]) if second_price else bids[winner]
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] += price
    participated = [i in entrants for i in range(n)]
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, participated,
                          max_welfare=max([0.0, *values]))


EXAMPLES = ({}, {"reserve_price": 0.3}, {"reserve_price": 0.5, "reserve_visibility": "secret"}, {"entry_fee": 0.05},
            {"reserve_price": 0.2, "entry_fee": 0.1})


def mechanism(name: str, version: int, summary: str, second_price: bool,
              properties: Callable[[SealedBidConfig], frozenset[str]], doc: str | None) -> Mechanism:
    """The registry record of a single-item auction with the given pricing rule."""
    return Mechanism(
        name=name, version=version, summary=summary, config_model=SealedBidConfig,
        kernel=partial(kernel, second_price=second_price), reference=partial(reference, second_price=second_price),
        properties=properties, examples=EXAMPLES, merges_identities=True, doc=doc or "",
    )
