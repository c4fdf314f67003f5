"""Supervised fine-tuning data: chat records of the rule-based expert's decisions in the learner's seat.

Each record is one decision: a system prompt (the rules and the action schema), the user turn
(the observation as compact JSON) and, as the assistant's answer, the expert's action as JSON,
with the episode's task, seed and step. Opponents are the episode's scripted archetypes.
"""

import json
from typing import Any

from mecharena.core.errors import ConfigError
from mecharena.core.jsonl import write_jsonl
from mecharena.negotiation.action import KINDS
from mecharena.negotiation.env import SEAT, NegotiationEnv
from mecharena.negotiation.policies import Expert
from mecharena.negotiation.scenario import check_task

MAX_EPISODES = 100_000
SYSTEM = (
    "You are lab {lab} in a scarce-GPU market. Each step you take one action, as one JSON object with a "
    "'kind' field, one of: " + ", ".join(KINDS) + ". Jobs earn their value when their GPU-hours are delivered "
    "by blocks that end by the deadline and are reliable enough; late jobs lose value, unfinished ones earn "
    "only partial credit. Blocks cost money (provider list price, or what another lab accepts) and energy "
    "when they run. Your reward is the change of your settled value: credit earned plus budget kept. "
    "Offers: {{\"kind\": \"offer\", \"to\": LAB, \"give\": [BLOCK], \"want\": [BLOCK], \"payment\": X, \"job\": JOB}}; "
    "answer offers with accept/reject/counter; reserve/release blocks with the provider; allocate your blocks "
    "to your jobs; form_coalition / commit / leave for jobs too large for one lab. Claims you make are checked."
)


def prompt(obs: dict[str, Any]) -> list[dict[str, str]]:
    """The system and user turns for an observation."""
    return [{"role": "system", "content": SYSTEM.format(lab=obs["lab"])},
            {"role": "user", "content": json.dumps(obs, separators=(",", ":"), sort_keys=True)}]


def sft_records(task: str, episodes: int, seed: int = 0) -> list[dict[str, Any]]:
    """One chat record per expert decision over episodes ``seed .. seed + episodes - 1`` of ``task``.

    Raises:
        UnknownIdError: an unknown task.
        ConfigError: ``episodes`` out of range.
    """
    check_task(task)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes must be an integer in [1, {MAX_EPISODES}], got {episodes!r}")
    teacher = Expert()
    records = []
    env = NegotiationEnv(task)
    for episode in range(seed, seed + episodes):
        obs = env.reset(seed=episode)
        while not env.done:
            action = env.act_for(SEAT, teacher)
            answer = action.model_dump_json(exclude_defaults=True, exclude={"kind"})
            answer = json.dumps({"kind": action.kind, **json.loads(answer)}, separators=(",", ":"))
            records.append({"messages": [*prompt(obs), {"role": "assistant", "content": answer}],
                            "task": task, "seed": episode, "step": obs["t"], "teacher": teacher.name})
            obs, *_ = env.step(action)
    return records


__all__ = ["sft_records", "write_jsonl"]
