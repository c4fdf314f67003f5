"""A parametric policy from what a seat sees to what it does: the repeated-game deviator's strategy.

Each round every seat of the group builds F = 10 features from what it actually knows, exactly as the
information policy (:class:`~mecharena.mechanisms.policy.InformationPolicy`) allows; a field the
market keeps hidden is 0:

====  =============  ===================================================================================
  i   feature        what it is
====  =============  ===================================================================================
  0   bias           1
  1   value          its own value this round
  2   reserve        the reserve as announced (0 when hidden: ``MarketContext.visible_reserve``)
  3   price          last round's clearing price (0: hidden, nothing sold, or the first round)
  4   won            1 if it was allocated last round (its own feedback)
  5   paid           its net payment last round (its own feedback)
  6   rival_won      1 if a seat outside its group won last round (``winner_identity`` revealed)
  7   rival_bid      the highest bid outside its group last round (``competing_bids`` revealed)
  8   was_in         1 if it took part last round (its own feedback)
  9   lead           its value minus the highest value of the group's other seats (0 alone): a
                     coalition's members see each other's values, as one agent group does
====  =============  ===================================================================================

A ring (a group of several seats searched as one coalition, :mod:`mecharena.fuzz.ring_policy`) reads four
more features, after all others:

===========  ===================================================================================
feature      what it is
===========  ===================================================================================
partner_won  1 if another seat of its group won last round (``winner_identity`` revealed)
partner_bid  the highest bid of its group's other seats last round (``competing_bids`` revealed)
led          1 if it had the group's highest value last round (its own memory)
caught       1 once the market has shown a partner playing otherwise than the ring's weights ``w``
             tell it to: its revealed bid differs from the prescribed one, or it won though they
             had it out. Members know each other's values and the ring's policy, so they know
             what each partner should play; what they can check is what the market reveals. It
             stays set for the episode: the memory a grim trigger needs, which a linear map cannot
             hold. Where nothing is revealed it stays 0, and a ring cannot punish
===========  ===================================================================================

Two more weight sets test a ring's incentives: with ``d`` the group's first seat plays its own weights
throughout (a member defecting, still seeing its partners), and with ``p`` the group's second seat plays its
own weights once it has caught a partner, the ring's before (a member weighing whether carrying out the
ring's threat is worth it). Partners check every seat against ``w``.

A mechanism that keeps state across rounds (:mod:`mecharena.mechanisms.schema`) adds features: ``round``
(rounds played so far), for each per-seat state field the seat's own entry after last round (``own_NAME``;
its initial value at first: a seller's score, an identity's escrow), and ``final`` (1 in the episode's last
round, where the seat knows its ``horizon``; 0 where it does not). An end game is a step: ``final`` makes
one with a weight of one action's size, where a step in ``round`` at round 19 of 20 needs a weight on the
bias 19 times as large. A seat always knows its own state; F is then 12 plus the number of per-seat fields
(weights without ``final``, from before it existed, still play: it weighs 0).

Three linear maps of the features, 3 x F weights in the spec (``w``, separated by '/'; 30 for a stateless
mechanism): a multiplier ``g = a . f``, an offset ``c = b . f`` and an entry score ``e . f``. The seat
enters when the entry score is > 0 and bids ``clip(truthful * g + c, 0, action_high)``, ``truthful``
being the mechanism's truthful bid for its value (the value itself in an auction; a seller's honest
price where the mechanism says so): ``bid = value x g`` when ``b`` is 0, an absolute bid (e.g. just
above the reserve) when ``a`` is 0. The default weights (g = 1, c = 0, always enter) bid truthfully.
Where the mechanism declares actions beyond bids
(:mod:`mecharena.mechanisms.schema`), F more weights per action field, in declaration order, map
the features to it: ``clip(h . f, low, high)``, rounded for an integer field (30 weights alone
leave every field at its default; :func:`start_weights` sets each at its default).
Sitting out is an exit (the loop charges the withdrawal penalty); bidding 0 while in is abstaining.

The state is last round's features 3-8 as (B, S) arrays (and the own state as (B, S, k)); nothing per
agent in Python. The policy
is deterministic: the same weights replay the same strategy, so a found policy is stored with its
exploit as its spec, ``policy(w=...)``.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from mecharena.agents.base import (Action, AgentType, Draws, Feedback, MarketContext, Observation, initial_own_state,
                                   require_one_bid)
from mecharena.core.config import StrictModel, shown_value
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism

VERSION = 2
FEATURES = ("bias", "value", "reserve", "price", "won", "paid", "rival_won", "rival_bid", "was_in", "lead")
RING_FEATURES = ("partner_won", "partner_bid", "led", "caught")
MATCH = 1e-9  # a revealed bid this far from the prescribed one is the prescribed one
F = len(FEATURES)
WEIGHTS = 3 * F  # multiplier, offset, entry
MAX_WEIGHT = 1000.0
TRUTHFUL = np.concatenate([np.eye(F)[0], np.zeros(F), np.eye(F)[0]])  # g = 1, c = 0, enter always


def format_weights(weights: FloatArray) -> str:
    """The spec text of ``weights``: 6 significant digits, '/' between (no commas: a spec splits on them)."""
    return "/".join(f"{float(w):.6g}" for w in weights)


def feature_names(mechanism: Mechanism, ring: bool = False) -> tuple[str, ...]:
    """The features a seat sees in ``mechanism``'s markets, with a ring's four when ``ring`` (see the module
    docstring)."""
    extra = RING_FEATURES if ring else ()
    if not mechanism.stateful:
        return FEATURES + extra
    return (*FEATURES, "round", *(f"own_{f.name}" for f in mechanism.state if f.per == "seat"), "final", *extra)


def parse_weights(text: str, field: str = "w") -> FloatArray:
    """The weights in :func:`format_weights`'s text (their count is checked against the mechanism's features
    when the policy plays: :func:`layout`).

    Raises:
        ConfigError: fewer than WEIGHTS entries, or an entry that is not a finite number in
            [-MAX_WEIGHT, MAX_WEIGHT].
    """
    parts = str(text).split("/")
    if len(parts) < WEIGHTS:
        raise ConfigError(f"{field} must hold {WEIGHTS} numbers separated by '/' (multiplier, offset and entry weights "
                          f"over the features {', '.join(FEATURES)}), and {F} more per action field the mechanism "
                          f"declares (more features where it keeps state), got {len(parts)}")
    out = np.empty(len(parts))
    for i, part in enumerate(parts):
        try:
            out[i] = float(part)
        except ValueError:
            out[i] = math.nan
        if not (math.isfinite(out[i]) and abs(out[i]) <= MAX_WEIGHT):
            raise ConfigError(f"{field} entry {i} must be a finite number in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}], "
                              f"got {shown_value(part.strip())}")
    return out


class PolicyParams(StrictModel):
    """The weights of the policy (see the module docstring for the features)."""

    w: str = Field(format_weights(TRUTHFUL),
                   description=f"{WEIGHTS} weights separated by '/': multiplier, offset and entry maps over "
                               f"{F} features, and {F} more per action field the mechanism declares")
    d: str = Field("", description="weights of the group's first seat, which plays them instead of w while it "
                                   "still sees its partners (a member defecting from its ring); empty: none")
    p: str = Field("", description="weights the group's second seat plays once a partner is caught, w before (a "
                                   "member weighing whether to carry out the ring's threat); empty: none")
    horizon: int = Field(0, ge=0, le=100_000, description="rounds of the episode, known to the seat (0: unknown); "
                                                          "a market that keeps state shows it its final round")

    @classmethod
    def build(cls, **fields: object) -> "PolicyParams":
        """As :meth:`StrictModel.build`, with the weights' own message (which entry, what is allowed)."""
        for name in ("w", "d", "p"):
            if isinstance(fields.get(name), str) and fields[name]:
                parse_weights(fields[name], name)
        return super().build(**fields)

    @field_validator("w", "d", "p", mode="before")
    @classmethod
    def _weights(cls, text: object, info: ValidationInfo) -> str:
        if not isinstance(text, str):
            raise ValueError(f"{info.field_name} must be {WEIGHTS} numbers separated by '/', got {shown_value(text)}")
        if text:
            try:
                parse_weights(text, info.field_name)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return text


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Last round as each seat saw it."""

    price: FloatArray  # (B, S)
    won: FloatArray  # (B, S)
    paid: FloatArray  # (B, S)
    rival_won: FloatArray  # (B, S)
    rival_bid: FloatArray  # (B, S)
    was_in: FloatArray  # (B, S)
    partner_won: FloatArray  # (B, S)
    partner_bid: FloatArray  # (B, S)
    led: FloatArray  # (B, S)
    caught: FloatArray  # (B, S)
    round: int = 0
    own: FloatArray | None = None  # (B, S, k)  the seat's per-seat mechanism state; None: stateless
    horizon: int = 0  # rounds of the episode as the seat knows them (0: unknown)


def _own(mechanism: Mechanism, state: dict[str, FloatArray], shape: tuple[int, int]) -> FloatArray | None:
    """(B, S, k) the group's per-seat state fields (None for a stateless mechanism)."""
    if not mechanism.stateful:
        return None
    fields = [state[f.name] for f in mechanism.state if f.per == "seat"]
    return np.stack(fields, axis=2) if fields else np.zeros((*shape, 0))


