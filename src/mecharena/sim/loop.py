"""The round loop: reveal -> agents act -> clear -> settle payments and penalties -> agents update.

:func:`play_round` is a pure function of the episode's fixed :class:`Episode` (the rules and the
population) and the :class:`LoopState`; it returns the next state and a :class:`RoundRecord`
with everything that happened, which the ledger stores and the metrics summarise.

Settlement beyond the mechanism's own payments:

* a seat that took part last round and sits out this one has *exited* and pays the
  withdrawal penalty;
* each market-round is audited with the audit probability, and wherever a group asks for an audit
  (``Action.audit``: a regulator acting on what the market revealed before); an audit fines every
  seat that bid under a collusive agreement (collusion penalty) and, per false-name identity that
  bid, the agent owning it (shill penalty);
* an agent with several identities is one economic agent: its gain is its value for the units
  all its identities won (unit demand: at most one), its payments are theirs summed, and its
  utility is booked on its own seat.

Where the episode opens message channels (``channels``, see :mod:`mecharena.sim.channels`), a talk
phase comes first: every group that talks sends its :class:`~mecharena.agents.base.Outbox` (reading
what it heard last round), the channels deliver what is due (this round's messages, or those sent
``delay`` rounds ago) and each group hears its inbox before acting. Settlement then also fines the
seats the operator's detector flags on a monitored channel and moves side payments between seats.
Without channels none of this runs and a round is what it was before channels existed, bit for bit.

Every round clears through :func:`mecharena.mechanisms.base.advance` from the mechanism's state
(``LoopState.mechanism``: empty for a mechanism of one round, whose outcome is then its kernel's, bit
for bit); the record keeps the state before and after the round, the actions beyond bids the
mechanism declares (each group's, or the declared default) and the step's events, and each group's
feedback carries its seats' state after the round.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np

from mecharena.agents._sums import block_sum
from mecharena.agents.base import Action, Draws, Feedback, MarketContext, Observation, as_action
from mecharena.agents.population import Population
from mecharena.agents.values import ValueDistribution, sample_priors
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import market_uniforms
from mecharena.core.types import BoolArray, FloatArray, IntArray
from mecharena.mechanisms import REGISTRY as MECHANISMS
from mecharena.mechanisms.base import MarketSpec, Mechanism, Outcome, Step, advance, mechanism_draws
from mecharena.mechanisms.schema import State
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim import channels as talk
from mecharena.sim.channels import ChannelPolicy, ChannelState, Talk

MAX_MARKETS = 10_000_000
MAX_ROUNDS = 1_000_000
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True, slots=True)
class Episode:
    """Everything fixed during an episode (the params, in the pure-function sense)."""

    context: MarketContext
    population: Population
    seed: int
    markets: int  # B
    start: int = 0  # index of the first market, for runs split into blocks
    channels: ChannelPolicy | None = None  # None: agents cannot talk

    @property
    def owner(self) -> IntArray:
        return self.population.owner


@dataclass(frozen=True, slots=True)
class LoopState:
    """What changes from round to round."""

    round: int
    agents: tuple[Any, ...]  # one state per population group
    active: BoolArray  # (B, N)  took part in the previous round
    channels: ChannelState | None = None  # messages in flight and means for side payments
    mechanism: State = field(default_factory=dict)  # the mechanism's own state ({}: stateless)


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """Everything that happened in one round of B markets."""

    round: int
    values: FloatArray  # (B, N[, K])  values used for clearing (false names carry their owner's)
    bids: FloatArray  # (B, N[, K])  bids as cleared (0 where the seat sat out)
    times: FloatArray | None  # (B, N)
    priority: FloatArray  # (B, N)
    active: BoolArray  # (B, N)
    colluding: BoolArray  # (B, N)
    exited: BoolArray  # (B, N)
    audited: BoolArray  # (B,)
    penalties: FloatArray  # (B, N)
    outcome: Outcome
    utility: FloatArray  # (B, N)  per economic agent (false names 0), net of penalties
    welfare: FloatArray  # (B,)  realized, identities merged
    observation: Observation
    digest: IntArray  # (B,) uint64 digest of what each market revealed
    notes: tuple[dict[str, Any], ...] = ()  # agents' decision traces (see Action.notes), seats and markets global
    talk: Talk | None = None  # messages, detector flags and side payments (episodes with channels)
    signals: FloatArray | None = None  # (B, N)  what agents knew, where values are interdependent (else: values)
    actions: State = field(default_factory=dict)  # action fields beyond bids, as the mechanism took them
    state: State = field(default_factory=dict)  # the mechanism's state before the round ({}: stateless)
    next_state: State = field(default_factory=dict)  # ... and after it
    events: State = field(default_factory=dict)  # what the mechanism's step did (e.g. escrow deposited, released)


def make_episode(
    mechanism: Mechanism,
    config: Any,
    population: Population,
    *,
    markets: int,
    seed: int,
    values: ValueDistribution | None = None,
    information: InformationPolicy | None = None,
    enforcement: Enforcement | None = None,
    start: int = 0,
    channels: ChannelPolicy | dict[str, Any] | str | None = None,
) -> Episode:
    """Validate and assemble an :class:`Episode`.

    ``channels`` (a :class:`~mecharena.sim.channels.ChannelPolicy`, its dict or text such as
    ``"private,delay=1"``) opens message channels; None (the default) opens none.

    Raises:
        ConfigError: markets out of range, a population that the mechanism cannot host, common values
            where the market is two-sided or has multi-unit demand, or a channel policy out of range.
    """
    if not 1 <= markets <= MAX_MARKETS:
        raise ConfigError(f"markets must be in [1, {MAX_MARKETS}], got {markets}")
    config = mechanism.config(config)
    n = population.size
    spec = mechanism.market_spec(config, n)
    if (population.owner != np.arange(n)).any() and (not mechanism.merges_identities or spec.value_width):
        mergeable = ", ".join(name for name, m in MECHANISMS.items() if m.merges_identities)
        configured = f" {_value_layout(spec)}" if mechanism.merges_identities else ""
        raise ConfigError(
            f"agents with several identities need a one-sided unit-demand mechanism that declares "
            f"merges_identities ({mergeable}), got {mechanism.name}{configured}"
        )
    values = values or ValueDistribution()
    if values.common > 0 and (spec.value_width or spec.sellers is not None):
        raise ConfigError(f"common values (common={values.common}) need one-sided unit demand: one signal per "
                          f"buyer; {mechanism.name} is configured {'two-sided' if spec.sellers is not None else ''}"
                          f"{'' if spec.sellers is not None else _value_layout(spec)}")
    policy = talk.parse_channels(channels)
    if policy is not None:
        policy.check(n)
    values, priors = population.priors(values)
    context = MarketContext(mechanism, config, spec, n, values, information or InformationPolicy(),
                            enforcement or Enforcement(), channels=policy, priors=priors)
    return Episode(context, population, seed, markets, start, policy)


def _value_layout(spec: MarketSpec) -> str:
    return f"for demand {spec.units_per_agent}" if spec.units_per_agent else f"for matching ({spec.partners} partners)"


def initial_state(episode: Episode) -> LoopState:
    """Every group's initial state; every seat starts in the market."""
    states = tuple(
        g.agent.init(episode.context.acting(g.seats), g.params, g.stop - g.start,
                     Draws(episode.seed, ("init", i), episode.start, episode.markets))
        for i, g in enumerate(episode.population.groups)
    )
    n = episode.population.size
    channel_state = None if episode.channels is None else talk.initial_state(episode.channels, episode.markets, n)
    ctx = episode.context
    draws = mechanism_draws(episode.seed, episode.start, episode.markets)
    return LoopState(0, states, np.ones((episode.markets, n), dtype=bool), channel_state,
                     ctx.mechanism.initial(ctx.config, episode.markets, n, draws))


