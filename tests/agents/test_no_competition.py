"""Equilibrium bidders with fewer rivals than units: nobody competes, so each bids the reserve and wins.

With n - 1 < k the CDF G of the k-th highest rival value is identically 1 and
b(v) = E[max(Y, r) | Y < v] = r (Krishna, *Auction Theory*, 2nd ed., prop. 2.2 and ch. 13):
the price is the reserve. The kernels take part only bids > 0 and >= r, so at r = 0 the bid is
the smallest positive one, and a value at or above r never bids below r.
"""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.designer import core
from mecharena.mechanisms.base import SMALLEST_BID
from mecharena.metrics.summary import summarize
from mecharena.sim import make_episode, play
from mecharena.sim.simulate import simulate


def run(mechanism, config, population, markets=400, rounds=2):
    return simulate(mechanisms.get(mechanism), config, agents.population(population), markets=markets,
                    rounds=rounds, seed=3)


def records(mechanism, config, population, markets=400):
    ep = make_episode(mechanisms.get(mechanism), config, agents.population(population), markets=markets, seed=3)
    return list(play(ep, 1))[0]


@pytest.mark.parametrize(("mechanism", "config", "population"), [
    ("first_price", {}, "bne:1"),
    ("pay_as_bid", {"units": 3}, "bne:3"),
    ("pay_as_bid", {"units": 3}, "bne:2"),
    ("first_price", {}, "crra:1"),
    ("pay_as_bid", {"units": 2}, "crra(rho=0.7):2"),
    ("first_price", {}, "cartel(threshold=1000):3"),  # the ring is everyone: its designated bidder has no rival
    ("first_price", {}, "dropout:1"),
])
def test_a_bidder_without_rivals_enters_and_wins(mechanism, config, population):
    trace = run(mechanism, config, population)
    assert (trace.revenue > 0).all()  # every market sells (at the smallest bid that enters)
    assert (trace.welfare > 0).all()
    if not population.startswith("cartel"):  # the ring's turn-taker need not hold the highest value
        np.testing.assert_allclose(summarize(trace)["efficiency"]["mean"], 1.0)


def test_bne_alone_with_a_reserve_bids_exactly_the_reserve_and_buys_when_its_value_reaches_it():
    r = 0.2
    record = records("first_price", {"reserve_price": r}, "bne:1", markets=2000)
    v, b = record.values[:, 0], record.bids[:, 0]
    above = v >= r
    assert above.any() and (~above).any()
    assert (b[above] == r).all()  # not 0.19999999999999996
    assert (record.outcome.allocation[above, 0] == 1).all()
    np.testing.assert_array_equal(record.outcome.payments[above, 0], r)
    assert (record.outcome.allocation[~above, 0] == 0).all()


@pytest.mark.parametrize(("n", "k", "r", "power"), [(1, 1, 0.2, 1.0), (3, 3, 0.35, 1.0), (4, 1, 0.2, 1.0),
                                                    (3, 2, 0.3, 2.0), (10, 3, 0.45, 1.0)])
def test_equilibrium_bids_at_or_above_the_reserve_are_never_below_it(n, k, r, power):
    v = np.concatenate([np.linspace(0, 1, 4097), r + np.arange(50) * 1e-17])
    b = shaded_bids(ValueDistribution(), v, n, k, r, power)
    assert (b[v >= r] >= r).all()
    np.testing.assert_array_equal(b[v < r], v[v < r])
    if n - 1 < k:
        assert (b[v >= r] == r).all()


def test_at_zero_reserve_the_lone_bid_is_the_smallest_that_enters():
    b = shaded_bids(ValueDistribution(), np.array([0.0, 0.3, 1.0]), 2, 3, 0.0)
    np.testing.assert_array_equal(b, SMALLEST_BID)


@pytest.mark.parametrize("rule", ["first_price", "pay_as_bid"])
@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 3), (3, 3), (1, 2)])
def test_the_referees_shaders_follow_the_same_rule_without_competition(rule, n, k):
    """The referee's adaptive bidders move toward the arena's bid: with no rival for a unit they
    bid the lowest bid that enters (0 / value at reserve 0) and still win every unit."""
    ratios = core.bne_ratios()
    code = core.RULES.index(rule)
    units = 1 if rule == "first_price" else k
    if n - 1 >= units:
        pytest.skip("competition")
    assert core._target(code, n, k, 0.0, ratios) == 0.0
    assert core._shape(code, n, k, 0.5, ratios) == 1.0
    bids = np.full(n, SMALLEST_BID)
    won, price = core.clear_market(rule, 0.0, bids, k)
    assert won.all() and (price == SMALLEST_BID).all()
