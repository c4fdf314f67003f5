"""Position auction (sponsored-search ads): generalized second price (GSP) or VCG per click.

Rule: ``slots`` = K positions with click-through rates ``alpha_k = ctr_decay^(k-1)`` (position 1
is clicked most). Every bid >= reserve (and > 0) takes part; bids are per click; the k-th highest
bid gets position k (ties: seeded priority), so ``allocation`` is its expected clicks alpha_k, and
a bidder's value gain is ``alpha_k v`` (v: its value per click). Payments per position, with
``b_(j)`` the j-th highest participating bid (0 where there is none) and r the reserve:

* ``gsp``: position k pays ``alpha_k max(b_(k+1), r)`` (the next bid per click);
* ``vcg``: position k pays its externality, ``sum_{j >= k} (alpha'_j - alpha'_(j+1)) max(b_(j+1), r)``,
  alpha'_j being alpha_j where position j is filled and 0 where it is not.

With one slot both are the second-price auction.

Known results (Edelman, Ostrovsky and Schwarz 2007, *AER* 97(1); Varian 2007, *IJIO* 25(6)):

* VCG is truthful (truthful bidding weakly dominant), efficient and IR;
* GSP is not truthful; truthful bidding in GSP pays at least VCG, position by position;
* under complete information GSP has a locally envy-free equilibrium whose positions and
  payments are VCG's: ranked by value, the bidder in position k >= 2 bids
  ``b_k = (1/alpha_(k-1)) sum_{j >= k-1} (alpha_j - alpha_(j+1)) v'_(j+1)`` with v' = max(v, r)
  (the top bidder bids its value; those below position K + 1 bid their values; those with
  values below r stay out). The ``envy_free`` agent type plays it; its revenue equals VCG's with
  truthful bidders, market by market. It is an equilibrium: no unilateral deviation pays;
* repeated, with bidders who keep their values and see last round's bids, greedy balanced bidding
  (the ``balanced`` agent; Cary et al. 2007, *EC*) converges to that equilibrium: VCG's revenue.
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.mechanisms.base import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome

VERSION = 1
MAX_SLOTS = 16


class PositionConfig(MechanismConfig):
    """Config of a position auction."""

    slots: int = Field(3, ge=1, le=MAX_SLOTS, description="positions K on the page")
    ctr_decay: float = Field(0.6, gt=0, le=1, description="click-through rate of position k is ctr_decay^(k-1)")
    pricing: Literal["gsp", "vcg"] = Field("gsp", description="generalized second price, or VCG (externality)")
    reserve_price: float = Field(0.0, ge=0, description="lowest bid per click that takes part")


def ctrs(config: PositionConfig, n: int) -> np.ndarray:
    """(n,) click-through rate of each rank: alpha_k for k <= K, 0 below."""
    alpha = np.zeros(n)
    k = min(config.slots, n)
    alpha[:k] = config.ctr_decay ** np.arange(k)
    return alpha


def properties(config: PositionConfig) -> frozenset[str]:
    props = {"ir", "payments_le_bids", "weak_budget_balance"} | ({"truthful"} if config.pricing == "vcg" else set())
    return frozenset(props | ({"efficient"} if config.reserve_price == 0 else set()))


def _per_click(config: PositionConfig, below: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Payment per position (same shape as ``alpha``, positions on the last axis) given the next bid below each
    position ``below`` (0 where none) and the filled positions' rates ``alpha``."""
    floor = np.maximum(below, config.reserve_price)
    if config.pricing == "gsp":
        return alpha * floor
    after = np.concatenate([alpha[..., 1:], np.zeros(alpha.shape[:-1] + (1,))], axis=-1)
    terms = (alpha - after) * floor
    return np.where(alpha > 0, np.cumsum(terms[..., ::-1], axis=-1)[..., ::-1], 0.0)


