"""Second-price auction with buyer protection: a refund claim open to anyone once registered (mecharena plug-in).

Rule: a second-price auction run every round on the same identities (every bid > 0 takes part,
the highest wins, ties by seeded priority, it pays the second-highest bid, 0 when alone).

Buyer protection: a buyer may report that the item it bought was not as described (action field
``claim``, 0 or 1, default 0: no report). A claim by the round's winner is honored when the seat
is registered: it is then refunded the share ``refund`` of the price it paid this round (paid back
as a receipt). Returns are not collected: the item stays with the buyer. A seat becomes
registered once it has taken part in a round (state field ``registered``: 1 after the first
round in which it bid > 0); before that its claims are ignored. A claim by a seat that did not
win this round has no effect.

Events (per seat): ``refunded``, the refund paid this round.

Flaw: nothing checks a claim, so a registered winner pays only ``phi = 1 - refund`` of the price.
Round 0 is Vickrey (nobody is registered: a one-shot search finds nothing); from round 1 on the
deviator claims every time and bids ``v / phi`` (it wins exactly when ``phi p < v``).

Exploit (one deviator, n - 1 truthful rivals that never claim, values i.i.d. U[0, 1] drawn afresh
each round, T rounds). With p the highest rival value (CDF F(p) = p^m, m = n - 1), a registered round
earns ``E_v integral_0^min(v / phi, 1) (v - phi p) dF(p)`` against the truthful ``E_v integral_0^v
(v - p) dF(p)``. Honest play registers in round 0 as surely as the exploit does and a claim costs
nothing later, so the rounds are independent and the gain per round is ``(T - 1) / T`` times the
difference (:func:`true_exploitability`): with refund = 0.3, n = 4, T = 6 it is exactly
5/6 x (phi^2 / 20 + (1 - phi^2) / 2 - (3 phi / 4)(1 - phi) - 1/20) = 0.06. With ``refund = 0``
the rule is Vickrey in every round and nothing pays.

Load it with ``mecharena --plugin examples/plugins/planted/rounds/buyer_protection.py check buyer_protection``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.schema import ActionField, StateField


class BuyerProtectionConfig(MechanismConfig):
    """Config of the buyer-protection auction."""

    refund: float = Field(0.3, ge=0, le=1, description="share of the price refunded on an honored claim")


def properties(config: BuyerProtectionConfig) -> frozenset[str]:
    """Promises checked on round 0 (nobody registered yet)."""
    return frozenset({"truthful", "ir", "payments_le_bids", "weak_budget_balance", "efficient"})


def step(config: BuyerProtectionConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """B markets at once; every array is (B, N); ``state['registered']`` (B, N) is 1 for registered seats."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    score = np.where(enters, bids, 0.0)
    ranked = np.sort(score, axis=1)
    top = ranked[:, -1:]
    second = ranked[:, -2:-1] if bids.shape[1] > 1 else np.zeros_like(top)
    winner = np.argmax(np.where(enters & (score == top), priority, -np.inf), axis=1)
    sold = enters.any(axis=1)
    won = np.zeros(bids.shape)
    won[np.arange(bids.shape[0])[sold], winner[sold]] = 1.0
    payments = won * second
    honored = (actions["claim"] > 0) & (state["registered"] > 0) & (won > 0)
    refunded = np.where(honored, config.refund * payments, 0.0)
    outcome = finish(won, payments, refunded, values * won, valid, enters, values.max(axis=1).clip(0))
    registered = np.maximum(state["registered"], enters.astype(float))
    return {"registered": registered}, outcome, {"refunded": refunded}


def step_reference(config: BuyerProtectionConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    enters = [valid[i] and bids[i] > 0 for i in range(n)]
    order = sorted((i for i in range(n) if enters[i]), key=lambda i: (-bids[i], -priority[i]))
    won, payments, refunded = [0.0] * n, [0.0] * n, [0.0] * n
    if order:
        w = order[0]
        won[w] = 1.0
        payments[w] = bids[order[1]] if len(order) > 1 else 0.0
        if actions["claim"][w] > 0 and state["registered"][w] > 0:
            refunded[w] = config.refund * payments[w]
    outcome = scalar_outcome([v * x for v, x in zip(values, won, strict=True)], won, payments, refunded, valid,
                             enters, max_welfare=max(max(values), 0.0))
    registered = [max(float(state["registered"][i]), 1.0 if enters[i] else 0.0) for i in range(n)]
    return {"registered": registered}, outcome, {"refunded": refunded}


def true_exploitability(n: int, rounds: int, refund: float = 0.3, points: int = 200_001) -> float:
    """The best response's gain per round over truthful bidding (module docstring), with the value
    integral on a midpoint grid of ``points`` values."""
    m, phi = n - 1, 1.0 - refund
    v = (np.arange(points) + 0.5) / points

    def earned(bid: Any, price_share: float) -> float:
        """E_v integral_0^min(bid, 1) (v - price_share p) m p^(m-1) dp."""
        x = np.clip(bid, 0.0, 1.0)
        return float(np.mean(v * x**m - price_share * m * x ** (m + 1) / (m + 1)))

    return (rounds - 1) / rounds * (earned(v / phi, phi) - earned(v, 1.0))


MECHANISM = Mechanism(
    name="buyer_protection", version=1,
    summary="second price with buyer protection: registered winners may claim a partial refund",
    config_model=BuyerProtectionConfig, kernel=None, reference=None, properties=properties,
    examples=({}, {"refund": 0.0}, {"refund": 1.0}), doc=__doc__,
    state=(StateField("registered", description="1 once the seat has taken part in a round"),),
    actions=(ActionField("claim", 0, 1, 0, integer=True,
                         description="1: report the item bought this round as not as described"),),
    step=step, step_reference=step_reference,
)
