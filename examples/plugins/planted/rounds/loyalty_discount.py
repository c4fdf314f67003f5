"""Second-price auction with a loyalty discount: a flaw that exists only across rounds (mecharena plug-in).

Rule: a second-price auction (every bid > 0 takes part, the highest wins, ties by seeded priority,
it pays the second-highest bid, 0 when alone), run every round on the same identities. The
mechanism remembers who won last round (state field ``streak``, 1 for last round's winner), and a
winner on a streak pays only ``1 - discount`` of the price: a reward for loyal customers.

Flaw: one round alone is Vickrey (nobody is on a streak in round 0: a one-shot search finds
nothing). Across rounds, a winner on a streak should bid ``v / (1 - d)``, and winning at all is
worth the discount it opens for the next round, so everyone should overbid by that continuation
value: truthful bidding is no longer a best response.

Exploit (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1] drawn afresh each round, T rounds
from no streak, no reserve). With p the highest rival value (CDF F(p) = p^(n-1)), the best
response in round t with streak s bids ``b = (v + D_(t+1)) / (1 - d s)``, where D is the value of
entering the next round on a streak rather than not (D_T = 0), found by backward induction:

    V_t(s) = V_(t+1)(0) + E_v integral_0^min(b, 1) (v + D_(t+1) - (1 - d s) p) dF(p),  D_t = V_t(1) - V_t(0),

and the truthful bidder's U_t(s) likewise with b = v. The true exploitability is
``(V_0(0) - U_0(0)) / T`` per round (:func:`true_exploitability`; the strategy:
:func:`best_response_bids`): with d = 0.3, T = 6: 0.013129 (n = 3), 0.012074 (n = 4), 0.010847 (n = 5).

A stationary policy of the form ``bid = v g_s + c_s`` with ``g_1 = 1 / (1 - d)`` comes within
the time variation of D of it; the repeated-game policy search's policy class contains it
(multiplier and offset linear in the ``won`` feature). With ``discount = 0`` the rule is Vickrey
in every round and nothing pays.

Load it with ``mecharena --plugin examples/plugins/planted/rounds/loyalty_discount.py check loyalty_discount``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.schema import StateField


class LoyaltyDiscountConfig(MechanismConfig):
    """Config of the loyalty-discount auction."""

    discount: float = Field(0.3, ge=0, lt=1, description="share of the price a winner on a streak does not pay")


def properties(config: LoyaltyDiscountConfig) -> frozenset[str]:
    """Promises checked on round 0 (from no streak), where the rule is Vickrey."""
    return frozenset({"truthful", "ir", "payments_le_bids", "weak_budget_balance", "efficient"})


def step(config: LoyaltyDiscountConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """B markets at once; every array is (B, N); ``state['streak']`` (B, N) marks last round's winners."""
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
    payments = won * second * (1.0 - config.discount * state["streak"])
    outcome = finish(won, payments, np.zeros(bids.shape), values * won, valid, enters, values.max(axis=1).clip(0))
    return {"streak": won}, outcome, {}


def step_reference(config: LoyaltyDiscountConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    enters = [valid[i] and bids[i] > 0 for i in range(n)]
    order = sorted((i for i in range(n) if enters[i]), key=lambda i: (-bids[i], -priority[i]))
    won, payments = [0.0] * n, [0.0] * n
    if order:
        w = order[0]
        won[w] = 1.0
        payments[w] = (bids[order[1]] if len(order) > 1 else 0.0) * (1.0 - config.discount * state["streak"][w])
    outcome = scalar_outcome([v * x for v, x in zip(values, won, strict=True)], won, payments, [0.0] * n, valid, enters,
                             max_welfare=max(max(values), 0.0))
    return {"streak": won}, outcome, {}


def _induction(n: int, rounds: int, discount: float, points: int) -> tuple[float, list[float]]:
    """Backward induction (see the module docstring): the gain per round and, for each round t, the
    continuation value D_(t+1) of entering the next round on a streak."""
    m = n - 1
    v = (np.arange(points) + 0.5) / points

    def flow(bid: Any, head: Any, c: float) -> float:
        """integral_0^min(bid, 1) (head - c p) m p^(m-1) dp, averaged over v."""
        x = np.clip(bid, 0.0, 1.0)
        return float(np.mean(head * x**m - c * m * x ** (m + 1) / (m + 1)))

    best, truthful, offsets = [0.0, 0.0], [0.0, 0.0], []  # V_(t+1)(s), U_(t+1)(s)
    for _ in range(rounds):
        d_best, d_truthful = best[1] - best[0], truthful[1] - truthful[0]
        offsets.insert(0, d_best)
        best = [best[0] + flow((v + d_best) / (1 - discount * s), v + d_best, 1 - discount * s) for s in (0, 1)]
        truthful = [truthful[0] + flow(v, v + d_truthful, 1 - discount * s) for s in (0, 1)]
    return (best[0] - truthful[0]) / rounds, offsets


def true_exploitability(n: int, rounds: int, discount: float = 0.3, points: int = 200_001) -> float:
    """The best response's gain per round over truthful bidding, by backward induction with the value
    integral on a midpoint grid of ``points`` values."""
    return _induction(n, rounds, discount, points)[0]


def best_response_bids(values: Any, streak: Any, round_: int, n: int, rounds: int, discount: float = 0.3) -> Any:
    """The best response's bids in round ``round_`` (0-based) of ``rounds``: ``(v + D_(t+1)) / (1 - d s)``."""
    offset = _induction(n, rounds, discount, 20_001)[1][round_]
    return (np.asarray(values) + offset) / (1.0 - discount * np.asarray(streak))


MECHANISM = Mechanism(
    name="loyalty_discount", version=1, summary="second price; last round's winner pays 1 - discount of the price",
    config_model=LoyaltyDiscountConfig, kernel=None, reference=None, properties=properties,
    examples=({}, {"discount": 0.0}, {"discount": 0.9}), doc=__doc__,
    state=(StateField("streak", description="1 for last round's winner"),), step=step, step_reference=step_reference,
)
