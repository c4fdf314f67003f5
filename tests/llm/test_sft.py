"""SFT data from a teacher designer."""

import json

import pytest

from mecharena.core.errors import ConfigError
from mecharena.designer import core
from mecharena.designer.action import MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import GreedyPolicy
from mecharena.llm.sft import sft_records, write_jsonl


def test_records_are_the_teachers_decisions_in_chat_format(tmp_path):
    records = sft_records(GreedyPolicy(), stage=4, episodes=2, seed=5)
    assert len(records) == 2 * core.HORIZON
    env = DesignerEnv(4)
    observation = env.reset(seed=5)
    for record in records[:core.HORIZON]:  # replaying the first episode gives the same answers
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"] and record["seed"] == 5
        answer = MechanismAction.model_validate_json(record["messages"][-1]["content"])
        assert answer == GreedyPolicy().act(observation)
        observation, *_ = env.step(answer)
    path = write_jsonl(records, tmp_path / "sft" / "data.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(records) and json.loads(lines[0])["teacher"] == "greedy"
    with pytest.raises(ConfigError, match="episodes must be an integer in"):
        sft_records(GreedyPolicy(), stage=1, episodes=0)


def test_cli_writes_sft_data(tmp_path):
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["train", "sft-data", "--out", str(tmp_path / "d.jsonl"), "--stage", "2",
                                      "--episodes", "1", "--teacher", "greedy", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["records"] == core.HORIZON
    result = CliRunner().invoke(app, ["train", "sft-data", "--out", str(tmp_path / "d.jsonl"), "--teacher", "sage"])
    assert result.exit_code == 2 and "unknown policy 'sage'" in result.output
