"""Agent types (batched policies), value distributions and populations."""

from mecharena.agents import bne, truthful
from mecharena.agents.base import AgentType, MarketContext
from mecharena.agents.population import Population, parse_population
from mecharena.agents.values import ValueDistribution, parse_distribution
from mecharena.core.registry import Registry

REGISTRY: Registry[AgentType] = Registry("agent", {a.AGENT.name: a.AGENT for a in (truthful, bne)})


def population(spec: str) -> Population:
    """Parse a population spec such as ``truthful:3,bne:2``."""
    return parse_population(spec, REGISTRY)


__all__ = ["REGISTRY", "AgentType", "MarketContext", "Population", "ValueDistribution", "parse_distribution",
           "population"]