def gather_actions(episode: Episode, state: LoopState, values: FloatArray) -> tuple[list[Action], Action]:
    """Each group's action, and all of them side by side (B, N)."""
    ctx, b = episode.context, episode.markets
    orders = (ctx.spec.orders_per_agent,) if ctx.spec.orders_per_agent else ()
    actions = []
    for i, g in enumerate(episode.population.groups):
        draws = Draws(episode.seed, ("agent", i, state.round), episode.start, b)
        action = as_action(g.agent.act(ctx.acting(g.seats), g.params, state.agents[i], values[:, g.seats],
                                       draws))
        expected = values[:, g.seats].shape + orders
        if action.bids.shape != expected:
            raise ConfigError(f"agent {g.agent.name} returned bids of shape {action.bids.shape}, expected {expected}")
        actions.append(action)
    bids = np.concatenate([a.bids for a in actions], axis=1)
    enter = _flags(episode, [a.enter for a in actions], True)
    colluding = _flags(episode, [a.colluding for a in actions], False)
    fields = _action_fields(episode, actions)
    times = None
    if ctx.mechanism.uses_times and any(a.times is not None for a in actions):
        arrival = seat_uniforms(episode, ("times", state.round), orders)
        if orders:  # pass by pass, random order within a pass
            arrival = (np.arange(orders[0]) + arrival) / orders[0]
        times = np.concatenate([arrival[:, g.seats] if a.times is None else a.times
                                for g, a in zip(episode.population.groups, actions, strict=True)], axis=1)
    asked = [a.audit for a in actions if a.audit is not None]
    audit = np.logical_or.reduce(asked) if asked else None
    return actions, Action(bids=bids, enter=enter, times=times, colluding=colluding, fields=fields, audit=audit)


