"""Talking cartel: a bid-rigging ring that agrees on each round's winner through message channels.

Rule (one-sided unit-demand auctions: first and second price, uniform price, pay-as-bid, VCG,
posted price). The group's k seats form one ring per market. Before bidding, every member sends each
other member a ``propose`` message (:mod:`mecharena.sim.channels`) naming a designated winner and a
bid ``cap``: with ``designate="knockout"`` each member proposes itself with its value (a pre-auction
knockout: the highest proposal designates the winner; Graham and Marshall 1987), with ``"rotation"``
the member whose turn it is (round mod k). A member that has heard this round's proposal from every
other member is *in the agreement*: the designated member bids as if the ring's other members did not
exist (truthful where that is dominant; the Bayes-Nash shade for n - k + 1 bidders in first price and
pay-as-bid), the others bid at most the cap (0: abstain); all are marked as colluding. In a buyers'
auction the ring pushes the price *down*: it removes its own members' competition for the item.

Without a usable channel (none open, the chosen one closed, ``max_messages`` too small to reach every
member, or a delayed channel, so no proposal arrives in time) the ring cannot agree and every member
bids competitively: truthful in second price, the Bayes-Nash bid for n bidders in first price.

Enforcement is as in :mod:`mecharena.agents.cartel`: a non-designated member whose value exceeds
``threshold`` is tempted to defect (bid competitively); where the market reveals the winner or the
bids the ring can see a defection, so members defect only with probability ``temptation`` and a
detected defection starts ``punish_rounds`` rounds of competitive bidding (announced to the others
with an ``accuse`` message naming the defector). A ring fined for colluding (an audit, or the
operator's detector on a monitored channel) lies low for ``lie_low`` rounds. With ``share`` > 0 a
designated member that won pays ``share`` of its gain to the other members the next round, as side
payments on private messages (bounded by the channel's cap and its means). ``follow=False`` makes
the members announce agreements but bid competitively: cheap talk, for testing detectors.
Sources: Graham and Marshall (1987); Marshall and Marx (2009, 2012) on how communication and the
information a mechanism reveals support collusion.
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, AgentType, Draws, Inbox, MarketContext, Outbox, require_mechanism
from mecharena.agents.cartel import SUPPORTED, can_detect
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray, IntArray

VERSION = 2
PUBLIC, PRIVATE, COALITION = 1, 2, 3  # channel codes (mecharena.sim.channels.CHANNELS)
PROPOSE, ACCUSE = 1, 4  # message kinds (mecharena.sim.channels.KINDS)


class TalkingCartelParams(StrictModel):
    designate: Literal["knockout", "rotation"] = Field("knockout", description="how the winner is chosen")
    cap: float = Field(0.0, ge=0, le=1000, description="bid cap of the non-designated members (0: abstain)")
    channel: Literal["auto", "private", "coalition", "public"] = Field(
        "auto", description="the channel the ring talks on (auto: private, else coalition, else public)")
    share: float = Field(0.0, ge=0, le=1, description="share of the winner's gain paid to the other members")
    threshold: float = Field(0.5, ge=0, le=1000, description="value above which a non-designated member is tempted")
    temptation: float = Field(0.05, ge=0, le=1, description="chance a tempted member defects when it can be caught")
    punish_rounds: int = Field(5, ge=0, le=1000, description="rounds of competitive bidding after a detected defection")
    lie_low: int = Field(5, ge=0, le=1000, description="rounds of competitive bidding after the ring is fined")
    follow: bool = Field(True, description="bid by the agreement (False: announce it but bid competitively)")


@dataclass(frozen=True, slots=True)
class TalkingCartelState:
    round: IntArray  # (B,)  rounds played (the round messages are stamped with)
    punishing: IntArray  # (B,)  punishment rounds left
    quiet: IntArray  # (B,)  lie-low rounds left after a fine
    agreed: BoolArray  # (B, S)  heard this round's agreement
    designated: BoolArray  # (B, S)  the agreement's winner
    owed: FloatArray  # (B, S)  side payment to share out this round
    defector: IntArray  # (B,)  seat of the last detected defector (-1: none), accused this round


def channel(context: MarketContext, params: TalkingCartelParams) -> int:
    """The channel code the ring talks on, 0 where it cannot (no channel open, the chosen one closed)."""
    policy = context.channels
    if policy is None:
        return 0
    order = {"auto": ("private", "coalition", "public")}.get(params.channel, (params.channel,))
    for name in order:
        if getattr(policy, name):
            return {"public": PUBLIC, "private": PRIVATE, "coalition": COALITION}[name]
    return 0


def init(context: MarketContext, params: TalkingCartelParams, seats: int, draws: Draws) -> TalkingCartelState:
    require_mechanism(context, "talking_cartel", SUPPORTED, unit_demand=True)
    b = draws.markets
    zeros = np.zeros(b, dtype=np.int64)
    return TalkingCartelState(zeros, zeros.copy(), zeros.copy(), np.zeros((b, seats), bool), np.zeros((b, seats), bool),
                              np.zeros((b, seats)), zeros - 1)


def _first(context: MarketContext) -> int:
    return context.seats.indices(context.n_agents)[0]


def talk(context: MarketContext, params: TalkingCartelParams, state: TalkingCartelState, values: FloatArray,
         inbox: Inbox, draws: Draws) -> Outbox | None:
    """Each member proposes to every other member (one slot per partner on a private channel, one slot
    otherwise); the accused defector and side payments ride along."""
    code = channel(context, params)
    b, k = values.shape
    if code == 0 or k < 2:
        return None
    first = _first(context)
    members = first + np.arange(k)
    slots = k - 1 if code == PRIVATE else 1
    box = Outbox.empty(b, k, slots + 1)
    active = (state.punishing == 0) & (state.quiet == 0)
    winner = members[None, :] if params.designate == "knockout" else \
        np.broadcast_to(first + (state.round % k)[:, None], (b, k))
    value = values if params.designate == "knockout" else np.zeros((b, k))
    for j in range(slots):
        box.channel[:, :, j] = np.where(active[:, None], code, 0)
        box.kind[:, :, j] = PROPOSE
        box.winner[:, :, j] = winner
        box.cap[:, :, j] = params.cap
        box.value[:, :, j] = value
        if code == PRIVATE:  # member i writes to the others in seat order
            to = np.delete(np.tile(members, (k, 1)), np.arange(k) * (k + 1)).reshape(k, k - 1)[:, j]
            box.to[:, :, j] = to[None, :]
            box.payment[:, :, j] = np.where(state.owed > 0, state.owed / (k - 1), 0.0)
            box.channel[:, :, j] = np.where(active[:, None] | (state.owed > 0), code, 0)
    accuse = (state.defector >= 0)[:, None] & (np.arange(k)[None, :] == 0)  # the first member speaks for the ring
    box.channel[:, :, slots] = np.where(accuse, code, 0)
    box.to[:, :, slots] = first + 1  # on a private channel, to the second member
    box.kind[:, :, slots] = ACCUSE
    box.winner[:, :, slots] = state.defector[:, None]
    return box


def hear(context: MarketContext, params: TalkingCartelParams, state: TalkingCartelState, values: FloatArray,
         inbox: Inbox, draws: Draws) -> TalkingCartelState:
    """A member is in the agreement when this round's proposal of every other member reached it."""
    b, k = values.shape
    first = _first(context)
    ring = inbox.kind[:, :, first:first + k] == PROPOSE  # (B, S, k, M): from ring members only
    current = ring & (inbox.sent[:, :, first:first + k] == state.round[:, None, None, None])
    heard = current.any(axis=3)  # (B, S, k)
    others = ~np.eye(k, dtype=bool)[None]
    agreed = (heard | ~others).all(axis=2) & (k >= 2)
    if params.designate == "knockout":
        reported = np.where(current, inbox.value[:, :, first:first + k], -np.inf).max(axis=3)  # (B, S, k)
        own = np.eye(k, dtype=bool)[None]
        reported = np.where(own, values[:, :, None], reported)
        designated = np.argmax(reported, axis=2) == np.arange(k)[None, :]
    else:
        designated = np.broadcast_to((state.round % k)[:, None] == np.arange(k)[None, :], (b, k))
    return dataclasses.replace(state, agreed=agreed & ((state.punishing == 0) & (state.quiet == 0))[:, None],
                               designated=designated.copy())


