"""Balanced bidder: the repeated position auction's greedy best response (Cary et al. 2007).

Cary, Das, Edelman, Giotis, Heimerl, Karlin, Mathieu and Schwarz, "Greedy bidding strategies for
keyword auctions" (*EC* 2007). Each round a seat reads last round's bids (the information policy
must announce them: ``competing_bids``), takes the others' bids as fixed, and targets the position
k* that maximises ``alpha_k (v - max(o_k, r))``, o_k being the k-th highest other bid (what it would pay
per click in GSP at position k). It then bids so that it would be indifferent between k* at that price
and the position above at its own bid: ``b = v - (alpha_k* / alpha_(k*-1)) (v - max(o_k*, r))``, and its
value at the top (or where no position pays). In the first round it bids its value.

Cary et al. show that when bidders update one at a time, balanced bidding converges to the
unique fixed point, the GSP equilibrium of Edelman, Ostrovsky and Schwarz whose payments are
VCG's (:func:`mecharena.mechanisms.position.envy_free_bids`). Here each seat updates in a round
with probability ``update`` (asynchronous updates; 1: all at once, which can cycle) and otherwise
repeats its bid. With persistent values (``uniform:persistent=true``) revenue converges to VCG's.
"""

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.position import ctrs

VERSION = 1


class BalancedParams(StrictModel):
    update: float = Field(0.5, gt=0, le=1, description="chance that a seat revises its bid in a round")


@dataclass(frozen=True, slots=True)
class BalancedState:
    bids: FloatArray | None  # (B, S) its last bids (None: first round)
    seen: FloatArray | None  # (B, N) every bid of last round, as announced


def init(context: MarketContext, params: BalancedParams, seats: int, draws: Draws) -> BalancedState:
    require_mechanism(context, "balanced", ("position",), reason="plays the repeated position auction")
    if not context.information.competing_bids:
        raise ConfigError("balanced best-responds to last round's bids: the information policy must announce them "
                          "(competing_bids=true)")
    return BalancedState(None, None)


def balanced_bids(context: MarketContext, values: FloatArray, seen: FloatArray) -> FloatArray:
    """(B, S) each seat's balanced bid against the others' announced bids ``seen`` (B, N)."""
    config, n = context.config, context.n_agents
    alpha = ctrs(config, n)[: n - 1]  # positions a seat can take among n
    seats = np.arange(n)[context.seats]
    out = np.empty(values.shape)
    for k, seat in enumerate(seats):
        others = -np.sort(-np.delete(seen, seat, axis=1), axis=1)  # (B, N - 1) best first
        price = np.maximum(others, config.reserve_price)
        v = values[:, k:k + 1]
        surplus = alpha[None, :] * (v - price)
        target = np.argmax(surplus, axis=1)
        best = np.take_along_axis(surplus, target[:, None], axis=1)[:, 0]
        p = np.take_along_axis(price, target[:, None], axis=1)[:, 0]
        above = alpha[np.maximum(target - 1, 0)]
        balanced = v[:, 0] - alpha[target] / above * (v[:, 0] - p)
        out[:, k] = np.where((target > 0) & (best > 0), balanced, v[:, 0])
    return out


def act(context: MarketContext, params: BalancedParams, state: BalancedState, values: FloatArray,
        draws: Draws) -> Action:
    if state.seen is None:
        return Action(bids=values.copy())
    revise = draws.uniform("revise", values.shape[1]) < params.update
    return Action(bids=np.where(revise, balanced_bids(context, values, state.seen), state.bids))


def update(context: MarketContext, params: BalancedParams, state: BalancedState, values: FloatArray, action: Action,
           observation: Observation, feedback: Feedback, draws: Draws) -> BalancedState:
    return BalancedState(action.bids, observation.bids)


AGENT = AgentType(name="balanced", version=VERSION, summary="repeated GSP: greedy balanced bidding (Cary et al. 2007)",
                  act=act, init=init, update=update, params_model=BalancedParams)
