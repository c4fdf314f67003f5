"""Supervised fine-tuning data: chat transcripts of a strong non-LLM designer's decisions.

Each record is one decision: the LLM designer's prompt for the observation (:func:`prompt`) and,
as the assistant's answer, the teacher's action as a :class:`~mecharena.llm.designer.DesignerChoice` in JSON
(on the choice's grids), with the episode's
stage, seed and step. Episodes use training populations only (never the held-out benchmark).
"""

from typing import Any

from mecharena.core.errors import ConfigError
from mecharena.core.jsonl import write_jsonl
from mecharena.designer import core
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import Policy
from mecharena.llm.designer import DesignerChoice, mechanism_of, prompt

MAX_EPISODES = 100_000


def sft_records(teacher: Policy, stage: int, episodes: int, seed: int = 0) -> list[dict[str, Any]]:
    """One chat record per decision of ``teacher`` over ``episodes`` training episodes of ``stage``."""
    if not isinstance(episodes, int) or not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be an integer in [1, {MAX_EPISODES}], got {episodes!r}")
    records = []
    env = DesignerEnv(stage)
    for episode in range(seed, seed + episodes):
        observation = env.reset(seed=episode)
        for step in range(core.HORIZON):
            action = teacher.act(observation)
            answer = DesignerChoice.of(action, mechanism_of(env.vector()).reserve).model_dump_json()
            records.append({"messages": [*prompt(env.vector()), {"role": "assistant", "content": answer}],
                            "stage": stage, "seed": episode, "step": step, "teacher": teacher.name})
            observation, *_ = env.step(action)
    return records


__all__ = ["sft_records", "write_jsonl"]
