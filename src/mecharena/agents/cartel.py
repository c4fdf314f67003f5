"""Bid-rotation cartel: the group's k seats form one ring per market.

Rule (one-sided auctions with unit demand: first and second price, uniform price, pay-as-bid,
VCG, posted price): rounds rotate a designated member (round mod k) or, with ``knockout``, the ring
holds a pre-auction knockout and designates its highest-valued member (Graham and Marshall 1987:
the ring then profits in a second-price auction); the designated member bids
as if the ring's other members did not exist (truthful where that is dominant; the Bayes-Nash
shade for n - k + 1 bidders in first price and pay-as-bid) and the others abstain, all marked as
colluding. A non-designated member whose value exceeds ``threshold`` is tempted to
defect (bid competitively). Whether defection pays depends on enforcement, and enforcement
depends on what the market reveals: the ring can detect a defection only if the winner's identity
is revealed (and the defector won) or the competing bids are revealed (and the defector bid).
Where it can detect, members defect only with probability ``temptation`` (so the threat is
tested) and a detected defection triggers ``punish_rounds`` rounds of competitive bidding by all
members; where it cannot, a tempted member always defects, and the ring erodes.
Sources: Graham and Marshall (1987) on second-price rings; Marshall and Marx (2009) on how the
information a mechanism reveals supports collusion.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, AgentType, Draws, MarketContext, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import IntArray

VERSION = 2
SUPPORTED = ("first_price", "second_price", "uniform_price", "pay_as_bid", "vcg", "posted_price")


class CartelParams(StrictModel):
    threshold: float = Field(0.5, ge=0, le=1000, description="value above which a non-designated member is tempted")
    temptation: float = Field(0.05, ge=0, le=1, description="chance a tempted member defects when it can be caught")
    punish_rounds: int = Field(5, ge=0, le=1000, description="rounds of competitive bidding after a detected defection")
    knockout: bool = Field(False, description="designate the highest-valued member instead of rotating")


@dataclass(frozen=True, slots=True)
class CartelState:
    round: IntArray  # (B,)  rounds played (drives the rotation)
    punishing: IntArray  # (B,)  punishment rounds left


def can_detect(context: MarketContext) -> bool:
    return context.information.winner_identity or context.information.competing_bids


def init(context: MarketContext, params: CartelParams, seats: int, draws: Draws) -> CartelState:
    require_mechanism(context, "cartel", SUPPORTED, unit_demand=True)
    zeros = np.zeros(draws.markets, dtype=np.int64)
    return CartelState(zeros, zeros.copy())


def act(context: MarketContext, params: CartelParams, state: CartelState, values, draws: Draws) -> Action:
    k = values.shape[1]
    turn = np.argmax(values, axis=1) if params.knockout else state.round % k
    designated = np.arange(k)[None, :] == turn[:, None]
    punishing = (state.punishing > 0)[:, None]
    tempted = ~designated & (values > params.threshold)
    if can_detect(context):
        tempted &= draws.uniform("defect", k) < params.temptation
    ring = competitive_bids(context, values, rivals=context.n_agents - k)
    open_bids = competitive_bids(context, values)
    honest = punishing | tempted | (k < 2)  # a ring of one (e.g. a drawn mixture) just competes
    bids = np.where(honest, open_bids, np.where(designated, ring, 0.0))
    return Action(bids=bids, colluding=~honest, memo=designated)


def update(context, params: CartelParams, state: CartelState, values, action, observation, feedback, draws):
    defected = ~action.memo & ~action.colluding & (action.bids > 0)  # a non-designated member bid
    detected = np.zeros(values.shape[0], dtype=bool)
    if observation.winners is not None:
        detected |= (observation.winners[:, context.seats] & defected).any(axis=1)
    if observation.bids is not None:
        detected |= (defected & (observation.bids[:, context.seats] > 0)).any(axis=1)
    detected &= state.punishing == 0
    punishing = np.where(detected, params.punish_rounds, np.maximum(state.punishing - 1, 0))
    return dataclasses.replace(state, round=state.round + 1, punishing=punishing)


AGENT = AgentType(name="cartel", version=VERSION, summary="bid-rotation ring that punishes defection it can see",
                  act=act, init=init, update=update, params_model=CartelParams)