def init(context: MarketContext, params: PolicyParams, seats: int, draws: Draws) -> PolicyState:
    require_one_bid(context, "policy")
    for name, text in (("w", params.w), ("d", params.d), ("p", params.p)):
        if text:
            layout(context.mechanism, parse_weights(text, name), name)
    if params.p and seats < 2:
        raise ConfigError(f"p is what a group's second seat plays once a partner is caught: it needs a group of at "
                          f"least 2 seats, got {seats}")
    zeros = np.zeros((draws.markets, seats))
    own = _own(context.mechanism, initial_own_state(context, draws), zeros.shape)
    return PolicyState(zeros, zeros, zeros, zeros, zeros, np.ones_like(zeros), zeros, zeros, zeros, zeros, 0, own,
                       params.horizon)


def lead(values: FloatArray) -> FloatArray:
    """(B, S) each seat's value minus the highest value among the group's other seats (0 for one seat).

    >>> lead(np.array([[0.2, 0.7, 0.5]])).round(2).tolist()
    [[-0.5, 0.2, -0.2]]
    """
    if values.shape[1] < 2:
        return np.zeros_like(values)
    order = np.sort(values, axis=1)
    top, second = order[:, -1:], order[:, -2:-1]
    is_top = np.arange(values.shape[1])[None, :] == np.argmax(values, axis=1)[:, None]
    return values - np.where(is_top, second, top)


