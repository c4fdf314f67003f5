"""What a mechanism that plays across rounds declares: its state and its actions beyond bids.

A stateful mechanism keeps per-identity and per-market arrays from round to round (balances, escrow,
vesting, reputation, open disputes). It declares each as a :class:`StateField`; its state is then a
mapping ``name -> array`` of shape (B, N) (``per="seat"``) or (B,) (``per="market"``), float64, finite.
Fields marked ``held`` are money the mechanism holds on an identity's behalf (escrow, unvested
rewards, collateral); the checker then holds the step to account for every unit of it (see
:data:`HELD_EVENTS`).

Actions beyond the bid (a claim, a withdrawal, a challenge, a quality choice) are :class:`ActionField` s:
one number per seat and round in ``[low, high]`` (integers where ``integer``). An agent that does not
know a field leaves it at its ``default``; an entry outside the declared range is replaced by the
default and flags the seat's action as invalid (the declared penalty), never an exception mid-batch.

One declaration serves every reader: the loop, the checker, the ledger (one column per field),
agents, and the JSON description of the mechanism.
"""

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.core.types import BoolArray, FloatArray

#: Events a step with ``held`` state must return, each (B, N) and >= 0: money moved into held fields,
#: paid out of them to the identity (part of its receipts) and kept or burnt by the mechanism.
HELD_EVENTS = ("deposited", "released", "forfeited")
#: Names the loop and the ledger use for their own columns; a field may not take one.
RESERVED = frozenset({"bids", "bid", "enter", "times", "time", "colluding", "priority", "values", "value"})
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

State = dict[str, FloatArray]


@dataclass(frozen=True, slots=True)
class StateField:
    """One array of a mechanism's state."""

    name: str
    per: Literal["seat", "market"] = "seat"  # (B, N) or (B,)
    initial: float = 0.0  # its value in every market at the start of an episode
    held: bool = False  # money held on the identity's behalf (counted by the conservation check)
    description: str = ""

    def shape(self, markets: int, n: int) -> tuple[int, ...]:
        return (markets, n) if self.per == "seat" else (markets,)


