"""SFT data from teachers' decisions: replayable, in the policies' answer form, with the returns they led to."""

import json

import pytest

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.designer import core
from mecharena.designer.action import MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import GreedyPolicy
from mecharena.llm.negotiator import NegotiationChoice, prompt
from mecharena.llm.sft import designer_teacher, negotiation_records, sft_records, write_jsonl
from mecharena.negotiation.env import NegotiationEnv


def test_records_are_the_teachers_decisions_with_their_returns(tmp_path):
    records = sft_records(GreedyPolicy(), stage=4, episodes=2, seed=5)
    assert len(records) == 2 * core.HORIZON
    env = DesignerEnv(4)
    observation = env.reset(seed=5)
    rewards = []
    for record in records[:core.HORIZON]:  # replaying the first episode gives the same answers
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"] and record["seed"] == 5
        answer = MechanismAction.model_validate_json(record["messages"][-1]["content"])
        assert answer == GreedyPolicy().act(observation)
        observation, reward, *_ = env.step(answer)
        rewards.append(reward)
    # return: the reward from the decision to the episode's end
    assert [r["return"] for r in records[:core.HORIZON]] == pytest.approx([sum(rewards[i:]) for i in range(len(rewards))])
    assert [r["episode_return"] for r in records[:core.HORIZON]] == pytest.approx([sum(rewards)] * core.HORIZON)
    path = write_jsonl(records, tmp_path / "sft" / "data.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(records) and json.loads(lines[0])["teacher"] == "greedy"
    with pytest.raises(ConfigError, match="episodes must be an integer in"):
        sft_records(GreedyPolicy(), stage=1, episodes=0)


def test_the_menu_teacher_plays_one_mechanism_an_episode_drawn_by_its_seed():
    records = sft_records(designer_teacher("menu", 2, seed=1), 2, 6, seed=0)
    per_episode = {}
    for r in records:
        per_episode.setdefault(r["seed"], set()).add(r["messages"][-1]["content"])
    assert all(len(answers) == 1 for answers in per_episode.values())  # constant within an episode
    assert len({a for answers in per_episode.values() for a in answers}) >= 4  # different across episodes
    again = sft_records(designer_teacher("menu", 2, seed=1), 2, 6, seed=0)
    assert [r["messages"] for r in again] == [r["messages"] for r in records]


def test_negotiation_records_replay_the_teacher_from_the_prompted_state():
    records = negotiation_records("market_round", 2, seed=5, teacher="selfish")
    env = NegotiationEnv("market_round", strict=False)
    for r in records:
        if r["step"] == 0:
            obs = env.reset(seed=r["seed"])
        while obs["t"] < r["step"]:  # a teacher's malformed action is played but not taught
            obs, *_ = env.step({"kind": "invalid"})
        assert r["messages"][:-1] == prompt(obs)  # the prompt is the state the action was chosen on
        obs, *_ = env.step(NegotiationChoice.model_validate_json(r["messages"][-1]["content"]).action())
    assert {r["task"] for r in records} == {"market_round"} and {r["seed"] for r in records} == {5, 6}
    assert {r["teacher"] for r in records} == {"selfish"}
    with pytest.raises(ConfigError, match=r"episodes must be an integer in \[1, 100000\], got 0"):
        negotiation_records("single_trade", 0)
    with pytest.raises(UnknownIdError, match="sage"):
        negotiation_records("single_trade", 1, teacher="sage")


def test_cli_writes_sft_data_from_several_teachers(tmp_path):
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["train", "sft-data", "--out", str(tmp_path / "d.jsonl"), "--stage", "2",
                                      "--episodes", "1", "--teacher", "greedy", "--teacher", "menu", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["records"] == 2 * core.HORIZON
    teachers = {json.loads(line)["teacher"] for line in (tmp_path / "d.jsonl").read_text().splitlines()}
    assert teachers == {"greedy", "menu"}
    result = CliRunner().invoke(app, ["train", "sft-data", "--out", str(tmp_path / "d.jsonl"), "--teacher", "sage"])
    assert result.exit_code == 2 and "unknown policy 'sage'" in result.output
