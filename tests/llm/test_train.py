"""The training tasks' rewards, SFT then GRPO on the tiny model, and every bad input of the trainers."""

import json

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

import torch
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.designer.action import MechanismAction
from mecharena.llm.designer import DesignerChoice
from mecharena.llm.negotiator import NegotiationChoice
from mecharena.llm.sft import designer_teacher, negotiation_records, sft_records, write_jsonl
from mecharena.llm.tasks import DesignerTask, make_task, task_rewards
from mecharena.llm.tiny import build_tiny
from mecharena.llm.train import read_records, train_grpo, train_sft
from mecharena.negotiation.action import parse_action

torch.set_num_threads(1)

VCG = DesignerChoice.of(MechanismAction(rule="vcg")).model_dump_json()
PAY_AS_BID = DesignerChoice.of(MechanismAction(rule="pay_as_bid", clearing_price=False, collusion_penalty=3.0,
                                               coalition="penalize_suspected")).model_dump_json()


def call(reward, task, rows: list[dict], texts: list[str]) -> list[float]:
    """A reward as TRL calls it: one row's columns per completion, conversational completions."""
    columns = {c: [r[c] for r in rows] for c in task.columns}
    return reward(prompts=[r["prompt"] for r in rows],
                  completions=[[{"role": "assistant", "content": t}] for t in texts], **columns)


def named(task) -> dict:
    return {r.__name__: r for r in task_rewards(task)}


def test_designer_rows_rebuild_their_prompt():
    task = make_task("designer:2")
    rows = task.rows(4, seed=0)
    assert [len(json.loads(r["history"])) for r in rows] == [0, 1, 2, 3]
    assert call(named(task)["format"], task, rows, [VCG] * 4) == [1.0] * 4
    swapped = [rows[0] | {"prompt": rows[1]["prompt"]}]
    with pytest.raises(ConfigError, match="does not describe the state"):
        call(named(task)["format"], task, swapped, [VCG])


def test_designer_reward_depends_on_the_prompts_state():
    """Stage 4, seed 3 (one unit, a three-member cartel) favours VCG; seed 4 (two units, a
    four-member cartel) favours pay-as-bid with a collusion fine: the same two completions
    rank in opposite order on the two rows."""
    task = DesignerTask(4)
    a, b = task.row(3), task.row(4)
    rewards = named(task)
    a_vcg, a_pab, b_vcg, b_pab = call(rewards["composite"], task, [a, a, b, b], [VCG, PAY_AS_BID, VCG, PAY_AS_BID])
    assert a_vcg > a_pab and b_pab > b_vcg
    components = {name: call(r, task, [a, b], [VCG, VCG]) for name, r in rewards.items()}
    # the composite is the mean over the scored rounds of each round's product of components in [0, 1]
    # (docs/designer.md), so it never exceeds any component's mean over the same rounds
    for i in range(2):
        assert 0 < components["composite"][i] <= min(components[c][i] for c in
                                                     ("welfare", "fairness", "participation", "stability")) + 1e-12
    assert components["composite"] == pytest.approx([a_vcg, b_vcg])


def test_unparsable_completions_score_zero():
    task = make_task("designer:2")
    row = task.rows(1, seed=0)[0]
    scores = {name: call(r, task, [row] * 3, ["not json at all", '{"rule": "dutch"}', VCG])
              for name, r in named(task).items()}
    assert scores["format"] == [0.0, 0.5, 1.0]
    assert scores["composite"][:2] == [0.0, 0.0] and scores["composite"][2] > 0.0


def test_negotiation_reward_is_the_return_to_the_end_with_the_expert_playing_on():
    """On the first state of an episode, the expert's own first answer earns exactly the expert
    episode's return (the SFT record's ``return``); an answer that is no action costs the
    invalid-action fine against a wait."""
    task = make_task("negotiation:single_trade")
    row = task.rows(1, seed=7)[0]
    record = negotiation_records("single_trade", 1, seed=7)[0]
    assert record["messages"][:-1] == row["prompt"]
    wait = NegotiationChoice(kind="wait", target=-1, job=-1, give=[], want=[], payment="0", text="").model_dump_json()
    expert, waited, junk = call(named(task)["return"], task, [row] * 3, [record["messages"][-1]["content"], wait, "{}"])
    assert expert == pytest.approx(record["return"]) and record["return"] == record["episode_return"]
    from mecharena.negotiation.core import INVALID_FINE

    assert junk == pytest.approx(waited - INVALID_FINE)
    assert call(named(task)["format"], task, [row] * 2, [wait, "{}"]) == [1.0, 0.5]