def features(context: MarketContext, state: PolicyState, values: FloatArray) -> FloatArray:
    """(B, S, F) every feature of the module docstring, a ring's included (a policy reads the first ones its
    weights cover: :func:`layout`)."""
    ones = np.ones_like(values)
    base = [ones, values, ones * context.visible_reserve, state.price, state.won, state.paid, state.rival_won,
            state.rival_bid, state.was_in, lead(values)]
    ring = np.stack([state.partner_won, state.partner_bid, state.led, state.caught], axis=2)
    if state.own is None:
        return np.concatenate([np.stack(base, axis=2), ring], axis=2)
    final = float(state.round == state.horizon - 1)
    return np.concatenate([np.stack([*base, ones * state.round], axis=2), state.own, ones[:, :, None] * final, ring],
                          axis=2)


def ring_width(mechanism: Mechanism) -> int:
    """Features per map of a ring's weights (with the four ring features)."""
    return len(feature_names(mechanism, ring=True))


def layout(mechanism: Mechanism, weights: FloatArray, field: str = "w") -> tuple[int, int]:
    """(features per map, action fields weighted) of ``weights`` for ``mechanism``: 3 maps over its features,
    then none or every declared action field; a ring's weights (:func:`ring_width` features) weigh every
    declared field (so no count means two layouts). Weights over the F = 10 features of a stateless market
    also play a stateful one (its extra features weigh 0), and so do weights without ``final``.

    Raises:
        ConfigError: another count, naming what the mechanism takes.
    """
    declared = len(mechanism.actions)
    ring = ring_width(mechanism)
    if weights.size == (3 + declared) * ring:
        return ring, declared
    full = len(feature_names(mechanism))
    for width in dict.fromkeys((full, full - 1 if mechanism.stateful else full, F)):
        for extra in (0, declared):
            if weights.size == (3 + extra) * width:
                return width, extra
    names = ", ".join(a.name for a in mechanism.actions) or "none"
    for w in (full, F):
        extra, rest = divmod(weights.size - 3 * w, w)
        if not rest and extra > 0:
            raise ConfigError(f"policy: {field} holds weights for {extra} action fields but {mechanism.name} declares "
                              f"{declared} ({names})")
    counts = sorted({(3 + k) * w for w in (full, F) for k in (0, declared)} | {(3 + declared) * ring})
    raise ConfigError(f"policy: {field} holds {weights.size} weights; {mechanism.name} takes "
                      f"{' or '.join(map(str, counts))} ({full} features: {', '.join(feature_names(mechanism))}; "
                      f"a ring's {ring} add {', '.join(RING_FEATURES)}; action fields: {names})")


