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

import numba
import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, AgentType, Draws, MarketContext, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray, IntArray

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
    tempting = draws.uniform("defect", k) if can_detect(context) else None  # a tempted member defects when u < p
    ring = competitive_bids(context, values, rivals=context.n_agents - k)
    open_bids = competitive_bids(context, values)
    values = np.asarray(values, dtype=np.float64)
    bids, colluding, designated = np.empty(values.shape), np.empty(values.shape, bool), np.empty(values.shape, bool)
    _act(np.ascontiguousarray(turn, dtype=np.int64), np.ascontiguousarray(state.punishing), values,
         np.zeros((1, 1)) if tempting is None else tempting, tempting is not None, float(params.threshold),
         float(params.temptation), np.asarray(ring, dtype=np.float64), np.asarray(open_bids, dtype=np.float64), bids,
         colluding, designated)
    return Action(bids=bids, colluding=colluding, memo=designated)


@numba.njit(cache=True, nogil=True)
def _act(turn: IntArray, punishing: IntArray, values: FloatArray, tempting: FloatArray, detectable: bool,
         threshold: float, temptation: float, ring: FloatArray, open_bids: FloatArray, bids: FloatArray,
         colluding: BoolArray, designated: BoolArray) -> None:
    """Seat by seat: the designated member bids the ring's bid, the others abstain, all colluding, unless the
    ring punishes, the seat is tempted (and, where defection can be detected, its draw is below the
    temptation) or the ring has one member; those bid openly."""
    k = values.shape[1]
    for m in range(values.shape[0]):
        for i in range(k):
            chosen = i == turn[m]
            tempted = not chosen and values[m, i] > threshold
            if detectable:
                tempted = tempted and tempting[m, i] < temptation
            honest = punishing[m] > 0 or tempted or k < 2
            bids[m, i] = open_bids[m, i] if honest else (ring[m, i] if chosen else 0.0)
            colluding[m, i] = not honest
            designated[m, i] = chosen


def update(context, params: CartelParams, state: CartelState, values, action, observation, feedback, draws):
    """A defection the market showed starts a punishment (see :func:`_detect`)."""
    winners, bids = observation.winners, observation.bids
    punishing = np.empty(state.punishing.shape, np.int64)
    _detect(np.asarray(action.memo, dtype=np.bool_), np.asarray(action.colluding, dtype=np.bool_),
            np.asarray(action.bids, dtype=np.float64),
            np.zeros((1, 1), bool) if winners is None else np.asarray(winners[:, context.seats], dtype=np.bool_),
            winners is not None, np.zeros((1, 1)) if bids is None else np.asarray(bids[:, context.seats], np.float64),
            bids is not None, np.ascontiguousarray(state.punishing, dtype=np.int64), int(params.punish_rounds),
            punishing)
    return dataclasses.replace(state, round=state.round + 1, punishing=punishing)


@numba.njit(cache=True, nogil=True)
def _detect(designated: BoolArray, colluding: BoolArray, bids: FloatArray, winners: BoolArray, see_winners: bool,
            shown: FloatArray, see_bids: bool, punishing: IntArray, rounds: int, out: IntArray) -> None:
    """Market by market: a defection (a non-designated member bid) is detected where the market showed it won
    or showed its bid; detected with no punishment running, the ring punishes for ``rounds`` rounds, else one
    round of punishment passes."""
    for m in range(bids.shape[0]):
        detected = False
        for i in range(bids.shape[1]):
            defected = not designated[m, i] and not colluding[m, i] and bids[m, i] > 0
            if see_winners:
                detected |= winners[m, i] and defected
            if see_bids:
                detected |= defected and shown[m, i] > 0
        out[m] = rounds if detected and punishing[m] == 0 else max(punishing[m] - 1, 0)


AGENT = AgentType(name="cartel", version=VERSION, summary="bid-rotation ring that punishes defection it can see",
                  act=act, init=init, update=update, params_model=CartelParams)