def test_choices_convert_back_to_the_teachers_actions():
    """Every expert action of the SFT records converts back exactly, but for what a choice cannot
    say: claims, and a new coalition's unequal shares."""
    for task in ("single_trade", "market_round", "coalition_market"):
        for record in negotiation_records(task, 2):
            action = NegotiationChoice.model_validate_json(record["messages"][-1]["content"]).action()
            assert action.kind == json.loads(record["messages"][-1]["content"])["kind"]
            if action.kind not in ("offer", "counter", "pitch", "form_coalition"):
                assert parse_action(action.model_dump()) == action


@pytest.fixture(scope="module")
def designer_model(tmp_path_factory):
    """A tiny model whose tokenizer is trained on stage-2 SFT records, and those records."""
    root = tmp_path_factory.mktemp("designer-llm")
    records = [r for t in ("greedy", "menu") for r in sft_records(designer_teacher(t, 2), 2, 1, 0)]
    write_jsonl(records, root / "sft.jsonl")
    return build_tiny(root / "base", [m["content"] for r in records for m in r["messages"]], vocab=512, hidden=32), \
        root / "sft.jsonl"


def test_sft_then_grpo_writes_a_model_the_next_stage_loads(designer_model, tmp_path):
    base, data = designer_model
    sft = train_sft(data, tmp_path / "sft", model=base, steps=4, batch_size=4, lora_r=4, min_return=0.0)
    assert sft["records"] == 50 and sft["final_loss"] < sft["first_loss"]
    assert (tmp_path / "sft" / "adapter" / "adapter_config.json").exists()  # LoRA, merged into model/
    grpo = train_grpo(tmp_path / "grpo", model=sft["model"], task="designer:2", prompts=4, steps=2,
                      num_generations=2, prompts_per_step=2, max_completion_length=200, lora_r=0, eval_prompts=2,
                      eval_samples=2)
    assert grpo["steps"] == 2 and grpo["held_out"]["valid_before"] == 1.0  # constrained: every answer valid
    history = json.loads((tmp_path / "grpo" / "history.json").read_text())
    logged = [h for h in history if "reward" in h]
    for entry in logged:
        assert entry["reward"] == pytest.approx(entry["rewards/composite/mean"])  # the only trained reward
        assert entry["rewards/format/mean"] == 1.0
    assert (tmp_path / "grpo" / "curves.png").stat().st_size > 0
    result = CliRunner().invoke(app, ["train", "grpo", "--model", str(tmp_path / "grpo" / "model"), "--out",
                                      str(tmp_path / "again"), "--prompts", "2", "--steps", "1", "--generations", "2",
                                      "--prompts-per-step", "1", "--max-completion-length", "200", "--lora-r", "0",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 1


def test_min_return_filters_the_records(designer_model, tmp_path):
    _, data = designer_model
    records = read_records(data)
    best = max(r["episode_return"] for r in records)
    assert all(r["episode_return"] == best for r in read_records(data, min_return=best))
    with pytest.raises(ConfigError, match=f"no record left with episode_return >= {best + 1}"):
        read_records(data, min_return=best + 1)


@pytest.mark.parametrize(("lines", "message"), [
    (["{not json"], "line 1: not JSON"),
    (['{"messages": [{"role": "user", "content": "hi"}]}'], "line 1: messages must be a list of at least 2"),
    (['{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}'], "role in"),
    (['', '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}'],
     "line 2: the last message must be the assistant's answer, got 'user'"),
])
def test_bad_sft_records_get_one_error_naming_the_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message):
        read_records(path)
    result = CliRunner().invoke(app, ["train", "sft", "--data", str(path), "--out", str(tmp_path / "o"),
                                      "--model", str(tmp_path)])
    assert result.exit_code == 2 and "line" in result.output and "Traceback" not in result.output


def test_bad_models_get_one_error(tmp_path, designer_model):
    _, data = designer_model
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not a config")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 64)
    for kwargs, message in [({"model": tmp_path / "missing"}, "model folder .* does not exist"),
                            ({"model": broken}, "cannot load a model from"),
                            ({"gguf": gguf}, r"cannot load a model from .* \(model.gguf\)"),
                            ({"gguf": tmp_path / "none.gguf"}, "GGUF file none.gguf is not in"),
                            ({}, "give exactly one of model")]:
        with pytest.raises(ConfigError, match=message):
            train_sft(data, tmp_path / "out", **kwargs)
    result = CliRunner().invoke(app, ["train", "grpo", "--gguf", str(gguf), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot load a model from" in result.output, result.output


def test_prompts_longer_than_the_context_are_refused(tmp_path, designer_model):
    _, data = designer_model
    short = build_tiny(tmp_path / "short", ["a b c"], vocab=300, hidden=32, context=64)
    with pytest.raises(ConfigError, match=r"record 1 of .* takes \d+ tokens; the model's context holds 64"):
        train_sft(data, tmp_path / "sft", model=short)
    with pytest.raises(ConfigError, match=r"prompt 1 takes \d+ tokens and its answer up to 160; the model's context "
                                          r"holds 64"):
        train_grpo(tmp_path / "grpo", model=short)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"num_generations": 1}, "num_generations must be an integer >= 2, got 1"),
    ({"learning_rate": -1.0}, "learning_rate must be a number > 0, got -1.0"),
    ({"sampling": "greedy"}, r"sampling must be one of \['constrained', 'free'\], got 'greedy'"),
    ({"sampling": "constrained", "use_vllm": True}, "with vLLM choose sampling 'free'"),
    ({"turns": 0}, "turns must be an integer >= 1, got 0"),
    ({"turns": 2, "sampling": "free"}, "turns > 1 plays episodes with constrained sampling; got sampling 'free'"),
    ({"task": "designer:9"}, "stage"),
])
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        train_grpo(tmp_path / "out", model=tmp_path, **kwargs)


