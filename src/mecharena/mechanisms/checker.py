"""``check_mechanism``: one battery for every mechanism, built in or a plug-in (like Gymnasium's ``check_env``).

For each example config and several market sizes it clears random markets (truthful, random,
tied and invalid bids) and runs the checks of :data:`CHECKS` in order: the kernel returns an
:class:`Outcome`; shapes and dtypes; payments, utilities and welfare are finite; inputs are not
mutated; seeded determinism; clearing a sub-batch gives the same rows; the batched kernel equals
the scalar reference market by market; welfare never exceeds the maximum feasible; and, for
truthful agents, every property the config promises (IR, payments <= bids, budget balance,
efficiency, and dominant-strategy truthfulness against random unilateral deviations).

Every failure is a :class:`MechanismCheckError` whose ``check`` names the rule broken and whose
message reads ``NAME CONFIG with N agents: CHECK: what went wrong``. A kernel that raises fails
the check that was running. :func:`check_mechanism` stops at the first failure;
:func:`run_checks` goes on and reports every check as passed, failed, not run or not promised.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import PROPERTIES, MarketSpec, Mechanism, Outcome, Step, advance, clear, mechanism_draws
from mecharena.mechanisms.schema import HELD_EVENTS, State

TOL = 1e-9
AGENT_COUNTS = (1, 2, 3, 5, 8)
PER_MARKET = ("revenue", "welfare", "max_welfare")
FLAGS = ("valid", "participated")

#: Checks of a mechanism that keeps state, run over :data:`STEPS` rounds from its initial state (with random
#: actions beyond bids, some outside their declared ranges).
SPLIT_SEED = 11  # the episode seed of the initial states the checker compares across a batch split
STATE_CHECKS: dict[str, str] = {
    "state_schema": "init and every step return exactly the declared state fields, float64 of the declared shapes, "
                    "finite; events are finite arrays with a leading markets axis",
    "state_unchanged": "a step leaves the state it was given unchanged (it returns a new one)",
    "step_deterministic": "two identical steps give identical states, outcomes and events",
    "init_batch_split": "the initial state of a block of markets is those markets' rows of the whole batch's "
                        "(init draws keyed by market: the same whatever the split)",
    "step_batch_split": "stepping a sub-batch (its rows of the state too) gives the same rows",
    "step_reference": "the batched step equals the scalar step_reference market by market: state, outcome, events",
    "held_money": "money held for identities is conserved: held' = held + deposited - released - forfeited, each "
                  ">= 0, held >= 0, and released money is part of the identity's receipts",
}
STEPS = 3

#: Every check, in the order it runs on each case; the promised properties come last.
CHECKS: dict[str, str] = {
    "examples": "every example config is valid and at least one market size fits",
    "truthful_bids": "truthful(config, values, spec) returns finite bids shaped like the orders",
    "outcome": "the kernel returns an Outcome without raising",
    "shapes": "Outcome arrays are (B, N) per agent and (B,) per market; float64, or bool for flags",
    "finite": "every float array of the Outcome is finite (no NaN or infinity)",
    "inputs_unchanged": "clearing leaves values, bids, priorities and times unchanged",
    "deterministic": "two identical calls give identical outcomes",
    "batch_split": "clearing a sub-batch gives the same rows as clearing the whole batch",
    "reference": "the batched kernel equals the scalar reference market by market",
    "welfare_bound": "realized welfare never exceeds the maximum feasible welfare",
    **STATE_CHECKS,
    "known_properties": "every promised property is one of " + ", ".join(PROPERTIES),
    **PROPERTIES,
}


class MechanismCheckError(MechArenaError, AssertionError):
    """A mechanism broke one of the checker's rules; ``check`` is its key in :data:`CHECKS`."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :func:`run_checks` found."""

    mechanism: str
    cases: int  # (config, market size) cases that passed every check
    status: dict[str, str]  # check -> passed | failed | not run | not promised, in the order of CHECKS
    failures: tuple[MechanismCheckError, ...]  # the first failure of each failed check, in the order found

    @property
    def passed(self) -> bool:
        return not self.failures

    def rows(self) -> list[dict[str, str]]:
        """One row per check: ``{"check", "description", "status", "detail"}`` (detail: the failure)."""
        first = {f.check: str(f) for f in reversed(self.failures)}
        return [{"check": name, "description": CHECKS[name], "status": status, "detail": first.get(name, "")}
                for name, status in self.status.items()]