def act(context: MarketContext, params: TalkingCartelParams, state: TalkingCartelState, values: FloatArray,
        draws: Draws) -> Action:
    k = values.shape[1]
    designated = state.designated
    tempted = ~designated & (values > params.threshold)
    if can_detect(context):
        tempted &= draws.uniform("defect", k) < params.temptation
    open_bids = competitive_bids(context, values)
    honest = ~state.agreed | tempted | (not params.follow)
    ring = competitive_bids(context, values, rivals=context.n_agents - k)
    bids = np.where(honest, open_bids, np.where(designated, ring, np.minimum(values, params.cap)))
    return Action(bids=bids, colluding=~honest, memo=designated & state.agreed)


def update(context, params: TalkingCartelParams, state: TalkingCartelState, values, action, observation, feedback,
           draws) -> TalkingCartelState:
    agreed = state.agreed
    defected = agreed & ~action.memo & ~action.colluding & (action.bids > params.cap)
    seen = np.zeros_like(defected)  # defections the market revealed
    if observation.winners is not None:
        seen |= observation.winners[:, context.seats] & defected
    if observation.bids is not None:
        seen |= defected & (observation.bids[:, context.seats] > params.cap)
    detected = seen.any(axis=1) & (state.punishing == 0)
    defector = np.where(detected, _first(context) + np.argmax(seen, axis=1), -1)
    fined = ((feedback.penalty > 0) & action.colluding).any(axis=1)
    won = action.memo & action.colluding & (feedback.allocation > 0)
    owed = np.where(won, params.share * np.maximum(feedback.utility, 0.0), 0.0)
    return dataclasses.replace(
        state, round=state.round + 1,
        punishing=np.where(detected, params.punish_rounds, np.maximum(state.punishing - 1, 0)),
        quiet=np.where(fined, params.lie_low, np.maximum(state.quiet - 1, 0)),
        agreed=np.zeros_like(agreed), owed=owed, defector=defector)


AGENT = AgentType(name="talking_cartel", version=VERSION,
                  summary="bid-rigging ring that agrees on each round's winner through message channels",
                  act=act, init=init, update=update, talk=talk, hear=hear, params_model=TalkingCartelParams)
