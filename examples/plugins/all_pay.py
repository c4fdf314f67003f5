"""All-pay auction of one item: a mecharena plug-in (see docs/plugins.md).

Rule: every bid > 0 and >= the reserve (the minimum bid) takes part; the highest wins the item
(ties: seeded priority), and every participant pays its own bid, win or lose.

Known results (values i.i.d. U[0, 1], n bidders, reserve r; Krishna, *Auction Theory*, 2nd ed.,
sec. 2.5 and ch. 3):

* the symmetric Bayes-Nash bid is ``b(v) = (n - 1)/n v^n`` without a reserve. With a reserve, a
  bidder takes part from the screening value ``v* = r^(1/n)`` up, where winning with probability
  ``v*^(n-1)`` is worth paying r, and bids ``b(v) = ((n - 1) v^n + r) / n``;
* revenue equivalence (Krishna prop. 3.1): the highest value above v* wins and the v* type pays
  0 in expectation, as in a second-price auction with reserve v*, so the expected revenue is the
  same: ``2n(1 - v*^(n+1))/(n+1) - (1 - v*^n)``, which is ``(n - 1)/(n + 1)`` at r = 0;
* truthful bidding is far from optimal: every loser pays its whole value (not IR).

Load it with ``mecharena --plugin examples/plugins/all_pay.py COMMAND ...``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.agents import AgentType, MarketContext
from mecharena.agents.base import require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class AllPayConfig(MechanismConfig):
    """Config of the all-pay auction."""

    reserve_price: float = Field(0.0, ge=0, description="lowest bid that takes part")


def properties(config: AllPayConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"payments_le_bids", "weak_budget_balance"}
    return frozenset(promised | ({"efficient"} if config.reserve_price == 0 else set()))


def kernel(config: AllPayConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0) & (bids >= config.reserve_price)
    score = np.where(enters, bids, -np.inf)
    tied = enters & (score == score.max(axis=1, keepdims=True))
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(bids.shape[0]), winner] = tied.any(axis=1)
    return finish(allocation, np.where(enters, bids, 0.0), np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: AllPayConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = [i for i in range(n) if valid[i] and bids[i] > 0 and bids[i] >= config.reserve_price]
    allocation, gains = [0.0] * n, [0.0] * n
    if entrants:
        winner = max(entrants, key=lambda i: (bids[i], priority[i]))
        allocation[winner], gains[winner] = 1.0, values[winner]
    payments = [bids[i] if i in entrants else 0.0 for i in range(n)]
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="all_pay", version=1, summary="all-pay auction: highest bid wins, every bidder pays its bid",
    config_model=AllPayConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"reserve_price": 0.3}), doc=__doc__,
)


class ShadeParams(StrictModel):
    """Parameters of the equilibrium bidder."""

    shade: float = Field(1.0, ge=0, le=2, description="multiplier of the equilibrium bid (1: the BNE)")


def act(context: MarketContext, params: ShadeParams, state: None, values: Any, draws: Any):
    """``shade`` times the symmetric equilibrium bid; values below the screening value abstain."""
    require_mechanism(context, "all_pay_bne", ("all_pay",))
    dist = context.values
    if (dist.kind, dist.low, dist.high) != ("uniform", 0.0, 1.0):
        raise ConfigError(f"all_pay_bne needs values uniform on [0, 1], got {dist.kind} on [{dist.low}, {dist.high}]")
    n, r = context.n_agents, context.visible_reserve
    bne = ((n - 1) * values**n + r) / n
    return np.where(values**n >= r, params.shade * bne, 0.0)


AGENT = AgentType(name="all_pay_bne", version=1, summary="symmetric all-pay equilibrium bid, times shade",
                  act=act, params_model=ShadeParams)
