"""The held-out benchmark: policies scored on 20 fixed populations per stage that training never sees.

A policy's score on a population is its mean per-step reward over ``episodes`` independent
episodes (fresh markets, same population); the stage score is the mean over the 20 populations
with a 95% interval over populations. Policies are compared *paired*: the interval of the
per-population difference (same populations, same markets) says whether one beats the other.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.designer import core
from mecharena.designer.action import MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import (
    ConstantPolicy,
    LearnedPolicy,
    OraclePolicy,
    Policy,
    arms_with,
    params_rows,
    rollout,
    search_constant,
    train_learned,
)
from mecharena.designer.population import (BUDGET, CARTEL, DROPOUT, EMPTY, SHADER, SHILL, Params, check_stage,
                                           held_out_seeds, sample)
from mecharena.metrics.summary import mean_ci

MAX_EPISODES = 1000


def benchmark_params(stage: int, episodes: int, seed: int = 0) -> Params:
    """The held-out populations of ``stage``, each ``episodes`` times on independent markets."""
    stage = check_stage(stage)
    if not isinstance(episodes, int) or not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be an integer in [1, {MAX_EPISODES}], got {episodes!r}")
    seeds = held_out_seeds()
    return sample(stage, [s for s in seeds for _ in range(episodes)],
                  [seed * MAX_EPISODES + e for _ in seeds for e in range(episodes)])


def stratified(stage: int, k: int) -> list[int]:
    """``k`` of the stage's held-out populations (indices into :func:`held_out_seeds`), spread over its
    mix: the populations ordered by units for sale, seats, then the share of each type (cartel,
    dropout, budget, shill, shader), cut into ``k`` equal strata, and the middle one of each taken, so
    a subset of a slow evaluation (an LLM designer) keeps the whole benchmark's range of markets.

    Raises:
        ConfigError: ``k`` outside [1, HELD_OUT_SIZE].
    """
    size = len(held_out_seeds())
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size:
        raise ConfigError(f"populations must be an integer in [1, {size}] (of the held-out benchmark), got {k!r}")
    params = sample(check_stage(stage), held_out_seeds())
    seats = (params.kind != EMPTY).sum(axis=1)
    shares = [((params.kind == t).sum(axis=1) / seats) for t in (CARTEL, DROPOUT, BUDGET, SHILL, SHADER)]
    order = np.lexsort([*reversed(shares), seats, params.units])  # the last key sorts first
    return sorted(int(order[(2 * i + 1) * size // (2 * k)]) for i in range(k))  # the middle of k equal strata


def scores(policy: Policy, stage: int, episodes: int = 4, seed: int = 0,
           populations: list[int] | None = None) -> tuple[FloatArray, FloatArray]:
    """(P,) per-population mean reward and (P, 4) mean components on the held-out benchmark (or on
    the ``populations`` among it: indices into :func:`held_out_seeds`)."""
    params = benchmark_params(stage, episodes, seed)
    chosen = list(range(len(held_out_seeds()))) if populations is None else populations
    rows = np.array([p * episodes + e for p in chosen for e in range(episodes)])
    reward, components = rollout(policy, params_rows(params, rows))
    return reward.reshape(len(chosen), episodes).mean(axis=1), components.reshape(len(chosen), episodes, -1).mean(1)


def summary(name: str, reward: FloatArray, components: FloatArray) -> dict[str, Any]:
    return {"policy": name, "reward": mean_ci(reward[None, :]),
            "components": {c: float(components[:, i].mean()) for i, c in enumerate(core.COMPONENTS)},
            "per_population": [round(float(r), 6) for r in reward]}


def paired(a: FloatArray, b: FloatArray) -> dict[str, Any]:
    """Mean of a - b over populations with its 95% interval."""
    return mean_ci((a - b)[None, :])


def evaluate(policy: Policy, stage: int, episodes: int = 4, seed: int = 0,
             populations: list[int] | None = None) -> dict[str, Any]:
    """:func:`scores` summarised, on ``populations`` (indices, e.g. a :func:`stratified` subset; all 20 by default)."""
    chosen = list(range(len(held_out_seeds()))) if populations is None else populations
    reward, components = scores(policy, stage, episodes, seed, chosen)
    return {"stage": stage, "episodes": episodes, "seed": seed, "populations": chosen} | summary(
        policy.name, reward, components)


def audit(stage: int, *, episodes: int = 4, seed: int = 0, populations: int = 512,
          candidates: int = 4096) -> dict[str, Any]:
    """Best constant (searched over the action grid on training populations: :func:`search_constant`),
    the oracle, and the oracle's paired gap.

    ``bandit`` is True when the gap's interval reaches 0: one mechanism is as good as knowing the
    population, so context does not matter at this stage.
    """
    best = search_constant(stage, populations=populations, seed=seed, candidates=candidates)
    constant = ConstantPolicy(MechanismAction(**best["action"]), f"constant ({best['name']})")
    c_reward, c_components = scores(constant, stage, episodes, seed)
    o_reward, o_components = scores(OraclePolicy(arms=arms_with(best)), stage, episodes, seed)
    gap = paired(o_reward, c_reward)
    return {"stage": stage, "best_constant": best, "constant": summary(constant.name, c_reward, c_components),
            "oracle": summary("oracle", o_reward, o_components), "gap": gap, "bandit": gap["ci95"][0] <= 0.0}


def benchmark(stage: int, policies: dict[str, Policy], *, episodes: int = 4, seed: int = 0,
              populations: int = 512) -> dict[str, Any]:
    """The results table of one stage: each policy, the best constant, the learned designer and the
    oracle, with the learned designer's paired margin over the constant and share of the oracle."""
    found = audit(stage, episodes=episodes, seed=seed, populations=populations)
    rows = {name: evaluate(p, stage, episodes, seed) for name, p in policies.items()}
    learned = LearnedPolicy(train_learned(stage, seed=seed, arms=arms_with(found["best_constant"])))
    l_reward, l_components = scores(learned, stage, episodes, seed)
    rows["constant"] = found["constant"]
    rows["learned"] = summary("learned", l_reward, l_components)
    rows["oracle"] = found["oracle"]
    c = np.array(found["constant"]["per_population"])
    o = np.array(found["oracle"]["per_population"])
    return {"stage": stage, "episodes": episodes, "seed": seed, "best_constant": found["best_constant"],
            "rows": rows, "oracle_minus_constant": found["gap"], "learned_minus_constant": paired(l_reward, c),
            "learned_share_of_oracle": float(l_reward.mean() / o.mean()) if o.mean() > 0 else float("nan")}