@dataclass(frozen=True, slots=True)
class ActionField:
    """One action per seat and round beside the bid."""

    name: str
    low: float = 0.0
    high: float = 1.0
    default: float = 0.0  # an absent or invalid entry becomes this
    integer: bool = False
    description: str = ""

    def rule(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{self.name} must be {kind} in [{self.low:g}, {self.high:g}]"

    def valid(self, x: FloatArray) -> BoolArray:
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(x) & (x >= self.low) & (x <= self.high)
        return ok & (x == np.round(x)) if self.integer else ok


def _check_name(owner: str, kind: str, name: Any, taken: set[str]) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED or name in taken:
        why = ("is taken by the loop" if name in RESERVED else "is declared twice" if name in taken
               else "must match [a-z][a-z0-9_]* (at most 40 characters)")
        raise ConfigError(f"mechanism {owner}: {kind} name {name!r} {why}")
    taken.add(name)


def check_declaration(owner: str, state: tuple[StateField, ...], actions: tuple[ActionField, ...]) -> None:
    """Refuse a malformed declaration with one line naming the field.

    Raises:
        ConfigError: a field that is not a StateField / ActionField, a bad or duplicate name, an unknown
            ``per``, a non-finite initial value, or an action range that is empty or excludes its default.
    """
    taken: set[str] = set()
    for f in state:
        if not isinstance(f, StateField):
            raise ConfigError(f"mechanism {owner}: state must hold StateField entries, got {type(f).__name__}")
        _check_name(owner, "state field", f.name, taken)
        if f.per not in ("seat", "market"):
            raise ConfigError(f"mechanism {owner}: state field {f.name!r}: per must be 'seat' or 'market', "
                              f"got {f.per!r}")
        if not np.isfinite(f.initial):
            raise ConfigError(f"mechanism {owner}: state field {f.name!r}: initial must be finite, got {f.initial}")
        if f.held and f.per != "seat":
            raise ConfigError(f"mechanism {owner}: state field {f.name!r}: held money belongs to an identity "
                              f"(per='seat'), got per={f.per!r}")
    for a in actions:
        if not isinstance(a, ActionField):
            raise ConfigError(f"mechanism {owner}: actions must hold ActionField entries, got {type(a).__name__}")
        _check_name(owner, "action field", a.name, taken)
        if not (np.isfinite(a.low) and np.isfinite(a.high) and a.low <= a.default <= a.high):
            raise ConfigError(f"mechanism {owner}: action field {a.name!r}: need finite low <= default <= high, "
                              f"got low={a.low}, default={a.default}, high={a.high}")
        if a.integer and any(x != round(x) for x in (a.low, a.high, a.default)):
            raise ConfigError(f"mechanism {owner}: action field {a.name!r} is integer: low, high and default must be "
                              f"whole numbers")


def initial_state(fields: tuple[StateField, ...], markets: int, n: int) -> State:
    """Every field at its initial value."""
    return {f.name: np.full(f.shape(markets, n), f.initial) for f in fields}


def check_state(owner: str, fields: tuple[StateField, ...], state: Any, markets: int, n: int, where: str) -> State:
    """``state`` as declared: exactly the declared names, float64 arrays of the declared shapes, finite.

    Raises:
        ConfigError: one line naming ``where`` (e.g. "step returned"), the field and what was wrong.
    """
    if not isinstance(state, dict):
        raise ConfigError(f"mechanism {owner}: {where} a {type(state).__name__} as state, expected a dict "
                          f"of arrays")
    names = [f.name for f in fields]
    if set(state) != set(names):
        missing, extra = sorted(set(names) - set(state)), sorted(set(state) - set(names))
        raise ConfigError(f"mechanism {owner}: {where} state fields {sorted(state)}; declared {names}"
                          + (f" (missing {missing})" if missing else "") + (f" (undeclared {extra})" if extra else ""))
    checked = {}
    for f in fields:
        array = state[f.name]
        shape = f.shape(markets, n)
        if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != np.float64:
            got = f"shape {array.shape} dtype {array.dtype}" if isinstance(array, np.ndarray) else \
                type(array).__name__
            raise ConfigError(f"mechanism {owner}: {where} state field {f.name!r} as {got}, expected float64 of "
                              f"shape {shape}")
        if not np.isfinite(array).all():
            raise ConfigError(f"mechanism {owner}: {where} state field {f.name!r} with non-finite entries")
        checked[f.name] = array
    return checked


def clean_actions(fields: tuple[ActionField, ...], actions: Any, markets: int, n: int) -> tuple[State, BoolArray]:
    """Each declared action (B, N), absent ones at their default, and the seats whose entry broke the schema
    (replaced by the default).

    Raises:
        ConfigError: an undeclared action name or an array that is not (B, N) (a programming error in
            the agent, not a bad action).
    """
    actions = actions or {}
    if extra := sorted(set(actions) - {f.name for f in fields}):
        declared = [f.name for f in fields] or "none"
        raise ConfigError(f"undeclared action fields {extra}; this mechanism declares {declared}")
    bad = np.zeros((markets, n), dtype=bool)
    cleaned = {}
    for f in fields:
        if f.name not in actions:
            cleaned[f.name] = np.full((markets, n), f.default)
            continue
        x = np.asarray(actions[f.name], dtype=np.float64)
        if x.shape != (markets, n):
            raise ConfigError(f"action field {f.name!r} must have shape (B, N) = {(markets, n)}, got {x.shape}")
        ok = f.valid(x)
        bad |= ~ok
        cleaned[f.name] = np.where(ok, x, f.default)
    return cleaned, bad


def describe(state: tuple[StateField, ...], actions: tuple[ActionField, ...]) -> dict[str, list[dict[str, Any]]]:
    """The declaration as JSON, for ``mecharena mechanisms``, MCP and LLM prompts."""
    return {"state": [asdict(f) for f in state], "actions": [{**asdict(a), "rule": a.rule()} for a in actions]}
