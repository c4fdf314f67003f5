"""The prompt of a lab's decision: a system turn (the rules and the action kinds) and the user turn
(the observation as compact JSON). The LLM negotiator (:mod:`mecharena.llm.negotiator`) and its
SFT records (:func:`mecharena.llm.sft.negotiation_records`) build on it.
"""

import json
from typing import Any

from mecharena.negotiation.action import KINDS

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


__all__ = ["SYSTEM", "prompt"]
