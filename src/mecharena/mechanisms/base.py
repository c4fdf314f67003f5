"""What every mechanism provides, the `Outcome` it returns, and the validated engine entry point.

A mechanism is a :class:`Mechanism` record: a Pydantic config, a pure batched kernel over
axis 0 = markets, a plain-Python scalar reference for one market (the test oracle), a
``VERSION`` and the properties it promises (``truthful``, ``ir``, ...), each possibly depending
on the config. :func:`clear` is the public path: it validates config and array shapes, runs
the kernel and, when ``strict``, turns any invalid action into :class:`InvalidActionError`.
Inside the kernel an invalid action is a flag (``Outcome.valid``) and is treated as
abstaining, never an exception mid-batch.

A mechanism may also play across rounds: it declares its state and its actions beyond bids
(:mod:`mecharena.mechanisms.schema`) and a ``step`` from one round's state to the next, with a
scalar ``step_reference`` as its oracle. :func:`advance` is the one path for every mechanism: a
stateless one is the one-round case (its state is empty and its outcome is :func:`clear`'s, bit
for bit); a stateful one's ``kernel`` is its first round from the initial state, so every one-shot
tool (best responses, equilibria, coalitions) sees that round.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.seeding import Draws
from mecharena.core.types import BoolArray, FloatArray
from mecharena.mechanisms.schema import (
    ActionField,
    State,
    StateField,
    check_declaration,
    check_state,
    clean_actions,
    initial_state,
)

#: Names of the properties a mechanism may promise for a given config.
PROPERTIES = {
    "truthful": "truthful bidding is a weakly dominant strategy",
    "ir": "a truthful agent never ends with negative utility (ex post individual rationality)",
    "payments_le_bids": "a buyer never pays more than it bid; a seller never receives less than it asked",
    "weak_budget_balance": "the mechanism never runs a deficit (budget surplus, Outcome.revenue, >= 0)",
    "budget_balance": "the mechanism neither keeps nor adds money (budget surplus, Outcome.revenue, == 0)",
    "efficient": "truthful bidding yields the maximum feasible welfare",
}

#: The smallest bid that enters an auction: every kernel takes part only bids > 0 (and >= the
#: reserve), so a bidder who must enter but wants to pay as little as possible bids this.
SMALLEST_BID = float(np.nextafter(0.0, 1.0))


class MechanismConfig(StrictModel):
    """Base of every mechanism config."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of clearing B markets. ``utility`` is computed from true values, not bids."""

    allocation: FloatArray  # (B, N)  units received; negative: units sold
    payments: FloatArray  # (B, N)  money paid to the mechanism (including fees)
    receipts: FloatArray  # (B, N)  money received from the mechanism (sellers, refunds)
    utility: FloatArray  # (B, N)
    valid: BoolArray  # (B, N)  False: the action was invalid and treated as abstaining
    participated: BoolArray  # (B, N)  entered with an eligible action
    revenue: FloatArray  # (B,)  budget surplus: sum(payments) - sum(receipts) + good (see finish)
    welfare: FloatArray  # (B,)  realized
    max_welfare: FloatArray  # (B,)  maximum feasible welfare given true values

    def market(self, b: int) -> dict[str, Any]:
        """Market ``b`` as plain Python values, in the scalar reference's format."""
        return {name: getattr(self, name)[b].tolist() for name in self.__slots__}


