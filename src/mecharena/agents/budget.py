"""Budget-constrained exploiter: overbids where the price is set by others, within a hard budget.

Each seat may spend at most ``budget`` over the whole episode. It tracks its cumulative net
payments (``Feedback.paid``: payments minus receipts, entry fees included) and bids, per round,

* where a winner's payment does not depend on its own bid (second price, uniform price with the
  (k+1)-th price, VCG, posted price: the price is set by the others' bids or posted):
  ``bid = min(cap, max(value, factor * value))``. With ``factor > 1`` it overbids: it wins
  more often, and pays the others' price, which it expects to lie below its value (in second
  price the price exceeds its value only when the second bid lands in (v, factor * v]);
* where a winner pays its bid (first price, pay-as-bid with unit demand):
  ``bid = min(cap, b*(value))``, the risk-neutral symmetric equilibrium bid b* of
  :mod:`mecharena.agents.bne` (so it uses the announced reserve) cut down to the budget; overbidding
  there can only lose money, so ``factor`` is not used,

where ``cap = budget - spent - entry_fee`` is what it can still pay this round, fee included.
Because in all these mechanisms a bidder never pays more than its bid plus the entry fee,
its total payments never exceed ``budget``. When ``cap <= 1e-9 * budget`` the budget is exhausted and it
bids 0 (abstains) for the rest of the episode. It does not weigh an entry fee against its
chance of winning: with a fee it may lose money, never more than its budget.

In second price overbidding is weakly dominated (the extra wins are exactly those at a price in
(v, factor * v], each a loss), yet it is the robust laboratory finding (Kagel, Harstad and
Levin 1987, *Econometrica* 55: 1275-1304); against thin competition it rarely costs anything
and wins more. With a budget w, truthful bidding gives way to ``min(v, w)`` (Che and Gale 1998,
*Review of Economic Studies* 65: 1-21). Multi-unit demand, uniform pricing at the lowest winning
bid and every other mechanism raise :class:`~mecharena.core.errors.ConfigError`.
"""

from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.agents.bne import shaded_bids
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 2
PRICE_TAKING = ("second_price", "uniform_price", "vcg", "posted_price")
PAY_AS_BID = ("first_price", "pay_as_bid")
DUST = 1e-9  # a remaining budget below this share of the budget is rounding error: exhausted


class BudgetParams(StrictModel):
    budget: float = Field(1.0, gt=0, le=1e6, description="most money one seat may spend over the episode")
    factor: float = Field(1.5, ge=1, le=10, description="overbid multiple of the value where others set the price")


@dataclass(frozen=True, slots=True)
class BudgetState:
    spent: FloatArray  # (B, S)  cumulative payments minus receipts so far


def _check(context: MarketContext) -> bool:
    """True where others set the price, False where a winner pays its bid."""
    name, config = context.mechanism.name, context.config
    require_mechanism(context, "budget", PRICE_TAKING + PAY_AS_BID, reason="bids in one-sided auctions")
    if getattr(config, "demand", 1) != 1:
        raise ConfigError(f"budget needs unit demand (demand=1) in {name}, got demand={config.demand}")
    if getattr(config, "pricing", "highest_losing") != "highest_losing":
        raise ConfigError(f"budget needs pricing='highest_losing' in {name} (the price set by a losing bid), "
                          f"got pricing={config.pricing!r}")
    return name in PRICE_TAKING


def init(context: MarketContext, params: BudgetParams, seats: int, draws: Draws) -> BudgetState:
    _check(context)
    return BudgetState(spent=np.zeros((draws.markets, seats)))


def act(context: MarketContext, params: BudgetParams, state: BudgetState | None, values: FloatArray,
        draws: Draws) -> FloatArray:
    """Bids (B, S) for values (B, S)."""
    price_taking = _check(context)
    config = context.config
    spent = 0.0 if state is None else state.spent
    cap = params.budget - spent - getattr(config, "entry_fee", 0.0)
    if price_taking:
        wanted = np.maximum(values, params.factor * values)
    else:
        wanted = shaded_bids(context.values, values, context.n_agents, getattr(config, "units", 1),
                             context.visible_reserve)
    return np.where(cap > DUST * params.budget, np.minimum(cap, wanted), 0.0)


def update(context: MarketContext, params: BudgetParams, state: BudgetState | None, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> BudgetState:
    if state is None:
        state = init(context, params, values.shape[1], draws)
    return replace(state, spent=state.spent + feedback.paid)


AGENT = AgentType(name="budget", version=VERSION,
                  summary="overbids factor x value where others set the price, within an episode budget",
                  act=act, init=init, update=update, params_model=BudgetParams)