def _flags(episode: Episode, parts: list[BoolArray | None], default: bool) -> BoolArray:
    """(B, N) each group's (B, S) flags side by side, ``default`` for a group that gives none."""
    groups, b = episode.population.groups, episode.markets
    if all(x is None or (isinstance(x, np.ndarray) and x.dtype == np.bool_ and x.shape == (b, g.stop - g.start))
           for g, x in zip(groups, parts, strict=True)):
        flags = np.full((b, episode.population.size), default)
        for g, x in zip(groups, parts, strict=True):
            if x is not None:
                flags[:, g.seats] = x
        return flags
    return np.concatenate([np.full((b, g.stop - g.start), default) if x is None else x
                           for g, x in zip(groups, parts, strict=True)], 1)


def _action_fields(episode: Episode, actions: list[Action]) -> dict[str, FloatArray]:
    """(B, N) per action field the mechanism declares beyond bids; a group that leaves one out takes its default."""
    mechanism, b = episode.context.mechanism, episode.markets
    declared = {a.name: a for a in mechanism.actions}
    columns: dict[str, list[FloatArray]] = {name: [] for name in declared}
    for g, action in zip(episode.population.groups, actions, strict=True):
        given, shape = action.fields or {}, (b, g.stop - g.start)
        if extra := sorted(set(given) - set(declared)):
            raise ConfigError(f"agent {g.agent.name} returned action fields {extra}, which {mechanism.name} does not "
                              f"declare (declared: {sorted(declared) or 'none'})")
        for name, spec in declared.items():
            x = np.asarray(given.get(name, np.full(shape, spec.default)), dtype=float)
            if x.shape != shape:
                raise ConfigError(f"agent {g.agent.name} returned action field {name!r} of shape {x.shape}, "
                                  f"expected {shape}")
            columns[name].append(x)
    return {name: np.concatenate(parts, axis=1) for name, parts in columns.items()}


