import json

from typer.testing import CliRunner

from mecharena.cli.negotiation import app

runner = CliRunner()


def test_baselines_json_and_table():
    result = runner.invoke(app, ["baselines", "--task", "single_trade", "--seeds", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["single_trade"]) == {"random", "always_accept", "greedy_hoarder", "expert"}
    assert data["single_trade"]["expert"]["reward"]["n"] == 3
    table = runner.invoke(app, ["baselines", "--task", "single_trade", "--seeds", "2", "--policies", "expert,always_wait"])
    assert table.exit_code == 0 and "expert" in table.output and "always_wait" in table.output
    markdown = runner.invoke(app, ["baselines", "--task", "single_trade", "--seeds", "2", "--markdown"])
    assert markdown.output.startswith("| task | random | always_accept | greedy_hoarder | expert |")


def test_play_writes_a_transcript(tmp_path):
    path = tmp_path / "episode.jsonl"
    result = runner.invoke(app, ["play", "--task", "market_round", "--policy", "expert", "--seed", "2",
                                 "--transcript", str(path), "--json", "--judge"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "episode" and lines[-1]["type"] == "end"
    assert lines[-1]["values"][0] == summary["reward"]
    human = runner.invoke(app, ["play", "--task", "single_trade", "--seed", "0"])
    assert human.exit_code == 0 and "settled value" in human.output


def test_sft_data(tmp_path):
    path = tmp_path / "sft.jsonl"
    result = runner.invoke(app, ["sft-data", "--out", str(path), "--episodes", "2", "--task", "single_trade",
                                 "--teacher", "expert", "--teacher", "cooperative", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert json.loads(result.output)["records"] == len(records) == 2 * 2 * 8
    assert {r["teacher"] for r in records} == {"expert", "cooperative"}
    roles = [m["role"] for m in records[0]["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert json.loads(records[0]["messages"][2]["content"])["kind"] and "return" in records[0]


def test_bad_input_exits_2_with_the_message():
    result = runner.invoke(app, ["play", "--task", "market", "--seed", "0"])
    assert result.exit_code == 2 and "unknown task 'market'" in result.output
    result = runner.invoke(app, ["baselines", "--task", "single_trade", "--policies", "exprt"])
    assert result.exit_code == 2 and "did you mean 'expert'" in result.output
    result = runner.invoke(app, ["baselines", "--task", "single_trade", "--seeds", "0"])
    assert result.exit_code == 2 and "seeds must be an integer in [1, 100000], got 0" in result.output
