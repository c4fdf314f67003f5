"""The SB3 PPO designer's script (examples/designer/ppo.py): on a short budget PPO already learns (it beats
the random designer on the held-out benchmark with a paired interval above zero), and what it saves is
the policy it scored."""

import json

import pytest
import torch

from mecharena.designer import evaluate
from tests.examples.conftest import load_example


@pytest.mark.slow
def test_ppo_learns_on_a_short_budget_and_saves_what_it_scored(tmp_path):
    torch.set_num_threads(1)
    ppo = load_example("designer/ppo.py")
    result = ppo.compare(2, 24_576, 0, tmp_path)  # 12 PPO updates, about 10 s
    gap = result["ppo_minus_random"]
    assert gap["ci95"][0] > 0.3, gap  # random scores about 0.22 at stage 2: PPO has learned well above it
    assert json.loads((tmp_path / "result.json").read_text()) == result
    saved = ppo.load_policy(tmp_path)  # the saved model and observation statistics design the same markets
    assert evaluate.scores(saved, 2)[0].mean() == result["mean"]["ppo"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--steps", "100"], "--steps must be at least 2048 (one PPO update of 8 x 256), got 100"),
    (["--stage", "9"], "argument --stage: invalid choice: 9")])
def test_the_script_refuses_a_bad_budget_or_stage_before_training(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        load_example("designer/ppo.py").main([*argv, "--out", str(tmp_path / "run")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was trained or written
