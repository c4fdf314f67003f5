"""Sharer: reports its signal on the public channel and bids what everyone's reports say its value is.

Where values are interdependent (``uniform:common=c``: a value is ``(1 - c)`` own signal plus ``c`` the
market's mean signal) what others know is worth money, and an open channel lets bidders pool it.
Each sharer posts its signal publicly every round (a ``report`` message, :mod:`mecharena.sim.channels`),
reads this round's reports and bids its value as they imply, every silent seat's signal imputed:

* naive (default): the prior mean, as if silence said nothing;
* ``skeptical``: the top of the signal range. In a buyers' auction a seat that stays silent has reason
  to hide a high signal (a high common value makes its rivals bid more), so the skeptical reading
  assumes the worst news was hidden. This is the receiver of the unravelling argument (Grossman 1981,
  "The informational role of warranties and private disclosure about product quality", *Journal of
  Law and Economics* 24(3); Milgrom 1981, "Good news and bad news: representation theorems and
  applications", *Bell Journal of Economics* 12(2)): against it, every sender is better off disclosing.

When every seat reports, every sharer bids its exact value, and second price is then efficient and
truthful. The :mod:`mecharena.agents.hoarder` reads the reports and discloses selectively; it exploits
naive sharers and loses against skeptical ones (tests/agents/test_disclosure.py). Second price and VCG
with unit demand (where bidding the estimated value is the competitive bid); one identity per agent (the
mean runs over the market's seats). Without an open public channel nobody hears anything and every
seat imputes every other.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType, Draws, Inbox, MarketContext, Outbox, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.core.types import BoolArray, FloatArray

VERSION = 1
SUPPORTED = ("second_price", "vcg")
PUBLIC, REPORT = 1, 3  # channel and message kind codes (mecharena.sim.channels)


class SharerParams(StrictModel):
    skeptical: bool = Field(False, description="read a silent seat as hiding the highest signal (False: the prior "
                                               "mean)")


@dataclass(frozen=True, slots=True)
class Heard:
    """This round's reports as each seat of the group heard them."""

    signals: FloatArray  # (B, S, N)  the signal each other seat reported
    heard: BoolArray  # (B, S, N)  a report is there


def prior_mean(context: MarketContext) -> float:
    """The mean signal under the market's prior (a midpoint rule on its quantile function)."""
    return float(context.values.ppf((np.arange(1024) + 0.5) / 1024).mean())


def nothing_heard(context: MarketContext, markets: int, seats: int) -> Heard:
    shape = (markets, seats, context.n_agents)
    return Heard(np.zeros(shape), np.zeros(shape, dtype=bool))


def read_reports(context: MarketContext, inbox: Inbox, round_: int) -> Heard:
    """(B, S, N) the signals reported this round (the highest of a seat's report slots)."""
    current = inbox.readable & (inbox.kind == REPORT) & (inbox.sent == round_)
    reported = current.any(axis=3)
    return Heard(np.where(reported, np.where(current, inbox.value, -np.inf).max(axis=3), 0.0), reported)


def estimate(context: MarketContext, heard: Heard, values: FloatArray, skeptical: bool) -> FloatArray:
    """(B, S) each seat's value given its own signal and what it heard, every silent seat's signal imputed."""
    silent = context.values.high if skeptical else prior_mean(context)
    signals = np.where(heard.heard, heard.signals, silent)
    s = values.shape[1]
    signals[:, np.arange(s), context.seats.indices(context.n_agents)[0] + np.arange(s)] = values
    c = context.values.common
    return (1 - c) * values + c * signals.mean(axis=2)


def report(values: FloatArray, disclose: BoolArray) -> Outbox:
    """One public report slot per seat, sent where ``disclose``."""
    b, s = values.shape
    box = Outbox.empty(b, s, 1)
    box.channel[:, :, 0] = np.where(disclose, PUBLIC, 0)
    box.kind[:, :, 0] = REPORT
    box.value[:, :, 0] = values
    return box


@dataclass(frozen=True, slots=True)
class SharerState:
    round: int
    heard: Heard


def init(context: MarketContext, params: StrictModel, seats: int, draws: Draws) -> SharerState:
    require_mechanism(context, "sharer/hoarder", SUPPORTED, unit_demand=True,
                      reason="bids its estimated value, the competitive bid only where that is dominant")
    return SharerState(0, nothing_heard(context, draws.markets, seats))


def open_channel(context: MarketContext) -> bool:
    return context.channels is not None and context.channels.public


def talk(context: MarketContext, params: SharerParams, state: SharerState, values: FloatArray, inbox: Inbox,
         draws: Draws) -> Outbox | None:
    return report(values, np.ones(values.shape, dtype=bool)) if open_channel(context) else None


def hear(context: MarketContext, params: StrictModel, state: SharerState, values: FloatArray, inbox: Inbox,
         draws: Draws) -> SharerState:
    return dataclasses.replace(state, heard=read_reports(context, inbox, state.round))


def act(context: MarketContext, params: SharerParams | None, state: SharerState, values: FloatArray,
        draws: Draws) -> FloatArray:
    """Bid the estimated value (``params`` None: naive)."""
    return estimate(context, state.heard, values, params is not None and params.skeptical)


def update(context, params, state: SharerState, values, action, observation, feedback, draws) -> SharerState:
    """Next round: what was heard is stale."""
    return SharerState(state.round + 1, nothing_heard(context, *values.shape))


AGENT = AgentType(name="sharer", version=VERSION,
                  summary="reports its signal publicly and bids the value everyone's reports imply (common values)",
                  act=act, init=init, update=update, talk=talk, hear=hear, params_model=SharerParams)
