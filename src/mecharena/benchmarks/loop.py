"""Round-loop throughput: market-rounds per second.

Two scenarios, B = 4,096 markets each:

* ``auction`` (default): a stage-4-like mixed population of ten seats, adaptive agents included
  (``adaptive:2,hedge:2,cartel:2,dropout:2,truthful:2``), in a first-price auction with a reserve,
  competing bids and winner identity revealed, audits on: every part of the loop (reveal, act,
  clear, settle, update) is exercised;
* ``reputation``: the reputation marketplace (a mechanism that keeps state across rounds: evidence,
  scores, identities), ten sellers with persistent quality types, two of them playing a searched
  policy that sets every declared action (quality, re-entry, fake reviews) from its own state, the
  rest honest.

Medians of ``repeats`` timed runs, wall and CPU seconds, and the load around them
(:mod:`mecharena.benchmarks.timing`).
"""

from mecharena.agents.policy import format_weights, start_weights
from mecharena.benchmarks.timing import machine_load, report, timed
from mecharena import agents, mechanisms
from mecharena.sim import Enforcement, InformationPolicy, make_episode, play

POPULATION = "adaptive:2,hedge:2,cartel:2,dropout:2,truthful:2"
REPUTATION = mechanisms.get("reputation")
SCENARIOS = {"auction": ("first_price", POPULATION),
             "reputation": ("reputation", f"policy(w={format_weights(start_weights(REPUTATION))}):2,truthful:8")}


def episode(markets: int, seed: int = 0, scenario: str = "auction"):
    mechanism, population = SCENARIOS[scenario]
    if scenario == "reputation":
        return make_episode(REPUTATION, {"decay": 0.8}, agents.population(population), markets=markets, seed=seed,
                            values=agents.parse_distribution("uniform:persistent=true"))
    return make_episode(mechanisms.get(mechanism), {"reserve_price": 0.1}, agents.population(population),
                        markets=markets, seed=seed,
                        information=InformationPolicy(competing_bids=True, winner_identity=True),
                        enforcement=Enforcement(audit_probability=0.1, collusion_penalty=1.0))


def run(markets: int = 4096, rounds: int = 30, repeats: int = 3, scenario: str = "auction") -> dict[str, object]:
    """Time ``rounds`` rounds after a warm-up round, ``repeats`` times; report market-rounds per second."""
    load = machine_load()
    list(play(episode(markets, scenario=scenario), 1))  # compile and warm caches

    def rounds_played() -> None:
        for _ in play(episode(markets, scenario=scenario), rounds):
            pass

    t = timed(rounds_played, repeats)
    mechanism, population = SCENARIOS[scenario]
    return report("loop", {
        "scenario": scenario,
        "population": population,
        "mechanism": mechanism,
        "markets": markets,
        "rounds": rounds,
        "seconds": t["wall_s"],
        "cpu_seconds": t["cpu_s"],
        "wall_trials": t["wall_trials"],
        "market_rounds_per_s": markets * rounds / t["wall_s"],
        "market_rounds_per_cpu_s": markets * rounds / max(t["cpu_s"], 1e-9),
        "seat_rounds_per_s": markets * rounds * 10 / t["wall_s"],
    }, load, repeats)
