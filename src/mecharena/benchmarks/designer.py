"""Referee environment throughput: env steps per second.

* vectorized: :class:`VectorDesignerEnv` at E episodes (default 1,024) on stage-4 populations,
  arrays in and out, automatic resets included (target >= 300,000 env-steps/s on 2 cores);
* single env, JSON: :class:`DesignerEnv.step` with a validated action and the full dict
  observation (target >= 5,000 steps/s);
* single env, Gymnasium: :class:`DesignerGymEnv.step` with a space action and the flat vector;
* the referee on the arena's loop: :class:`ArenaRefereeGymEnv.step` with its default settings (64
  markets, 6 rounds a step, eight agents of four types), one episode at a time.

The four paths are timed in turn, ``repeats`` times over (default 5), after an untimed warm-up
round; each figure is the median of its repetitions, by wall and by CPU seconds, with the
machine's load before and after (:mod:`mecharena.benchmarks.timing`).
"""

from typing import Any

import numpy as np

from mecharena.benchmarks.timing import interleaved, machine_load, medians, rates, report
from mecharena.designer.action import MechanismAction
from mecharena.designer.arena_gym import ArenaRefereeGymEnv
from mecharena.designer.env import DesignerEnv, VectorDesignerEnv
from mecharena.designer.gym import DesignerGymEnv, from_action
from mecharena.designer.policies import stack, take

STAGE = 4
REPEATS = 5


def run(episodes: int = 1024, steps: int = 50, single_steps: int = 2000, repeats: int = REPEATS,
        arena_steps: int = 100) -> dict[str, Any]:
    """Env steps per second of the four paths (medians of ``repeats`` interleaved repetitions).

    Args:
        episodes: E, episodes of the vectorized env.
        steps: vectorized steps per repetition (``episodes * steps`` env steps).
        single_steps: single-env steps per repetition, for each single-env path of the kernel.
        repeats: repetitions per path (>= 1).
        arena_steps: steps per repetition of the referee on the arena's loop.

    Returns:
        ``{"benchmark": "designer", "stage", "episodes", "vector_env_steps_per_s",
        "single_env_json_steps_per_s", "single_env_gym_steps_per_s", "arena_referee_steps_per_s",
        "arena_referee_market_rounds_per_s", "steps_per_cpu_s",
        "wall_seconds", "cpu_seconds", "wall_trials", "cpu_trials", "repeats", "statistic",
        "load_before", "load_after"}``; the per-path dicts are keyed ``vector``, ``json``, ``gym``, ``arena``.
    """
    load = machine_load()
    action = MechanismAction(rule="vcg", reserve=0.1, competing_bids=True)
    vector = VectorDesignerEnv(episodes, STAGE, seed=0)
    vector.reset()
    mechanism = take(stack([action]), np.zeros(episodes, np.int64))
    vector.step(mechanism)  # compile outside the timing

    def vectorized() -> None:
        for _ in range(steps):
            vector.step(mechanism)

    single = DesignerEnv(STAGE)
    single.reset(seed=0)
    payload = action.model_dump()

    def json_steps() -> None:
        for _ in range(single_steps):
            if single.done:
                single.reset(seed=single_steps)
            single.step(payload)

    gym_env = DesignerGymEnv(STAGE)
    gym_env.reset(seed=0)
    gym_action = from_action(action)

    def gym_steps() -> None:
        for _ in range(single_steps):
            _, _, _, truncated, _ = gym_env.step(gym_action)
            if truncated:
                gym_env.reset()

    referee = ArenaRefereeGymEnv()
    referee.reset(seed=0)
    referee_action = np.zeros(len(referee.action_space.nvec), np.int64)
    referee.step(referee_action)  # the equilibrium bidders' tables and the kernels, outside the timing

    def referee_steps() -> None:
        for _ in range(arena_steps):
            _, _, _, truncated, _ = referee.step(referee_action)
            if truncated:
                referee.reset()

    times = interleaved({"vector": vectorized, "json": json_steps, "gym": gym_steps, "arena": referee_steps}, repeats)
    per = rates(times, {"vector": episodes * steps, "json": single_steps, "gym": single_steps, "arena": arena_steps})
    settings = referee.params.settings
    return report("designer", {
        "stage": STAGE, "episodes": episodes, "steps": steps, "single_steps": single_steps,
        "vector_env_steps_per_s": per["per_s"]["vector"],
        "single_env_json_steps_per_s": per["per_s"]["json"],
        "single_env_gym_steps_per_s": per["per_s"]["gym"],
        "arena_referee_steps_per_s": per["per_s"]["arena"],
        "arena_referee_market_rounds_per_s": per["per_s"]["arena"] * settings.markets * settings.rounds,
        "steps_per_cpu_s": per["per_cpu_s"],
        **medians(times),
    }, load, repeats)
