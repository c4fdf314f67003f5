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

Three linear maps of the features, 3 x F = 30 weights in the spec (``w``, separated by '/'):
a multiplier ``g = a . f``, an offset ``c = b . f`` and an entry score ``e . f``. The seat enters
when the entry score is > 0 and bids ``clip(value * g + c, 0, action_high)``: ``bid = value x g``
when ``b`` is 0, an absolute bid (e.g. just above the reserve) when ``a`` is 0. The default weights
(g = 1, c = 0, always enter) bid truthfully. Where the mechanism declares actions beyond bids
(:mod:`mecharena.mechanisms.schema`), F more weights per action field, in declaration order, map
the features to it: ``clip(h . f, low, high)``, rounded for an integer field (30 weights alone
leave every field at its default; :func:`start_weights` sets each at its default).
Sitting out is an exit (the loop charges the withdrawal penalty); bidding 0 while in is abstaining.

The state is last round's features 3-8 as (B, S) arrays; nothing per agent in Python. The policy
is deterministic: the same weights replay the same strategy, so a found policy is stored with its
exploit as its spec, ``policy(w=...)``.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field, field_validator

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation
from mecharena.core.config import StrictModel, shown_value
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism

VERSION = 1
FEATURES = ("bias", "value", "reserve", "price", "won", "paid", "rival_won", "rival_bid", "was_in", "lead")
F = len(FEATURES)
WEIGHTS = 3 * F  # multiplier, offset, entry
MAX_WEIGHT = 1000.0
TRUTHFUL = np.concatenate([np.eye(F)[0], np.zeros(F), np.eye(F)[0]])  # g = 1, c = 0, enter always


def format_weights(weights: FloatArray) -> str:
    """The spec text of ``weights``: 6 significant digits, '/' between (no commas: a spec splits on them)."""
    return "/".join(f"{float(w):.6g}" for w in weights)


def parse_weights(text: str) -> FloatArray:
    """(WEIGHTS + k F,) weights from :func:`format_weights`'s text (k: weights of k action fields).

    Raises:
        ConfigError: fewer than WEIGHTS entries or a count that is not WEIGHTS plus a multiple of F, or
            an entry that is not a finite number in [-MAX_WEIGHT, MAX_WEIGHT].
    """
    parts = str(text).split("/")
    if len(parts) < WEIGHTS or len(parts) % F:
        raise ConfigError(f"w must hold {WEIGHTS} numbers separated by '/' (multiplier, offset and entry weights "
                          f"over the features {', '.join(FEATURES)}), and {F} more per action field the mechanism "
                          f"declares, got {len(parts)}")
    out = np.empty(len(parts))
    for i, part in enumerate(parts):
        try:
            out[i] = float(part)
        except ValueError:
            out[i] = math.nan
        if not (math.isfinite(out[i]) and abs(out[i]) <= MAX_WEIGHT):
            raise ConfigError(f"w entry {i} must be a finite number in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}], "
                              f"got {shown_value(part.strip())}")
    return out


class PolicyParams(StrictModel):
    """The weights of the policy (see the module docstring for the features)."""

    w: str = Field(format_weights(TRUTHFUL),
                   description=f"{WEIGHTS} weights separated by '/': multiplier, offset and entry maps over "
                               f"{F} features, and {F} more per action field the mechanism declares")

    @classmethod
    def build(cls, **fields: object) -> "PolicyParams":
        """As :meth:`StrictModel.build`, with the weights' own message (which entry, what is allowed)."""
        if isinstance(fields.get("w"), str):
            parse_weights(fields["w"])
        return super().build(**fields)

    @field_validator("w", mode="before")
    @classmethod
    def _weights(cls, text: object) -> str:
        if not isinstance(text, str):
            raise ValueError(f"w must be {WEIGHTS} numbers separated by '/', got {shown_value(text)}")
        try:
            parse_weights(text)
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