def clearing_price(outcome: Outcome) -> FloatArray:
    """(B,) mean payment per unit bought; NaN where nothing was sold."""
    allocation, payments = outcome.allocation, outcome.payments
    if allocation.ndim == 2 and allocation.shape == payments.shape and allocation.dtype == payments.dtype == np.float64:
        price = np.empty(allocation.shape[0])
        if _clearing_price(allocation, payments, price):
            return price
    bought = np.maximum(allocation, 0.0)
    units = bought.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(units > 0, (payments * (bought > 0)).sum(axis=1) / units, np.nan)


@numba.njit(cache=True, nogil=True)
def _clearing_price(allocation: FloatArray, payments: FloatArray, price: FloatArray) -> bool:
    """:func:`clearing_price` market by market, with NumPy's operations and order of summation; False (``price``
    unfinished) where an allocation or payment is not finite or a market has more than 128 seats."""
    n = allocation.shape[1]
    if n > 128:
        return False
    bought = np.empty(n)
    spent = np.empty(n)
    for m in range(allocation.shape[0]):
        for i in range(n):
            a, p = allocation[m, i], payments[m, i]
            if not (np.isfinite(a) and np.isfinite(p)):
                return False
            bought[i] = max(a, 0.0)
            spent[i] = p * (1.0 if a > 0 else 0.0)
        units = 0.0 + block_sum(bought, 0, n)
        price[m] = (0.0 + block_sum(spent, 0, n)) / units if units > 0 else np.nan
    return True


def clear_round(context: MarketContext, state: State, values: FloatArray, bids: FloatArray, priority: FloatArray,
                times: FloatArray | None, actions: State | None, active: BoolArray) -> Step:
    """One round of the loop's markets (:func:`advance`, not strict), ``active`` (B, N) the seats that entered.

    A seat that sits out offers nothing. Its bid is 0, which no kernel takes part with, but a seller's ask of
    0 would sell at any price: the mechanism is given +inf for it, an ask no buyer meets, and the seat's
    action is not counted invalid."""
    sellers = context.spec.sellers
    out = None if sellers is None else ~active & sellers[None, :]
    if out is not None and out.any():
        bids = np.where(out.reshape(out.shape + (1,) * (bids.ndim - 2)), np.inf, bids)
    step = advance(context.mechanism, context.config, state, values, bids, priority, times, actions, strict=False)
    if active.all():
        return step
    return replace(step, outcome=replace(step.outcome, valid=step.outcome.valid | ~active))


def reclear(context: MarketContext, record: RoundRecord, bids: FloatArray) -> Outcome:
    """The round of ``record`` cleared again with other bids, everything else equal (a stateful mechanism
    from the state the round started in, with the same actions beyond bids and the same seats in)."""
    return clear_round(context, record.state, record.values, bids, record.priority, record.times, record.actions,
                       record.active).outcome


def observe(context: MarketContext, outcome: Outcome, bids: FloatArray) -> Observation:
    """What the information policy lets agents see after the round."""
    policy = context.information
    price = clearing_price(outcome)
    quantiles = None
    if policy.bid_distribution:
        flat = bids.reshape(bids.shape[0], -1)
        positive = np.where(flat > 0, flat, np.nan)
        has = (flat > 0).any(axis=1)
        quantiles = np.full((bids.shape[0], len(QUANTILES)), np.nan)
        if has.any():
            quantiles[has] = np.nanquantile(positive[has], QUANTILES, axis=1).T
    return Observation(
        price=price if policy.clearing_price else np.full(price.shape, np.nan),
        winners=(outcome.allocation > 0) if policy.winner_identity else None,
        bids=bids.copy() if policy.competing_bids else None,
        bid_quantiles=quantiles,
    )


