"""Scoring policies in the learner's seat: mean episode reward with a 95% interval over seeds.

An episode's reward is the learner's total settled value (the sum of its per-step rewards).
Episodes ``seed, seed + 1, ...`` are the independent units; the interval is the normal one,
``mean +- 1.96 s / sqrt(n)``.
"""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.negotiation.env import play_episode
from mecharena.negotiation.policies import BASELINES, make_policy
from mecharena.negotiation.scenario import TASKS, check_task

Z95 = 1.959963984540054
MAX_SEEDS = 100_000


def mean_ci(values: Iterable[float]) -> dict[str, Any]:
    """``{"mean", "ci95": [low, high], "n"}`` of independent values.

    >>> mean_ci([1.0, 2.0, 3.0])["mean"]
    2.0
    """
    x = np.asarray(list(values), float)
    se = x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else 0.0
    mean = float(x.mean())
    return {"mean": mean, "ci95": [mean - Z95 * se, mean + Z95 * se], "n": int(x.size)}


def check_seeds(seeds: int) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds must be an integer in [1, {MAX_SEEDS}], got {seeds!r}")
    return seeds


def evaluate_policy(task: str, policy: str, seeds: int = 30, start: int = 0,
                    on_episode: Callable[[], None] | None = None) -> dict[str, Any]:
    """``policy`` in the learner's seat on episodes ``start .. start + seeds - 1`` of ``task``."""
    check_task(task)
    make_policy(policy)  # unknown names fail before any episode runs
    rewards, invalid = [], 0
    for seed in range(start, start + check_seeds(seeds)):
        episode = play_episode(task, policy, seed)
        rewards.append(episode.reward)
        invalid += episode.invalid
        if on_episode is not None:
            on_episode()
    return {"task": task, "policy": policy, "reward": mean_ci(rewards), "invalid_per_episode": invalid / seeds,
            "rewards": rewards}


def baseline_table(tasks: Iterable[str] = TASKS, policies: Iterable[str] = BASELINES, seeds: int = 30, start: int = 0,
                   on_episode: Callable[[], None] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task: {policy: evaluate_policy(...)}}``, every policy on the same episodes."""
    return {task: {p: evaluate_policy(task, p, seeds, start, on_episode) for p in policies} for task in tasks}
