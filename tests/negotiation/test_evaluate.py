"""The baseline table and the degenerate-policy suite (30 seeds per task, the same episodes for all)."""

import numpy as np
import pytest

from mecharena.core.errors import ConfigError
from mecharena.negotiation.evaluate import baseline_table, evaluate_policy, mean_ci
from mecharena.negotiation.policies import BASELINES, DEGENERATE
from mecharena.negotiation.scenario import TASKS

SEEDS = 30


@pytest.fixture(scope="module")
def table():
    return baseline_table(TASKS, BASELINES + DEGENERATE, SEEDS)


@pytest.mark.parametrize("task", TASKS)
def test_the_expert_leads_every_baseline(table, task):
    """On the same 30 episodes, the expert's paired margin over every other baseline has a 95%
    interval above 0 (the marginal intervals overlap: episodes differ widely, and that spread is
    common to every policy)."""
    rows = table[task]
    expert = rows["expert"]["reward"]
    for name in BASELINES:
        if name != "expert":
            margin = mean_ci(np.subtract(rows["expert"]["rewards"], rows[name]["rewards"]))
            assert margin["ci95"][0] > 0, (task, name, margin)
    assert expert["ci95"][0] > 0  # it earns real surplus, not just less loss
    assert rows["expert"]["invalid_per_episode"] == 0


@pytest.mark.parametrize("task", TASKS)
def test_no_degenerate_policy_beats_the_expert(table, task):
    rows = table[task]
    for name in DEGENERATE:
        assert rows[name]["reward"]["mean"] < rows["expert"]["reward"]["mean"], (task, name)
    # spamming proposals earns nothing: at best zero, less the fines for impossible actions
    for name in ("coalition_spam", "empty_commitments", "pitch_spam", "always_wait", "free_lunch"):
        assert rows[name]["reward"]["mean"] <= 0.0, (task, name)
    assert rows["empty_commitments"]["invalid_per_episode"] > 0


def test_evaluate_checks_its_arguments():
    with pytest.raises(ConfigError, match=r"seeds must be an integer in \[1, 100000\], got 0"):
        evaluate_policy("single_trade", "expert", 0)
