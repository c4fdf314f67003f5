"""GRPO learns: a small model built here learns to emit the best of three rules (constrained sampling),
and, over two-turn episodes, the best rule of each turn; a run stopped by Ctrl-C keeps its checkpoint and
resumes."""

import json
import os
import signal
from dataclasses import dataclass, field
from typing import Literal

import pytest

pytest.importorskip("trl")
pytest.importorskip("outlines")

import torch

from mecharena.core.config import StrictModel
from mecharena.llm.tiny import build_tiny
from mecharena.llm.train import Interrupted, train_grpo

torch.set_num_threads(1)

PAYOFF = {"first_price": 0.2, "second_price": 0.5, "vcg": 1.0}
PROMPT = [{"role": "user", "content": 'Pick the clearing rule. Answer {"rule": ...}.'}]


class Rule(StrictModel):
    rule: Literal["first_price", "second_price", "vcg"]


@dataclass
class BestOfThree:
    """A task with one state: the reward of an answer is its rule's payoff (vcg is best)."""

    interrupt_at: int = 0  # send SIGINT to this process on this call of score (0: never)
    calls: list = field(default_factory=list)
    name = "toy:best-of-three"
    choice = Rule
    rewards = ("format", "payoff")
    trained = "payoff"
    columns = ("seed",)

    def rows(self, count, seed):
        return [{"prompt": PROMPT, "seed": seed + i} for i in range(count)]

    def state(self, key):
        return key

    def prompt_of(self, state):
        return PROMPT

    def score(self, state, text):
        self.calls.append(text)
        if len(self.calls) == self.interrupt_at:  # once
            os.kill(os.getpid(), signal.SIGINT)
        try:
            rule = Rule.model_validate_json(text).rule
        except ValueError:
            return {"format": 0.0, "payoff": 0.0}
        return {"format": 1.0, "payoff": PAYOFF[rule]}


# Two turns: the first pays PAYOFF, the second its mirror image (first price best). A policy that ignores
# the turn earns at most 1.2 an episode; answering each turn's best earns 2.
SECOND = {"first_price": 1.0, "second_price": 0.5, "vcg": 0.2}


@dataclass
class TwoTurns:
    """Episodes of two turns; the state is (seed, turn) and each turn's prompt says which it is."""

    name = "toy:two-turns"
    choice = Rule
    rewards = ("format", "payoff")
    trained = "payoff"
    columns = ("seed", "turn")

    def rows(self, count, seed):
        return [{"prompt": self.prompt_of((seed + i, 1)), "seed": seed + i, "turn": 1} for i in range(count)]

    def state(self, key):
        return key

    def prompt_of(self, state):
        return [{"role": "user", "content": f"Turn {state[1]}: pick the clearing rule."}]

    def score(self, state, text):
        rule = Rule.model_validate_json(text).rule
        return {"format": 1.0, "payoff": (PAYOFF if state[1] == 1 else SECOND)[rule]}

    def advance(self, state, text):
        return (state[0], state[1] + 1), self.score(state, text)["payoff"], False, True


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-llm")
    prompts = [PROMPT[0]["content"], "Turn 1: pick the clearing rule.", "Turn 2: pick the clearing rule."]
    return build_tiny(folder, [json.dumps({"rule": r}) for r in PAYOFF] * 20 + prompts * 5, vocab=300, hidden=32)


def test_grpo_learns_to_emit_the_best_rule(toy_model, tmp_path):
    summary = train_grpo(tmp_path / "run", model=toy_model, task=BestOfThree(), prompts=8, steps=20,
                         num_generations=4, prompts_per_step=2, max_completion_length=32, learning_rate=2e-2,
                         lora_r=0, eval_prompts=16, eval_samples=4)
    held = summary["held_out"]
    # a random model answers each rule about a third of the time (mean payoff about 0.57)
    assert 0.3 < held["before"] < 0.8 and held["valid_before"] == 1.0
    assert held["gain"]["low"] > 0 and held["after"] > held["before"] + 0.2, held
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    logged = [h for h in history if "reward" in h]
    # constrained sampling: every answer is valid, so the first groups differ (once learned, they agree)
    assert sum(h["frac_reward_zero_std"] for h in logged[:5]) / 5 <= 0.2
    assert summary["groups_with_variance"] < 1.0
    rewards = [h["reward"] for h in logged]
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4


def test_multi_turn_grpo_learns_the_best_answer_of_each_turn(toy_model, tmp_path):
    """Each completion is a whole episode (answer, next observation, answer); the episode's reward is
    the sum of its turns'. Learning the turn-dependent answer is the only way above 1.2."""
    summary = train_grpo(tmp_path / "run", model=toy_model, task=TwoTurns(), turns=2, prompts=8, steps=60,
                         num_generations=4, prompts_per_step=2, max_completion_length=32, learning_rate=2e-2,
                         lora_r=0, eval_prompts=16, eval_samples=4)
    held = summary["held_out"]
    assert 0.8 < held["before"] < 1.5 and held["valid_before"] == 1.0  # random answers: about 1.13
    assert held["gain"]["low"] > 0 and held["after"] > 1.3, held
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    logged = [h for h in history if "reward" in h]
    assert all(h["reward"] == pytest.approx(h["rewards/episode/mean"]) for h in logged)


def test_ctrl_c_keeps_a_checkpoint_and_the_rerun_resumes(toy_model, tmp_path):
    settings = dict(model=toy_model, prompts=8, steps=6, num_generations=4, prompts_per_step=2,
                    max_completion_length=32, learning_rate=1e-2, lora_r=0, save_steps=100)
    with pytest.raises(Interrupted, match=r"interrupted after step \d of 6; checkpoint saved in") as stopped:
        train_grpo(tmp_path / "run", task=BestOfThree(interrupt_at=2), **settings)  # during the first steps
    step = int(str(stopped.value).split("step ")[1][0])
    assert step < 6 and (tmp_path / "run" / "checkpoints" / f"checkpoint-{step}").is_dir()
    assert not (tmp_path / "run" / "model").exists()
    summary = train_grpo(tmp_path / "run", task=BestOfThree(), **settings)
    assert summary["resumed_from"].endswith(f"checkpoint-{step}") and summary["steps"] == 6
    assert (tmp_path / "run" / "model" / "config.json").exists()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in history if "reward" in h] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(Exception, match="holds a finished run"):
        train_grpo(tmp_path / "run", task=BestOfThree(), **settings)
    with pytest.raises(Exception, match=r"holds a run with other settings \(learning_rate: 0.01 there, 0.02 now\)"):
        train_grpo(tmp_path / "run", task=BestOfThree(), **settings | {"learning_rate": 2e-2})