Kernel = Callable[..., Outcome]
Reference = Callable[..., dict[str, Any]]
# (config, state, values, bids, priority, times, actions) -> (state, Outcome, events)
StepFunction = Callable[..., tuple[State, Outcome, dict[str, FloatArray]]]
# (config, state, values, bids, priority, times, actions) for ONE market, plain Python -> (state, outcome, events)
StepReference = Callable[..., tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """How the agents of one market look to a mechanism under a given config."""

    units_per_agent: int = 0  # 0: values and bids are (B, N); K > 0: (B, N, K)  marginal values, non-increasing
    orders_per_agent: int = 0  # 0: one order each; P > 0: bids and times are (B, N, P), values (B, N)
    sellers: BoolArray | None = None  # (N,)  True: the agent sells (asks) instead of bidding
    partners: int = 0  # M > 0: values and bids are (B, N, M): utilities for each member of the other side (matching)
    action_high: float = float("inf")
    action_rule: str = "each bid must be finite and >= 0"

    @property
    def value_width(self) -> int:
        """The trailing width of values (0: (B, N))."""
        return self.units_per_agent or self.partners


@dataclass(frozen=True)
class Mechanism:
    """A registered mechanism. See the module docstring of each mechanism for its economics."""

    name: str
    version: int
    summary: str
    config_model: type[MechanismConfig]
    kernel: Kernel | None  # (config, values, bids, priority, times) -> Outcome; None: a step's first round
    reference: Reference | None  # (config, values, bids, priority, times) for ONE market -> dict
    properties: Callable[[Any], frozenset[str]]
    market_spec: Callable[[Any, int], MarketSpec] = lambda config, n: MarketSpec()
    truthful: Callable[[Any, FloatArray, MarketSpec], FloatArray] = (
        lambda config, values, spec: values.copy()
    )
    uses_times: bool = False
    # One economic agent may bid under several identities (sybils): the loop merges them, which needs
    # a one-sided market where each identity wins at most one unit.
    merges_identities: bool = False
    # An agent's value gains add up over its identities (divisible goods, linear costs): the loop
    # merges identities by summing their utilities and keeps the mechanism's welfare.
    additive_values: bool = False
    examples: tuple[dict[str, Any], ...] = ({},)  # configs the checker exercises
    doc: str = field(default="", repr=False)
    # Across rounds (see mecharena.mechanisms.schema): the declared state and actions beyond bids, the step
    # (config, state, values, bids, priority, times, actions) -> (state, Outcome, events) and its scalar oracle.
    state: tuple[StateField, ...] = ()
    actions: tuple[ActionField, ...] = ()
    step: StepFunction | None = field(default=None, repr=False)
    step_reference: StepReference | None = field(default=None, repr=False)
    # (config, markets, n, draws) -> the initial state; None: the declared initials. ``draws`` are market-keyed
    # uniforms (mecharena.core.seeding.Draws): a random initial state is the same whatever the batch split.
    init: Callable[[Any, int, int, Draws], State] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_declaration(self.name, self.state, self.actions)
        if self.step is None:
            if self.state or self.actions or self.step_reference or self.init:
                raise ConfigError(f"mechanism {self.name}: declares state, actions, a step_reference or an init but "
                                  f"no step")
            return  # a kernel and a reference: the plug-in loader and the checker hold them to their signatures
        if self.init is not None and _positional(self.init) != 4:
            raise ConfigError(f"mechanism {self.name}: init must take (config, markets, n, draws), got "
                              f"{_positional(self.init)} positional parameters")
        if self.step_reference is None:
            raise ConfigError(f"mechanism {self.name}: a step needs a step_reference (one market in plain Python, "
                              f"the checker's oracle)")
        if self.kernel is None:
            object.__setattr__(self, "kernel", self._first_round)
        if self.reference is None:
            object.__setattr__(self, "reference", self._first_round_reference)

    @property
    def stateful(self) -> bool:
        return self.step is not None

    def initial(self, config: Any, markets: int, n: int, draws: Draws | None = None) -> State:
        """The state at the start of an episode of ``markets`` markets of ``n`` seats ({} when stateless).

        ``draws``: the episode's market-keyed draws for ``init`` (:func:`mechanism_draws`); without them
        (a kernel called alone, the checker), those of seed 0 with the call's markets counted from 0.
        """
        if not self.stateful:
            return {}
        if self.init is None:
            state = initial_state(self.state, markets, n)
        else:
            state = self.init(config, markets, n, draws if draws is not None else mechanism_draws(0, 0, markets))
        return check_state(self.name, self.state, state, markets, n, "init returned")

    def _first_round(self, config: Any, values: FloatArray, bids: FloatArray, priority: FloatArray,
                     times: FloatArray | None = None) -> Outcome:
        b, n = values.shape[:2]
        actions, _ = clean_actions(self.actions, None, b, n)
        return self.step(config, self.initial(config, b, n), values, bids, priority, times, actions)[1]

    def _first_round_reference(self, config: Any, values: list, bids: list, priority: list, times: Any = None) -> dict:
        state = {name: array[0].tolist() for name, array in self.initial(config, 1, len(values)).items()}
        actions = {a.name: [a.default] * len(values) for a in self.actions}
        return self.step_reference(config, state, values, bids, priority, times, actions)[1]

    def config(self, config: Any = None) -> Any:
        """``config`` validated into this mechanism's config model (a dict, model or None)."""
        if isinstance(config, self.config_model):
            return config
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"config for {self.name} must be a mapping or {self.config_model.__name__}, "
                f"got {type(config).__name__}"
            )
        return self.config_model.build(**config)


def mechanism_draws(seed: int, start: int, markets: int) -> Draws:
    """The draws a stateful mechanism's ``init`` gets for markets ``start .. start + markets - 1`` of an episode."""
    return Draws(seed, ("mechanism",), start, markets)


def _positional(function: Callable) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(function).parameters.values())


def _as_float(name: str, array: Any) -> FloatArray:
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"{name} must be an array of numbers: {exc}") from None


