"""The coalition search rediscovers bid-suppression rings without any ring family."""

import numpy as np
import pytest

from mecharena.agents import REGISTRY
from mecharena.agents.ring_table import RingParams, init, ring_bids
from mecharena.core.errors import ConfigError
from mecharena.fuzz.coalition import ring_response
from mecharena.fuzz.score import Scorer, deviated_population
from mecharena.fuzz.search import fuzz
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play


def second_price_ring_gain(points: int = 2000) -> float:
    """E[(min(v1, v2) - max(v3, v4))^+] for four i.i.d. U[0, 1] values, by the midpoint rule.

    A ring {1, 2} in a second-price auction whose lower member stays out changes the price only when
    the ring holds the two highest values: its top member then pays the highest non-member value
    instead of its partner's, and the ring gains the difference (Graham and Marshall 1987,
    "Collusive bidder behavior at single-object second-price and English auctions", JPE 95(6)).
    X = min(v1, v2) has density 2(1 - x), Y = max(v3, v4) density 2y; in closed form the gain is
    (2/3)(1/4 - 1/5) = 1/30 per market, 1/60 per member.
    """
    grid = (np.arange(points) + 0.5) / points
    x, y = grid[:, None], grid[None, :]
    return float((np.maximum(x - y, 0.0) * 2 * (1 - x) * 2 * y).sum() / points**2)


def test_the_integration_matches_the_closed_form():
    assert second_price_ring_gain() == pytest.approx(1 / 30, rel=1e-4)


def test_second_price_ring_suppresses_its_lower_member_and_gains_what_theory_says():
    """4 truthful bidders, a ring of the first 2: the search finds the designated-winner ring
    (top member truthful, lower member out) and its fresh gain per member matches 1/60."""
    cell = Cell(mechanism="second_price", population="truthful:4", rounds=1)
    ring = ring_response(cell, 2, seed=1, samples=6000)
    top, lower = ring.tables
    values = ring.values
    assert (lower[(values >= 0.1) & (values < 0.95)] == 0).all()  # suppression
    assert np.median(np.abs(top - values)) < 0.01 and np.abs(top - values).max() < 0.1  # truthful
    assert ring.converged
    assert "second-highest value" in ring.description and "abstains for values" in ring.description
    # the gain goes to the top member, but the lower member's suppression creates it all
    assert ring.split.by_role[0] == pytest.approx(ring.gain) and ring.split.by_role[1] == 0
    assert ring.split.shapley[1] == pytest.approx(ring.gain, rel=0.01)
    assert ring.split.shapley.sum() == pytest.approx(ring.gain) and ring.split.equal == pytest.approx(ring.gain / 2)
    fresh = Scorer(cell).score(ring.deviation, seed=7, markets=40_000, rounds=1)
    theory = second_price_ring_gain() / 2
    assert fresh.lo <= theory <= fresh.hi


@pytest.mark.slow
def test_second_price_ring_of_three_suppresses_both_lower_members():
    """5 truthful bidders, a ring of 3: both lower members stay out and the top member pays the
    highest non-member value whenever the ring holds the two highest values. The ring gains
    E[(X - Y)^+] with X the ring's second-highest of 3 values (density 6x(1 - x)) and Y the
    highest of the 2 non-members (density 2y) (Graham and Marshall 1987), per member a third."""
    points = 2000
    grid = (np.arange(points) + 0.5) / points
    x, y = grid[:, None], grid[None, :]
    theory = float((np.maximum(x - y, 0.0) * 6 * x * (1 - x) * 2 * y).sum() / points**2) / 3
    cell = Cell(mechanism="second_price", population="truthful:5", rounds=1)
    ring = ring_response(cell, 3, seed=1, samples=6000)
    middle = (ring.values >= 0.2) & (ring.values < 0.95)
    assert (ring.tables[1][middle] == 0).all() and (ring.tables[2][middle] == 0).all()
    assert ring.split.shapley.sum() == pytest.approx(ring.gain) and ring.split.shapley[0] < 1e-3
    fresh = Scorer(cell).score(ring.deviation, seed=7, markets=40_000, rounds=1)
    assert fresh.lo <= theory <= fresh.hi


