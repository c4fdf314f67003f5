"""Supervised fine-tuning data: chat records of teachers' decisions, in the form the LLM policies answer.

Each record is one decision: the LLM policy's prompt for the state and, as the assistant's answer,
the teacher's action as that policy's choice in JSON (a
:class:`~mecharena.llm.designer.DesignerChoice` or a
:class:`~mecharena.llm.negotiator.NegotiationChoice`), with the episode's seed and step, the
teacher's name, ``return`` (the reward from this decision to the episode's end) and
``episode_return`` (the whole episode's), so data can be filtered by quality (``train sft
--min-return``). Several teachers make data that is not one policy's copies:

* designer: any designer policy spec, plus ``menu`` (each episode one menu mechanism, drawn by the
  episode seed). Episodes use training populations only (never the held-out benchmark).
* negotiation: the rule-based ``expert`` or any scripted policy of
  :mod:`mecharena.negotiation.policies`, in the learner's seat.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.core.jsonl import write_jsonl
from mecharena.core.seeding import generator

MAX_EPISODES = 100_000


def _check_episodes(episodes: Any) -> None:
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be an integer in [1, {MAX_EPISODES}], got {episodes!r}")


def _with_returns(steps: list[tuple[int, dict[str, Any]]], rewards: list[float]) -> list[dict[str, Any]]:
    """The records of one episode (each with the index of its step) with the reward from that step to the
    end and the episode's return."""
    to_go = np.cumsum(rewards[::-1])[::-1]
    return [record | {"return": float(to_go[i]), "episode_return": float(to_go[0])} for i, record in steps]


def designer_teacher(spec: str, stage: int, seed: int = 0) -> Callable[[int], Any]:
    """episode -> the designer policy playing it: ``menu`` draws one menu mechanism per episode."""
    from mecharena.designer.policies import ConstantPolicy, make_policy, menu

    if spec != "menu":
        policy = make_policy(spec, stage, seed=seed)
        return lambda episode: policy
    arms = menu()

    def draw(episode: int) -> Any:
        name, action = arms[int(generator(episode, ("menu-teacher", seed)).integers(len(arms)))]
        return ConstantPolicy(action, "menu")

    return draw


def sft_records(teacher: Any, stage: int, episodes: int, seed: int = 0) -> list[dict[str, Any]]:
    """One chat record per decision of ``teacher`` (a designer policy, or a function of the episode
    seed giving one) over training episodes ``seed .. seed + episodes - 1`` of ``stage``."""
    from mecharena.designer import core
    from mecharena.designer.env import DesignerEnv
    from mecharena.llm.designer import DesignerChoice, mechanism_of, prompt

    _check_episodes(episodes)
    pick = teacher if callable(teacher) and not hasattr(teacher, "act") else (lambda episode: teacher)
    records = []
    env = DesignerEnv(stage)
    for episode in range(seed, seed + episodes):
        policy = pick(episode)
        observation = env.reset(seed=episode)
        steps, rewards = [], []
        for step in range(core.HORIZON):
            action = policy.act(observation)
            answer = DesignerChoice.of(action, mechanism_of(env.vector()).reserve).model_dump_json()
            steps.append((step, {"messages": [*prompt(env.vector()), {"role": "assistant", "content": answer}],
                                 "stage": stage, "seed": episode, "step": step, "teacher": policy.name}))
            observation, reward, *_ = env.step(action)
            rewards.append(reward)
        records += _with_returns(steps, rewards)
    return records


def negotiation_records(task: str, episodes: int, seed: int = 0, teacher: str = "expert") -> list[dict[str, Any]]:
    """One chat record per decision of ``teacher`` in the learner's seat over episodes
    ``seed .. seed + episodes - 1`` of ``task``; the answer is the action as a NegotiationChoice.

    Raises:
        UnknownIdError: an unknown task or teacher.
        ConfigError: ``episodes`` out of range.
    """
    from mecharena.llm.negotiator import NegotiationChoice, prompt
    from mecharena.negotiation.env import SEAT, NegotiationEnv
    from mecharena.negotiation.policies import make_policy
    from mecharena.negotiation.scenario import check_task

    check_task(task)
    _check_episodes(episodes)
    policy = make_policy(teacher)
    records = []
    env = NegotiationEnv(task, strict=False)
    for episode in range(seed, seed + episodes):
        obs = env.reset(seed=episode)
        steps, rewards = [], []
        while not env.done:
            action = env.act_for(SEAT, policy)
            if hasattr(action, "kind"):  # a teacher's malformed action is played (and fined), not taught
                answer = NegotiationChoice.of(action).model_dump_json()
                steps.append((len(rewards), {"messages": [*prompt(obs), {"role": "assistant", "content": answer}],
                                             "task": task, "seed": episode, "step": obs["t"], "teacher": teacher}))
            obs, reward, *_ = env.step(action if hasattr(action, "kind") else {"kind": "invalid"})
            rewards.append(reward)
        records += _with_returns(steps, rewards)
    return records


__all__ = ["designer_teacher", "negotiation_records", "sft_records", "write_jsonl"]