def check_shapes(
    spec: MarketSpec, values: Any, bids: Any, priority: Any, times: Any
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Convert to float64 and check shapes against ``values`` (B, N[, K]).

    Raises:
        InvalidActionError: a shape does not match, ``values`` or ``priority`` is not finite, or
            marginal values increase.
    """
    values = _as_float("values", values)
    width = spec.value_width
    if values.ndim != (3 if width else 2) or (width and values.shape[2] != width):
        layout = f"(B, N, {width})" if width else "(B, N)"
        raise InvalidActionError(f"values must have shape {layout}, got {values.shape}")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise InvalidActionError(f"values must hold at least one market and one agent, got {values.shape}")
    if not np.isfinite(values).all():
        raise InvalidActionError("values must be finite")
    if spec.units_per_agent and (np.diff(values, axis=2) > 0).any():
        raise InvalidActionError("values must be non-increasing along the units axis (decreasing marginal values)")
    bids = _as_float("bids", bids)
    orders = (spec.orders_per_agent,) if spec.orders_per_agent else ()
    if bids.shape != values.shape + orders:
        what = f"of values {values.shape}" if not orders else f"(B, N, orders) = {values.shape + orders}"
        raise InvalidActionError(f"bids must have the shape {what}, got {bids.shape}")
    priority = _as_float("priority", priority)
    if priority.shape != values.shape[:2]:
        raise InvalidActionError(f"priority must have shape (B, N) = {values.shape[:2]}, got {priority.shape}")
    if not np.isfinite(priority).all():
        raise InvalidActionError("priority must be finite")
    if times is not None:
        times = _as_float("times", times)
        if times.shape != values.shape[:2] + orders:
            raise InvalidActionError(f"times must have the shape of the orders {values.shape[:2] + orders}, "
                                     f"got {times.shape}")
    return values, bids, priority, times


def clear(
    mechanism: Mechanism,
    config: Any,
    values: Any,
    bids: Any,
    priority: Any,
    times: Any = None,
    *,
    strict: bool = True,
) -> Outcome:
    """Clear B markets of ``mechanism``: the validated engine path.

    Args:
        mechanism: the mechanism record (see :func:`mecharena.mechanisms.get`).
        config: a config model instance, a dict of fields, or None for the defaults.
        values: true values (costs for sellers), shape (B, N) or (B, N, K) for multi-unit demand.
        bids: actions, same shape as ``values``.
        priority: (B, N) tie-breaking priorities in [0, 1); higher wins ties.
        times: order times in [0, 1] for sequential mechanisms, shaped like the orders; None:
            arrival by priority.
        strict: raise on invalid actions instead of flagging them in ``Outcome.valid``.

    Returns:
        The :class:`Outcome` of every market.

    Raises:
        ConfigError: the config is invalid for this mechanism or market size.
        InvalidActionError: wrong shapes, non-finite values, or (strict) an invalid bid.
    """
    config = mechanism.config(config)
    n_agents = np.shape(values)[1] if np.ndim(values) >= 2 else 0
    spec = mechanism.market_spec(config, n_agents)
    values, bids, priority, times = check_shapes(spec, values, bids, priority, times)
    outcome = mechanism.kernel(config, values, bids, priority, times)
    if strict:
        _refuse_invalid(mechanism, spec, outcome, bids, times)
    return outcome


def _refuse_invalid(mechanism: Mechanism, spec: MarketSpec, outcome: Outcome, bids: FloatArray,
                    times: FloatArray | None) -> None:
    """Raise on the first seat whose action the kernel flagged invalid."""
    if not outcome.valid.all():
        b, i = (int(x) for x in np.argwhere(~outcome.valid)[0])
        raise InvalidActionError(
            f"bids[{b}, {i}] = {bids[b, i].tolist()!r} is not a valid action for {mechanism.name}: "
            f"{spec.action_rule}"
            + (" and times must be in [0, 1]" if mechanism.uses_times and times is not None else "")
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One round of B markets of any mechanism: the state after it, the outcome and the step's events."""

    state: State  # name -> (B, N) or (B,), read-only; {} for a stateless mechanism
    outcome: Outcome
    events: dict[str, FloatArray]  # name -> (B, N) or (B,): what the step did (e.g. deposited, released)


def advance(
    mechanism: Mechanism,
    config: Any,
    state: State,
    values: Any,
    bids: Any,
    priority: Any,
    times: Any = None,
    actions: Mapping[str, Any] | None = None,
    *,
    strict: bool = True,
) -> Step:
    """One round of B markets from ``state``: the validated path for every mechanism.

    A stateless mechanism takes ``{}`` and returns it; its outcome is :func:`clear`'s. A stateful
    one checks ``state`` against its declaration, fills the action fields an agent left out with
    their defaults, replaces entries outside the declared range by the default and flags them in
    ``Outcome.valid`` (or raises, when ``strict``), and checks the state its step returns.

    Args:
        state: the state before the round (:meth:`Mechanism.initial` at the start of an episode).
        actions: action fields beyond bids, name -> (B, N); absent ones take their defaults.
        Others: as :func:`clear`.

    Raises:
        ConfigError: the config, the state or an action field's name or shape is wrong, or the step
            returned a state that breaks its declaration.
        InvalidActionError: as :func:`clear`; and (strict) an action field outside its range.
    """
    if not mechanism.stateful:
        if state or actions:
            what = "state" if state else f"action fields {sorted(actions or {})}"
            raise ConfigError(f"{mechanism.name} keeps no state across rounds and declares no actions beyond "
                              f"bids, got {what}")
        return Step({}, clear(mechanism, config, values, bids, priority, times, strict=strict), {})
    config = mechanism.config(config)
    n_agents = np.shape(values)[1] if np.ndim(values) >= 2 else 0
    spec = mechanism.market_spec(config, n_agents)
    values, bids, priority, times = check_shapes(spec, values, bids, priority, times)
    b, n = values.shape[:2]
    state = check_state(mechanism.name, mechanism.state, state, b, n, "was given")
    cleaned, bad = clean_actions(mechanism.actions, actions, b, n)
    if strict and bad.any():
        row, i = (int(x) for x in np.argwhere(bad)[0])
        given = {a.name: np.asarray(actions[a.name], dtype=float)[row, i] for a in mechanism.actions if a.name in actions}
        broken = next(a for a in mechanism.actions if a.name in given and not a.valid(given[a.name]))
        raise InvalidActionError(f"{broken.name}[{row}, {i}] = {given[broken.name].item()!r} is not a valid action for "
                                 f"{mechanism.name}: {broken.rule()}")
    new, outcome, events = mechanism.step(config, state, values, bids, priority, times, cleaned)
    new = check_state(mechanism.name, mechanism.state, new, b, n, "step returned")
    for array in new.values():
        array.flags.writeable = False
    if bad.any():
        outcome = replace(outcome, valid=outcome.valid & ~bad)
    if strict:
        _refuse_invalid(mechanism, spec, outcome, bids, times)
    return Step(new, outcome, dict(events))


def finish(
    allocation: FloatArray,
    payments: FloatArray,
    receipts: FloatArray,
    gains: FloatArray,
    valid: BoolArray,
    participated: BoolArray,
    max_welfare: FloatArray,
    welfare: FloatArray | None = None,
    good: FloatArray | float = 0.0,
) -> Outcome:
    """Assemble an :class:`Outcome` from per-agent value gains ``gains`` (B, N).

    ``utility = gains - payments + receipts``; welfare defaults to the sum of gains (transfers
    cancel). Revenue is the mechanism's budget surplus, one definition for every family: money in
    minus money out, with the good the mechanism provides itself (public goods) on its books,

        revenue = sum(payments) - sum(receipts) + good,

    ``good`` (B,) being the money that good brings in (what it yields in money, e.g. a VCM's
    multiplied pot) minus what it costs (a provision point's threshold); 0 in markets, where goods
    move between agents. A deficit is revenue < 0: the mechanism paid out more than it took in.
    """
    return Outcome(
        allocation=allocation,
        payments=payments,
        receipts=receipts,
        utility=gains - payments + receipts,
        valid=valid,
        participated=participated,
        revenue=payments.sum(axis=1) - receipts.sum(axis=1) + good,
        welfare=gains.sum(axis=1) if welfare is None else welfare,
        max_welfare=max_welfare,
    )


def scalar_outcome(
    gains: list[float],
    allocation: list[float],
    payments: list[float],
    receipts: list[float],
    valid: list[bool],
    participated: list[bool],
    max_welfare: float,
    welfare: float | None = None,
    good: float = 0.0,
) -> dict[str, Any]:
    """The scalar reference's counterpart of :func:`finish`, for one market, in plain Python."""
    return {
        "allocation": [float(a) for a in allocation],
        "payments": [float(p) for p in payments],
        "receipts": [float(r) for r in receipts],
        "utility": [g - p + r for g, p, r in zip(gains, payments, receipts, strict=True)],
        "valid": list(valid),
        "participated": list(participated),
        "revenue": sum(payments) - sum(receipts) + good,
        "welfare": sum(gains) if welfare is None else welfare,
        "max_welfare": max_welfare,
    }


def is_valid_number(x: float, low: float = 0.0, high: float = float("inf")) -> bool:
    """Scalar validity of one action: finite and in [low, high]."""
    return x == x and low <= x <= high and x != float("inf")  # noqa: PLR0124 (x != x only for NaN)
