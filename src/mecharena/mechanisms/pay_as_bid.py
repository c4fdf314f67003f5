"""Pay-as-bid (discriminatory) multi-unit auction: each winning unit pays its own bid.

Rule: the ``units`` = k highest eligible marginal bids win (see ``_multi_unit``); a winner pays
the sum of its accepted marginal bids.

Known results (values i.i.d. U[0, 1], n bidders with unit demand; Krishna, *Auction Theory*,
2nd ed., ch. 13; Weber 1983):

* the symmetric Bayes-Nash bid is ``b(v) = E[max(Y_k, r) | Y_k < v]`` where ``Y_k`` is the
  k-th highest of the other n - 1 values: bidders shade;
* revenue equivalence with the (k+1)-th price uniform auction under that equilibrium.
"""

from typing import Any

import numpy as np

from mecharena.mechanisms import _multi_unit as mu
from mecharena.mechanisms.base import Mechanism

VERSION = 1


def properties(config: mu.MultiUnitConfig) -> frozenset[str]:
    return frozenset({"ir", "payments_le_bids"})


def kernel(config: mu.MultiUnitConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    ranking = mu.rank(config, values, bids, priority)
    paid = np.where(ranking.won, ranking.bids, 0.0).sum(axis=2)
    return mu.finish_ranking(config, ranking, paid)


def reference(config: mu.MultiUnitConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    vals, bs, valid, _, won, participated = mu.reference_rank(config, values, bids, priority)
    return mu.reference_finish(config, vals, won, [sum(b[:q]) for b, q in zip(bs, won, strict=True)],
                               valid, participated)


MECHANISM = Mechanism(
    name="pay_as_bid", version=VERSION, summary="k units; each winning unit pays its own bid",
    config_model=mu.MultiUnitConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=mu.market_spec, merges_identities=True,
    examples=({}, {"units": 3}, {"units": 2, "demand": 3, "reserve_price": 0.25}),
    doc=__doc__,
)
