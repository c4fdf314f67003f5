"""Sniper: a continuous-double-auction trader that sends its order late, at a shaded price.

Rule, per seat and round (one unit; a buyer holds value v, a seller cost c):

* **time**: ``t = 1 - lateness * u`` with u ~ U[0, 1) drawn for the seat, so with a small
  ``lateness`` the order arrives after (almost) every other order. In the CDA
  (:mod:`mecharena.mechanisms.cda`) orders are processed in time order and a crossing order
  trades at the *standing* order's price, so a late order sees the whole book and never sets
  the price it pays. ``lateness = 1`` is a uniformly random time, like every other trader's.
* **price**: shaded toward a reference p, the agent's estimate of where the book trades:
  a buyer bids ``min(v, v + shading * (p - v))`` and a seller asks ``max(c, c + shading * (p - c))``.
  It never bids above its value nor asks below its cost (its order is individually rational);
  ``shading = 0`` is the truthful order, ``shading = 1`` bids ``min(v, p)`` / asks ``max(c, p)``.
  The last order to arrive pays the standing price whatever it bids, so its price only decides
  whether it trades and shading costs it trades; shading pays when the order is not last (it
  stands and a later order trades at its price). In thick markets with heavy shading a
  random-time order that stands can earn more than a late one.
* **reference**: last round's announced clearing price in that market (the mean trade price),
  when the information policy announces it and something traded; otherwise the previous
  reference, starting at the median of the common value distribution (where supply meets
  demand when both sides draw from it).

Each seat's side (buyer or seller) is the market's: populations put the ``buyers`` first.

This is Kaplan's "sniper", the winner of the Santa Fe double auction tournament: wait in the
background while others narrow the spread, then "steal the deal" (Rust, Miller and Palmer 1994,
*J. Economic Dynamics and Control* 18: 61-96); on late bidding more widely, Roth and Ockenfels
(2002), *American Economic Review* 92: 1093-1103. Only the CDA processes orders in time: every other
mechanism raises :class:`~mecharena.core.errors.ConfigError`.
"""

from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1


class SniperParams(StrictModel):
    lateness: float = Field(0.05, ge=0, le=1, description="order time is 1 - lateness * U[0, 1)")
    shading: float = Field(0.1, ge=0, le=1, description="share of the distance to the reference price shaded")


@dataclass(frozen=True, slots=True)
class SniperState:
    reference: FloatArray  # (B, S)  estimated trade price


def _check(context: MarketContext) -> None:
    require_mechanism(context, "sniper", ("cda",), reason="needs a mechanism that processes orders in time order")


def init(context: MarketContext, params: SniperParams, seats: int, draws: Draws) -> SniperState:
    _check(context)
    return SniperState(reference=np.full((draws.markets, seats), float(context.values.ppf(0.5))))


def act(context: MarketContext, params: SniperParams, state: SniperState, values: FloatArray,
        draws: Draws) -> Action:
    """Late, shaded one-unit orders. ``values`` (B, S); returns bids and times (B, S)."""
    _check(context)
    shaded = values + params.shading * (state.reference - values)
    bids = np.where(context.selling[None, :], np.maximum(values, shaded), np.minimum(values, shaded))
    times = 1.0 - params.lateness * draws.uniform("time", values.shape[1])
    return Action(bids=bids, times=times)


def update(context: MarketContext, params: SniperParams, state: SniperState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> SniperState:
    price = observation.price[:, None]
    return replace(state, reference=np.where(np.isfinite(price), price, state.reference))


AGENT = AgentType(name="sniper", version=VERSION, summary="cda: late order shaded toward last trade price",
                  act=act, init=init, update=update, params_model=SniperParams)
