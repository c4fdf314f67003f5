"""Repeated markets summarised per market-round (see :mod:`mecharena.sim.loop` for the loop).

Pure function of its arguments. Round t of market b uses values, priorities and agent draws
keyed by (seed, stream, t, b) only, so a run split into blocks of markets (``start``)
reproduces the same rows bit for bit.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena.agents.population import Population
from mecharena.agents.values import ValueDistribution
from mecharena.core import memory
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.loop import Episode, RoundRecord, initial_state, make_episode, play


@dataclass(frozen=True, slots=True)
class Trace:
    """Per market-round aggregates of a simulation."""

    revenue: FloatArray  # (T, B)
    welfare: FloatArray  # (T, B)
    max_welfare: FloatArray  # (T, B)
    surplus: FloatArray  # (T, B)  sum of agents' utilities, net of penalties
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
    information: InformationPolicy | None = None,
    enforcement: Enforcement | None = None,
    start: int = 0,
    on_round: Callable[[int], None] | None = None,
) -> Trace:
    """Run ``rounds`` rounds of ``markets`` markets and keep per market-round aggregates.

    Args:
        mechanism: the mechanism record.
        config: its config (model, dict or None).
        population: who plays each seat; its size is N.
        markets: B, number of independent markets.
        rounds: T, rounds per market (fresh values every round; adaptive agents carry state).
        seed: root seed.
        values: the value distribution (default U[0, 1]).
        information: what the market reveals (default: reserve and clearing price).
        enforcement: penalties and audits (default: none).
        start: index of the first market (for splitting a run into blocks).
        on_round: called with the round index after each round (progress bars).

    Returns:
        The :class:`Trace` of per market-round aggregates.

    Raises:
        ConfigError: markets, rounds or the config out of range.
    """
    episode = make_episode(mechanism, config, population, markets=markets, seed=seed, values=values,
                           information=information, enforcement=enforcement, start=start)
    return trace(episode, rounds, on_round=on_round)


def aggregates(record: RoundRecord) -> dict[str, FloatArray]:
    """The per-market (B,) aggregates of one round that a :class:`Trace` keeps."""
    out = record.outcome
    return {
        "revenue": out.revenue + record.penalties.sum(axis=1),  # fines are the mechanism's income too
        "welfare": record.welfare,
        "max_welfare": out.max_welfare,
        "surplus": record.utility.sum(axis=1),
        "participation": out.participated.mean(axis=1),
        "invalid": 1.0 - out.valid.mean(axis=1),
    }


#: Bytes a round of the loop holds per market and seat (its (B, N) arrays and their temporaries; measured:
#: about 1.2 GB at B = 1e6, N = 4) and a per-round trace keeps per market and round (its columns, stacked once).
LOOP_BYTES_PER_SEAT = 320
TRACE_BYTES_PER_ROUND = 2 * 8 * len(Trace.__slots__)
#: The agents' and the mechanism's state at its peak, in multiples of its size: the state and the temporaries
#: of its size that act and update make (measured: 3.9x for the adaptive and hedge learners, B = 1e6, N = 10,
#: where the state is 1.4 kB a market).
STATE_FACTOR = 4
PROBE_MARKETS = 8  # markets of the probe episode whose initial state is measured


def _nbytes(value: Any) -> int:
    """Bytes of the arrays in a state: arrays, dataclasses, mappings and sequences of them; a state that can
    grow declares the most it can hold (``peak_nbytes``)."""
    peak = getattr(value, "peak_nbytes", None)
    if isinstance(peak, int):
        return peak
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def state_bytes(episode: Episode) -> int:
    """Bytes of state (every agent group's, the channels', the mechanism's) per market, measured on the
    initial state of a probe of a few markets (what the agents keep scales with markets)."""
    probe = dataclasses.replace(episode, markets=min(PROBE_MARKETS, episode.markets))
    return math.ceil(_nbytes(initial_state(probe)) / probe.markets)


def trace_bytes(markets: int, seats: int, rounds: int, per_round: bool, state_per_market: int = 0) -> int:
    """The memory :func:`trace` needs, estimated: the loop's arrays, the state (``state_per_market``
    bytes, :func:`state_bytes`) with its temporaries, and a per-round trace if kept."""
    return (markets * seats * LOOP_BYTES_PER_SEAT + markets * state_per_market * STATE_FACTOR
            + (markets * rounds * TRACE_BYTES_PER_ROUND if per_round else 0))


def trace(episode: Episode, rounds: int, *, on_round: Callable[[int], None] | None = None,
          on_record: Callable[[RoundRecord], None] | None = None, per_round: bool = True) -> Trace:
    """Play ``episode`` for ``rounds`` rounds, handing each record to ``on_record`` (e.g. a ledger).

    With ``per_round=False`` the trace keeps each market's mean over the rounds instead of every round
    (arrays (1, B)): memory O(B) whatever the rounds. The metrics of :mod:`mecharena.metrics.summary`
    average over rounds within each market first, summing rounds in the same order, so with B > 1
    they come out the same bit for bit.

    Raises:
        ConfigError: the run would need more memory than is available (checked before it starts).
    """
    b, n = episode.markets, episode.population.size
    keeps = f"a per-round trace of markets={b} x rounds={rounds}" if per_round else f"markets={b}"
    memory.require(trace_bytes(b, n, rounds, per_round, state_bytes(episode)), f"simulating {keeps} with {n} agents",
                   "lower --markets" + (" or --rounds (or keep per-market means)" if per_round else ""))
    records: dict[str, list[FloatArray]] = {name: [] for name in Trace.__slots__}
    totals: dict[str, FloatArray] = {}
    for record in play(episode, rounds):
        if on_record is not None:
            on_record(record)
        for name, value in aggregates(record).items():
            if per_round:
                records[name].append(value)
            elif name in totals:
                totals[name] += value
            else:
                totals[name] = np.array(value, dtype=np.float64)
        if on_round is not None:
            on_round(record.round)
    if per_round:
        return Trace(**{name: np.stack(rows) for name, rows in records.items()})
    return Trace(**{name: (total / rounds)[None, :] for name, total in totals.items()})
