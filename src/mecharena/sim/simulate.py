"""Repeated independent markets: draw values -> agents act -> clear -> record.

Pure function of its arguments. Round t of market b uses values and priorities keyed by
(seed, stream, t, b) only, so a run split into blocks of markets (``start``) reproduces the
same rows bit for bit.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena.agents.base import MarketContext
from mecharena.agents.population import Population
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator, market_uniforms
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism, clear

MAX_MARKETS = 10_000_000
MAX_ROUNDS = 1_000_000


@dataclass(frozen=True, slots=True)
class Trace:
    """Per market-round aggregates of a simulation."""

    revenue: FloatArray  # (T, B)
    welfare: FloatArray  # (T, B)
    max_welfare: FloatArray  # (T, B)
    surplus: FloatArray  # (T, B)  sum of agents' utilities
    participation: FloatArray  # (T, B)  share of agents that participated
    invalid: FloatArray  # (T, B)  share of agents whose action was invalid


def simulate(
    mechanism: Mechanism,
    config: Any,
    population: Population,
    *,
    markets: int,
    rounds: int,
    seed: int,
    values: ValueDistribution | None = None,
    start: int = 0,
    on_round: Callable[[int], None] | None = None,
) -> Trace:
    """Run ``rounds`` rounds of ``markets`` independent markets.

    Args:
        mechanism: the mechanism record.
        config: its config (model, dict or None).
        population: who bids in each seat; its size is N.
        markets: B, number of independent markets.
        rounds: T, rounds per market (fresh values every round).
        seed: root seed.
        values: the value distribution (default U[0, 1]).
        start: index of the first market (for splitting a run into blocks).
        on_round: called with the round index after each round (progress bars).

    Returns:
        The :class:`Trace` of per market-round aggregates.

    Raises:
        ConfigError: markets, rounds or the config out of range.
    """
    if not 1 <= markets <= MAX_MARKETS:
        raise ConfigError(f"markets must be in [1, {MAX_MARKETS}], got {markets}")
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ConfigError(f"rounds must be in [1, {MAX_ROUNDS}], got {rounds}")
    config = mechanism.config(config)
    values = values or ValueDistribution()
    n = population.size
    spec = mechanism.market_spec(config, n)
    tail = (spec.units_per_agent,) if spec.units_per_agent else ()
    records: dict[str, list[FloatArray]] = {name: [] for name in Trace.__slots__}
    for t in range(rounds):
        draws = values.sample(seed, ("values", t), start, (markets, n, *tail))
        context = MarketContext(mechanism, config, spec, n, values, generator(seed, ("agents", t, start)))
        bids = population.act(context, draws)
        priority = market_uniforms(seed, ("priority", t), start, (markets, n))
        outcome = clear(mechanism, config, draws, bids, priority, strict=False)
        records["revenue"].append(outcome.revenue)
        records["welfare"].append(outcome.welfare)
        records["max_welfare"].append(outcome.max_welfare)
        records["surplus"].append(outcome.utility.sum(axis=1))
        records["participation"].append(outcome.participated.mean(axis=1))
        records["invalid"].append(1.0 - outcome.valid.mean(axis=1))
        if on_round is not None:
            on_round(t)
    return Trace(**{name: np.stack(rows) for name, rows in records.items()})
