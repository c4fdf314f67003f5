"""What a deviation does, in words, read from its play: policies whose behaviour is known are described as it."""

from pathlib import Path

import numpy as np
import pytest

from mecharena import mechanisms, plugins
from mecharena.agents.policy import feature_names, start_weights
from mecharena.fuzz import fuzz
from mecharena.fuzz.behaviour import Decisions, describe, describe_play
from mecharena.fuzz.policy_search import policy_deviation
from mecharena.mechanisms.schema import ActionField
from mecharena.metrics.harness import Cell

LOYALTY = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "planted" / "rounds" / "loyalty_discount.py"


@pytest.fixture
def loyalty(isolated_registries):
    plugins.load(str(LOYALTY))
    return Cell(mechanism="loyalty_discount", population="truthful:4", rounds=5)


def weights(mechanism: str, **terms: float) -> np.ndarray:
    """Policy weights: truthful and always in, plus ``map_feature=weight`` terms (map: g, c, e or an action field)."""
    names = feature_names(mechanisms.get(mechanism))
    w = start_weights(mechanisms.get(mechanism))
    maps = ["g", "c", "e", *(a.name for a in mechanisms.get(mechanism).actions)]
    for key, x in terms.items():
        out, feature = key.split("_", 1)
        w[maps.index(out) * len(names) + names.index(feature)] += x
    return w


def test_a_policy_that_overbids_on_a_streak_is_described_as_doing_so(loyalty):
    bid = weights("loyalty_discount", g_own_streak=0.5)  # bid 1.5 v on a streak, v otherwise
    assert describe_play(loyalty, policy_deviation(bid), seed=1) == ("if streak = 1: bids 1.50x value, "
                                                                     "else bids its value")
    shaded = weights("loyalty_discount", g_bias=-0.2, c_bias=0.05)
    assert describe_play(loyalty, policy_deviation(shaded), seed=1) == "bids 0.80x value + 0.05"
    assert describe_play(loyalty, policy_deviation(start_weights(mechanisms.get("loyalty_discount"))),
                         seed=1) == "bids its value"


def test_a_behaviour_that_depends_on_two_conditions_names_both(loyalty):
    """A multiplier raised by 0.5 on a streak and by 0.3 in the last round (the seat told the horizon): four
    bids, two conditions, one inside the other."""
    both = weights("loyalty_discount", g_own_streak=0.5, g_final=0.3)
    assert describe_play(loyalty, policy_deviation(both, horizon=5), seed=1) == (
        "if streak = 1: (if in the last round: bids 1.80x value, else bids 1.50x value), "
        "else (if in the last round: bids 1.30x value, else bids its value)")
    untold = describe_play(loyalty, policy_deviation(both), seed=1)  # horizon unknown: final is never 1
    assert untold == "if streak = 1: bids 1.50x value, else bids its value"


def test_taking_part_is_named_only_where_it_is_not_always_with_a_value_threshold_where_one_explains_it(loyalty):
    late = weights("loyalty_discount", e_bias=-1.0, e_round=2.0)  # out in round 0, in from round 1
    assert describe_play(loyalty, policy_deviation(late), seed=1) == ("bids its value; if in round 0: stays out, "
                                                                      "else always takes part")
    out = weights("loyalty_discount", e_bias=-1.0)
    assert describe_play(loyalty, policy_deviation(out), seed=1) == "stays out"
    low = weights("loyalty_discount", e_value=-2.5)  # entry score 1 - 2.5 v: in below 0.4
    assert describe_play(loyalty, policy_deviation(low), seed=1) == "bids its value; takes part when value < 0.40"


def test_action_fields_are_named_unless_left_at_their_default():
    rng = np.random.default_rng(0)
    v = rng.uniform(size=400)
    flag = np.arange(400) % 2 == 0
    fields = (ActionField("claim", 0, 1, 0, integer=True), ActionField("effort", 0, 1, 1.0),
              ActionField("fakes", 0, 3, 0, integer=True))
    d = Decisions(v, v, np.ones(400, bool), {"claim": flag.astype(float), "effort": np.where(flag, 0.8, 0.6),
                                             "fakes": np.zeros(400)}, {"in round 0": flag})
    assert describe(d, fields) == ("bids its value; if in round 0: claim = 1, else claim = 0; "
                                   "if in round 0: effort = 0.8, else effort = 0.6")
    assert describe(Decisions(v, v, np.ones(400, bool), {"effort": rng.uniform(0.7, 0.9, 400)}, {}),
                    fields) == "bids its value; effort 0.80 on average"


def test_fuzz_says_what_the_policy_it_found_does(loyalty):
    result = fuzz(loyalty, families=["policy"], budget=8, seed=1, markets=60, rounds=5, eval_markets=100)
    assert result.best.deviation.family == "policy"
    assert result.description == result.behaviour == describe_play(loyalty, result.best.deviation,
                                                                   seed=result.search["fresh_seed"],
                                                                   markets=100, rounds=5)
    assert "bids " in result.as_dict()["description"]


def test_in_a_market_without_state_having_won_the_round_before_is_a_condition():
    repeated = Cell(mechanism="second_price", population="truthful:3", rounds=4)
    after_a_win = weights("second_price", g_won=0.3)
    assert describe_play(repeated, policy_deviation(after_a_win), seed=2) == (
        "if it won the round before: bids 1.30x value, else bids its value")
