"""Populations: which agent type plays each seat of a market.

A spec is ``TYPE:COUNT[,TYPE:COUNT...]``, e.g. ``truthful:5`` or ``bne:3,truthful:2``; seats
are filled in the order given (so in two-sided markets the first seats are the buyers).
"""

from dataclasses import dataclass

import numpy as np

from mecharena.agents.base import AgentType, MarketContext
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

MAX_AGENTS = 10_000


@dataclass(frozen=True, slots=True)
class Population:
    """Agent types and how many seats each holds."""

    groups: tuple[tuple[AgentType, int], ...]

    @property
    def size(self) -> int:
        return sum(count for _, count in self.groups)

    @property
    def spec(self) -> str:
        return ",".join(f"{agent.name}:{count}" for agent, count in self.groups)

    @property
    def versions(self) -> dict[str, int]:
        return {agent.name: agent.version for agent, _ in self.groups}

    def act(self, context: MarketContext, values: FloatArray) -> FloatArray:
        """Bids of every seat (B, N[, K]): each type acts on its own seats' values."""
        bids = np.empty_like(values)
        seat = 0
        for agent, count in self.groups:
            bids[:, seat: seat + count] = agent.act(context, values)[:, seat: seat + count]
            seat += count
        return bids


def parse_population(spec: str, registry) -> Population:
    """Parse ``TYPE:COUNT,...`` against the agent ``registry``.

    Raises:
        ConfigError: malformed spec or count out of range.
        UnknownIdError: unknown agent type.
    """
    groups = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, colon, count = part.partition(":")
        if not colon or not count.strip().isdigit():
            raise ConfigError(f"population must look like TYPE:COUNT[,TYPE:COUNT...], got {part!r} in {spec!r}")
        n = int(count)
        if not 1 <= n <= MAX_AGENTS:
            raise ConfigError(f"population count for {name!r} must be in [1, {MAX_AGENTS}], got {n}")
        groups.append((registry.get(name.strip()), n))
    if not groups:
        raise ConfigError(f"population must name at least one TYPE:COUNT, got {spec!r}")
    return Population(tuple(groups))