def digest(observation: Observation) -> IntArray:
    """A 64-bit FNV-style digest per market of every revealed field (hidden fields count as absent)."""
    h = np.full(observation.price.shape[0], 14695981039346656037, dtype=np.uint64)
    for part in (observation.price, observation.winners, observation.bids, observation.bid_quantiles):
        if part is None:
            continue
        if isinstance(part, np.ndarray) and part.dtype == np.bool_:  # as 0.0 and 1.0
            _fnv_flags(h, np.ascontiguousarray(part).reshape(part.shape[0], -1))
        else:
            columns = np.ascontiguousarray(np.asarray(part, dtype=float).reshape(part.shape[0], -1))
            _fnv(h, columns.view(np.uint64))
    return h


_FNV_PRIME = np.uint64(1099511628211)
_ONE_BITS = np.uint64(0x3FF0000000000000)  # the bits of 1.0 (those of 0.0 are 0)


@numba.njit(cache=True, nogil=True)
def _fnv(h: IntArray, bits: IntArray) -> None:
    """Fold the columns of ``bits`` (B, C) into ``h`` (B,), in column order: h = (h ^ column) x prime, wrapping."""
    for m in range(bits.shape[0]):
        x = h[m]
        for c in range(bits.shape[1]):
            x = (x ^ bits[m, c]) * _FNV_PRIME
        h[m] = x


@numba.njit(cache=True, nogil=True)
def _fnv_flags(h: IntArray, flags: BoolArray) -> None:
    """:func:`_fnv` of ``flags`` (B, C) as the float64 bits of 0.0 and 1.0."""
    for m in range(flags.shape[0]):
        x = h[m]
        for c in range(flags.shape[1]):
            x = (x ^ (_ONE_BITS if flags[m, c] else np.uint64(0))) * _FNV_PRIME
        h[m] = x


def merge_identities(owner: IntArray, values: FloatArray, outcome: Outcome,
                     additive: bool = False) -> tuple[FloatArray, FloatArray]:
    """Utility per economic agent (booked on its own seat) and welfare.

    Unit demand (the default): an agent values at most one unit, whichever identities won them.
    ``additive`` (a mechanism declaring ``additive_values``: divisible goods, linear costs): its value
    gains add up over its identities, so its utility is theirs summed and welfare is the mechanism's.

    Args:
        owner: (N,) seat -> the seat of the agent owning it.
        values: (B, N) values used for clearing.
        outcome: the mechanism's outcome.
        additive: merge additive value gains instead of unit demand.
    """
    n = owner.size
    if (owner == np.arange(n)).all():
        return outcome.utility, outcome.welfare
    to_owner = np.zeros((n, n))
    to_owner[np.arange(n), owner] = 1.0  # seat -> owning seat
    if additive:
        return outcome.utility @ to_owner, outcome.welfare
    units = outcome.allocation @ to_owner
    paid = (outcome.payments - outcome.receipts) @ to_owner
    is_owner = owner == np.arange(n)
    gain = np.where(is_owner, values * np.minimum(units, 1.0), 0.0)
    return np.where(is_owner, gain - paid, 0.0), gain.sum(axis=1)


def merged_best(context: MarketContext, state: State, values: FloatArray, priority: FloatArray, owner: IntArray,
                outcome: Outcome) -> Outcome:
    """``outcome`` with the most welfare the economic agents' values allow, where some seats are false names
    of unit-demand agents: the mechanism's ``max_welfare`` with every false name's value at 0. A false name
    carries its owner's value, which the owner enjoys once; counted at every seat, it could enter the maximum
    twice (the top k of a k-unit auction)."""
    false = owner != np.arange(owner.size)
    if context.mechanism.additive_values or not false.any():
        return outcome
    alone = np.where(false[None, :], 0.0, values)
    everyone = np.ones(values.shape[:2], bool)
    best = clear_round(context, state, alone, alone, priority, None, {}, everyone).outcome.max_welfare
    return replace(outcome, max_welfare=best)


