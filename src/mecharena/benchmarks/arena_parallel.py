"""Sealed-bid arena ParallelEnv throughput: env steps (one round of one market) per second.

* plain: second price, 5 learning bidders, no channel;
* talk: second price, 2 learning bidders against ``talking_cartel:3`` on a private channel with
  side payments allowed (the talk phase, delivery and settlement included).

Actions are drawn from the action spaces before timing; episodes reset inside the timed loop.
The two configurations are timed in turn, ``repeats`` times over (default 5), after an untimed
warm-up round; each figure is the median of its repetitions, by wall and by CPU seconds, with
the machine's load before and after (:mod:`mecharena.benchmarks.timing`).
"""

from collections.abc import Callable
from typing import Any

from mecharena.benchmarks.timing import interleaved, machine_load, medians, rates, report
from mecharena.sim.parallel import ArenaConfig, ArenaParallelEnv

REPEATS = 5
CONFIGS = {
    "plain": ArenaConfig(mechanism="second_price", n_agents=5, rounds=50),
    "talk": ArenaConfig(mechanism="second_price", n_agents=5, rounds=50, opponents="talking_cartel:3",
                        channels={"private": True, "side_payment_cap": 1.0}, information={"winner_identity": True}),
}


def _stepper(env: ArenaParallelEnv, steps: int) -> Callable[[], None]:
    """One repetition: ``steps`` steps of ``env`` with pre-drawn actions, resetting finished episodes."""
    env.reset(seed=0)
    for agent in env.possible_agents:
        env.action_space(agent).seed(0)
    actions = [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(64)]

    def step() -> None:
        for i in range(steps):
            if not env.agents:
                env.reset()
            env.step(actions[i % len(actions)])

    return step


def run(steps: int = 2000, repeats: int = REPEATS) -> dict[str, Any]:
    """Steps per second (and agent-steps per second) of each configuration, medians of ``repeats``.

    Returns:
        ``{"benchmark": "arena_parallel", "steps", "plain_steps_per_s", "plain_agent_steps_per_s",
        "talk_steps_per_s", "talk_agent_steps_per_s", "steps_per_cpu_s", "wall_seconds",
        "cpu_seconds", "wall_trials", "cpu_trials", "repeats", "statistic", "load_before",
        "load_after"}``; the per-configuration dicts are keyed ``plain`` and ``talk``.
    """
    load = machine_load()
    envs = {name: ArenaParallelEnv(config) for name, config in CONFIGS.items()}
    times = interleaved({name: _stepper(env, steps) for name, env in envs.items()}, repeats)
    per = rates(times, dict.fromkeys(envs, steps))
    body: dict[str, Any] = {"steps": steps}
    for name, env in envs.items():
        body[f"{name}_steps_per_s"] = per["per_s"][name]
        body[f"{name}_agent_steps_per_s"] = per["per_s"][name] * len(env.possible_agents)
    return report("arena_parallel", {**body, "steps_per_cpu_s": per["per_cpu_s"], **medians(times)}, load, repeats)
