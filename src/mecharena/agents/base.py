"""What an agent type is: a batched, possibly adaptive policy.

An agent type acts for a *group* of seats in all B markets at once: it receives the values of
its seats (B, S[, K]) and returns an :class:`Action` of the same leading shape; no per-agent
Python objects. Adaptive types keep a state (any frozen structure of arrays with leading axes
(B, S)) that :func:`AgentType.update` rebuilds from what the market revealed
(:class:`Observation`, public) and what each seat privately learned (:class:`Feedback`).
Randomness comes only from :class:`Draws`, keyed by seed, group, round and market.

Where the episode opens message channels (:mod:`mecharena.sim.channels`), a type may also
``talk`` before acting (an :class:`Outbox` of fixed-width numeric messages) and ``hear`` what the
channels delivered (an :class:`Inbox`) into its state; by default it says nothing and ignores its mail.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mecharena.agents.values import ValueDistribution
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import Draws
from mecharena.core.types import BoolArray, FloatArray, IntArray
from mecharena.mechanisms.base import MarketSpec, Mechanism, mechanism_draws
from mecharena.mechanisms.policy import Enforcement, InformationPolicy


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Public facts about the market: the rules, its size and the value priors.

    ``values`` is the prior of the group acting (the market's, unless the group has its own) and
    ``priors`` every seat's, where groups' priors differ (asymmetric bidders; None: all ``values``).
    """

    mechanism: Mechanism
    config: Any
    spec: MarketSpec
    n_agents: int
    values: ValueDistribution
    information: InformationPolicy = InformationPolicy()  # noqa: RUF009 (frozen models: safe to share)
    enforcement: Enforcement = Enforcement()  # noqa: RUF009
    seats: slice = field(default_factory=lambda: slice(None))  # the seats of the group acting or updating
    channels: Any = None  # the episode's ChannelPolicy (mecharena.sim.channels); None: agents cannot talk
    priors: tuple[ValueDistribution, ...] | None = None  # (N,) each seat's prior; None: every seat's is values

    def prior(self, seat: int) -> ValueDistribution:
        """The value prior of ``seat``."""
        return self.values if self.priors is None else self.priors[seat]

    def acting(self, seats: slice) -> "MarketContext":
        """The context a group on ``seats`` acts in: its seats and its own prior as ``values``."""
        return replace(self, seats=seats, values=self.prior(seats.start or 0))

    @property
    def selling(self) -> BoolArray:
        """(S,) True for the group's seats that sell (two-sided markets); all False otherwise."""
        n = len(range(*self.seats.indices(self.n_agents)))
        if self.spec.sellers is None:
            return np.zeros(n, dtype=bool)
        return self.spec.sellers[self.seats]

    @property
    def visible_reserve(self) -> float:
        """The reserve as agents know it: 0 when the policy or the config keeps it secret."""
        public = self.information.reserve and getattr(self.config, "reserve_visibility", "public") == "public"
        return float(getattr(self.config, "reserve_price", 0.0)) if public else 0.0


@dataclass(frozen=True, slots=True)
class Action:
    """What a group does in one round. Arrays have leading shape (B, S)."""

    bids: FloatArray  # (B, S[, K])
    enter: BoolArray | None = None  # (B, S)  False: the seat sits out (its bid is ignored)
    times: FloatArray | None = None  # (B, S)  order times in [0, 1] (sequential mechanisms)
    colluding: BoolArray | None = None  # (B, S)  bidding under a collusive agreement (found by audits)
    audit: BoolArray | None = None  # (B,)  markets the group asks the enforcement policy to audit this round
    # Actions beyond the bid that the mechanism declares (mecharena.mechanisms.schema), name -> (B, S);
    # a field left out takes its declared default.
    fields: dict[str, FloatArray] | None = None
    memo: Any = None  # private to the group: handed back to its ``update`` (e.g. the arm it drew)
    # How the group decided, for the ledger's ``traces``: JSON-ready dicts, each with the group's
    # own ``market`` (0..B-1) and ``seat`` (0..S-1) indices plus ``kind`` and ``text``
    # (e.g. a prompt, a model's answer, a tool call, the parsed action).
    notes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """What the market announced after a round, per its information policy (None: hidden)."""

    price: FloatArray  # (B,)  mean price per unit sold; NaN when hidden or nothing sold
    winners: BoolArray | None  # (B, N)  seats allocated
    bids: FloatArray | None  # (B, N[, K])  every bid (0: sat out or abstained)
    bid_quantiles: FloatArray | None  # (B, 5)  min, quartiles, max of the positive bids; NaN if none


@dataclass(frozen=True, slots=True)
class Feedback:
    """What each seat privately learned about itself in a round."""

    allocation: FloatArray  # (B, S)
    paid: FloatArray  # (B, S)  payments minus receipts
    penalty: FloatArray  # (B, S)  fines charged this round
    utility: FloatArray  # (B, S)  net of fines
    active: BoolArray  # (B, S)  took part this round
    state: dict[str, FloatArray] = field(default_factory=dict)  # the mechanism's per-seat state after the round


