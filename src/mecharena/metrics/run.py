"""One simulation summarised, as the ``simulate`` command and the MCP tool report it."""

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.metrics.summary import summarize
from mecharena.sim import Enforcement, InformationPolicy, RoundRecord, make_episode, trace

#: What a structured request to a model can come to (the ``outcome`` notes of agents that ask one).
OUTCOMES = ("valid", "repaired", "fallback", "error")


def structured_outcomes(records: Iterable[RoundRecord],
                        counts: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, int]]:
    """Per agent type, how its structured requests to a model ended: ``requests`` and the count of
    each of :data:`OUTCOMES` (valid at once, valid after one repair, invalid twice so the fallback
    was used, the model failed), from the rounds' ``outcome`` notes; and of its ``decisions`` (the
    ``rationality`` notes), how many were ``dominated`` (an action that cannot pay, such as a bid above
    value in first price: valid as an answer, absurd as an action; :func:`mecharena.llm.agent.dominated`).
    Agent types that ask no model are absent. ``counts`` is updated in place when given."""
    counts = {} if counts is None else counts
    for record in records:
        for note in record.notes:
            kind = note.get("kind")
            if (kind == "outcome" and note.get("text") in OUTCOMES) or kind == "rationality":
                row = counts.setdefault(note["agent"], {"requests": 0, **dict.fromkeys(OUTCOMES, 0), "decisions": 0,
                                                        "dominated": 0})
                if kind == "outcome":
                    row["requests"] += 1
                    row[note["text"]] += 1
                else:
                    row["decisions"] += 1
                    row["dominated"] += bool(json.loads(note["text"])["dominated"])
    return counts


def decision_regrets(episode: Any, records: list[RoundRecord]) -> list[dict[str, Any]]:
    """Each judged decision's regret (a ``rationality`` note in ``records``): what the discovery engine's best
    response to the rivals as they played earns at the seat's value, less what its bid earned
    (:func:`mecharena.fuzz.discover.decision_regret`), as a trace note of kind ``regret`` keyed like the
    decision. None where the engine has no best response to compare with: a mechanism that keeps state across
    rounds, a two-sided market, or one whose seats make more than one bid a round."""
    from mecharena.fuzz.discover import decision_regret  # the engine (fuzz builds on metrics: imported late)

    decisions = {(note["round"], note["market"], note["seat"]): note["agent"] for record in records
                 for note in record.notes if note.get("kind") == "rationality"}
    if not decisions or episode.context.mechanism.stateful or episode.context.spec.sellers is not None:
        return []
    markets, notes = records[0].values.shape[0], []
    for seat in sorted({seat for _, _, seat in decisions}):
        try:
            regret = decision_regret(episode, records, seat).tolist()
        except ConfigError:
            return []
        for i, r in enumerate(regret):
            key = (records[i // markets].round, episode.start + i % markets, seat)
            if key in decisions:
                notes.append({"step": 0, "kind": "regret", "text": json.dumps({"regret": r}), "round": key[0],
                              "agent": decisions[key], "market": key[1], "seat": seat})
    return notes


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
    outcomes: dict[str, dict[str, Any]] = {}
    decided: list[RoundRecord] = []  # rounds with judged decisions (a model's seats decide every round)

    def count(record: RoundRecord) -> None:
        structured_outcomes((record,), outcomes)
        if decided or any(note.get("kind") == "rationality" for note in record.notes):
            decided.append(record)

    if ledger is None:
        result = trace(episode, rounds, on_round=on_round, per_round=markets == 1,  # memory O(B), not O(T B)
                       on_record=count)
        regrets = decision_regrets(episode, decided)
    else:
        from mecharena.ledger import Ledger, describe

        with Ledger(ledger, ledger_mode, describe(episode, rounds)) as book:
            def record_and_count(record: RoundRecord) -> None:
                book.record(record)
                count(record)

            result = trace(episode, rounds, on_round=on_round, on_record=record_and_count, per_round=markets == 1)
            regrets = decision_regrets(episode, decided)
            book.annotate(regrets)  # each decision's regret beside its rationality note
    for note in regrets:  # the mean regret per judged decision, per agent type
        row = outcomes[note["agent"]]
        row["regret"] = row.get("regret", 0.0) + json.loads(note["text"])["regret"] / row["decisions"]
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
    if outcomes:  # seats that ask a model (llm): how each structured request ended
        summary["structured_output"] = outcomes
    return summary