def random_values(spec: MarketSpec, rng: np.random.Generator, markets: int, n: int) -> FloatArray:
    if spec.units_per_agent:
        return -np.sort(-rng.random((markets, n, spec.units_per_agent)), axis=2)
    if spec.partners:
        return rng.random((markets, n, spec.partners))
    return rng.random((markets, n))


def random_bids(spec: MarketSpec, rng: np.random.Generator, truthful: FloatArray) -> FloatArray:
    """A mix per agent: truthful, scaled, coarse (ties), zero and invalid bids, shaped like ``truthful``."""
    shape = truthful.shape
    high = min(spec.action_high, 1.5)
    noise = rng.random(shape) * high
    if spec.units_per_agent:
        noise = -np.sort(-noise, axis=2)
    kind = rng.integers(0, 5, size=shape[:2]).reshape(shape[:2] + (1,) * (len(shape) - 2))
    bids = np.select([kind == 0, kind == 1, kind == 2], [truthful, noise, np.round(noise * 4) / 4], default=noise)
    bids = np.where(rng.random(shape) < 0.05, 0.0, bids)
    if spec.units_per_agent:
        bids = -np.sort(-bids, axis=2)
    bad = rng.random(shape[:2]) < 0.05
    junk = rng.choice(np.array([np.nan, -1.0, np.inf, spec.action_high + 1.0]), size=shape[:2])
    if len(shape) == 3:
        bids[bad, 0] = junk[bad]
    else:
        bids[bad] = junk[bad]
    return bids


class _Case:
    """One (config, market size) case: runs checks in order and records those that pass."""

    def __init__(self, mechanism: Mechanism, config: Any, n: int, passed: set[str]) -> None:
        self.mechanism, self.config, self.n, self.passed = mechanism, config, n, passed

    def fail(self, check: str, message: str) -> MechanismCheckError:
        return MechanismCheckError(f"{self.mechanism.name} {self.config!r} with {self.n} agents: {check}: {message}",
                                   check)

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        """Run one check; any exception but a check failure (a kernel that raises) fails it."""
        try:
            yield
        except MechanismCheckError:
            raise
        except Exception as exc:  # a user's kernel may raise anything: that is a finding
            raise self.fail(name, f"raised {type(exc).__name__}: {exc}") from exc
        self.passed.add(name)


def _compare(case: _Case, outcome: Outcome, values, bids, priority, times) -> None:
    for b in range(values.shape[0]):
        expected = case.mechanism.reference(case.config, values[b].tolist(), bids[b].tolist(), priority[b].tolist(),
                                            None if times is None else times[b].tolist())
        got = outcome.market(b)
        for name in Outcome.__slots__:
            if not np.allclose(np.asarray(got[name], float), np.asarray(expected[name], float),
                               rtol=TOL, atol=TOL, equal_nan=False):
                raise case.fail("reference", f"market {b}: batched {name}={got[name]} "
                                f"but the scalar reference gives {expected[name]}")


def _check_arrays(case: _Case, outcome: Outcome, markets: int) -> None:
    with case.check("shapes"):
        for name in Outcome.__slots__:
            array = getattr(outcome, name)
            shape = (markets,) if name in PER_MARKET else (markets, case.n)
            dtype = np.bool_ if name in FLAGS else np.float64
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
                got = f"has shape {array.shape} dtype {array.dtype}" if isinstance(array, np.ndarray) else \
                    f"is a {type(array).__name__}"
                raise case.fail("shapes", f"{name} {got}, expected shape {shape} dtype {np.dtype(dtype)}")
    with case.check("finite"):
        for name in Outcome.__slots__:
            array = getattr(outcome, name)
            if name not in FLAGS and not np.isfinite(array).all():
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
                raise case.fail("finite", f"{name} is not finite: {name}[{', '.join(map(str, where))}] = "
                                f"{array[where]}")


