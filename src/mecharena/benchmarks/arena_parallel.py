"""Sealed-bid arena ParallelEnv throughput: env steps (one round of one market) per second.

* plain: second price, 5 learning bidders, no channel;
* talk: second price, 2 learning bidders against ``talking_cartel:3`` on a private channel with
  side payments allowed (the talk phase, delivery and settlement included).

Actions are drawn from the action spaces before timing; episodes reset inside the timed loop. Each
figure is the best of five timed repeats (the machine's other load only slows a repeat down).
"""

import time
from typing import Any

from mecharena.sim.parallel import ArenaConfig, ArenaParallelEnv

REPEATS = 5
CONFIGS = {
    "plain": ArenaConfig(mechanism="second_price", n_agents=5, rounds=50),
    "talk": ArenaConfig(mechanism="second_price", n_agents=5, rounds=50, opponents="talking_cartel:3",
                        channels={"private": True, "side_payment_cap": 1.0}, information={"winner_identity": True}),
}


def _rate(env: ArenaParallelEnv, steps: int) -> float:
    env.reset(seed=0)
    for agent in env.possible_agents:
        env.action_space(agent).seed(0)
    actions = [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(64)]
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(steps):
            if not env.agents:
                env.reset()
            env.step(actions[i % len(actions)])
        best = max(best, steps / (time.perf_counter() - start))
    return best


def run(steps: int = 2000) -> dict[str, Any]:
    """Steps per second (and agent-steps per second) of each configuration."""
    out: dict[str, Any] = {"benchmark": "arena_parallel", "steps": steps}
    for name, config in CONFIGS.items():
        env = ArenaParallelEnv(config)
        rate = _rate(env, steps)
        out[f"{name}_steps_per_s"] = rate
        out[f"{name}_agent_steps_per_s"] = rate * len(env.possible_agents)
    return out
