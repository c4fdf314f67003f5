"""Round-loop throughput: market-rounds per second for a stage-4-like mixed population.

Ten seats, adaptive agents included (``adaptive:2,hedge:2,cartel:2,dropout:2,truthful:2``), in a
first-price auction with a reserve, competing bids and winner identity revealed, audits on:
every part of the loop (reveal, act, clear, settle, update) is exercised. B = 4,096 markets.
"""

import time

from mecharena import agents, mechanisms
from mecharena.sim import Enforcement, InformationPolicy, make_episode, play

POPULATION = "adaptive:2,hedge:2,cartel:2,dropout:2,truthful:2"


def episode(markets: int, seed: int = 0):
    return make_episode(mechanisms.get("first_price"), {"reserve_price": 0.1}, agents.population(POPULATION),
                        markets=markets, seed=seed,
                        information=InformationPolicy(competing_bids=True, winner_identity=True),
                        enforcement=Enforcement(audit_probability=0.1, collusion_penalty=1.0))


def run(markets: int = 4096, rounds: int = 30) -> dict[str, object]:
    """Time ``rounds`` rounds after a warm-up round; report market-rounds per second."""
    list(play(episode(markets), 1))  # compile and warm caches
    start = time.perf_counter()
    for _ in play(episode(markets), rounds):
        pass
    seconds = time.perf_counter() - start
    return {
        "benchmark": "loop",
        "population": POPULATION,
        "mechanism": "first_price",
        "markets": markets,
        "rounds": rounds,
        "seconds": seconds,
        "market_rounds_per_s": markets * rounds / seconds,
        "seat_rounds_per_s": markets * rounds * 10 / seconds,
    }
