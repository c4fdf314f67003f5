"""Negotiation economy throughput: env steps per second, one env, for each task.

* ``expert_steps_per_s``: :class:`NegotiationEnv` with the rule-based expert in the learner's
  seat and scripted archetypes in the others (every lab's policy runs, observations included);
* ``core_steps_per_s``: the pure ``core.step`` alone, every lab waiting (the floor of the rules);
* ``parallel_steps_per_s``: the PettingZoo ``ParallelEnv`` with every lab an agent sampling
  random ``MultiDiscrete`` actions (decode, step, encode).

A step is one round in which every lab acts. Each figure is the best of three timed repeats.
"""

import functools
import time
from typing import Any

from mecharena.negotiation import core
from mecharena.negotiation.action import WaitAction
from mecharena.negotiation.env import SEAT, NegotiationEnv
from mecharena.negotiation.parallel import NegotiationParallelEnv
from mecharena.negotiation.policies import Expert
from mecharena.negotiation.scenario import TASKS, make_params

REPEATS = 3


def _best_rate(run) -> float:
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        steps = run()
        best = max(best, steps / (time.perf_counter() - start))
    return best


def _env_steps(task: str, episodes: int) -> int:
    expert = Expert()
    steps = 0
    env = NegotiationEnv(task, strict=False)
    for seed in range(episodes):
        env.reset(seed=seed)
        while not env.done:
            env.advance([env.act_for(SEAT, expert)] + [env.act_for(i, p) for i, p in enumerate(env.opponents, start=1)])
            steps += 1
    return steps


def _core_steps(task: str, episodes: int) -> int:
    steps = 0
    for seed in range(episodes):
        params = make_params(task, seed)
        state = core.reset(params)
        waits = [WaitAction()] * params.labs
        while not core.done(params, state):
            state, _ = core.step(params, state, waits)
            steps += 1
    return steps


def _parallel_steps(task: str, episodes: int) -> int:
    steps = 0
    env = NegotiationParallelEnv(task)
    for seed in range(episodes):
        env.reset(seed=seed)
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed)
        while env.agents:
            env.step({a: env.action_space(a).sample() for a in env.agents})
            steps += 1
    return steps


def run(episodes: int = 20) -> dict[str, Any]:
    """Steps per second for each task over ``episodes`` episodes (seeds 0..episodes-1)."""
    tasks = {task: {name: _best_rate(functools.partial(fn, task, episodes)) for name, fn in (
        ("expert_steps_per_s", _env_steps), ("core_steps_per_s", _core_steps),
        ("parallel_steps_per_s", _parallel_steps))} for task in TASKS}
    return {"benchmark": "negotiation", "episodes": episodes, "tasks": tasks}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
