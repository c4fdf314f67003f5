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
from mecharena.mechanisms.base import PROPERTIES, MarketSpec, Mechanism, Outcome, clear

TOL = 1e-9
AGENT_COUNTS = (1, 2, 3, 5, 8)
PER_MARKET = ("revenue", "welfare", "max_welfare")
FLAGS = ("valid", "participated")

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
              "not promised" if name in PROPERTIES else "not run" for name in CHECKS}
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