def test_first_price_ring_gains_and_its_lower_member_does_not_compete():
    """4 truthful bidders, a ring of 2 in first price: the ring gains, its designated winner shades
    below its partner's value, and the partner does not outbid it (played through the loop)."""
    cell = Cell(mechanism="first_price", population="truthful:4", rounds=1)
    ring = ring_response(cell, 2, seed=1, samples=6000)
    assert ring.gain > 0 and ring.baseline == 0  # truthful bidders earn nothing in first price
    fresh = Scorer(cell).score(ring.deviation, seed=7, markets=20_000, rounds=1)
    assert fresh.lo > 0
    spec = deviated_population(cell.population, 0, 2, ring.deviation.agent_spec)
    (record,) = play(Cell(mechanism="first_price", population=spec, markets=20_000, rounds=1, seed=9).episode(), 1)
    values, bids, won = record.values[:, :2], record.bids[:, :2], record.outcome.allocation[:, :2] > 0
    rows = np.arange(values.shape[0])
    high, low = np.argmax(values, axis=1), np.argmin(values, axis=1)
    ring_won = won.any(axis=1)
    assert won[rows, low].sum() < 0.05 * ring_won.sum()
    # where the partner would have outbid the winner had it competed, it held back
    held_back = won[rows, high] & (bids[rows, high] < values[rows, low])
    assert held_back.mean() > 0.04


def test_ring_table_ranks_members_by_value_within_the_ring():
    roles = RingParams.build(low=0, high=1, tables="0/0.5/1;0/0/0;x/x/x").roles()
    bids, enter = ring_bids(roles, np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.4]]))
    np.testing.assert_array_equal(bids, [[0.0, 1.0, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(enter, [[False, True, True], [True, False, True]])


def test_ring_table_needs_one_table_per_seat():
    assert "ring_table" in REGISTRY
    with pytest.raises(ConfigError, match=r"tables must hold 2 to 8 role tables separated by ';', got 1"):
        Cell(mechanism="second_price", population="ring_table(tables=0/1):2,truthful:2").episode()
    with pytest.raises(ConfigError, match=r"tables role 1: bids entry 1 must be a finite number >= 0 or 'x' .*got '-1'"):
        Cell(mechanism="second_price", population="ring_table(tables=0/1;0/-1):2,truthful:2").episode()
    cell = Cell(mechanism="second_price", population="ring_table(tables=0/1;0/1):3,truthful:2", markets=2, rounds=1)
    with pytest.raises(ConfigError, match=r"ring_table has 2 role tables, so its group must hold 2 seats .*got 3$"):
        list(play(cell.episode(), 1))
    assert init is REGISTRY.get("ring_table").init


@pytest.mark.parametrize(("population", "k", "message"), [
    ("truthful:4", 5, r"deviators \(the ring's size K\) must be an integer in \[2, 4\] .*got 5$"),
    ("truthful:4", 1, r"deviators \(the ring's size K\) must be an integer in \[2, 4\] .*got 1$"),
    ("sybil(m=2):1,truthful:3", 2, r"ring members .* must hold one identity each; the agent on seat 0 holds 2"),
])
def test_rings_that_cannot_form_are_refused_in_one_line(population, k, message):
    cell = Cell(mechanism="second_price", population=population, rounds=1)
    with pytest.raises(ConfigError, match=message) as caught:
        ring_response(cell, k, seed=0, samples=100)
    assert "\n" not in str(caught.value)


def test_fuzz_searches_the_coalition_with_two_deviators_and_scores_it_fresh():
    target = Cell(mechanism="second_price", population="truthful:4")
    result = fuzz(target, families=["coalition"], deviators=2, budget=1, markets=400, rounds=1, eval_markets=4000,
                  samples=3000)
    assert result.ring is not None and result.best.deviation.family == "coalition"
    assert result.best.deviation.deviators == 2 and result.fresh.lo > 0
    assert result.as_dict()["coalition"]["agent"].startswith("ring_table(")
    with pytest.raises(ConfigError, match=r"coalition: a coalition family needs --deviators >= 2"):
        fuzz(target, families=["coalition"], deviators=1, budget=1, markets=50, rounds=1, samples=200)
    many = fuzz(target, families=["coalition", "best_response"], deviators=2, budget=1, markets=50, rounds=1,
                eval_markets=50, samples=200)
    assert "coalition family" in many.skipped["best_response"]


def test_a_found_ring_is_stored_as_a_replayable_failure_report(tmp_path):
    """Found strategies carry text parameters (role tables); the failure report keeps them and its
    agent spec replays the ring."""
    from mecharena.fuzz.cell import fuzz_cell
    from mecharena.fuzz.library import Library

    result, data = fuzz_cell("second_price", {}, "truthful:4", {}, {}, "uniform", 0, library=tmp_path,
                             families=["coalition"], deviators=2, budget=1, markets=200, rounds=1,
                             eval_markets=4000, samples=3000)
    assert data["exploit"] and data["report"] is not None
    (stored,) = Library(tmp_path).list()
    assert stored.strategy.params["tables"] == dict(result.best.deviation.params)["tables"]
    assert stored.strategy.agent == result.best.deviation.agent_spec
    assert Library(tmp_path).replay(stored.id)["ok"]