def _bid_totals(spec: MarketSpec, bids: FloatArray, allocation: FloatArray) -> FloatArray:
    """Sum of each agent's bids on the units it was allocated (B, N)."""
    if spec.orders_per_agent:  # the order that traded: at most the highest bid, at least the lowest ask
        return np.where(allocation > 0, bids.max(axis=2), bids.min(axis=2)) * np.abs(allocation)
    if not spec.units_per_agent:
        return bids * np.abs(allocation)
    won = np.arange(bids.shape[2])[None, None, :] < allocation[:, :, None]
    return np.where(won, bids, 0.0).sum(axis=2)


def _check_properties(case: _Case, spec: MarketSpec, values, truthful, priority, times,
                      rng: np.random.Generator) -> None:
    mechanism, config, n = case.mechanism, case.config, case.n
    with case.check("known_properties"):
        promised = mechanism.properties(config)
        if unknown := set(promised) - set(PROPERTIES):
            raise case.fail("known_properties", f"promises unknown properties {sorted(unknown)}; "
                            f"known: {sorted(PROPERTIES)}")
    if not promised:
        return
    with case.check("truthful_bids"):  # strict: truthful bids must be valid actions
        out = clear(mechanism, config, values, truthful, priority, times)
    if "ir" in promised:
        with case.check("ir"):
            if (out.utility < -TOL).any():
                raise case.fail("ir", "a truthful agent has negative utility but the mechanism promises IR")
    if "payments_le_bids" in promised:
        with case.check("payments_le_bids"):
            paid = _bid_totals(spec, truthful, out.allocation)
            buyer, seller = out.allocation > 0, out.allocation < 0
            if (buyer & (out.payments > paid + TOL)).any() or (seller & (out.receipts < paid - TOL)).any():
                raise case.fail("payments_le_bids", "a payment exceeds the bid (or a receipt is below the ask)")
    if "weak_budget_balance" in promised:
        with case.check("weak_budget_balance"):
            if (out.revenue < -TOL).any():
                raise case.fail("weak_budget_balance", "the mechanism lost money but promises weak budget balance")
    if "budget_balance" in promised:
        with case.check("budget_balance"):
            if (np.abs(out.revenue) > TOL).any():
                raise case.fail("budget_balance", "revenue is not zero but the mechanism promises budget balance")
    if "efficient" in promised:
        with case.check("efficient"):
            if (out.welfare < out.max_welfare - TOL).any():
                raise case.fail("efficient", "truthful bidding did not reach the maximum welfare")
    if "truthful" in promised:
        with case.check("truthful"):
            for _ in range(8):
                agent = int(rng.integers(n))
                deviation = truthful.copy()
                lie = rng.random(truthful.shape[:1] + truthful.shape[2:]) * min(spec.action_high, 1.5)
                deviation[:, agent] = -np.sort(-lie, axis=-1) if spec.units_per_agent else lie
                dev = clear(mechanism, config, values, deviation, priority, times)
                gain = dev.utility[:, agent] - out.utility[:, agent]
                if (gain > TOL).any():
                    b = int(np.argmax(gain))
                    raise case.fail("truthful", f"agent {agent} gains {gain[b]:.6g} in market {b} by bidding "
                                    f"{deviation[b, agent].tolist()} instead of {truthful[b, agent].tolist()}")


def _random_actions(case: _Case, rng: np.random.Generator, markets: int) -> State:
    """Each declared action field: uniform over its range (integers where declared), 5% of entries out of it."""
    actions = {}
    for a in case.mechanism.actions:
        x = a.low + rng.random((markets, case.n)) * (a.high - a.low)
        x = np.round(x) if a.integer else x
        actions[a.name] = np.where(rng.random(x.shape) < 0.05, rng.choice([np.nan, a.low - 1, a.high + 1]), x)
    return actions


