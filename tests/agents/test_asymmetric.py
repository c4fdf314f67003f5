"""Asymmetric bidders: population groups that draw values from their own priors, in simulations, in
equilibrium play and in the discovery engine.

Reference case (Plum 1992; Krishna, *Auction Theory*, 2nd ed., sec. 4.3): first price, one strong
bidder with values U[0, 2] and one weak bidder with values U[0, 1]. With k = 1/1^2 - 1/2^2 the
equilibrium bids are (1 - sqrt(1 - k v^2)) / (k v) (weak) and (sqrt(1 + k v^2) - 1) / (k v)
(strong); revenue and efficiency below are integrated here from those closed forms.
"""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.fuzz.discover import best_response
from mecharena.fuzz.metagame import canonical
from mecharena.fuzz.score import Scorer, deviated_population
from mecharena.metrics.harness import Cell, evaluate
from mecharena.sim.loop import make_episode, play, round_values

STRONG_WEAK = "bne(values=uniform:high=2):1,bne:1"
K = 0.75


def weak_bid(v):
    return (1 - np.sqrt(1 - K * v**2)) / (K * v)


def strong_bid(v):
    return (np.sqrt(1 + K * v**2) - 1) / (K * v)


def plum_outcomes(grid: int = 4000) -> tuple[float, float]:
    """First-price revenue and efficiency of the closed-form equilibrium (midpoint rule over both values)."""
    weak, strong = (np.arange(grid) + 0.5) / grid, 2 * (np.arange(grid) + 0.5) / grid
    w, s = weak_bid(weak)[:, None], strong_bid(strong)[None, :]
    welfare = np.where(w > s, weak[:, None], strong[None, :]).mean()
    return float(np.maximum(w, s).mean()), float(welfare / np.maximum(weak[:, None], strong[None, :]).mean())


def episode(population: str, mechanism: str = "first_price", markets: int = 4000, **kw):
    return make_episode(mechanisms.get(mechanism), {}, agents.population(population), markets=markets, seed=3, **kw)


def test_a_group_prior_is_part_of_the_population_spec():
    population = agents.population("curve(scale=0.8,values=power:shape=2;high=2):2,truthful:1")
    assert population.groups[0].values == ValueDistribution(kind="power", shape=2.0, high=2.0)
    assert population.groups[1].values is None
    assert population.spec == "curve(scale=0.8,values=power:high=2.0;shape=2.0):2,truthful:1"
    assert agents.population(population.spec) == population  # the spec round-trips


@pytest.mark.parametrize(("values", "message"), [
    ("empirical:path=values.csv", "a group's values take uniform, power or exponential"),
    ("uniform:common=0.5", "common, persistent and empirical data are the market's"),
    ("normal", "got 'normal'"),
    ("power:shape=-1", "shape must be a finite float in \\(0, 1000\\], got '-1'"),
    ("uniform:high", "value distribution field must look like name=value, got 'high'"),
])
def test_a_bad_group_prior_gets_one_line_naming_it(values, message):
    with pytest.raises(ConfigError, match=f"^truthful: .*{message}"):
        agents.population(f"truthful(values={values}):2")


def test_each_group_draws_from_its_own_prior_on_common_random_numbers():
    """The same uniforms pass through each seat's own inverse CDF: a U[0, 2] seat's value is exactly
    twice its U[0, 1] value, and the other seats' values are unchanged."""
    mixed = round_values(episode("truthful(values=uniform:high=2):1,truthful(values=power:shape=2):1,truthful:2"), 0)
    plain = round_values(episode("truthful:4"), 0)
    assert np.array_equal(mixed[:, 0], 2 * plain[:, 0])
    assert np.array_equal(mixed[:, 1], np.sqrt(plain[:, 1]))  # F(v) = v^2: v = sqrt(u)
    assert np.array_equal(mixed[:, 2:], plain[:, 2:])


