"""Shared rules of the multi-unit auctions (uniform price, pay-as-bid, VCG).

``units`` identical items are sold. With ``demand = 1`` (unit demand) values and bids are
(B, N); with ``demand = K > 1`` each agent has K non-increasing marginal values and bids
(B, N, K). A bid vector that is not finite, non-negative and non-increasing is invalid and
abstains. Marginal bids that are positive and >= the reserve are ranked by (bid, agent
priority, lower slot first); the ``units`` highest win. Because an agent's marginal bids are
non-increasing, the units it wins are always its first ones.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.core.types import BoolArray, FloatArray
from mecharena.mechanisms.base import MarketSpec, MechanismConfig, finish, is_valid_number, scalar_outcome


class MultiUnitConfig(MechanismConfig):
    """Config of a multi-unit auction."""

    units: int = Field(1, ge=1, le=100_000, description="identical units for sale (k)")
    demand: int = Field(1, ge=1, le=64, description="units one agent may want (1: unit demand)")
    reserve_price: float = Field(0.0, ge=0, description="lowest marginal bid that can win a unit")


def market_spec(config: MultiUnitConfig, n_agents: int) -> MarketSpec:
    rule = "each bid must be finite and >= 0"
    if config.demand > 1:
        rule = f"each agent's {config.demand} marginal bids must be finite, >= 0 and non-increasing"
    return MarketSpec(units_per_agent=config.demand if config.demand > 1 else 0, action_rule=rule)


@dataclass(frozen=True, slots=True)
class Ranking:
    """The winners of a multi-unit auction and the sorted bid book."""

    values: FloatArray  # (B, N, K)
    bids: FloatArray  # (B, N, K)  ineligible marginal bids set to -inf
    won: BoolArray  # (B, N, K)
    units_won: FloatArray  # (B, N)
    valid: BoolArray  # (B, N)
    participated: BoolArray  # (B, N)
    book: FloatArray  # (B, N*K)  eligible marginal bids, highest first, -inf padded


def rank(config: MultiUnitConfig, values: FloatArray, bids: FloatArray, priority: FloatArray) -> Ranking:
    """Rank every marginal bid of B markets and pick the ``units`` highest."""
    v3 = values if values.ndim == 3 else values[:, :, None]
    b3 = bids if bids.ndim == 3 else bids[:, :, None]
    n_markets, n_agents, k = b3.shape
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(b3) & (b3 >= 0)).all(axis=2) & (np.diff(b3, axis=2) <= 0).all(axis=2)
        eligible = valid[:, :, None] & (b3 > 0) & (b3 >= config.reserve_price)
    flat = np.where(eligible, b3, -np.inf).reshape(n_markets, n_agents * k)
    slot = np.broadcast_to(np.tile(np.arange(k), n_agents), flat.shape)
    # lexsort: last key is primary. Highest bid, then highest priority, then lowest slot.
    order = np.lexsort((slot, -np.repeat(priority, k, axis=1), -flat), axis=-1)
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(flat.shape[1])[None, :].repeat(n_markets, 0), axis=1)
    won = ((position < config.units) & (flat > -np.inf)).reshape(b3.shape)
    return Ranking(values=v3, bids=flat.reshape(b3.shape), won=won, units_won=won.sum(axis=2).astype(float),
                   valid=valid, participated=eligible.any(axis=2), book=np.take_along_axis(flat, order, axis=1))


def finish_ranking(config: MultiUnitConfig, ranking: Ranking, payments: FloatArray):
    """Outcome from a ranking and per-agent payments (B, N)."""
    top_values = -np.sort(-ranking.values.reshape(ranking.values.shape[0], -1), axis=1)[:, : config.units]
    gains = (ranking.values * ranking.won).sum(axis=2)
    return finish(ranking.units_won, payments, np.zeros_like(payments), gains, ranking.valid,
                  ranking.participated, max_welfare=np.maximum(top_values, 0).sum(axis=1))


# ---- scalar reference helpers (plain Python, one market) ----


def as_lists(values: Any, bids: Any) -> tuple[list[list[float]], list[list[float]]]:
    """Per-agent lists of marginal values and bids (unit demand becomes length-1 lists)."""
    if values and not isinstance(values[0], list):
        return [[v] for v in values], [[b] for b in bids]
    return values, bids


def reference_rank(config: MultiUnitConfig, values: Any, bids: Any, priority: list[float]):
    """Validity, eligible (bid, agent) entries in winning order, and units won per agent."""
    vals, bs = as_lists(values, bids)
    valid = [all(is_valid_number(x) for x in b) and all(b[j] >= b[j + 1] for j in range(len(b) - 1))
             for b in bs]
    entries = [(x, priority[i], -j, i) for i, b in enumerate(bs) if valid[i]
               for j, x in enumerate(b) if x > 0 and x >= config.reserve_price]
    entries.sort(reverse=True)
    won = [0] * len(bs)
    for _, _, _, i in entries[: config.units]:
        won[i] += 1
    participated = [any(e[3] == i for e in entries) for i in range(len(bs))]
    return vals, bs, valid, entries, won, participated


def reference_finish(config: MultiUnitConfig, vals, won, payments, valid, participated) -> dict[str, Any]:
    gains = [sum(v[: q]) for v, q in zip(vals, won, strict=True)]
    every = sorted((x for v in vals for x in v), reverse=True)[: config.units]
    return scalar_outcome(gains, [float(q) for q in won], payments, [0.0] * len(vals), valid,
                          participated, max_welfare=sum(max(x, 0.0) for x in every))
