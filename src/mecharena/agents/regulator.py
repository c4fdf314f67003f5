"""Regulator: watches what the market reveals, flags markets that look rigged and has them audited.

The compliance agent of the white paper's agent types. It holds a seat but never bids (it sits out
every round). After each round it reads the public record, exactly as the information policy
reveals it, and scores every market with a collusion screen; in the next round it asks the
enforcement policy to audit the markets whose score reaches ``threshold`` (``Action.audit``), each
with probability ``rate`` (its audit budget). An audit it triggers fines what a random audit fines
(the enforcement policy's collusion penalty for every seat bidding under a collusive agreement,
its shill penalty per false name that bid), so the regulator needs an enforcement policy with
penalties to matter. Each audit it asks for is written to the decision traces (kind ``flag``, with
the screen's score), which the ledger stores.

Screens (per market, over the other seats; a running mean over rounds with weight ``memory`` on the
newest, so one odd round does not flag a market):

* **cover bids** (competing bids revealed): the share of the other seats that bid less than
  ``cover`` times the round's highest bid, abstaining included. A designated-winner or rotation
  ring leaves one serious bid and abstentions or token cover bids (the "missing bids" and
  "cover bidding" screens of the bid-rigging literature: Imhof, Karagök and Rutz 2018, "Screening
  for bid rigging: does it work?", *Journal of Competition Law & Economics* 14(2); OECD 2009,
  "Guidelines for fighting bid rigging in public procurement"), while competing bidders with
  private values rarely sit that far below the top.
* **low price** (only the price revealed): the price below ``price_floor`` (0: off; the regulator
  must know what a competitive price looks like).

With neither revealed the regulator sees nothing and asks for nothing: hiding bids hides collusion
from the regulator as it hides defections from the ring (tests/agents/test_regulator.py).
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents.base import Action, AgentType, Draws, MarketContext, Observation
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1


class RegulatorParams(StrictModel):
    rate: float = Field(1.0, ge=0, le=1, description="chance a flagged market is audited (the audit budget)")
    threshold: float = Field(0.3, gt=0, le=1, description="screen score from which a market is flagged")
    cover: float = Field(0.1, ge=0, le=1, description="a bid below cover x the round's highest counts as a cover bid")
    price_floor: float = Field(0.0, ge=0, description="price below which a market is suspect when only prices "
                                                     "are revealed (0: off)")
    memory: float = Field(0.5, gt=0, le=1, description="weight of the newest round in the running screen")


@dataclass(frozen=True, slots=True)
class RegulatorState:
    score: FloatArray  # (B,)  the running screen of each market


def init(context: MarketContext, params: RegulatorParams, seats: int, draws: Draws) -> RegulatorState:
    return RegulatorState(np.zeros(draws.markets))


def act(context: MarketContext, params: RegulatorParams, state: RegulatorState, values: FloatArray,
        draws: Draws) -> Action:
    flagged = state.score >= params.threshold
    audit = flagged & (draws.uniform("audit") < params.rate)
    notes = tuple({"market": int(b), "seat": 0, "kind": "flag", "text": f"audit: collusion screen {state.score[b]:.2f}"}
                  for b in np.flatnonzero(audit))
    orders = (context.spec.orders_per_agent,) if context.spec.orders_per_agent else ()
    return Action(bids=np.zeros(values.shape + orders), enter=np.zeros(values.shape[:2], bool), audit=audit,
                  notes=notes)


def screen(context: MarketContext, params: RegulatorParams, observation: Observation) -> FloatArray | None:
    """(B,) this round's screen score (module docstring), or None where the market revealed nothing it reads."""
    others = np.ones(context.n_agents, dtype=bool)
    others[context.seats] = False
    if observation.bids is not None and others.any():
        bids = observation.bids.reshape(observation.bids.shape[0], context.n_agents, -1).max(axis=2)[:, others]
        top = bids.max(axis=1, keepdims=True)
        return np.where(top[:, 0] > 0, (bids < params.cover * top).mean(axis=1), 0.0)
    if params.price_floor > 0 and not np.isnan(observation.price).all():
        return (np.nan_to_num(observation.price, nan=np.inf) < params.price_floor).astype(float)
    return None


def update(context, params: RegulatorParams, state: RegulatorState, values, action, observation, feedback, draws):
    now = screen(context, params, observation)
    if now is None:
        return state
    return dataclasses.replace(state, score=(1 - params.memory) * state.score + params.memory * now)


AGENT = AgentType(name="regulator", version=VERSION,
                  summary="never bids; screens what the market reveals for collusion and has flagged markets audited",
                  act=act, init=init, update=update, params_model=RegulatorParams)