def decide(weights: FloatArray, feats: FloatArray, truthful: FloatArray, high: float) -> tuple[FloatArray, np.ndarray]:
    """(bids, enter), each (B, S), from the weights, (B, S, F) features and the (B, S) truthful bids (the
    first 3 F weights)."""
    width = feats.shape[2]
    g, c, e = (feats @ weights[i * width:(i + 1) * width] for i in range(3))
    return np.clip(truthful * g + c, 0.0, high), e > 0


def start_weights(mechanism: Mechanism, ring: bool = False) -> FloatArray:
    """Truthful bidding, always in, and each of the mechanism's action fields at its default (in a ring's layout
    with ``ring``)."""
    bias = np.eye(len(feature_names(mechanism, ring)))[0]
    return np.concatenate([bias, 0 * bias, bias, *(bias * a.default for a in mechanism.actions)])


def field_actions(context: MarketContext, weights: FloatArray, feats: FloatArray) -> dict[str, FloatArray]:
    """The mechanism's action fields, each (B, S), from the weights after the first 3 F (none: defaults);
    ``feats`` (B, S, F) as :func:`layout` reads the weights."""
    width = feats.shape[2]
    _, extra = layout(context.mechanism, weights)
    out = {}
    for k, a in enumerate(context.mechanism.actions[:extra]):
        x = np.clip(feats @ weights[(3 + k) * width:(4 + k) * width], a.low, a.high)
        out[a.name] = np.round(x) if a.integer else x
    return out


def _play(context: MarketContext, weights: FloatArray, feats: FloatArray, truthful: FloatArray
          ) -> tuple[FloatArray, np.ndarray, dict[str, FloatArray]]:
    """(bids, enter, action fields) of seats playing ``weights`` on their (B, S, all) features."""
    width, _ = layout(context.mechanism, weights)
    bids, enter = decide(weights, feats[:, :, :width], truthful, context.spec.action_high)
    return np.where(enter, bids, 0.0), enter, field_actions(context, weights, feats[:, :, :width])


