"""Posted price: a take-it-or-leave-it price for a fixed number of units.

Rule: a bid >= price (and > 0) accepts; accepting agents are served in random arrival order
(their priority, highest first) until ``units`` are sold. Each buyer served pays the price.

Known results (values i.i.d. U[0, 1], n buyers, one unit; e.g. Hartline, *Mechanism Design and
Approximation*, ch. 4): accepting exactly when value >= price is dominant, so truthful takers
are optimal, and expected revenue is ``p (1 - p^n)``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms.base import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome

VERSION = 1


class PostedPriceConfig(MechanismConfig):
    price: float = Field(0.5, ge=0, description="take-it-or-leave-it price per unit")
    units: int = Field(1, ge=1, le=100_000, description="units for sale")


def properties(config: PostedPriceConfig) -> frozenset[str]:
    return frozenset({"truthful", "ir", "payments_le_bids"})


def kernel(config: PostedPriceConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        accept = valid & (bids > 0) & (bids >= config.price)
    queue = np.argsort(-np.where(accept, priority, -1.0), axis=1, kind="stable")
    position = np.empty_like(queue)
    np.put_along_axis(position, queue, np.arange(bids.shape[1])[None, :].repeat(bids.shape[0], 0), axis=1)
    served = accept & (position < config.units)
    top = -np.sort(-values, axis=1)[:, : config.units]
    return finish(served.astype(float), served * config.price, np.zeros(bids.shape), np.where(served, values, 0.0),
                  valid, accept, max_welfare=np.maximum(top, 0).sum(axis=1))


def reference(config: PostedPriceConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    accept = [valid[i] and bids[i] > 0 and bids[i] >= config.price for i in range(n)]
    queue = sorted((i for i in range(n) if accept[i]), key=lambda i: -priority[i])[: config.units]
    served = [i in queue for i in range(n)]
    best = sum(max(v, 0.0) for v in sorted(values, reverse=True)[: config.units])
    return scalar_outcome([values[i] if served[i] else 0.0 for i in range(n)], [float(s) for s in served],
                          [config.price if s else 0.0 for s in served], [0.0] * n, valid, accept, best)


MECHANISM = Mechanism(
    name="posted_price", version=VERSION, summary="take-it-or-leave-it price; acceptors served in arrival order",
    config_model=PostedPriceConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True,
    examples=({}, {"price": 0.3, "units": 2}, {"price": 0.8, "units": 3}),
    doc=__doc__,
)
