"""``check_mechanism``: one battery for every registered mechanism (like Gymnasium's ``check_env``).

For each example config and several market sizes it clears random markets (truthful, random,
tied and invalid bids) and checks: shapes and dtypes; seeded determinism; the batched kernel
equals the scalar reference market by market; clearing a sub-batch gives the same rows;
inputs are not mutated; payments, utilities and welfare are finite; welfare never exceeds the
maximum feasible; and, for truthful agents, every property the config promises (IR, payments
<= bids, budget balance, efficiency, and dominant-strategy truthfulness against random
unilateral deviations).
"""

from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import PROPERTIES, MarketSpec, Mechanism, Outcome, clear

TOL = 1e-9
AGENT_COUNTS = (1, 2, 3, 5, 8)


class MechanismCheckError(MechArenaError, AssertionError):
    """A mechanism broke one of the checker's rules."""


def _fail(mechanism: Mechanism, config: Any, n: int, message: str) -> MechanismCheckError:
    return MechanismCheckError(f"{mechanism.name} {config!r} with {n} agents: {message}")


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


def _compare(mechanism: Mechanism, config: Any, n: int, outcome: Outcome, values, bids, priority, times) -> None:
    for b in range(values.shape[0]):
        expected = mechanism.reference(config, values[b].tolist(), bids[b].tolist(), priority[b].tolist(),
                                       None if times is None else times[b].tolist())
        got = outcome.market(b)
        for name in Outcome.__slots__:
            if not np.allclose(np.asarray(got[name], float), np.asarray(expected[name], float),
                               rtol=TOL, atol=TOL, equal_nan=False):
                raise _fail(mechanism, config, n, f"market {b}: batched {name}={got[name]} "
                            f"but the scalar reference gives {expected[name]}")


def _check_shapes(mechanism: Mechanism, config: Any, n: int, outcome: Outcome, markets: int) -> None:
    for name in Outcome.__slots__:
        array = getattr(outcome, name)
        shape = (markets,) if name in ("revenue", "welfare", "max_welfare") else (markets, n)
        dtype = np.bool_ if name in ("valid", "participated") else np.float64
        if array.shape != shape or array.dtype != dtype:
            raise _fail(mechanism, config, n, f"{name} has shape {array.shape} dtype {array.dtype}, "
                        f"expected {shape} {np.dtype(dtype)}")
        if dtype == np.float64 and not np.isfinite(array).all():
            raise _fail(mechanism, config, n, f"{name} is not finite")
    if (outcome.welfare > outcome.max_welfare + TOL).any():
        raise _fail(mechanism, config, n, "realized welfare exceeds the maximum feasible welfare")


def _bid_totals(spec: MarketSpec, bids: FloatArray, allocation: FloatArray) -> FloatArray:
    """Sum of each agent's bids on the units it was allocated (B, N)."""
    if spec.orders_per_agent:  # the order that traded: at most the highest bid, at least the lowest ask
        return np.where(allocation > 0, bids.max(axis=2), bids.min(axis=2)) * np.abs(allocation)
    if not spec.units_per_agent:
        return bids * np.abs(allocation)
    won = np.arange(bids.shape[2])[None, None, :] < allocation[:, :, None]
    return np.where(won, bids, 0.0).sum(axis=2)


