"""The discovery engine's searched action beyond one bid: bid vectors (multi-unit demand), seller
seats in two-sided markets, and false-name identities."""

import sys
from pathlib import Path

import numpy as np
import pytest

from mecharena import plugins
from mecharena.agents.respond import TableParams, parse_table, table_bids, table_points
from mecharena.core.errors import ConfigError
from mecharena.fuzz.discover import best_response
from mecharena.fuzz.score import Scorer
from mecharena.metrics.harness import Cell

CASEBOOK = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "planted"


def demand_reduction_theory(grid: int = 400) -> tuple[np.ndarray, np.ndarray, float]:
    """Best second-unit bids and gains of a two-unit bidder against one truthful two-unit rival, by
    numerical integration (numpy only, midpoint rule).

    Uniform price, 2 units, (k+1)-th price (the third-highest of the four marginal bids). The rival's
    marginal values (w1 >= w2) are the order statistics of two U[0, 1] draws (density 2). Bidding
    (b1, b2): it wins both units when b2 > w1, paying 2 w1; one unit when b1 > w2 and b2 < w1,
    paying max(b2, w2). With b1 = v1, d U / d b2 = 2 b2 (v2 - 1) < 0: full demand reduction
    (b2 = 0; Ausubel and Cramton 2002, "Demand reduction and inefficiency in multi-unit auctions";
    Krishna, *Auction Theory*, 2nd ed., ch. 13), worth v2^2 (1 - v2) over truthful bidding, and
    1/15 on average over the bidder's own order-statistic values.

    Returns:
        (best b2 for each v2 of a test grid, the gain there, the mean gain), all integrated here.
    """
    w = (np.arange(grid) + 0.5) / grid
    w1, w2 = np.meshgrid(w, w, indexing="ij")
    weight = np.where(w1 >= w2, 2.0, 0.0) / grid**2

    def utility(v1, v2, b1, b2):
        two = b2 > w1
        one = ~two & (b1 > w2)
        return float((weight * (two * (v1 + v2 - 2 * w1) + one * (v1 - np.maximum(b2, w2)))).sum())

    v2s, b2s = np.array([0.2, 0.5, 0.8]), np.linspace(0, 1, 101)
    best, gains = [], []
    for v2 in v2s:
        u = np.array([utility(0.9, v2, 0.9, b) for b in b2s if b <= v2 + 1e-12])
        best.append(b2s[np.argmax(u)])
        gains.append(u.max() - utility(0.9, v2, 0.9, v2))
    # mean gain over the bidder's values: v2 is the minimum of two uniforms (density 2 (1 - v2))
    mean = float(np.sum(2 * (1 - w) * w**2 * (1 - w)) / grid)
    return np.array(best), np.array(gains), mean


def test_the_demand_reduction_theory_is_the_closed_form():
    best, gains, mean = demand_reduction_theory()
    assert np.all(best == 0)
    assert gains == pytest.approx([v * v * (1 - v) for v in (0.2, 0.5, 0.8)], abs=3e-3)
    assert mean == pytest.approx(1 / 15, abs=1e-4)


@pytest.mark.slow
def test_demand_reduction_in_the_uniform_price_auction_is_found_and_matches_theory():
    """Two units, demand 2, one truthful rival: the table bids its first unit's value and 0 for the
    second (demand reduction), and its gain on a fresh seed matches the integrated 1/15."""
    _, _, theory = demand_reduction_theory()
    cell = Cell(mechanism="uniform_price", config={"units": 2, "demand": 2}, population="truthful:2", rounds=1)
    found = best_response(cell, seed=1, samples=6000)
    values, best = found.response.values, found.response.best
    assert values.shape[1] == best.shape[1] == 2
    interior = (values[:, 1] >= 0.2) & (values[:, 1] <= 0.8)
    assert np.all(best[interior, 1] <= 0.05)  # second unit shaded to (about) 0
    assert np.all(np.abs(best[values[:, 0] <= 0.9, 0] - values[values[:, 0] <= 0.9, 0]) <= 0.05)
    assert "unit 2: bids 0" in found.description
    fresh = Scorer(cell).score(found.deviation, seed=99, markets=20_000, rounds=1)
    assert fresh.lo > 0
    assert fresh.lo - 0.002 <= theory <= fresh.hi + 0.002  # theory 1/15; table on an 11-point grid


def test_a_vector_table_round_trips_through_the_agent_spec():
    points = table_points(0.0, 1.0, 3, 2)  # (0,0), (.5,0), (.5,.5), (1,0), (1,.5), (1,1)
    assert points.tolist() == [[0, 0], [0.5, 0], [0.5, 0.5], [1, 0], [1, 0.5], [1, 1]]
    params = TableParams.build(bids="x/0.5;0/0.5;0.1/1;0/1;0.2/1;0.3", high=1.0)
    bids, enter = table_bids(params, np.array([[[0.95, 0.55], [0.1, 0.05]]]))
    assert bids.tolist() == [[[1.0, 0.2], [0.0, 0.0]]] and enter.tolist() == [[True, False]]
    with pytest.raises(ConfigError, match="bids entry 1 must be non-increasing"):
        parse_table("0;0/0.1;0.5/x")
    with pytest.raises(ConfigError, match="bids of 2 units must hold one entry per non-increasing point"):
        parse_table("0;0/0.1;0/0.2;0/0.3;0")