def penalties(rules: Enforcement, owner: IntArray, audited: BoolArray, colluding: BoolArray, exited: BoolArray,
              active: BoolArray, bids: FloatArray) -> FloatArray:
    """Fines (B, N) of one round (see the module docstring).

    Args:
        rules: the enforcement policy.
        owner: (N,) seat -> owning seat.
        audited: (B,) markets audited.
        colluding, exited, active: (B, N) seat flags.
        bids: (B, N[, W]) bids as cleared.
    """
    b, n = active.shape
    if all(np.asarray(x).dtype == np.bool_ for x in (audited, colluding, exited, active)):
        fines = np.empty((b, n))
        _penalties(float(rules.withdrawal_penalty), float(rules.collusion_penalty), float(rules.shill_penalty),
                   np.ascontiguousarray(owner, dtype=np.int64), np.ascontiguousarray(audited),
                   np.ascontiguousarray(colluding), np.ascontiguousarray(exited), np.ascontiguousarray(active),
                   np.ascontiguousarray(bids, dtype=np.float64).reshape(b, n, -1), fines)
        return fines
    false_name = false_names(owner, active, bids)
    shill_counts = np.zeros((b, n))
    np.add.at(shill_counts.T, owner, false_name.T.astype(float))  # charge the owner
    return (rules.withdrawal_penalty * exited
            + audited[:, None] * (rules.collusion_penalty * colluding + rules.shill_penalty * shill_counts))


def false_names(owner: IntArray, active: BoolArray, bids: FloatArray) -> BoolArray:
    """(B, N) the false-name identities (seats another seat owns) that took part and bid something positive."""
    b, n = active.shape
    return (owner != np.arange(n))[None, :] & active & (bids.reshape(b, n, -1) > 0).any(axis=2)


@numba.njit(cache=True, nogil=True)
def _penalties(withdrawal: float, collusion: float, shill: float, owner: IntArray, audited: BoolArray,
               colluding: BoolArray, exited: BoolArray, active: BoolArray, bids: FloatArray, fines: FloatArray) -> None:
    """:func:`penalties` market by market, with NumPy's operations: flags count as 0.0 or 1.0, and each owner's
    shill count adds 1.0 per false name of it that is active and bid something positive."""
    b, n = active.shape
    shills = np.zeros(n)
    for m in range(b):
        shills[:] = 0.0
        for i in range(n):
            if owner[i] != i and active[m, i]:
                positive = False
                for w in range(bids.shape[2]):
                    positive |= bids[m, i, w] > 0
                if positive:
                    shills[owner[i]] += 1.0
        audit = 1.0 if audited[m] else 0.0
        for i in range(n):
            fines[m, i] = withdrawal * (1.0 if exited[m, i] else 0.0) \
                + audit * (collusion * (1.0 if colluding[m, i] else 0.0) + shill * shills[i])


def _notes(episode: Episode, t: int, actions: list[Action]) -> tuple[dict[str, Any], ...]:
    """Every group's decision notes with the round, the agent type, and global market and seat."""
    return tuple({**note, "round": t, "agent": g.agent.name, "market": episode.start + note["market"],
                  "seat": g.start + note["seat"]}
                 for g, action in zip(episode.population.groups, actions, strict=True) for note in action.notes)


def round_values(episode: Episode, t: int) -> FloatArray:
    """(B, N[, K]) the values of round ``t``: column j of the stream is the j-th agent's (in seat order),
    false names carry their owner's, so adding false names changes nobody's value; with persistent values
    every round takes round 0's."""
    ctx, b, owner = episode.context, episode.markets, episode.owner
    tail = (ctx.spec.value_width,) if ctx.spec.value_width else ()
    own = owner == np.arange(owner.size)
    key = ("values", 0 if ctx.values.persistent else t)
    priors = ctx.values if ctx.priors is None else tuple(p for p, mine in zip(ctx.priors, own, strict=True) if mine)
    drawn = sample_priors(priors, episode.seed, key, episode.start, (b, int(own.sum()), *tail),
                          marginal=not ctx.spec.partners)  # utilities for partners are not marginal values
    return drawn if own.all() else drawn[:, (np.cumsum(own) - 1)[owner]]


