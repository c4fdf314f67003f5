"""Interdependent (common) values: value_i = (1 - c) s_i + c mean_j s_j of i.i.d. signals.

Closed forms (Milgrom and Weber 1982, *Econometrica* 50: 1089-1122; Krishna, *Auction Theory*, 2nd ed.,
ch. 6), uniform signals on [0, 1], n bidders, no reserve: with w(y) = v(y, y) = k y,
k = (1 - c) + c (n + 2) / (2 n), the symmetric equilibrium bids k x in second price and
k (n - 1) / n x in first price; both raise k (n - 1) / (n + 1) (revenue equivalence holds: the signals
are independent). Bidders who bid their signals in second price pay the second-highest signal for
the mean signal: with c = 1 their surplus is 1/2 - (n - 1) / (n + 1) per market, negative from n = 4
on (the winner's curse).
"""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.agents.bne import common_value_bids
from mecharena.agents.equilibrium import solve
from mecharena.agents.values import ValueDistribution, parse_distribution
from mecharena.core.errors import ConfigError
from mecharena.fuzz.discover import best_response
from mecharena.fuzz.score import Scorer
from mecharena.metrics.harness import Cell
from mecharena.metrics.run import simulate_summary


def k_factor(c: float, n: int) -> float:
    return (1 - c) + c * (n + 2) / (2 * n)


def within(metric: dict, exact: float) -> bool:
    lo, hi = metric["ci95"]
    return lo <= exact <= hi


@pytest.mark.parametrize("mechanism, c, n", [("second_price", 1.0, 4), ("first_price", 1.0, 4),
                                             ("second_price", 0.5, 3), ("first_price", 0.5, 3)])
def test_equilibrium_revenue_matches_theory(mechanism, c, n):
    summary = simulate_summary(mechanism, {}, f"bne:{n}", 40_000, 1, 0, values=f"uniform:common={c}")
    assert within(summary["metrics"]["revenue"], k_factor(c, n) * (n - 1) / (n + 1)), summary["metrics"]["revenue"]
    assert summary["metrics"]["bidder_surplus"]["ci95"][0] > 0  # equilibrium bidders avoid the curse


def test_bidding_the_signal_suffers_the_winners_curse():
    summary = simulate_summary("second_price", {}, "truthful:4", 40_000, 1, 0, values="uniform:common=1")
    assert within(summary["metrics"]["bidder_surplus"], 0.5 - 3 / 5), summary["metrics"]["bidder_surplus"]
    private = simulate_summary("second_price", {}, "truthful:4", 40_000, 1, 0)
    assert private["metrics"]["bidder_surplus"]["ci95"][0] > 0.1  # the same bids with private values gain


def test_closed_form_on_a_non_uniform_prior():
    """F(s) = s^2: E[s | s < y] = 2y/3, so w(y) = k y with k = (1 - c) + c (2 + 2 (n - 2) / 3) / n, and
    the first-price bid is k x 2(n - 1) / (2(n - 1) + 1) (G = F^(n-1) = x^(2(n-1)))."""
    c, n = 0.6, 5
    dist = ValueDistribution(kind="power", shape=2.0, common=c)
    k = (1 - c) + c * (2 + 2 * (n - 2) / 3) / n
    x = np.linspace(0.05, 1.0, 50)
    np.testing.assert_allclose(common_value_bids(dist, x, n, first_price=False), k * x, atol=1e-6)
    np.testing.assert_allclose(common_value_bids(dist, x, n, first_price=True), k * x * 8 / 9, atol=1e-6)


@pytest.mark.parametrize("mechanism", ["second_price", "first_price"])
def test_the_engine_recovers_the_equilibrium_and_exploits_naive_bidders(mechanism):
    """Against bne:4 the type-wise best response is the closed-form bid (the engine folds the value that
    others' signals add into its utility; reasoning with private values it would bid 0.75x -> x in
    second price), and a fresh evaluation finds no gain; against signal bidders it shades and gains."""
    n, k = 4, k_factor(1.0, 4)
    slope = k if mechanism == "second_price" else k * (n - 1) / n
    target = Cell(mechanism=mechanism, population=f"bne:{n}", rounds=1, values="uniform:common=1")
    found = best_response(target, seed=0, samples=20_000)
    r = found.response
    interior = (r.values > 0.15) & (r.values < 0.9)  # where the utility curve is not flat
    assert np.abs(r.best - slope * r.values)[interior].max() < 0.035
    assert Scorer(target).score(found.deviation, seed=1, markets=40_000, rounds=1).hi < 1e-3
    naive = Cell(mechanism=mechanism, population=f"truthful:{n}", rounds=1, values="uniform:common=1")
    found = best_response(naive, seed=0, samples=20_000)
    assert Scorer(naive).score(found.deviation, seed=1, markets=40_000, rounds=1).lo > 0.02


def test_what_has_no_closed_form_is_refused_with_one_line():
    with pytest.raises(ConfigError, match=r"common must be a finite float in \[0, 1\], got .2."):
        parse_distribution("uniform:common=2")
    cases = [("mcafee", {}, "truthful:4", "common values \\(common=1.0\\) need one-sided unit demand: one signal per "
              "buyer; mcafee is configured two-sided"),
             ("uniform_price", {"demand": 2}, "truthful:4", "uniform_price is configured for demand 2"),
             ("vcg", {}, "bne:4", "bne has no closed form for vcg with common values \\(common=1.0\\); closed forms "
              "cover first and second price"),
             ("first_price", {"reserve_price": 0.2}, "bne:4", "with common values \\(common=1.0\\) and a reserve"),
             ("first_price", {}, "crra(rho=0.5):4", "crra has no closed form with common values")]
    for mechanism, config, population, message in cases:
        with pytest.raises(ConfigError, match=message):
            simulate_summary(mechanism, config, population, 10, 1, 0, values="uniform:common=1")
    with pytest.raises(ConfigError, match="the equilibrium solver plays private values"):
        solve(mechanisms.get("second_price"), {}, 3, ValueDistribution(common=0.5))
