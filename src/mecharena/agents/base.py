"""What an agent type is: a batched policy from private values to actions.

A policy sees a :class:`MarketContext` (the mechanism, its config, market size, the value
distribution everyone knows) and its values, and returns bids of the same shape for all B
markets at once: no per-agent Python objects.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mecharena.agents.values import ValueDistribution
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import MarketSpec, Mechanism


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Public facts about the market an agent bids in."""

    mechanism: Mechanism
    config: object
    spec: MarketSpec
    n_agents: int
    values: ValueDistribution
    rng: np.random.Generator  # market-keyed draws for stochastic policies


Policy = Callable[[MarketContext, FloatArray], FloatArray]


@dataclass(frozen=True, slots=True)
class AgentType:
    """A registered agent type."""

    name: str
    version: int
    summary: str
    act: Policy  # (context, values (B, N[, K])) -> bids of the same shape
