"""One simulation summarised, as the ``simulate`` command and the MCP tool report it."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mecharena import agents, mechanisms
from mecharena.metrics.summary import summarize
from mecharena.sim import Enforcement, InformationPolicy, make_episode, trace


def simulate_summary(mechanism_name: str, settings: dict[str, Any], population: str, markets: int, rounds: int,
                     seed: int, values: str = "uniform", information: dict[str, Any] | None = None,
                     enforcement: dict[str, Any] | None = None, ledger: Path | None = None,
                     ledger_mode: str = "full", on_round: Callable[[int], None] | None = None,
                     channels: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate ``markets`` x ``rounds`` and return the settings, versions and metrics (with 95% CIs).

    Raises:
        MechArenaError: an unknown mechanism or agent type, or a config, policy or size out of range.
    """
    mechanism = mechanisms.get(mechanism_name)
    config = mechanism.config(settings)
    pop = agents.population(population, seed)
    dist = agents.parse_distribution(values)
    info = InformationPolicy.build(**(information or {}))
    rules = Enforcement.build(**(enforcement or {}))
    episode = make_episode(mechanism, config, pop, markets=markets, seed=seed, values=dist, information=info,
                           enforcement=rules, channels=channels)
    if ledger is None:
        result = trace(episode, rounds, on_round=on_round)
    else:
        from mecharena.ledger import Ledger, describe

        with Ledger(ledger, ledger_mode, describe(episode, rounds)) as book:
            result = trace(episode, rounds, on_round=on_round, on_record=book.record)
    summary = {
        "mechanism": mechanism.name,
        "config": config.model_dump(),
        "population": pop.spec,
        "values": dist.model_dump(),
        "information": info.model_dump(),
        "enforcement": rules.model_dump(),
        "markets": markets,
        "rounds": rounds,
        "seed": seed,
        "versions": {"mechanism": {mechanism.name: mechanism.version}, "agents": pop.versions},
        "ledger": None if ledger is None else str(ledger),
        "metrics": summarize(result),
    }
    if episode.channels is not None:  # runs without channels keep their old shape
        summary["channels"] = episode.channels.model_dump()
    return summary
