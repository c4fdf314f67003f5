"""Vickrey-Clarke-Groves auction of k identical units (decreasing marginal values).

Rule: the welfare-maximising allocation (the k highest eligible marginal bids, see
``_multi_unit``); the seller values each unsold unit at the reserve. Agent i pays its
externality: the others' best welfare without i minus their welfare with i, which for
identical units is the sum of the q_i highest bids i displaces, i.e. positions
``k - q_i + 1 .. k`` of the others' bids pooled with k copies of the reserve.

Known results (Vickrey 1961; Clarke 1971; Groves 1973; Krishna, *Auction Theory*, ch. 12):

* truthful bidding is weakly dominant and (with r = 0) the allocation is efficient;
* payments never exceed bids, so truthful bidders are IR;
* with unit demand VCG equals the (k+1)-th price uniform auction.
"""

from typing import Any

import numpy as np

from mecharena.mechanisms import _multi_unit as mu
from mecharena.mechanisms.base import Mechanism

VERSION = 1


def properties(config: mu.MultiUnitConfig) -> frozenset[str]:
    return frozenset({"truthful", "ir", "payments_le_bids"} | ({"efficient"} if config.reserve_price == 0 else set()))


def kernel(config: mu.MultiUnitConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    ranking = mu.rank(config, values, bids, priority)
    n_markets, n_agents, _ = ranking.bids.shape
    k = config.units
    reserve = np.full((n_markets, k), config.reserve_price)
    payments = np.zeros((n_markets, n_agents))
    q = ranking.units_won.astype(int)
    for i in range(n_agents):  # one pass per agent, vectorised over markets
        others = ranking.bids.copy()
        others[:, i, :] = -np.inf
        pool = np.concatenate([others.reshape(n_markets, -1), reserve], axis=1)
        best = -np.sort(-pool, axis=1)[:, :k]  # the others' k best, all >= reserve
        cum = np.concatenate([np.zeros((n_markets, 1)), np.cumsum(best, axis=1)], axis=1)
        payments[:, i] = cum[:, k] - np.take_along_axis(cum, (k - q[:, i])[:, None], axis=1)[:, 0]
    return mu.finish_ranking(config, ranking, payments)


def reference(config: mu.MultiUnitConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    vals, bs, valid, entries, won, participated = mu.reference_rank(config, values, bids, priority)
    k, reserve = config.units, config.reserve_price

    def best_welfare(agents: set[int]) -> float:  # the seller keeps unsold units at the reserve
        pool = sorted([e[0] for e in entries if e[3] in agents] + [reserve] * k, reverse=True)
        return sum(pool[:k])

    everyone = set(range(len(bs)))
    with_all = best_welfare(everyone)
    payments = []
    for i in range(len(bs)):
        others_with_i = with_all - sum(bs[i][: won[i]])
        payments.append(best_welfare(everyone - {i}) - others_with_i if won[i] else 0.0)
    return mu.reference_finish(config, vals, won, payments, valid, participated)


MECHANISM = Mechanism(
    name="vcg", version=VERSION, summary="k units to the highest marginal bids; each pays its externality",
    config_model=mu.MultiUnitConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=mu.market_spec, merges_identities=True,
    examples=({}, {"units": 2}, {"units": 3, "demand": 3}, {"units": 4, "demand": 2, "reserve_price": 0.3}),
    doc=__doc__,
)
