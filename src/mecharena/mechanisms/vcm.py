"""Voluntary contribution mechanism (linear public goods game).

Rule: each agent keeps its endowment e minus its contribution c_i in [0, e]; the pot is
multiplied so that everyone receives ``mpcr * sum(c)``. Utility is the agent's total
earnings, ``e - c_i + mpcr * sum(c)``; welfare is the sum of earnings. Values are not used:
there is no private good. The ``truthful`` (sincere) agent contributes its whole endowment.

Budget: the contributions buy the public good and the good's yield, the pot ``n mpcr sum(c)``,
is paid out in full, so the budget surplus (``Outcome.revenue``: money in minus money out plus
the good's yield minus its cost) is ``sum(c) - n mpcr sum(c) + (n mpcr sum(c) - sum(c)) = 0``:
budget balanced, whatever the contributions. Payments are the contributions, receipts the shares.

Known results (Isaac, Walker and Thomas 1984; Ledyard 1995, *Handbook of Experimental
Economics*, ch. 2): with 1/n < mpcr < 1 contributing 0 is the dominant strategy, so the
selfish Nash equilibrium gives ``n e`` while full contribution gives ``mpcr n^2 e``;
with mpcr >= 1 contributing everything is dominant.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import _public_goods as pg
from mecharena.mechanisms.base import Mechanism, finish, is_valid_number, scalar_outcome

VERSION = 2


class VCMConfig(pg.PublicGoodsConfig):
    mpcr: float = Field(0.5, gt=0, le=100, description="marginal per-capita return of the pot")


def properties(config: VCMConfig) -> frozenset[str]:
    return frozenset({"budget_balance"})  # efficiency and IR depend on n * mpcr: they do not hold for every market


def kernel(config: VCMConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    valid, c = pg.valid_contributions(config, bids)
    n = bids.shape[1]
    share = config.mpcr * c.sum(axis=1, keepdims=True) * np.ones_like(c)
    best = n * config.endowment * max(1.0, n * config.mpcr)
    earnings = config.endowment - c + share
    # the good yields the pot and costs the contributions (written so that the surplus is exactly 0)
    good = share.sum(axis=1) - c.sum(axis=1)
    return finish(np.zeros_like(c), c, share, np.full_like(c, config.endowment), valid, c > 0,
                  max_welfare=np.full(bids.shape[0], best), welfare=earnings.sum(axis=1), good=good)


def reference(config: VCMConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n = len(bids)
    valid = [is_valid_number(b, 0.0, config.endowment) for b in bids]
    c = [b if ok else 0.0 for b, ok in zip(bids, valid, strict=True)]
    share = config.mpcr * sum(c)
    return scalar_outcome([config.endowment] * n, [0.0] * n, c, [share] * n, valid, [x > 0 for x in c],
                          max_welfare=n * config.endowment * max(1.0, n * config.mpcr),
                          welfare=sum(config.endowment - x + share for x in c), good=share * n - sum(c))


def truthful(config: VCMConfig, values: Any, spec: Any) -> Any:
    return np.full_like(values, config.endowment)


MECHANISM = Mechanism(
    name="vcm", version=VERSION, summary="public goods: contributions multiplied and shared equally",
    config_model=VCMConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=pg.market_spec, truthful=truthful,
    examples=({}, {"mpcr": 0.3, "endowment": 2.0}, {"mpcr": 1.5}),
    doc=__doc__,
)