def run_benchmark(stages: list[int], policies: dict[str, Policy], out: Path, *, episodes: int = 4,
                  seed: int = 0, progress: Any = None) -> list[dict[str, Any]]:
    """:func:`benchmark` for each stage, each written to ``out/stage-S.json`` as it finishes; a stage
    already there (same episodes and seed) is read back, so an interrupted run resumes."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for stage in stages:
        path = out / f"stage-{stage}.json"
        done = json.loads(path.read_text()) if path.exists() else None
        if not (done and done.get("episodes") == episodes and done.get("seed") == seed):
            done = benchmark(stage, policies, episodes=episodes, seed=seed)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(done, indent=1))
            tmp.replace(path)
        results.append(done)
        if progress is not None:
            progress(stage)
    return results


def play_episode(policy: Policy, stage: int, seed: int, out: Path, *, population: int | None = None,
                 steps: int | None = None, on_step: Any = None) -> dict[str, Any]:
    """One episode of ``policy``, recorded in ``out`` as it plays (each line flushed, so a crash keeps
    every finished step): ``steps.jsonl`` (step, mechanism, reward and components) and, when the policy
    writes notes (an LLM designer), ``traces.jsonl`` (its prompts and answers, with the step).
    ``steps`` stops after that many steps (a look at a slow policy); the means are over those played.

    Returns:
        ``{"stage", "seed", "steps", "reward" (mean per step), "components" (means), "out"}``.

    Raises:
        ConfigError: bad stage, ``steps`` outside 1..HORIZON, or ``out`` already holds an episode.
    """
    if steps is not None and not 1 <= steps <= core.HORIZON:
        raise ConfigError(f"steps must be between 1 and {core.HORIZON} (the episode's length), got {steps}")
    env = DesignerEnv(check_stage(stage), held_out=True)  # replaying a benchmark population is evaluation
    observation = env.reset(seed=seed, population=population)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "steps.jsonl").exists():
        raise ConfigError(f"{out} already holds an episode (steps.jsonl); choose a new directory")
    rewards, components = [], {c: [] for c in core.COMPONENTS}
    with (out / "steps.jsonl").open("a") as lines, (out / "traces.jsonl").open("a") as traces:
        while not env.done and len(rewards) != steps:
            action = policy.act(observation)
            step = len(rewards)
            traces.writelines(json.dumps({"step": step, **note}) + "\n" for note in policy.notes())
            observation, reward, _, info = env.step(action)
            rewards.append(reward)
            for c in core.COMPONENTS:
                components[c].append(info[c])
            lines.write(json.dumps({"step": step, "mechanism": action.model_dump(mode="json", exclude_none=True),
                                    "reward": reward, **{c: info[c] for c in core.COMPONENTS}}) + "\n")
            lines.flush()
            traces.flush()
            if on_step is not None:
                on_step(step)
    return {"stage": stage, "seed": seed, "steps": len(rewards), "reward": float(np.mean(rewards)),
            "components": {c: float(np.mean(v)) for c, v in components.items()}, "out": str(out)}
