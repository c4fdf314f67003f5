"""Uniform-price multi-unit auction: every winning unit pays the same price.

Rule: the ``units`` = k highest eligible marginal bids win (see ``_multi_unit``). Pricing
``highest_losing`` charges max(reserve, (k+1)-th highest bid) per unit; ``lowest_winning``
charges the k-th highest bid (the lowest accepted one).

Known results (values i.i.d. U[0, 1], n bidders with unit demand; Krishna, *Auction Theory*,
2nd ed., ch. 12-13; Vickrey 1961):

* with the (k+1)-th price and unit demand, truthful bidding is weakly dominant and expected
  revenue at r = 0 is ``k (n - k) / (n + 1)`` (k times the (k+1)-th order statistic's mean);
* it then equals VCG;
* with multi-unit demand it is not truthful: bidders gain by demand reduction
  (Ausubel and Cramton 2002).
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.mechanisms import _multi_unit as mu
from mecharena.mechanisms.base import Mechanism

VERSION = 1


class UniformPriceConfig(mu.MultiUnitConfig):
    pricing: Literal["highest_losing", "lowest_winning"] = Field(
        "highest_losing", description="(k+1)-th price (highest rejected bid) or k-th price (lowest accepted)"
    )


def properties(config: UniformPriceConfig) -> frozenset[str]:
    props = {"ir", "payments_le_bids"}
    if config.pricing == "highest_losing" and config.demand == 1:
        props |= {"truthful"} | ({"efficient"} if config.reserve_price == 0 else set())
    return frozenset(props)


def kernel(config: UniformPriceConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    ranking = mu.rank(config, values, bids, priority)
    book, k = ranking.book, config.units
    sold = ranking.units_won.sum(axis=1)
    if config.pricing == "highest_losing":
        losing = book[:, k] if book.shape[1] > k else np.full(book.shape[0], -np.inf)
        price = np.maximum(losing, config.reserve_price)
    else:
        price = np.take_along_axis(book, np.maximum(sold - 1, 0).astype(int)[:, None], axis=1)[:, 0]
    return mu.finish_ranking(config, ranking, ranking.units_won * np.where(sold > 0, price, 0.0)[:, None])


def reference(config: UniformPriceConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    vals, _, valid, entries, won, participated = mu.reference_rank(config, values, bids, priority)
    accepted = [e[0] for e in entries[: config.units]]
    if config.pricing == "highest_losing":
        price = max([config.reserve_price] + [e[0] for e in entries[config.units: config.units + 1]])
    else:
        price = accepted[-1] if accepted else 0.0
    return mu.reference_finish(config, vals, won, [q * price for q in won], valid, participated)


MECHANISM = Mechanism(
    name="uniform_price", version=VERSION, summary="k units; every winner pays one (k+1)-th or k-th price",
    config_model=UniformPriceConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=mu.market_spec, merges_identities=True,
    examples=({}, {"units": 2}, {"units": 3, "reserve_price": 0.2}, {"units": 2, "pricing": "lowest_winning"},
              {"units": 3, "demand": 3}, {"units": 4, "demand": 2, "reserve_price": 0.3, "pricing": "lowest_winning"}),
    doc=__doc__,
)
