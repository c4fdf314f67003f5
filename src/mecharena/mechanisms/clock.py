"""Clock auctions of one item: English (ascending) and Dutch (descending).

**English.** The clock starts at the reserve r and rises by ``increment`` (0: continuously); at
each level a bidder stays in or drops out for good. A bidder's action is its drop price: it is
active at every level <= it, so it drops at the first level above it (a drop price below r never
enters). With ``dropouts="visible"`` every bidder sees how many rivals have dropped, and its
action is a plan of N - 1 drop prices, ``bids[..., j]`` being its drop price once j rivals are
out (an order per count, ``MarketSpec.orders_per_agent = N - 1``); a rival dropping can make a
bidder drop at the same level. When one bidder is left it wins at the current level. When
everyone left drops at the same level, the item goes to one of them (seeded priority) at the
level before (the last at which they were all in); continuously, at their common drop price.

**Dutch.** The clock starts at ``start_price`` and falls by ``increment`` (0: continuously) down
to the reserve. A bidder's action is its stop price: it takes the item at the first level at or
below it. The highest stop price wins (ties within a level: priority) and pays that level,
``max(start - increment * ceil((start - s) / increment), r)`` (s itself continuously, capped at
the start price). Nobody learns anything before the clock stops, so there is nothing to observe.

Known results (private values; Vickrey 1961; Krishna, *Auction Theory*, 2nd ed., ch. 2):

* the English auction is strategically equivalent to second price: dropping out at one's value
  is weakly dominant, whatever the drop-outs reveal; continuously, with truthful bidders, its
  outcome is second price's market by market, and with an increment the price is within one
  increment of it (above, or below when the last two drop at the same level);
* the Dutch auction is strategically equivalent to first price: continuously its outcome is
  first price's for the same bids, so the symmetric equilibrium (``bne``) and revenue
  equivalence carry over: expected revenue (n - 1)/(n + 1) with uniform values and r = 0;
* with an increment both depart from the limit by at most one increment per sale.
"""

from typing import Any, Literal

import numba
import numpy as np
from pydantic import Field, model_validator

from mecharena.core.types import BoolArray, FloatArray
from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome

VERSION = 1


class EnglishConfig(MechanismConfig):
    """Config of an ascending clock auction."""

    reserve_price: float = Field(0.0, ge=0, description="the clock's first level: the lowest price")
    increment: float = Field(0.0, ge=0, description="how far the clock rises per step (0: continuously)")
    dropouts: Literal["hidden", "visible"] = Field(
        "hidden", description="whether bidders see how many rivals dropped (visible: a drop price per count)")


class DutchConfig(MechanismConfig):
    """Config of a descending clock auction."""

    start_price: float = Field(1.0, gt=0, description="the clock's first level: the highest price")
    reserve_price: float = Field(0.0, ge=0, description="the clock stops here: the lowest price")
    increment: float = Field(0.0, ge=0, description="how far the clock falls per step (0: continuously)")

    @model_validator(mode="after")
    def _reserve_below_start(self) -> "DutchConfig":
        if self.reserve_price > self.start_price:
            raise ValueError(f"reserve_price ({self.reserve_price}) must not exceed start_price ({self.start_price})")
        return self


# --- English -------------------------------------------------------------------------------------

def english_spec(config: EnglishConfig, n_agents: int) -> MarketSpec:
    orders = max(n_agents - 1, 1) if config.dropouts == "visible" else 0
    return MarketSpec(orders_per_agent=orders, action_rule="each drop price must be finite and >= 0")


def _exit_point(x: float, reserve: float, increment: float) -> float:
    """The clock position at which a bidder with drop price ``x`` is out: the index t of the first level
    ``reserve + t * increment`` above x (levels computed exactly so, whatever the rounding of the division),
    or x itself (continuously). Comparable across bidders: smaller drops earlier."""
    if increment <= 0:
        return x
    t = np.floor((x - reserve) / increment) + 1.0
    while t > 0 and reserve + (t - 1.0) * increment > x:
        t -= 1.0
    while reserve + t * increment <= x:
        t += 1.0
    return t


_exit = numba.njit(cache=True)(_exit_point)