def act(context: MarketContext, params: PolicyParams, state: PolicyState, values: FloatArray,
        draws: Draws) -> Action:
    feats = features(context, state, values)
    truthful = context.mechanism.truthful(context.config, values, context.spec)
    prescribed, prescribed_in, fields = _play(context, parse_weights(params.w), feats, truthful)
    memo = (prescribed, prescribed_in)  # what the ring's policy has every seat play: partners check it
    # seats playing their own weights: the first where it defects (always), the second where it punishes (once caught)
    own = []
    if params.d:
        own.append((0, params.d, np.ones(values.shape[0], bool)))
    if params.p:  # init made sure the group has a second seat
        own.append((1, params.p, state.caught[:, 1] > 0))
    if not own:
        return Action(bids=prescribed, enter=prescribed_in, fields=fields or None, memo=memo)
    bids, enter, touched = prescribed.copy(), prescribed_in.copy(), bool(fields)
    defaults = {a.name: float(a.default) for a in context.mechanism.actions}
    merged = {name: fields[name].copy() if name in fields else np.full(values.shape, x) for name, x in defaults.items()}
    for seat, text, when in own:
        s = slice(seat, seat + 1)
        seat_bids, seat_in, seat_fields = _play(context, parse_weights(text), feats[:, s], truthful[:, s])
        bids[when, s], enter[when, s] = seat_bids[when], seat_in[when]
        for name, x in defaults.items():  # a field its weights leave out is at its default
            merged[name][when, s] = seat_fields[name][when] if name in seat_fields else x
        touched |= bool(seat_fields)
    return Action(bids=bids, enter=enter, fields=merged if touched else None, memo=memo)


def _others(own: np.ndarray) -> FloatArray:
    """(B, S) for each seat of the group, the largest of the (B, S) ``own`` over the group's other seats."""
    if own.shape[1] < 2:
        return np.zeros(own.shape)
    others = np.stack([np.delete(own, i, axis=1) for i in range(own.shape[1])], axis=1)  # (B, S, S - 1)
    return others.max(axis=2).astype(float)


def update(context: MarketContext, params: PolicyParams, state: PolicyState, values: FloatArray, action: Action,
           observation: Observation, feedback: Feedback, draws: Draws) -> PolicyState:
    shape = values.shape
    seats = np.arange(context.n_agents)[context.seats]
    outside = np.ones(context.n_agents, dtype=bool)
    outside[seats] = False
    prescribed, prescribed_in = action.memo
    strayed = np.zeros(shape, dtype=bool)  # a partner's play the market revealed to be off the ring's policy
    rival_won, partner_won = np.zeros(shape), np.zeros(shape)
    if observation.winners is not None:
        rival_won = np.broadcast_to(observation.winners[:, outside].any(axis=1, keepdims=True), shape).astype(float)
        partner_won = _others(observation.winners[:, seats])
        strayed |= observation.winners[:, seats] & ~(prescribed_in & (prescribed > 0))
    rival_bid, partner_bid = np.zeros(shape), np.zeros(shape)
    if observation.bids is not None:
        if outside.any():
            rival_bid = np.broadcast_to(observation.bids[:, outside].max(axis=1, keepdims=True), shape).copy()
        partner_bid = _others(observation.bids[:, seats])
        strayed |= np.abs(observation.bids[:, seats] - prescribed) > MATCH
    price = np.broadcast_to(np.nan_to_num(observation.price, nan=0.0)[:, None], shape).copy()
    return dataclasses.replace(state, price=price, won=(feedback.allocation > 0).astype(float),
                               paid=feedback.paid.astype(float), rival_won=rival_won, rival_bid=rival_bid,
                               was_in=feedback.active.astype(float), partner_won=partner_won,
                               partner_bid=partner_bid, led=(lead(values) > 0).astype(float),
                               caught=np.maximum(state.caught, _others(strayed)), round=state.round + 1,
                               own=_own(context.mechanism, feedback.state, shape))


AGENT = AgentType(name="policy", version=VERSION,
                  summary="a searched policy from what the market reveals to a bid, entry and declared actions",
                  act=act, init=init, update=update, params_model=PolicyParams)
