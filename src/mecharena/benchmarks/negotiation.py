"""Negotiation economy throughput: env steps per second, one env, for each task.

* ``expert_steps_per_s``: :class:`NegotiationEnv` with the rule-based expert in the learner's
  seat and scripted archetypes in the others (every lab's policy runs, observations included);
* ``core_steps_per_s``: the pure ``core.step`` alone, every lab waiting (the floor of the rules);
* ``parallel_steps_per_s``: the PettingZoo ``ParallelEnv`` with every lab an agent sampling
  random ``MultiDiscrete`` actions (decode, step, encode).

A step is one round in which every lab acts. The nine (task, path) pairs are timed in turn,
``repeats`` times over (default 3), after an untimed warm-up round; each figure is the median of
its repetitions, by wall and by CPU seconds, with the machine's load before and after
(:mod:`mecharena.benchmarks.timing`).
"""

import functools
from typing import Any

from mecharena.benchmarks.timing import interleaved, machine_load, medians, rates, report
from mecharena.negotiation import core
from mecharena.negotiation.action import WaitAction
from mecharena.negotiation.env import SEAT, NegotiationEnv
from mecharena.negotiation.parallel import NegotiationParallelEnv
from mecharena.negotiation.policies import Expert
from mecharena.negotiation.scenario import TASKS, make_params

REPEATS = 3


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


PATHS = {"expert": _env_steps, "core": _core_steps, "parallel": _parallel_steps}


def run(episodes: int = 20, repeats: int = REPEATS) -> dict[str, Any]:
    """Steps per second for each task over ``episodes`` episodes (seeds 0..episodes-1), medians of ``repeats``.

    Returns:
        ``{"benchmark": "negotiation", "episodes", "tasks": {task: {"expert_steps_per_s",
        "core_steps_per_s", "parallel_steps_per_s", "steps", "steps_per_cpu_s", "wall_seconds",
        "cpu_seconds", "wall_trials", "cpu_trials"}}, "repeats", "statistic", "load_before",
        "load_after"}``; the per-path dicts are keyed ``expert``, ``core``, ``parallel``, and
        ``steps`` is the steps one repetition takes (the same every time: the episodes are seeded).
    """
    load = machine_load()
    paths = {f"{task}/{name}": functools.partial(fn, task, episodes) for task in TASKS for name, fn in PATHS.items()}
    steps: dict[str, int] = {}
    times = interleaved(paths, repeats, after=lambda path, taken: steps.__setitem__(path, taken))
    tasks: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        mine = {name: times[f"{task}/{name}"] for name in PATHS}
        work = {name: steps[f"{task}/{name}"] for name in PATHS}
        per = rates(mine, work)
        tasks[task] = {**{f"{name}_steps_per_s": per["per_s"][name] for name in PATHS}, "steps": work,
                       "steps_per_cpu_s": per["per_cpu_s"], **medians(mine)}
    return report("negotiation", {"episodes": episodes, "tasks": tasks}, load, repeats)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
