"""Shared pieces of agents with false-name identities (sybil, audit evader).

Each agent owns ``m`` consecutive seats: its own and m - 1 false names, which carry its value.
Per round it either bids alone (false names abstain with a zero bid; they never leave, so no
withdrawal fine) or splits (every identity bids the agent's competitive bid). It learns the
average utility of each choice from its own experience, exploring with probability ``explore``.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents._competitive import competitive_bids
from mecharena.agents.base import Action, Draws, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray


class IdentityParams(StrictModel):
    m: int = Field(2, ge=2, le=16, description="identities per agent (its own seat and m - 1 false names)")
    explore: float = Field(0.1, ge=0, le=1, description="chance of trying the other choice")


@dataclass(frozen=True, slots=True)
class IdentityState:
    total: FloatArray  # (B, A, 2)  summed utility of bidding alone / splitting, per agent A
    count: FloatArray  # (B, A, 2)


def init(context: MarketContext, params: IdentityParams, seats: int, draws: Draws) -> IdentityState:
    shape = (draws.markets, seats // params.m, 2)
    return IdentityState(np.zeros(shape), np.zeros(shape))


def split_gain(state: IdentityState) -> FloatArray:
    """(B, A) learned average utility of splitting minus bidding alone; +inf until splitting was
    tried, -inf until bidding alone was tried (so each choice gets tried)."""
    mean = state.total / np.maximum(state.count, 1)
    gain = mean[:, :, 1] - mean[:, :, 0]
    return np.where(state.count[:, :, 1] == 0, np.inf, np.where(state.count[:, :, 0] == 0, -np.inf, gain))


def act(context: MarketContext, params: IdentityParams, values: FloatArray, draws: Draws,
        prefer_split) -> Action:
    _, seats = values.shape
    agents = seats // params.m
    explore = draws.uniform("explore", agents) < params.explore
    split = prefer_split ^ explore  # (B, A)
    bids = competitive_bids(context, values)
    own = (np.arange(seats) % params.m == 0)[None, :]
    split_seats = np.repeat(split, params.m, axis=1)
    return Action(bids=np.where(own | split_seats, bids, 0.0), memo=split)


def update(params: IdentityParams, state: IdentityState, action: Action, reward: FloatArray) -> IdentityState:
    """``reward`` (B, A): the utility credited to the choice each agent made."""
    choice = np.stack([~action.memo, action.memo], axis=2).astype(float)
    return dataclasses.replace(state, total=state.total + choice * reward[:, :, None], count=state.count + choice)
