"""Agent types (batched policies), value distributions and populations.

Every module of this package that defines ``AGENT`` (an :class:`AgentType`) is registered
under ``AGENT.name``; plug-ins (:mod:`mecharena.plugins`) register theirs beside them.
"""

import importlib
import pkgutil

from mecharena.agents.base import Action, AgentType, Draws, Feedback, MarketContext, Observation
from mecharena.agents.population import Population, parse_population
from mecharena.agents.values import ValueDistribution, parse_distribution
from mecharena.core.registry import Registry
from mecharena.core.seeding import generator


def _discover() -> dict[str, AgentType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        agent = getattr(importlib.import_module(f"{__name__}.{info.name}"), "AGENT", None)
        if isinstance(agent, AgentType):
            found[agent.name] = agent
    return found


REGISTRY: Registry[AgentType] = Registry("agent", _discover())


def population(spec: str, seed: int | None = None) -> Population:
    """Parse a population spec such as ``truthful:3,bne:2`` or ``dropout(outside=0.1):4``; a
    ``dirichlet(...)`` mixture draws its composition from ``seed``."""
    rng = None if seed is None else generator(seed, ("population",))
    return parse_population(spec, REGISTRY, rng)


__all__ = ["REGISTRY", "Action", "AgentType", "Draws", "Feedback", "MarketContext", "Observation", "Population",
           "ValueDistribution", "parse_distribution", "population"]