def test_unknown_task_and_cli_errors(tmp_path, tiny_model_dir):
    with pytest.raises(UnknownIdError, match="unknown task 'auction:1'; allowed: designer:STAGE, negotiation:TASK"):
        make_task("auction:1")
    with pytest.raises(UnknownIdError, match="unknown task 'single'"):
        make_task("negotiation:single")
    result = CliRunner().invoke(app, ["train", "grpo", "--model", str(tiny_model_dir), "--out", str(tmp_path),
                                      "--steps", "0"])
    assert result.exit_code == 2 and "steps must be an integer >= 1, got 0" in result.output, result.output


@pytest.mark.parametrize("task", ["designer:2", "negotiation:single_trade"])
def test_multi_turn_episodes_on_the_real_envs(designer_model, tmp_path, task):
    """Two-turn episodes from the envs' own states: the second observation is the env's after the first
    answer, and the observations' tokens are masked out of the loss."""
    from mecharena.llm.tasks import make_task
    from mecharena.llm.train import MultiTurnSampler, load

    base, _ = designer_model
    job = make_task(task)
    rows = job.rows(2, seed=0)
    model, tokenizer = load(base)
    sampler = MultiTurnSampler(model, tokenizer, job, rows, turns=2, num_generations=2, max_new_tokens=200)
    torch.manual_seed(0)
    played = sampler([rows[0]["prompt"]] * 2 + [rows[1]["prompt"]] * 2, type("Trainer", (), {"model": model}))
    for i in range(4):
        completion, mask = played["completion_ids"][i], played["env_mask"][i]
        assert len(completion) == len(mask) == len(played["logprobs"][i]) and 0 < sum(mask) < len(mask)
        observation = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if not m])
        state = job.state(tuple(rows[i // 2][c] for c in job.columns))
        first = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if m][:mask.index(0)],
                                 skip_special_tokens=True)
        after = job.advance(state, first)[0]
        assert job.prompt_of(after)[-1]["content"] in observation  # the env's next observation, after that answer
    summary = train_grpo(tmp_path / "run", model=base, task=task, turns=2, prompts=2, steps=1, num_generations=2,
                         prompts_per_step=1, max_completion_length=200, lora_r=0)
    assert summary["turns"] == 2 and summary["steps"] == 1