def _check(context: MarketContext) -> None:
    if context.spec.value_width or context.spec.orders_per_agent:
        raise ConfigError(f"policy bids one unit per seat; {context.mechanism.name} is configured for several "
                          "units, partners or orders per agent")


def init(context: MarketContext, params: PolicyParams, seats: int, draws: Draws) -> PolicyState:
    _check(context)
    zeros = np.zeros((draws.markets, seats))
    return PolicyState(zeros, zeros, zeros, zeros, zeros, np.ones_like(zeros))


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
    """(B, S, F) the features of the module docstring."""
    ones = np.ones_like(values)
    return np.stack([ones, values, ones * context.visible_reserve, state.price, state.won, state.paid,
                     state.rival_won, state.rival_bid, state.was_in, lead(values)], axis=2)


def decide(weights: FloatArray, feats: FloatArray, high: float) -> tuple[FloatArray, np.ndarray]:
    """(bids, enter), each (B, S), from (WEIGHTS,) weights and (B, S, F) features."""
    g, c, e = (feats @ weights[i * F:(i + 1) * F] for i in range(3))
    return np.clip(feats[:, :, 1] * g + c, 0.0, high), e > 0


def start_weights(mechanism: Mechanism) -> FloatArray:
    """Truthful bidding, always in, and each of the mechanism's action fields at its default."""
    fields = [np.eye(F)[0] * a.default for a in mechanism.actions]
    return np.concatenate([TRUTHFUL, *fields])


def field_actions(context: MarketContext, weights: FloatArray, feats: FloatArray) -> dict[str, FloatArray]:
    """The mechanism's action fields, each (B, S), from the weights after the first WEIGHTS (none: defaults).

    Raises:
        ConfigError: weights for another number of action fields than the mechanism declares.
    """
    declared = context.mechanism.actions
    extra = (weights.size - WEIGHTS) // F
    if extra == 0:
        return {}
    if extra != len(declared):
        raise ConfigError(f"policy: w holds weights for {extra} action fields but {context.mechanism.name} declares "
                          f"{len(declared)} ({', '.join(a.name for a in declared) or 'none'})")
    out = {}
    for k, a in enumerate(declared):
        x = np.clip(feats @ weights[WEIGHTS + k * F:WEIGHTS + (k + 1) * F], a.low, a.high)
        out[a.name] = np.round(x) if a.integer else x
    return out


def act(context: MarketContext, params: PolicyParams, state: PolicyState, values: FloatArray,
        draws: Draws) -> Action:
    weights, feats = parse_weights(params.w), features(context, state, values)
    bids, enter = decide(weights, feats, context.spec.action_high)
    return Action(bids=np.where(enter, bids, 0.0), enter=enter, fields=field_actions(context, weights, feats) or None)


def update(context: MarketContext, params: PolicyParams, state: PolicyState, values: FloatArray, action: Action,
           observation: Observation, feedback: Feedback, draws: Draws) -> PolicyState:
    shape = values.shape
    outside = np.ones(context.n_agents, dtype=bool)
    outside[context.seats] = False
    rival_won = np.zeros(shape)
    if observation.winners is not None:
        rival_won = np.broadcast_to(observation.winners[:, outside].any(axis=1, keepdims=True), shape).astype(float)
    rival_bid = np.zeros(shape)
    if observation.bids is not None and outside.any():
        rival_bid = np.broadcast_to(observation.bids[:, outside].max(axis=1, keepdims=True), shape).copy()
    price = np.broadcast_to(np.nan_to_num(observation.price, nan=0.0)[:, None], shape).copy()
    return dataclasses.replace(state, price=price, won=(feedback.allocation > 0).astype(float),
                               paid=feedback.paid.astype(float), rival_won=rival_won, rival_bid=rival_bid,
                               was_in=feedback.active.astype(float))


AGENT = AgentType(name="policy", version=VERSION,
                  summary="a searched policy from what the market reveals to a bid, entry and declared actions",
                  act=act, init=init, update=update, params_model=PolicyParams)
