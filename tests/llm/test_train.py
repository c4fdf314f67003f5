"""GRPO training of the LLM designer on CPU with the tiny random model (tests/llm/conftest.py)."""

import json

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

import torch

from mecharena.core.errors import ConfigError
from mecharena.designer.action import MechanismAction
from mecharena.llm.designer import DesignerChoice
from mecharena.llm.train import REWARD_NAMES, grpo_dataset, rewards, state_row, train_grpo

torch.set_num_threads(1)

VCG = DesignerChoice.of(MechanismAction(rule="vcg")).model_dump_json()
PAY_AS_BID = DesignerChoice.of(MechanismAction(rule="pay_as_bid", clearing_price=False, collusion_penalty=3.0,
                                               coalition="penalize_suspected")).model_dump_json()


def columns(rows: list[dict]) -> dict[str, list]:
    return {k: [r[k] for r in rows] for k in ("prompt", "stage", "seed", "population", "history")}


def call(reward, rows: list[dict], texts: list[str]) -> list[float]:
    """A reward as TRL calls it: one row's columns per completion, conversational completions."""
    cols = columns(rows)
    return reward(prompts=cols.pop("prompt"), completions=[[{"role": "assistant", "content": t}] for t in texts],
                  **cols)


def test_train_grpo_runs_and_logs_every_reward(tiny_model_dir, tmp_path):
    summary = train_grpo(tiny_model_dir, tmp_path, stage=2, prompts=4, steps=2, num_generations=2,
                         max_completion_length=16, learning_rate=1e-2, lora_r=4, warmup_sft_steps=2)
    history = json.loads((tmp_path / "history.json").read_text())
    logged = [h for h in history if "reward" in h]
    assert summary["steps"] == len(logged) == 2 and summary["warmup_loss"] > 0
    for entry in logged:
        for key in ("reward", "reward_std", "kl", "completions/mean_length",
                    *(f"rewards/{name}/mean" for name in REWARD_NAMES)):
            assert key in entry, key
        assert 0.0 <= entry["rewards/format/mean"] <= 1.0
        # composite is the only trained reward (weight 1): the logged reward is its mean
        assert entry["reward"] == pytest.approx(entry["rewards/composite/mean"])
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "adapter" / "adapter_config.json").exists()


def test_dataset_rows_rebuild_their_prompt():
    data = grpo_dataset(2, prompts=4, seed=0)
    assert data.column_names == ["prompt", "stage", "seed", "population", "history"]
    assert [len(json.loads(h)) for h in data["history"]] == [0, 1, 2, 3]
    rows = list(data)
    # the reward objects raise when a prompt does not match the state its columns rebuild
    assert call(rewards()[0], rows, [VCG] * 4) == [1.0] * 4
    swapped = [rows[0] | {"prompt": rows[1]["prompt"]}]
    with pytest.raises(ConfigError, match="does not describe the state"):
        call(rewards()[0], swapped, [VCG])


def test_reward_depends_on_the_prompts_state():
    """Stage 4, seed 3 (one unit, a three-member cartel) favours VCG; seed 4 (two units, a
    four-member cartel) favours pay-as-bid with a collusion fine: the same two completions
    rank in opposite order on the two rows."""
    a, b = state_row(4, 3), state_row(4, 4)
    composite = {r.__name__: r for r in rewards()}["composite"]
    a_vcg, a_pab, b_vcg, b_pab = call(composite, [a, a, b, b], [VCG, PAY_AS_BID, VCG, PAY_AS_BID])
    assert a_vcg > a_pab and b_pab > b_vcg
    components = {r.__name__: call(r, [a, b], [VCG, VCG]) for r in rewards()}
    # the composite is the mean over the scored rounds of each round's product of components in [0, 1]
    # (docs/designer.md), so it never exceeds any component's mean over the same rounds
    for i in range(2):
        assert 0 < components["composite"][i] <= min(components[c][i] for c in
                                                     ("welfare", "fairness", "participation", "stability")) + 1e-12
    assert components["composite"] == pytest.approx([a_vcg, b_vcg])


def test_unparsable_completions_score_zero():
    row = state_row(2, 0)
    scores = {r.__name__: call(r, [row] * 3, ["not json at all", '{"rule": "dutch"}', VCG]) for r in rewards()}
    assert scores["format"] == [0.0, 0.5, 1.0]
    assert scores["composite"][:2] == [0.0, 0.0] and scores["composite"][2] > 0.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"num_generations": 1}, "num_generations must be an integer >= 2, got 1"),
    ({"learning_rate": -1.0}, "learning_rate must be a number > 0, got -1.0"),
    ({"stage": 9}, "stage"),
])
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        train_grpo(tmp_path, tmp_path / "out", **kwargs)


def test_cli_train_grpo_refuses_bad_arguments(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["train", "grpo", "--model", str(tiny_model_dir), "--out", str(tmp_path),
                                      "--steps", "0"])
    assert result.exit_code == 2 and "steps must be an integer >= 1, got 0" in result.output, result.output