def seat_uniforms(episode: Episode, key: tuple, tail: tuple[int, ...] = ()) -> FloatArray:
    """(B, N, *tail) U[0, 1) draws per seat, keyed by identity: the j-th agent's own seat takes column j
    of stream ``key`` and false names take their own stream's columns, so a population with false names
    and the same population without them share every own seat's draws (common random numbers)."""
    owner, b = episode.owner, episode.markets
    own = owner == np.arange(owner.size)
    drawn = market_uniforms(episode.seed, key, episode.start, (b, int(own.sum()), *tail))
    if own.all():
        return drawn
    seats = np.empty((b, owner.size, *tail))
    seats[:, own] = drawn
    seats[:, ~own] = market_uniforms(episode.seed, (*key, "false names"), episode.start, (b, int((~own).sum()), *tail))
    return seats


def _talk_phase(episode: Episode, state: LoopState, values: FloatArray) -> tuple[LoopState, talk.Messages,
                                                                                   talk.Messages, IntArray]:
    """Groups speak (reading last round's mail), the channels deliver what is due, groups hear it.

    Returns:
        The state with the groups' states after hearing, the valid messages sent, those delivered,
        and the (B, N) count of dropped messages.
    """
    ctx, pop, t, policy, carried = episode.context, episode.population, state.round, episode.channels, state.channels
    b, n = episode.markets, pop.size
    partners = talk.together(policy, [g.seats for g in pop.groups], n)
    agent_states = list(state.agents)
    talking = [(i, g) for i, g in enumerate(pop.groups) if g.agent.talks]
    heard_readable = talk.route(carried.heard, partners) if talking else None
    outboxes = []
    for i, g in talking:
        draws = Draws(episode.seed, ("talk", i, t), episode.start, b)
        box = g.agent.talk(ctx.acting(g.seats), g.params, agent_states[i], values[:, g.seats],
                           talk.inbox(carried.heard, heard_readable, g.seats), draws)
        if box is not None:
            expected = (b, g.stop - g.start)
            if box.channel.shape[:2] != expected:
                raise ConfigError(f"agent {g.agent.name} returned an outbox of shape {box.channel.shape}, "
                                  f"expected {expected} + (slots,)")
            if box.state is not None:
                agent_states[i] = box.state
        outboxes.append((g.seats, box))
    sent, dropped = talk.join(policy, outboxes, b, n, t)
    queue = (*carried.pending, sent)
    delivered, pending = (queue[0], queue[1:]) if len(queue) > policy.delay else \
        (talk.Messages.empty(b, n, policy.max_messages, -1), queue)
    readable = talk.route(delivered, partners)
    for i, g in talking:
        draws = Draws(episode.seed, ("hear", i, t), episode.start, b)
        agent_states[i] = g.agent.hear(ctx.acting(g.seats), g.params, agent_states[i], values[:, g.seats],
                                       talk.inbox(delivered, readable, g.seats), draws)
    carried = replace(carried, pending=pending, heard=delivered)
    return replace(state, agents=tuple(agent_states), channels=carried), sent, delivered, dropped


def _settle_talk(episode: Episode, state: LoopState, sent: talk.Messages, delivered: talk.Messages,
                 dropped: IntArray, utility: FloatArray, fines: FloatArray, caught: BoolArray,
                 bids: FloatArray) -> tuple[FloatArray, FloatArray, Talk, ChannelState]:
    """The detector's fines and the side payments of a round with channels."""
    policy, rules, n = episode.channels, episode.context.enforcement, episode.population.size
    readable = talk.route(sent, talk.together(policy, [g.seats for g in episode.population.groups], n))
    if policy.monitored:
        flagged = talk.flag_agreements(sent, readable, bids)
        extra = rules.collusion_penalty * (flagged & ~caught)
        fines, utility = fines + extra, utility - extra
    else:
        flagged = np.zeros_like(caught)
    transfers, refused = talk.settle_payments(policy, sent, state.channels.wealth + utility)
    utility = utility + transfers
    record = Talk(sent, delivered, readable, flagged, transfers, dropped, refused)
    return utility, fines, record, replace(state.channels, wealth=state.channels.wealth + utility)


