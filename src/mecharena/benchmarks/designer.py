"""Referee environment throughput: env steps per second.

* vectorized: :class:`VectorDesignerEnv` at E episodes (default 1,024) on stage-4 populations,
  arrays in and out, automatic resets included (target >= 300,000 env-steps/s on 2 cores);
* single env, JSON: :class:`DesignerEnv.step` with a validated action and the full dict
  observation (target >= 5,000 steps/s);
* single env, Gymnasium: :class:`DesignerGymEnv.step` with a space action and the flat vector.

Each figure is the best of five timed repeats (the machine's other load only slows a repeat down).
"""

import time
from typing import Any

import numpy as np

from mecharena.designer.action import MechanismAction
from mecharena.designer.env import DesignerEnv, VectorDesignerEnv
from mecharena.designer.gym import DesignerGymEnv, from_action
from mecharena.designer.policies import stack, take

STAGE = 4
REPEATS = 5


def _best_rate(work: int, run) -> float:
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        best = max(best, work / (time.perf_counter() - start))
    return best


def run(episodes: int = 1024, steps: int = 50, single_steps: int = 2000) -> dict[str, Any]:
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

    return {"benchmark": "designer", "stage": STAGE, "episodes": episodes,
            "vector_env_steps_per_s": _best_rate(episodes * steps, vectorized),
            "single_env_json_steps_per_s": _best_rate(single_steps, json_steps),
            "single_env_gym_steps_per_s": _best_rate(single_steps, gym_steps)}