@numba.njit(cache=True, nogil=True)
def _english(plans: FloatArray, priority: FloatArray, reserve: float, increment: float,
             won: FloatArray, paid: FloatArray, entered: BoolArray) -> None:
    """Run the clock of every market; ``plans`` (B, N, P) drop prices per count of rivals out."""
    n_markets, n, p = plans.shape
    active = np.zeros(n, dtype=np.bool_)
    for m in range(n_markets):
        left = 0
        for i in range(n):
            x = plans[m, i, 0]
            active[i] = (x >= reserve) & (x > 0) & (x < np.inf)
            entered[m, i] = active[i]
            left += active[i]
        out = 0
        position = 0.0 if increment > 0 else reserve  # the clock's position (level index, or price)
        while left > 1:
            lowest = np.inf  # the next exit point among those still in
            for i in range(n):
                if active[i]:
                    lowest = min(lowest, _exit(plans[m, i, min(out, p - 1)], reserve, increment))
            # everyone whose exit point is reached drops now, and rivals dropping may bring others' plans down to it
            dropping = np.zeros(n, dtype=np.bool_)
            changed = True
            count = out
            while changed:
                changed = False
                for i in range(n):
                    if active[i] and not dropping[i] and _exit(plans[m, i, min(count, p - 1)], reserve,
                                                                increment) <= lowest:
                        dropping[i] = True
                        changed = True
                count = out + dropping.sum()
            if dropping.sum() == left:  # everyone left drops at once: one of them gets the item
                best = -1
                for i in range(n):
                    if dropping[i] and (best < 0 or priority[m, i] > priority[m, best]):
                        best = i
                for i in range(n):
                    active[i] = i == best
                position = lowest - 1.0 if increment > 0 else lowest
                left = 1
                break
            for i in range(n):
                if dropping[i]:
                    active[i] = False
            left -= dropping.sum()
            out = count
            position = lowest
        for i in range(n):
            if active[i]:
                won[m, i] = 1.0
                paid[m, i] = reserve + position * increment if increment > 0 else max(position, reserve)


def _plans(bids: FloatArray) -> FloatArray:
    return bids if bids.ndim == 3 else bids[:, :, None]


def english_kernel(config: EnglishConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    plans = np.ascontiguousarray(_plans(bids))
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(plans) & (plans >= 0)).all(axis=2)
    b, n = values.shape
    won, paid, entered = np.zeros((b, n)), np.zeros((b, n)), np.zeros((b, n), dtype=bool)
    _english(np.where(valid[:, :, None], plans, 0.0), np.ascontiguousarray(priority), config.reserve_price,
             config.increment, won, paid, entered)
    return finish(won, paid, np.zeros((b, n)), values * won, valid, entered & valid, values.max(axis=1).clip(0))


