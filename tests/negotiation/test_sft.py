import json

import pytest

from mecharena.core.errors import ConfigError
from mecharena.negotiation.action import parse_action
from mecharena.negotiation.env import NegotiationEnv
from mecharena.negotiation.sft import sft_records


def test_records_replay_the_expert_from_the_prompted_observation():
    records = sft_records("market_round", 2, seed=5)
    env = NegotiationEnv("market_round")
    for r in records:
        if r["step"] == 0:
            obs = env.reset(seed=r["seed"])
        _, user, assistant = r["messages"]
        assert json.loads(user["content"]) == obs  # the prompt is the state the action was chosen on
        obs, *_ = env.step(parse_action(json.loads(assistant["content"])))
    assert {r["task"] for r in records} == {"market_round"} and {r["seed"] for r in records} == {5, 6}


def test_sft_checks_episodes():
    with pytest.raises(ConfigError, match=r"episodes must be an integer in \[1, 100000\], got 0"):
        sft_records("single_trade", 0)