def _check_properties(mechanism: Mechanism, config: Any, n: int, spec: MarketSpec, values, truthful,
                      priority, times, rng: np.random.Generator) -> None:
    promised = mechanism.properties(config)
    if unknown := set(promised) - set(PROPERTIES):
        raise _fail(mechanism, config, n, f"promises unknown properties {sorted(unknown)}; known: {sorted(PROPERTIES)}")
    out = clear(mechanism, config, values, truthful, priority, times)
    if "ir" in promised and (out.utility < -TOL).any():
        raise _fail(mechanism, config, n, "a truthful agent has negative utility but the mechanism promises IR")
    if "payments_le_bids" in promised:
        paid = _bid_totals(spec, truthful, out.allocation)
        buyer, seller = out.allocation > 0, out.allocation < 0
        if (buyer & (out.payments > paid + TOL)).any() or (seller & (out.receipts < paid - TOL)).any():
            raise _fail(mechanism, config, n, "a payment exceeds the bid (or a receipt is below the ask)")
    if "weak_budget_balance" in promised and (out.revenue < -TOL).any():
        raise _fail(mechanism, config, n, "the mechanism lost money but promises weak budget balance")
    if "budget_balance" in promised and (np.abs(out.revenue) > TOL).any():
        raise _fail(mechanism, config, n, "revenue is not zero but the mechanism promises budget balance")
    if "efficient" in promised and (out.welfare < out.max_welfare - TOL).any():
        raise _fail(mechanism, config, n, "truthful bidding did not reach the maximum welfare")
    if "truthful" in promised:
        for _ in range(8):
            agent = int(rng.integers(n))
            deviation = truthful.copy()
            lie = rng.random(truthful.shape[:1] + truthful.shape[2:]) * min(spec.action_high, 1.5)
            deviation[:, agent] = -np.sort(-lie, axis=-1) if spec.units_per_agent else lie
            dev = clear(mechanism, config, values, deviation, priority, times)
            gain = dev.utility[:, agent] - out.utility[:, agent]
            if (gain > TOL).any():
                b = int(np.argmax(gain))
                raise _fail(mechanism, config, n, f"agent {agent} gains {gain[b]:.6g} in market {b} by bidding "
                            f"{deviation[b, agent].tolist()} instead of {truthful[b, agent].tolist()}")


def check_mechanism(mechanism: Mechanism, *, markets: int = 60, seed: int = 0,
                    configs: tuple[dict[str, Any], ...] | None = None) -> int:
    """Run the battery on every example config of ``mechanism``.

    Returns:
        The number of (config, market size) cases checked.

    Raises:
        MechanismCheckError: the first rule broken, naming the config, size and market.
    """
    cases = 0
    for fields in configs or mechanism.examples:
        config = mechanism.config(fields)
        for n in AGENT_COUNTS:
            try:
                spec = mechanism.market_spec(config, n)
            except ConfigError:
                continue  # e.g. a two-sided market needs more agents than buyers
            rng = generator(seed, ("check", mechanism.name, n, cases))
            values = random_values(spec, rng, markets, n)
            truthful = mechanism.truthful(config, values, spec)
            bids = random_bids(spec, rng, truthful)
            priority = rng.random((markets, n))
            times = rng.random(truthful.shape[:2] + truthful.shape[2:]) if mechanism.uses_times else None
            if times is not None and spec.units_per_agent:
                times = times[:, :, 0]
            inputs = [a.copy() for a in (values, bids, priority)]
            out = clear(mechanism, config, values, bids, priority, times, strict=False)
            again = clear(mechanism, config, values, bids, priority, times, strict=False)
            if any(not np.array_equal(a, b, equal_nan=True) for a, b in zip(inputs, (values, bids, priority), strict=True)):
                raise _fail(mechanism, config, n, "clearing mutated its inputs")
            for name in Outcome.__slots__:
                if not np.array_equal(getattr(out, name), getattr(again, name)):
                    raise _fail(mechanism, config, n, f"{name} differs between two identical calls")
            _check_shapes(mechanism, config, n, out, markets)
            half = markets // 2
            part = clear(mechanism, config, values[half:], bids[half:], priority[half:],
                         None if times is None else times[half:], strict=False)
            if not all(np.array_equal(getattr(part, f), getattr(out, f)[half:]) for f in Outcome.__slots__):
                raise _fail(mechanism, config, n, "clearing a sub-batch changes the results of its markets")
            _compare(mechanism, config, n, out, values, bids, priority, times)
            _check_properties(mechanism, config, n, spec, values, truthful, priority, times, rng)
            cases += 1
    if not cases:
        raise MechanismCheckError(f"{mechanism.name}: no market size in {AGENT_COUNTS} fits its example configs")
    return cases