def english_reference(config: EnglishConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python. With an increment the clock is run level by level (a different algorithm
    from the kernel's event loop); continuously, drop-out events are taken in order."""
    n, r, inc = len(values), config.reserve_price, config.increment
    plans = [b if isinstance(b, list) else [b] for b in bids]
    valid = [all(is_valid_number(x) for x in plan) for plan in plans]
    plans = [plan if ok else [0.0] * len(plan) for plan, ok in zip(plans, valid, strict=True)]
    active = {i for i in range(n) if plans[i][0] >= r and plans[i][0] > 0}
    entered = [i in active for i in range(n)]

    def plan(i: int, out: int) -> float:
        return plans[i][min(out, len(plans[i]) - 1)]

    out, winner, price = 0, None, r
    if inc > 0:
        level = 0
        while len(active) > 1:
            level += 1
            price_here = r + level * inc
            dropping: set[int] = set()
            while True:  # drops at this level, with plans updated as rivals drop
                more = {i for i in active - dropping if plan(i, out + len(dropping)) < price_here}
                if not more:
                    break
                dropping |= more
            if dropping == active:
                winner, price = max(active, key=lambda i: priority[i]), r + (level - 1) * inc
                active = {winner}
                break
            active -= dropping
            out += len(dropping)
            price = price_here
    else:
        while len(active) > 1:
            lowest = min(plan(i, out) for i in active)
            dropping = set()
            while True:
                more = {i for i in active - dropping if plan(i, out + len(dropping)) <= lowest}
                if not more:
                    break
                dropping |= more
            price = max(lowest, r)
            if dropping == active:
                active = {max(active, key=lambda i: priority[i])}
                break
            active -= dropping
            out += len(dropping)
    won = [1.0 if i in active else 0.0 for i in range(n)]
    paid = [price * w for w in won]
    return scalar_outcome([v * w for v, w in zip(values, won, strict=True)], won, paid, [0.0] * n, valid,
                          [e and ok for e, ok in zip(entered, valid, strict=True)], max_welfare=max(max(values), 0.0))


def english_properties(config: EnglishConfig) -> frozenset[str]:
    props = {"ir", "payments_le_bids", "weak_budget_balance"}
    if config.increment == 0:
        props |= {"truthful"} | ({"efficient"} if config.reserve_price == 0 else set())
    return frozenset(props)


def english_truthful(config: EnglishConfig, values: FloatArray, spec: MarketSpec) -> FloatArray:
    """Drop out at one's value, whatever the count of rivals out."""
    return np.repeat(values[:, :, None], spec.orders_per_agent, axis=2) if spec.orders_per_agent else values.copy()


# --- Dutch ---------------------------------------------------------------------------------------

def stop_level(config: DutchConfig, stops: Any) -> Any:
    """The price at which a bidder with stop price ``stops`` takes the item (any shape): the first level at or
    below its stop price, never above the start or below the reserve."""
    start, inc = config.start_price, config.increment
    s = np.minimum(np.asarray(stops, dtype=float), start)
    if inc > 0:  # the step t of the first level start - t * inc <= s, levels computed exactly so
        t = np.ceil((start - s) / inc)
        t = np.where((t > 0) & (start - (t - 1) * inc <= s), t - 1, t)
        t = np.where(start - t * inc > s, t + 1, t)
        s = start - t * inc
    return np.maximum(s, config.reserve_price)


def dutch_kernel(config: DutchConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    b, n = bids.shape
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        part = valid & (bids > 0) & (bids >= config.reserve_price)
    level = np.where(part, stop_level(config, np.where(part, bids, 0.0)), -np.inf)
    top = level.max(axis=1)
    winner = np.where(level == top[:, None], priority, -np.inf).argmax(axis=1)
    sold = top > -np.inf
    rows = np.arange(b)[sold]
    won, paid = np.zeros((b, n)), np.zeros((b, n))
    won[rows, winner[sold]] = 1.0
    paid[rows, winner[sold]] = top[sold]
    return finish(won, paid, np.zeros((b, n)), values * won, valid, part, values.max(axis=1).clip(0))


def dutch_reference(config: DutchConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python: the clock falls level by level (continuously: the highest stop price)."""
    n, start, r, inc = len(values), config.start_price, config.reserve_price, config.increment
    valid = [is_valid_number(x) for x in bids]
    part = [valid[i] and bids[i] > 0 and bids[i] >= r for i in range(n)]
    won, paid = [0.0] * n, [0.0] * n
    takers = [i for i in range(n) if part[i]]
    if takers:
        if inc > 0:
            levels, t = [], 0
            while start - t * inc > r:
                levels.append(start - t * inc)
                t += 1
            price = next(level for level in [*levels, r] if any(bids[i] >= level for i in takers))
            takers = [i for i in takers if bids[i] >= price]
        else:
            price = max(min(max(bids[i] for i in takers), start), r)
            takers = [i for i in takers if min(bids[i], start) >= price]
        winner = max(takers, key=lambda i: (min(bids[i], start) if inc == 0 else 0.0, priority[i]))
        won[winner], paid[winner] = 1.0, price
    return scalar_outcome([v * w for v, w in zip(values, won, strict=True)], won, paid, [0.0] * n, valid, part,
                          max_welfare=max(max(values), 0.0))


def dutch_properties(config: DutchConfig) -> frozenset[str]:
    return frozenset({"ir", "payments_le_bids", "weak_budget_balance"})


def dutch_spec(config: DutchConfig, n_agents: int) -> MarketSpec:
    return MarketSpec(action_rule="each stop price must be finite and >= 0")


ENGLISH = Mechanism(
    name="english", version=VERSION, summary="ascending clock: drop out at your price; the last one in wins",
    config_model=EnglishConfig, kernel=english_kernel, reference=english_reference, properties=english_properties,
    market_spec=english_spec, truthful=english_truthful, merges_identities=False,
    examples=({}, {"increment": 0.05}, {"reserve_price": 0.3, "increment": 0.1}, {"dropouts": "visible"},
              {"dropouts": "visible", "increment": 0.1, "reserve_price": 0.2}),
    doc=__doc__,
)
DUTCH = Mechanism(
    name="dutch", version=VERSION, summary="descending clock: the first to stop it wins at that price",
    config_model=DutchConfig, kernel=dutch_kernel, reference=dutch_reference, properties=dutch_properties,
    market_spec=dutch_spec,
    examples=({}, {"increment": 0.05}, {"reserve_price": 0.3, "increment": 0.1}, {"start_price": 0.8}),
    doc=__doc__,
)