def kernel(config: PositionConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    b, n = bids.shape
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        part = valid & (bids > 0) & (bids >= config.reserve_price)
    key = np.where(part, bids, -np.inf)
    order = np.lexsort((-priority, -key), axis=1)  # best first
    ranked = np.take_along_axis(key, order, axis=1)
    filled = ranked > -np.inf
    alpha = np.where(filled, ctrs(config, n)[None, :], 0.0)
    below = np.concatenate([np.where(filled[:, 1:], ranked[:, 1:], 0.0), np.zeros((b, 1))], axis=1)
    rows = np.arange(b)[:, None]
    allocation, payments = np.empty((b, n)), np.empty((b, n))
    allocation[rows, order] = alpha
    payments[rows, order] = _per_click(config, below, alpha)
    max_welfare = (-np.sort(-values, axis=1) * ctrs(config, n)[None, :]).sum(axis=1)
    return finish(allocation, payments, np.zeros((b, n)), values * allocation, valid, part, max_welfare)


def reference(config: PositionConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python: sort the participants, price each position."""
    n = len(bids)
    valid = [is_valid_number(x) for x in bids]
    part = [valid[i] and bids[i] > 0 and bids[i] >= config.reserve_price for i in range(n)]
    ranked = sorted((i for i in range(n) if part[i]), key=lambda i: (-bids[i], -priority[i]))
    rate = [config.ctr_decay ** k if k < config.slots else 0.0 for k in range(len(ranked))] + [0.0]
    allocation, payments = [0.0] * n, [0.0] * n
    for k, i in enumerate(ranked):
        if rate[k] == 0:
            break
        allocation[i] = rate[k]

        def floor(j: int) -> float:
            return max(bids[ranked[j + 1]] if j + 1 < len(ranked) else 0.0, config.reserve_price)
        if config.pricing == "gsp":
            payments[i] = rate[k] * floor(k)
        else:
            payments[i] = sum((rate[j] - rate[j + 1]) * floor(j) for j in range(k, len(ranked)) if rate[j] > 0)
    alpha = [config.ctr_decay ** k if k < config.slots else 0.0 for k in range(n)]
    best = sum(a * v for a, v in zip(alpha, sorted(values, reverse=True), strict=True))
    gains = [v * a for v, a in zip(values, allocation, strict=True)]
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, part, max_welfare=best)


def envy_free_bids(config: PositionConfig, values: Any) -> np.ndarray:
    """(B, N) bids of the locally envy-free equilibrium of GSP with VCG's payments (see the module docstring),
    for markets whose values (B, N) all bidders know."""
    values = np.asarray(values, dtype=float)
    b, n = values.shape
    order = np.argsort(-values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    inside = v >= config.reserve_price
    alpha = np.where(inside, ctrs(config, n)[None, :], 0.0)
    below = np.concatenate([np.where(inside[:, 1:], v[:, 1:], 0.0), np.zeros((b, 1))], axis=1)
    # the VCG payment of each position, with the bidders' values in place of bids
    vcg = _per_click(config.model_copy(update={"pricing": "vcg"}), below, alpha)
    ranked_bids = v.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        bid_for_position_above = np.where(alpha[:, :-1] > 0, vcg[:, :-1] / alpha[:, :-1], v[:, 1:])
    ranked_bids[:, 1:] = bid_for_position_above  # rank k >= 2 bids the per-click VCG price of position k - 1
    ranked_bids = np.where(inside, np.minimum(ranked_bids, v), 0.0)
    bids = np.empty_like(ranked_bids)
    np.put_along_axis(bids, order, ranked_bids, axis=1)
    return bids


MECHANISM = Mechanism(
    name="position", version=VERSION, summary="ad positions: GSP (next bid per click) or VCG (externality)",
    config_model=PositionConfig, kernel=kernel, reference=reference, properties=properties,
    examples=({}, {"pricing": "vcg"}, {"slots": 1}, {"slots": 2, "pricing": "vcg", "reserve_price": 0.2},
              {"slots": 5, "ctr_decay": 0.9, "reserve_price": 0.1}),
    doc=__doc__,
)
