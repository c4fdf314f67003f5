"""A Stable-Baselines3 PPO designer, trained for a bounded budget and scored on the held-out benchmark.

    .venv/bin/python examples/designer/ppo.py --stage 3 --steps 200000 --out runs/ppo-designer

PPO plays ``mecharena/Designer-v1`` through :class:`~mecharena.designer.gym.FlatActions` (one Box
action), on 8 training environments with normalised observations (SB3's ``VecNormalize``). The
trained policy then designs the 20 held-out populations of the stage (never seen in training),
4 episodes each, beside the random and greedy designers on the same populations and markets; the
paired intervals say whether it beats them. Writes ``result.json`` and the model in ``--out``.
See docs/designer.md for the measured table.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from mecharena.designer import core, evaluate
from mecharena.designer.gym import ENV_ID, FlatActions, to_mechanism
from mecharena.designer.policies import GreedyPolicy, Policy, RandomPolicy


class PPOPolicy(Policy):
    """The trained PPO as a designer of the benchmark: normalise, predict (deterministic), map the flat action."""

    name = "ppo"

    def __init__(self, model: PPO, normalize: VecNormalize) -> None:
        self.model, self.normalize = model, normalize
        self.flat = FlatActions(gym.make(ENV_ID))

    def decide(self, vectors: np.ndarray) -> core.Mechanism:
        actions, _ = self.model.predict(self.normalize.normalize_obs(vectors.astype(np.float32)), deterministic=True)
        rows = [to_mechanism(self.flat.action(np.clip(a, -1, 1))) for a in actions]
        return core.Mechanism(*(np.concatenate([getattr(r, f) for r in rows]) for f in core.Mechanism.__slots__))


def train(stage: int, steps: int, seed: int) -> tuple[PPO, VecNormalize]:
    envs = VecNormalize(make_vec_env(lambda: FlatActions(gym.make(ENV_ID, stage=stage)), n_envs=8, seed=seed),
                        norm_reward=False)
    model = PPO("MlpPolicy", envs, n_steps=256, batch_size=256, n_epochs=5, learning_rate=3e-4, gamma=0.9,
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    envs.training = False
    return model, envs


def load_policy(out: Path) -> PPOPolicy:
    """The designer that :func:`compare` saved in ``out``, ready for ``evaluate.scores``."""
    normalize = VecNormalize.load(str(out / "normalize.pkl"), DummyVecEnv([lambda: FlatActions(gym.make(ENV_ID))]))
    normalize.training = False
    return PPOPolicy(PPO.load(out / "ppo", device="cpu"), normalize)


def compare(stage: int, steps: int, seed: int, out: Path) -> dict[str, Any]:
    model, normalize = train(stage, steps, seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "ppo")
    normalize.save(str(out / "normalize.pkl"))
    reward = {name: evaluate.scores(policy, stage)[0] for name, policy in
              {"ppo": PPOPolicy(model, normalize), "random": RandomPolicy(seed), "greedy": GreedyPolicy()}.items()}
    result = {"stage": stage, "steps": steps, "seed": seed,
              "mean": {name: float(r.mean()) for name, r in reward.items()},
              "ppo_minus_random": evaluate.paired(reward["ppo"], reward["random"]),
              "ppo_minus_greedy": evaluate.paired(reward["ppo"], reward["greedy"])}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, default=3, choices=range(1, 6))
    parser.add_argument("--steps", type=int, default=200_000, help="PPO environment steps (a bounded budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/ppo-designer"))
    args = parser.parse_args(argv)
    if args.steps < 2048:
        parser.error(f"--steps must be at least 2048 (one PPO update of 8 x 256), got {args.steps}")
    torch.set_num_threads(1)
    result = compare(args.stage, args.steps, args.seed, args.out)
    for name, value in result["mean"].items():
        print(f"{name:>7}: mean reward per step {value:.3f} on the stage-{args.stage} held-out benchmark")
    for other in ("random", "greedy"):
        gap = result[f"ppo_minus_{other}"]
        verdict = "beats" if gap["ci95"][0] > 0 else "does not beat"
        print(f"PPO {verdict} {other}: paired difference {gap['mean']:+.3f} "
              f"[{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}]")


if __name__ == "__main__":
    main()