def _same_step(a: Step, b: Step) -> str | None:
    """The first part in which two steps differ, or None."""
    for name in a.state.keys() | b.state.keys():
        if name not in a.state or name not in b.state or not np.array_equal(a.state[name], b.state[name]):
            return f"state field {name!r}"
    for name in Outcome.__slots__:
        if not np.array_equal(getattr(a.outcome, name), getattr(b.outcome, name)):
            return f"outcome {name}"
    for name in a.events.keys() | b.events.keys():
        if name not in a.events or name not in b.events or not np.array_equal(a.events[name], b.events[name]):
            return f"event {name!r}"
    return None


def _close(got: Any, expected: Any) -> bool:
    return np.allclose(np.asarray(got, float), np.asarray(expected, float), rtol=TOL, atol=TOL, equal_nan=False)


def _check_held(case: _Case, before: State, after: Step) -> None:
    held = [f.name for f in case.mechanism.state if f.held]
    missing = [e for e in HELD_EVENTS if e not in after.events]
    if missing:
        raise case.fail("held_money", f"the mechanism holds money ({held}) but its step reports no {missing} events")
    moved = {e: after.events[e] for e in HELD_EVENTS}
    for name, array in moved.items():
        if (array < -TOL).any():
            raise case.fail("held_money", f"event {name!r} is negative: {array.min():.6g}")
    change = sum(after.state[f] for f in held) - sum(before[f] for f in held)
    flow = moved["deposited"] - moved["released"] - moved["forfeited"]
    if not _close(change, flow):
        b, i = (int(x) for x in np.argwhere(~np.isclose(change, flow, rtol=TOL, atol=TOL))[0])
        raise case.fail("held_money", f"market {b} seat {i}: held money changed by {change[b, i]:.6g} but "
                        f"deposited - released - forfeited = {flow[b, i]:.6g}")
    if any((after.state[f] < -TOL).any() for f in held):
        raise case.fail("held_money", "held money became negative")
    if (moved["released"] > after.outcome.receipts + TOL).any():
        raise case.fail("held_money", "an identity was released more than it received")


def _run_steps(case: _Case, spec: MarketSpec, rng: np.random.Generator, markets: int) -> None:
    """The :data:`STATE_CHECKS` over :data:`STEPS` rounds from the initial state."""
    mechanism, config, n = case.mechanism, case.config, case.n
    with case.check("state_schema"):
        state = mechanism.initial(config, markets, n, mechanism_draws(SPLIT_SEED, 0, markets))
    half = markets // 2
    with case.check("init_batch_split"):
        tail = mechanism.initial(config, markets - half, n, mechanism_draws(SPLIT_SEED, half, markets - half))
        if differs := [k for k in state if not np.array_equal(state[k][half:], tail[k])]:
            raise case.fail("init_batch_split", f"the initial {differs} of markets {half}.. differ when they are "
                                                f"initialised alone (draw from init's draws, keyed by market)")
    for _ in range(STEPS):
        values = random_values(spec, rng, markets, n)
        bids = random_bids(spec, rng, np.asarray(mechanism.truthful(config, values, spec), dtype=np.float64))
        priority = rng.random((markets, n))
        times = rng.random(bids.shape[:2] + bids.shape[2:]) if mechanism.uses_times else None
        if times is not None and spec.units_per_agent:
            times = times[:, :, 0]
        actions = _random_actions(case, rng, markets)
        given = {name: array.copy() for name, array in state.items()}
        with case.check("state_schema"):
            step = advance(mechanism, config, given, values, bids, priority, times, actions, strict=False)
            for name, array in step.events.items():
                if not isinstance(array, np.ndarray) or array.shape[:1] != (markets,) or not np.isfinite(array).all():
                    raise case.fail("state_schema", f"event {name!r} must be a finite array with {markets} rows")
        _check_arrays(case, step.outcome, markets)
        with case.check("state_unchanged"):
            if changed := [k for k in state if not np.array_equal(given[k], state[k])]:
                raise case.fail("state_unchanged", f"the step changed the state it was given in place: {changed}")
        with case.check("step_deterministic"):
            again = advance(mechanism, config, state, values, bids, priority, times, actions, strict=False)
            if differs := _same_step(step, again):
                raise case.fail("step_deterministic", f"{differs} differs between two identical steps")
        with case.check("step_batch_split"):
            part = advance(mechanism, config, {k: v[half:] for k, v in state.items()}, values[half:], bids[half:],
                           priority[half:], None if times is None else times[half:],
                           {k: v[half:] for k, v in actions.items()}, strict=False)
            rows = Step({k: v[half:] for k, v in step.state.items()},
                        Outcome(**{f: getattr(step.outcome, f)[half:] for f in Outcome.__slots__}),
                        {k: v[half:] for k, v in step.events.items()})
            if differs := _same_step(part, rows):
                raise case.fail("step_batch_split", f"stepping a sub-batch changes the {differs} of its markets")
        with case.check("step_reference"):
            _compare_step(case, state, step, values, bids, priority, times, actions)
        with case.check("welfare_bound"):
            if (step.outcome.welfare > step.outcome.max_welfare + TOL).any():
                raise case.fail("welfare_bound", "realized welfare exceeds the maximum feasible welfare")
        if any(f.held for f in mechanism.state):
            with case.check("held_money"):
                _check_held(case, state, step)
        state = step.state