def test_agents_see_their_own_prior_and_every_seat_s():
    ep = episode("truthful(values=uniform:high=2):1,truthful:2")
    strong, weak = ValueDistribution(high=2.0), ValueDistribution()
    assert ep.context.priors == (strong, weak, weak)
    assert ep.context.acting(slice(0, 1)).values == strong and ep.context.acting(slice(1, 3)).values == weak
    same = episode("truthful(values=uniform:high=2):1,truthful(values=uniform:high=2):2")
    assert same.context.priors is None and same.context.values == strong  # one prior: a symmetric market


def test_the_market_keeps_persistence_and_the_common_share():
    ep = episode("truthful(values=uniform:high=2):1,truthful:2", values=ValueDistribution(persistent=True,
                                                                                          common=0.5))
    assert ep.context.priors[0] == ValueDistribution(high=2.0, persistent=True, common=0.5)
    assert np.array_equal(round_values(ep, 0), round_values(ep, 3))  # persistent: every round takes round 0's


def test_a_deviator_keeps_its_own_prior():
    spec = "truthful(values=uniform:high=2):2,bne:2"
    assert deviated_population(spec, 0, 2, "x(a=1)", after=1) == (
        "truthful(values=uniform:high=2.0):1,x(a=1,values=uniform:high=2.0):1,x(a=1):1,bne:1")
    assert deviated_population("truthful:2,bne:2", 0, 2, "x", after=1) == "truthful:1,x:2,bne:1"  # one block


def test_the_meta_game_refuses_a_strategy_with_its_own_prior():
    with pytest.raises(ConfigError, match="the meta-game is symmetric"):
        canonical("truthful(values=uniform:high=2)")


def test_the_best_response_spans_the_deviator_s_prior():
    """A U[0, 2] bidder against one truthful U[0, 1] bidder in first price: it wins with bid b <= 1
    with probability b, so it bids v / 2 and gains E[v^2 / 4] = 1/3 a round over truthful bidding."""
    cell = Cell(mechanism="first_price", population="truthful(values=uniform:high=2):1,truthful:1", rounds=1)
    found = best_response(cell, seed=1, samples=6000)
    values, bids = found.response.values, found.response.best
    assert values[0] == 0.0 and values[-1] == 2.0
    miss = np.abs(bids - values / 2)  # the utility (v - b) b is flat near its top: the sample moves it
    assert miss.mean() <= 0.02 and miss.max() <= 0.08
    deviated = deviated_population(cell.population, 0, 1, found.deviation.agent_spec)
    assert agents.population(deviated).groups[0].values == ValueDistribution(high=2.0)
    fresh = Scorer(cell).score(found.deviation, seed=99, markets=20_000, rounds=1)
    assert fresh.lo - 0.005 <= 1 / 3 <= fresh.hi + 0.005


@pytest.mark.slow
def test_bne_plays_the_asymmetric_equilibrium_in_a_simulation(tmp_path, monkeypatch):
    """The strong and weak bidders bid Plum's closed forms, within the solver's tolerance (0.015), and
    the simulated revenue and efficiency match those integrated from them; second price stays truthful
    (revenue E[min] = 5/12) and efficient, so first price raises more here (Maskin and Riley 2000)."""
    monkeypatch.setenv("MECHARENA_CACHE", str(tmp_path))
    ep = episode(STRONG_WEAK, markets=20_000)
    (record,) = play(ep, 1)
    strong, weak = record.values[:, 0], record.values[:, 1]
    assert np.abs(record.bids[:, 0] - strong_bid(strong)).max() <= 0.015
    assert np.abs(record.bids[:, 1] - weak_bid(weak)).max() <= 0.015
    revenue, efficiency = plum_outcomes()
    found = evaluate(Cell(mechanism="first_price", population=STRONG_WEAK, markets=20_000, rounds=1, seed=3))
    measured = found["metrics"]
    assert abs(measured["revenue"]["mean"] - revenue) <= 0.005  # 0.4590 integrated
    assert abs(measured["efficiency"]["mean"] - efficiency) <= 0.003  # 0.9811 integrated
    second = evaluate(Cell(mechanism="second_price", population=STRONG_WEAK, markets=20_000, rounds=1, seed=3))
    low, high = second["metrics"]["revenue"]["ci95"]
    assert low <= 5 / 12 <= high and second["metrics"]["efficiency"]["mean"] == 1.0
    assert measured["revenue"]["mean"] > high