def play_round(episode: Episode, state: LoopState) -> tuple[LoopState, RoundRecord]:
    """One round of every market. Pure: returns the next state and the round's record."""
    ctx, pop, t = episode.context, episode.population, state.round
    b = episode.markets
    signals = round_values(episode, t)  # what agents know; their values, with interdependent values, differ
    values = ctx.values.realize(signals, episode.owner)
    if episode.channels is not None:
        state, sent, delivered, dropped = _talk_phase(episode, state, signals)
    actions, joint = gather_actions(episode, state, signals)
    enter = joint.enter
    bids = np.where(enter.reshape(enter.shape + (1,) * (joint.bids.ndim - 2)), joint.bids, 0.0)
    priority = seat_uniforms(episode, ("priority", t))
    step = clear_round(ctx, state.mechanism, values, bids, priority, joint.times, joint.fields, enter)
    outcome = step.outcome
    utility, welfare = merge_identities(episode.owner, values, outcome, ctx.mechanism.additive_values)
    outcome = merged_best(ctx, state.mechanism, values, priority, episode.owner, outcome)
    audited = market_uniforms(episode.seed, ("audit", t), episode.start, (b,)) < ctx.enforcement.audit_probability
    if joint.audit is not None:
        audited = audited | joint.audit
    exited = state.active & ~enter
    colluding = joint.colluding & enter
    fines = penalties(ctx.enforcement, episode.owner, audited, colluding, exited, enter, bids)
    utility = utility - fines
    talked, channel_state, notes = None, None, _notes(episode, t, actions)
    if episode.channels is not None:
        utility, fines, talked, channel_state = _settle_talk(episode, state, sent, delivered, dropped, utility, fines,
                                                             audited[:, None] & colluding, bids)
        if episode.channels.trace:
            names = [g.agent.name for g in pop.groups for _ in range(g.start, g.stop)]
            notes += talk.messages_notes(sent, names, episode.start, t, episode.channels.delay)

    observation = observe(ctx, outcome, bids)
    new_states = []
    paid = outcome.payments - outcome.receipts
    for i, (g, action) in enumerate(zip(pop.groups, actions, strict=True)):
        s = g.seats
        feedback = Feedback(allocation=outcome.allocation[:, s], paid=paid[:, s],
                            penalty=fines[:, s], utility=utility[:, s], active=enter[:, s],
                            state={f.name: step.state[f.name][:, s] for f in ctx.mechanism.state if f.per == "seat"})
        draws = Draws(episode.seed, ("update", i, t), episode.start, b)
        new_states.append(g.agent.update(ctx.acting(s), g.params, state.agents[i], signals[:, s], action,
                                         observation, feedback, draws))
    record = RoundRecord(t, values, bids, joint.times, priority, enter, colluding, exited, audited, fines,
                         outcome, utility, welfare, observation, digest(observation), notes, talked,
                         None if signals is values else signals, joint.fields, state.mechanism, step.state,
                         step.events)
    return LoopState(t + 1, tuple(new_states), enter, channel_state, step.state), record


def play(episode: Episode, rounds: int) -> Iterator[RoundRecord]:
    """Records of ``rounds`` consecutive rounds from the initial state."""
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ConfigError(f"rounds must be in [1, {MAX_ROUNDS}], got {rounds}")
    state = initial_state(episode)
    for _ in range(rounds):
        state, record = play_round(episode, state)
        yield record