def _compare_step(case: _Case, state: State, step: Step, values, bids, priority, times, actions: State) -> None:
    for b in range(values.shape[0]):
        # the reference sees the actions as the step did: entries outside their range replaced by the default
        taken = {a.name: np.where(a.valid(actions[a.name][b]), actions[a.name][b], a.default).tolist()
                 for a in case.mechanism.actions}
        expected_state, expected, expected_events = case.mechanism.step_reference(
            case.config, {k: v[b].tolist() for k, v in state.items()}, values[b].tolist(), bids[b].tolist(),
            priority[b].tolist(), None if times is None else times[b].tolist(), taken)
        bad = np.zeros(case.n, bool)
        for a in case.mechanism.actions:
            bad |= ~a.valid(actions[a.name][b])
        expected = {**expected, "valid": [v and not x for v, x in zip(expected["valid"], bad, strict=True)]}
        parts = [("state", step.state, expected_state), ("outcome", step.outcome.market(b), expected),
                 ("event", step.events, expected_events)]
        for kind, got, want in parts:
            if set(want) != set(got):
                raise case.fail("step_reference", f"market {b}: the step gives {kind} keys {sorted(got)} but the "
                                f"reference gives {sorted(want)}")
            for name in want:
                row = got[name] if kind == "outcome" else got[name][b]
                if not _close(row, want[name]):
                    raise case.fail("step_reference", f"market {b}: batched {kind} {name}={np.asarray(row).tolist()} "
                                    f"but the scalar reference gives {want[name]}")