@dataclass(frozen=True, slots=True)
class Outbox:
    """What a group says in one round: up to M message slots per seat, arrays of leading shape (B, S, M).

    A slot with ``channel`` 0 is empty. Channel codes, message kinds and the rules for a valid
    message (or why it is dropped) are in :mod:`mecharena.sim.channels`; seats are global indices.
    """

    channel: IntArray  # (B, S, M)  0 empty, 1 public, 2 private, 3 coalition
    to: IntArray  # (B, S, M)  the receiving seat of a private message (ignored otherwise)
    kind: IntArray  # (B, S, M)  message kind code (propose, report, ...)
    winner: IntArray  # (B, S, M)  a seat the message names (the designated winner), -1: none
    cap: FloatArray  # (B, S, M)  a proposed bid cap
    value: FloatArray  # (B, S, M)  a reported number (a value, a bid)
    payment: FloatArray  # (B, S, M)  side payment to ``to`` (private messages only), settled this round
    state: Any = None  # the group's state after speaking (None: unchanged)

    @classmethod
    def empty(cls, markets: int, seats: int, slots: int) -> "Outbox":
        """M empty slots per seat, to fill in."""
        ints = np.zeros((markets, seats, slots), dtype=np.int64)
        floats = np.zeros((markets, seats, slots))
        return cls(ints, ints - 1, ints.copy(), ints - 1, floats, floats.copy(), floats.copy())


@dataclass(frozen=True, slots=True)
class Inbox:
    """What each seat of a group can read this round: slot m of sender j's messages as (B, S, N, M)
    arrays (``channel`` 0: nothing there for this seat). Senders are global seats."""

    channel: IntArray  # (B, S, N, M)
    kind: IntArray  # (B, S, N, M)
    winner: IntArray  # (B, S, N, M)
    cap: FloatArray  # (B, S, N, M)
    value: FloatArray  # (B, S, N, M)
    payment: FloatArray  # (B, S, N, M)
    sent: IntArray  # (B, S, N, M)  the round it was sent (earlier than now on a delayed channel)

    @property
    def readable(self) -> BoolArray:
        """(B, S, N, M) True where there is a message for the seat."""
        return self.channel > 0


class NoParams(StrictModel):
    """An agent type without parameters."""


def _no_state(context: MarketContext, params: Any, seats: int, draws: Draws) -> None:
    return None


def _keep_state(context, params, state, values, action, observation, feedback, draws):
    return state


def _say_nothing(context, params, state, values, inbox, draws) -> None:
    return None


def _ignore_mail(context, params, state, values, inbox, draws):
    return state


@dataclass(frozen=True, slots=True)
class AgentType:
    """A registered agent type.

    ``act(context, params, state, values, draws) -> Action | bids``;
    ``init(context, params, seats, draws) -> state``;
    ``update(context, params, state, values, action, observation, feedback, draws) -> state``;
    where channels are open, before acting:
    ``talk(context, params, state, values, inbox, draws) -> Outbox | None`` (``inbox``: what the
    group read in the previous round; None: say nothing) and, once this round's mail is delivered,
    ``hear(context, params, state, values, inbox, draws) -> state``.
    """

    name: str
    version: int
    summary: str
    act: Callable[..., Action | FloatArray]
    init: Callable[..., Any] = _no_state
    update: Callable[..., Any] = _keep_state
    params_model: type[StrictModel] = NoParams
    identities: Callable[[Any], int] = lambda params: 1  # seats one agent occupies (sybils: m)
    talk: Callable[..., "Outbox | None"] = _say_nothing
    hear: Callable[..., Any] = _ignore_mail

    @property
    def talks(self) -> bool:
        return self.talk is not _say_nothing or self.hear is not _ignore_mail

    @property
    def adaptive(self) -> bool:
        return self.update is not _keep_state


def require_mechanism(context: MarketContext, agent: str, supported: tuple[str, ...], *, unit_demand: bool = False,
                      reason: str = "") -> None:
    """Raise :class:`ConfigError` unless the market's mechanism is one the agent can play.

    The message reads ``AGENT [REASON; it ]supports A, B[ (unit demand)], got NAME``.
    """
    name = context.mechanism.name
    if name in supported and not (unit_demand and context.spec.units_per_agent):
        return
    lead = f"{agent} {reason}; it supports" if reason else f"{agent} supports"
    raise ConfigError(f"{lead} {', '.join(supported)}{' (unit demand)' if unit_demand else ''}, got {name}")


def require_one_bid(context: MarketContext, agent: str) -> None:
    """Raise :class:`ConfigError` unless the market takes one bid per seat (no units, partners or orders)."""
    if context.spec.value_width or context.spec.orders_per_agent:
        raise ConfigError(f"{agent} bids one unit per seat; {context.mechanism.name} is configured for several "
                          "units, partners or orders per agent")


def initial_own_state(context: MarketContext, draws: Draws) -> dict[str, FloatArray]:
    """The group's per-seat mechanism state before the first round, (B, S) per field: what
    :attr:`Feedback.state` holds after each round ({} for a mechanism of one round). ``draws``: the
    group's ``init`` draws (their seed and markets are the episode's)."""
    if not context.mechanism.stateful:
        return {}
    initial = context.mechanism.initial(context.config, draws.markets, context.n_agents,
                                        mechanism_draws(draws.seed, draws.start, draws.markets))
    return {f.name: initial[f.name][:, context.seats] for f in context.mechanism.state if f.per == "seat"}


def as_action(result: Action | FloatArray) -> Action:
    return result if isinstance(result, Action) else Action(bids=np.asarray(result, dtype=float))
