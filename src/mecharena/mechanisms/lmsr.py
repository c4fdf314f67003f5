"""Prediction market with a logarithmic market scoring rule (LMSR) market maker, for a binary event.

The market maker (Hanson 2003, "Combinatorial information market design"; 2007, *J. Prediction
Markets* 1(1)) keeps the outstanding shares q = (q_yes, q_no) across rounds (its state: the
market is one continuing book, not a fresh auction each round) and prices a trade by the cost
function ``C(q) = b ln(exp(q_yes / b) + exp(q_no / b))``, b the ``liquidity``; the price of YES is
``p = exp(q_yes / b) / (exp(q_yes / b) + exp(q_no / b))``. A YES share pays 1 if the event happens,
a NO share 1 if it does not.

Each round every trader, in order of seeded priority (highest first), reports a probability
r in [0, 1] (its bid; 0: no trade) and the market maker sells it the shares that move the price to
r: YES shares ``b (logit r - logit p)`` when r > p, else NO shares ``b (logit p - logit r)``, at the
cost ``C(q') - C(q)``; reports are clipped to [1e-9, 1 - 1e-9]. A trader's value is its belief,
the probability it gives the event; its value gain is the expected payout of the shares it bought
under that belief (risk-neutral, myopic), so ``utility = belief * yes + (1 - belief) * no - cost``.
Revenue is what the market maker collects this round. The market allocates no good: welfare is
the traders' expected value of their claims, and max_welfare is set equal to it (efficiency 1).

State: ``q_yes``, ``q_no`` per market; ``yes``, ``no`` per identity (shares held, over rounds) and
``collected`` per market (all costs paid so far). Events: ``worst_case_loss`` per market, what the
market maker would lose if the event resolved against it now: ``max(q_yes, q_no) - collected``.

Known results:

* the market maker's worst-case loss is bounded by ``b ln 2`` (``b ln n`` for n outcomes) whatever
  the sequence of trades (Hanson 2003): ``C(q) >= max(q)`` and ``C(0) = b ln 2``; one trader moving
  the price from 1/2 to r loses it at most ``b ln(2 r)`` if YES happens, which tends to ``b ln 2``;
* myopic truthfulness: the LMSR is a proper scoring rule in market form, so a risk-neutral trader
  maximizes its expected profit by moving the price exactly to its belief, whatever price it
  faces (truthful: promised, checked by the battery from the initial state and by the tests from
  random states);
* a trader with a payoff outside the market (e.g. one that profits when the price is high) can gain
  by pushing the price past its belief; that manipulation costs it expected profit in the market.
"""

import math
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.schema import StateField

VERSION = 1
EDGE = 1e-9  # reports are clipped to [EDGE, 1 - EDGE]: certainty costs an infinite amount


class LMSRConfig(MechanismConfig):
    """Config of the LMSR market maker."""

    liquidity: float = Field(1.0, gt=0, le=1e6, description="b: larger moves prices less per share; worst loss b ln 2")


STATE = (
    StateField("q_yes", per="market", description="YES shares outstanding"),
    StateField("q_no", per="market", description="NO shares outstanding"),
    StateField("collected", per="market", description="money the market maker has collected"),
    StateField("yes", description="YES shares the identity holds"),
    StateField("no", description="NO shares the identity holds"),
)


def cost(b: float, q_yes: Any, q_no: Any) -> Any:
    """The cost function C(q) (any shape)."""
    return b * np.logaddexp(np.asarray(q_yes) / b, np.asarray(q_no) / b)


def _logit(p: Any) -> Any:
    return np.log(p) - np.log1p(-p)


def properties(config: LMSRConfig) -> frozenset[str]:
    return frozenset({"truthful", "ir", "weak_budget_balance"})


def market_spec(config: LMSRConfig, n_agents: int) -> MarketSpec:
    return MarketSpec(action_high=1.0, action_rule="each report must be a probability in [0, 1] (0: no trade)")