def _run_case(case: _Case, spec: MarketSpec, rng: np.random.Generator, markets: int) -> None:
    """Every check of :data:`CHECKS` but ``examples`` on one config and market size."""
    mechanism, config, n = case.mechanism, case.config, case.n
    values = random_values(spec, rng, markets, n)
    with case.check("truthful_bids"):
        truthful = np.asarray(mechanism.truthful(config, values, spec), dtype=np.float64)
        orders = values.shape + ((spec.orders_per_agent,) if spec.orders_per_agent else ())
        if truthful.shape != orders or not np.isfinite(truthful).all():
            raise case.fail("truthful_bids", f"truthful bids must be finite with shape {orders}, got shape "
                            f"{truthful.shape}{'' if np.isfinite(truthful).all() else ' with non-finite entries'}")
    bids = random_bids(spec, rng, truthful)
    priority = rng.random((markets, n))
    times = rng.random(truthful.shape[:2] + truthful.shape[2:]) if mechanism.uses_times else None
    if times is not None and spec.units_per_agent:
        times = times[:, :, 0]
    inputs = {"values": values, "bids": bids, "priority": priority, "times": times}
    before = {name: None if a is None else a.copy() for name, a in inputs.items()}
    with case.check("outcome"):
        out = clear(mechanism, config, values, bids, priority, times, strict=False)
        if not isinstance(out, Outcome):
            raise case.fail("outcome", f"the kernel returned a {type(out).__name__}, not an Outcome")
    _check_arrays(case, out, markets)
    with case.check("inputs_unchanged"):
        for name, array in inputs.items():
            if array is not None and not np.array_equal(array, before[name], equal_nan=True):
                raise case.fail("inputs_unchanged", f"clearing mutated its inputs: {name} changed")
    with case.check("deterministic"):
        again = clear(mechanism, config, values, bids, priority, times, strict=False)
        for name in Outcome.__slots__:
            if not np.array_equal(getattr(out, name), getattr(again, name)):
                raise case.fail("deterministic", f"{name} differs between two identical calls (a kernel may "
                                "draw randomness only from its inputs)")
    with case.check("batch_split"):
        half = markets // 2
        part = clear(mechanism, config, values[half:], bids[half:], priority[half:],
                     None if times is None else times[half:], strict=False)
        if not all(np.array_equal(getattr(part, f), getattr(out, f)[half:]) for f in Outcome.__slots__):
            raise case.fail("batch_split", "clearing a sub-batch changes the results of its markets")
    with case.check("reference"):
        _compare(case, out, values, bids, priority, times)
    with case.check("welfare_bound"):
        if (out.welfare > out.max_welfare + TOL).any():
            raise case.fail("welfare_bound", "realized welfare exceeds the maximum feasible welfare")
    if mechanism.stateful:
        _run_steps(case, spec, rng, markets)
    _check_properties(case, spec, values, truthful, priority, times, rng)


def run_checks(mechanism: Mechanism, *, markets: int = 60, seed: int = 0,
               configs: tuple[dict[str, Any], ...] | None = None, stop_at_first: bool = False) -> CheckReport:
    """Run the battery on every example config of ``mechanism`` (or ``configs``) and every market size.

    A failing case stops at its first failed check (later checks would read its broken
    outcome); the other cases still run unless ``stop_at_first``.

    Returns:
        A :class:`CheckReport` with the status of every check of :data:`CHECKS`.

    Raises:
        MechanismCheckError: only with ``stop_at_first``, the first rule broken.
    """
    passed: set[str] = set()
    failures: dict[str, MechanismCheckError] = {}
    cases = 0

    def record(error: MechanismCheckError) -> None:
        if stop_at_first:
            raise error
        failures.setdefault(error.check, error)

    for fields in configs or mechanism.examples:
        try:
            config = mechanism.config(fields)
        except MechArenaError as exc:
            record(MechanismCheckError(f"{mechanism.name}: examples: {fields!r} is not a valid config: {exc}",
                                       "examples"))
            continue
        for n in AGENT_COUNTS:
            try:
                spec = mechanism.market_spec(config, n)
            except ConfigError:
                continue  # e.g. a two-sided market needs more agents than buyers
            rng = generator(seed, ("check", mechanism.name, n, cases))
            try:
                _run_case(_Case(mechanism, config, n, passed), spec, rng, markets)
            except MechanismCheckError as exc:
                record(exc)
                continue
            cases += 1
    if not cases and not failures:
        record(MechanismCheckError(f"{mechanism.name}: examples: no market size in {AGENT_COUNTS} fits its "
                                   "example configs", "examples"))
    if "examples" not in failures:
        passed.add("examples")
    status = {name: "failed" if name in failures else "passed" if name in passed else
              "not promised" if name in PROPERTIES else
              "no state" if name in STATE_CHECKS and not mechanism.stateful else "not run" for name in CHECKS}
    return CheckReport(mechanism.name, cases, status, tuple(failures.values()))


def check_mechanism(mechanism: Mechanism, *, markets: int = 60, seed: int = 0,
                    configs: tuple[dict[str, Any], ...] | None = None) -> int:
    """Run the battery on every example config of ``mechanism``, stopping at the first failure.

    Returns:
        The number of (config, market size) cases checked.

    Raises:
        MechanismCheckError: the first rule broken, naming the check, config, size and market.
    """
    return run_checks(mechanism, markets=markets, seed=seed, configs=configs, stop_at_first=True).cases
