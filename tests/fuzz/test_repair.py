"""The repair loop: a less exploitable design that keeps welfare and revenue, and its report."""

import json

import pytest

from mecharena.core.errors import ConfigError
from mecharena.fuzz.repair import Design, floor_threshold, pareto_front, repair
from mecharena.metrics.harness import Cell

TARGET = Cell(mechanism="first_price", population="truthful:4")
SMALL = {"budget": 4, "inner_budget": 6, "markets": 200, "rounds": 6, "eval_markets": 400}


@pytest.fixture(scope="module")
def result():
    # Against truthful bidders first price collects E[max value] = n/(n+1) = 0.8 and second price
    # E[second value] = (n-1)/(n+1) = 0.6 (Krishna, Auction Theory, ch. 2): a 0.75 share, so a
    # revenue floor of 0.7 lets the truthful rule through.
    return repair(TARGET, revenue_floor=0.7, **SMALL)


def test_finds_a_less_exploitable_feasible_design(result):
    """Second price makes truthful bidding dominant (Vickrey 1961): shading gains nothing there."""
    original, rec = result.original, result.recommended
    assert original.index == 0 and original.design == Design.of(TARGET)
    assert original.exploitability["mean"] > 0.005  # shading against truthful first-price bidders pays
    assert result.improved and rec.feasible
    assert rec.exploitability["mean"] < 0.2 * original.exploitability["mean"]
    assert rec.design.mechanism == "second_price"
    assert rec.welfare["mean"] >= result.thresholds["welfare"]
    assert rec.revenue["mean"] >= result.thresholds["revenue"]
    assert len(result.candidates) == SMALL["budget"] + 1


def test_pareto_front_is_feasible_and_non_dominated(result):
    front = [result.candidates[i] for i in result.pareto]
    assert front and all(c.feasible for c in front)
    assert result.recommended.index in result.pareto
    feasible = [c for c in result.candidates if c.feasible]
    for p in front:
        for q in feasible:
            no_worse = (q.exploitability["mean"] <= p.exploitability["mean"] and q.welfare["mean"] >= p.welfare["mean"]
                        and q.revenue["mean"] >= p.revenue["mean"])
            strictly = (q.exploitability["mean"] < p.exploitability["mean"] or q.welfare["mean"] > p.welfare["mean"]
                        or q.revenue["mean"] > p.revenue["mean"])
            assert not (no_worse and strictly), (p.index, q.index)


def test_report_is_json_and_names_the_changes(result):
    data = json.loads(json.dumps(result.as_dict()))
    assert data["original"]["index"] == 0 and data["improved"] is True
    assert data["recommended"]["changes"]["mechanism"] == ["first_price", "second_price"]
    assert len(data["candidates"]) == len(result.candidates)
    assert data["thresholds"]["revenue"] == pytest.approx(0.7 * result.original.revenue["mean"])


def test_seeded_repair_is_deterministic(result):
    again = repair(TARGET, revenue_floor=0.7, **SMALL)
    assert again.as_dict() == result.as_dict()


def test_pareto_front_and_thresholds_by_hand():
    assert pareto_front([(0.0, 1.0, 1.0), (0.1, 1.0, 1.0), (0.2, 2.0, 0.0), (0.0, 1.0, 1.0)]) == [0, 2, 3]
    assert floor_threshold(0.8, 1.0) == 0.8
    assert floor_threshold(-2.0, 0.5) == -3.0  # a negative baseline: the floor lies below it


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"welfare_floor": 1.5}, r"welfare_floor must be a finite float in \[0, 1\], got 1.5"),
    ({"revenue_floor": -0.1}, r"revenue_floor must be a finite float in \[0, 1\], got -0.1"),
    ({"budget": 0}, r"budget must be a finite int in \[1, 2000\], got 0"),
    ({"inner_budget": 0}, r"inner_budget must be a finite int in \[1, 2000\], got 0"),
    ({"markets": 1}, r"markets must be a finite int in \[2, 100000\], got 1"),
])
def test_bad_inputs_are_pinned(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        repair(TARGET, **kwargs)