def step(config: LMSRConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """Every market's traders in order of priority; see the module docstring."""
    b_markets, n = bids.shape
    b = config.liquidity
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0) & (bids <= 1)
    trading = valid & (bids > 0)
    target = b * _logit(np.clip(np.where(trading, bids, 0.5), EDGE, 1 - EDGE))  # q_yes - q_no at the report
    q_yes, q_no = state["q_yes"].copy(), state["q_no"].copy()
    bought_yes, bought_no, paid = np.zeros((b_markets, n)), np.zeros((b_markets, n)), np.zeros((b_markets, n))
    rows = np.arange(b_markets)
    before = cost(b, q_yes, q_no)
    for i in np.argsort(-priority, axis=1, kind="stable").T:  # the j-th trader of every market at once
        gap = target[rows, i] - (q_yes - q_no)
        trade = trading[rows, i]
        dy, dn = np.where(trade, np.maximum(gap, 0.0), 0.0), np.where(trade, np.maximum(-gap, 0.0), 0.0)
        q_yes, q_no = q_yes + dy, q_no + dn
        after = cost(b, q_yes, q_no)
        bought_yes[rows, i], bought_no[rows, i] = dy, dn
        paid[rows, i] = np.where(trade, after - before, 0.0)
        before = after
    gains = values * bought_yes + (1.0 - values) * bought_no
    collected = state["collected"] + paid.sum(axis=1)
    new = {"q_yes": q_yes, "q_no": q_no, "collected": collected, "yes": state["yes"] + bought_yes,
           "no": state["no"] + bought_no}
    welfare = gains.sum(axis=1)
    outcome = finish(bought_yes + bought_no, paid, np.zeros((b_markets, n)), gains, valid, trading, welfare, welfare)
    return new, outcome, {"worst_case_loss": np.maximum(q_yes, q_no) - collected}


def step_reference(config: LMSRConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python, trade by trade."""
    n, b = len(bids), config.liquidity
    q_yes, q_no = state["q_yes"], state["q_no"]

    def c(y: float, x: float) -> float:
        top = max(y, x)
        return top + b * math.log(math.exp((y - top) / b) + math.exp((x - top) / b))

    valid = [is_valid_number(x, 0.0, 1.0) for x in bids]
    yes, no, paid = [0.0] * n, [0.0] * n, [0.0] * n
    for i in sorted(range(n), key=lambda i: -priority[i]):
        if not valid[i] or bids[i] == 0:
            continue
        r = min(max(bids[i], EDGE), 1 - EDGE)
        gap = b * (math.log(r) - math.log1p(-r)) - (q_yes - q_no)
        before = c(q_yes, q_no)
        yes[i], no[i] = max(gap, 0.0), max(-gap, 0.0)
        q_yes, q_no = q_yes + yes[i], q_no + no[i]
        paid[i] = c(q_yes, q_no) - before
    gains = [v * y + (1 - v) * x for v, y, x in zip(values, yes, no, strict=True)]
    collected = state["collected"] + sum(paid)
    new = {"q_yes": q_yes, "q_no": q_no, "collected": collected,
           "yes": [h + y for h, y in zip(state["yes"], yes, strict=True)],
           "no": [h + x for h, x in zip(state["no"], no, strict=True)]}
    outcome = scalar_outcome(gains, [y + x for y, x in zip(yes, no, strict=True)], paid, [0.0] * n, valid,
                             [valid[i] and bids[i] > 0 for i in range(n)], max_welfare=sum(gains), welfare=sum(gains))
    return new, outcome, {"worst_case_loss": max(q_yes, q_no) - collected}


MECHANISM = Mechanism(
    name="lmsr", version=VERSION, summary="prediction market: LMSR market maker, shares carried across rounds",
    config_model=LMSRConfig, kernel=None, reference=None, properties=properties, market_spec=market_spec,
    examples=({}, {"liquidity": 0.1}, {"liquidity": 10.0}),
    doc=__doc__, state=STATE, step=step, step_reference=step_reference,
)