def test_a_demand_the_search_cannot_play_is_one_clear_error():
    cell = Cell(mechanism="uniform_price", config={"units": 8, "demand": 8}, population="truthful:3", rounds=1)
    with pytest.raises(ConfigError, match=r"^demand must be <= 4 for the best-response search .* got 8$"):
        best_response(cell, seed=0, samples=2)
    big = Cell(mechanism="uniform_price", config={"units": 2, "demand": 2}, population="truthful:3", rounds=1)
    with pytest.raises(ConfigError, match=r"^grid must give a table of at most 1025 entries"):
        best_response(big, seed=0, samples=2, grid=200)


def test_a_seller_role_needs_a_two_sided_market():
    cell = Cell(mechanism="second_price", population="truthful:3", rounds=1)
    with pytest.raises(ConfigError, match="^role must name a side with an agent: second_price has no seller"):
        best_response(cell, seed=0, samples=2, role="seller")
    with pytest.raises(ConfigError, match="^role must be one of first, buyer, seller, got 'maker'"):
        best_response(cell, seed=0, samples=2, role="maker")


@pytest.mark.slow
@pytest.mark.parametrize("role", ["buyer", "seller"])
def test_mcafee_is_truthful_for_buyers_and_sellers(role):
    """McAfee's trade reduction is dominant-strategy truthful on both sides (McAfee 1992, JET 56)."""
    cell = Cell(mechanism="mcafee", config={"buyers": 3}, population="truthful:6", rounds=1)
    found = best_response(cell, seed=1, samples=2000, role=role)
    assert found.deviation.after == (3 if role == "seller" else 0)
    fresh = Scorer(cell).score(found.deviation, seed=99, markets=10_000, rounds=1)
    assert fresh.hi <= 1e-3


@pytest.mark.slow
def test_k_double_buyers_shade_and_sellers_overstate():
    """The k-double auction with k = 1/2 is not truthful: a buyer shades its bid and a seller
    overstates its ask (Chatterjee and Samuelson 1983; Rustichini, Satterthwaite and Williams 1994)."""
    cell = Cell(mechanism="k_double", config={"buyers": 3, "k": 0.5}, population="truthful:6", rounds=1)
    for role, sign in (("buyer", -1), ("seller", 1)):
        found = best_response(cell, seed=1, samples=2000, role=role)
        values, best = found.response.values, found.response.best
        middle = (values >= 0.3) & (values <= 0.7)
        assert np.all(sign * (best[middle] - values[middle]) > 0.02), role
        fresh = Scorer(cell).score(found.deviation, seed=99, markets=10_000, rounds=1)
        assert fresh.lo > 0, role


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_registries")
def test_identity_rebate_is_exploited_with_false_names():
    """The planted per-identity rebate: the search over m = 1..6 identities, the own bid and the false
    names' bid reaches >= 90% of the exact exploitability (``true_exploitability(4)``) on a fresh seed."""
    plugin = plugins.load(str(CASEBOOK / "identity_rebate.py"), check=False)
    module = sys.modules[plugin.module]
    cell = Cell(mechanism="identity_rebate", population="truthful:4", rounds=1)
    found = best_response(cell, seed=1, samples=2000, identities=6)
    assert dict(found.deviation.params)["identities"] == 6
    fresh = Scorer(cell).score(found.deviation, seed=99, markets=20_000, rounds=1)
    assert fresh.mean >= 0.9 * module.true_exploitability(4)


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_registries")
def test_fuzz_searches_sellers_and_false_names_with_the_engine():
    """``fuzz``'s engine family scores a buyer's and a seller's response in two-sided markets, and
    searches false names where the mechanism merges identities."""
    from mecharena.fuzz.search import fuzz

    two = fuzz(Cell(mechanism="k_double", config={"buyers": 2, "k": 0.5}, population="truthful:4"),
               families=["best_response"], budget=1, markets=200, rounds=1, eval_markets=400, samples=1000)
    assert sorted(t.deviation.after for t in two.trials) == [0, 2]
    assert two.fresh.lo > 0
    plugin = plugins.load(str(CASEBOOK / "identity_rebate.py"), check=False)
    assert plugin.mechanisms
    one = fuzz(Cell(mechanism="identity_rebate", population="truthful:4"), families=["best_response"], budget=1,
               markets=400, rounds=1, eval_markets=2000, samples=1000)
    assert dict(one.best.deviation.params).get("identities", 1) >= 2
    assert one.exploitability["mean"] > 0.05
