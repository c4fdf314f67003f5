import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Draws, MarketContext
from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.sim import make_episode, play

BUDGET = agents.REGISTRY.get("budget")


def records(mechanism, config, spec, rounds, markets=1_000, seed=11):
    episode = make_episode(mechanisms.get(mechanism), config, agents.population(spec), markets=markets, seed=seed)
    return list(play(episode, rounds))


def context(name, config, n):
    mech = mechanisms.get(name)
    cfg = mech.config(config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, ValueDistribution())


@pytest.mark.parametrize(("mechanism", "config"), [
    ("second_price", {}), ("second_price", {"entry_fee": 0.05, "reserve_price": 0.2}), ("first_price", {"entry_fee": 0.02}),
    ("uniform_price", {"units": 2}), ("vcg", {"units": 2}), ("pay_as_bid", {"units": 2}), ("posted_price", {"price": 0.3}),
])
def test_total_payments_never_exceed_the_budget_and_the_budget_runs_out(mechanism, config):
    recs = records(mechanism, config, "budget(budget=1.5,factor=3):2,truthful:2", rounds=25)
    paid = np.cumsum([r.outcome.payments[:, :2] - r.outcome.receipts[:, :2] for r in recs], axis=0)
    assert paid.max() <= 1.5 + 1e-12
    exhausted = paid[-2] >= 1.5 - 1e-12
    assert exhausted.any()
    np.testing.assert_array_equal(recs[-1].bids[:, :2][exhausted], 0.0)  # stops bidding once spent


def test_overbidding_in_second_price_wins_more_without_paying_above_the_budget():
    """Against one truthful rival, bidding min(cap, 2 v) wins whenever the rival's value is below 2 v;
    the price is the rival's bid, so it pays above its value only when v < rival < 2 v."""
    exploit = records("second_price", {}, "budget(budget=4,factor=2):1,truthful:1", rounds=10)
    honest = records("second_price", {}, "truthful:2", rounds=10)
    wins = np.array([r.outcome.allocation[:, 0] for r in exploit])
    truthful_wins = np.array([r.outcome.allocation[:, 0] for r in honest])
    assert wins.mean() > truthful_wins.mean() + 0.1
    paid = sum(r.outcome.payments[:, 0] for r in exploit)
    assert paid.max() <= 4 + 1e-12
    first = exploit[0]
    np.testing.assert_allclose(first.bids[:, 0], np.minimum(4, 2 * first.values[:, 0]))


def test_every_parameter_changes_the_bids():
    v = np.array([[0.3, 0.6]])
    ctx = context("second_price", {}, 3)
    state = BUDGET.init(ctx, BUDGET.params_model(), 2, Draws(0, ("init", 0), 0, 1))

    def bid(**fields):
        return BUDGET.act(ctx, BUDGET.params_model.build(**fields), state, v, None)

    np.testing.assert_allclose(bid(factor=1.0), v)
    np.testing.assert_allclose(bid(factor=3.0), [[0.9, 1.0]])  # 1.8 cut to the budget of 1
    np.testing.assert_allclose(bid(factor=3.0, budget=0.5), [[0.5, 0.5]])


def test_pay_your_bid_rules_get_the_equilibrium_shade_cut_to_the_budget():
    v = np.array([[0.3, 0.9]])
    public = context("first_price", {"reserve_price": 0.5}, 3)
    secret = context("first_price", {"reserve_price": 0.5, "reserve_visibility": "secret"}, 3)
    params = BUDGET.params_model.build(budget=0.5, factor=4)
    np.testing.assert_allclose(BUDGET.act(secret, params, None, v, None),
                               np.minimum(0.5, shaded_bids(ValueDistribution(), v, 3, 1, 0.0)))
    np.testing.assert_allclose(BUDGET.act(public, params, None, v, None),
                               np.minimum(0.5, shaded_bids(ValueDistribution(), v, 3, 1, 0.5)))
    assert not np.array_equal(BUDGET.act(public, params, None, v, None), BUDGET.act(secret, params, None, v, None))


def test_budget_refuses_what_it_cannot_bound():
    with pytest.raises(ConfigError, match=r"^budget bids in one-sided auctions; it supports second_price, "
                                          r"uniform_price, vcg, posted_price, first_price, pay_as_bid, got mcafee$"):
        BUDGET.act(context("mcafee", {}, 2), BUDGET.params_model(), None, np.ones((1, 2)), None)
    with pytest.raises(ConfigError, match=r"^budget needs unit demand \(demand=1\) in vcg, got demand=2$"):
        BUDGET.act(context("vcg", {"demand": 2}, 2), BUDGET.params_model(), None, np.ones((1, 2, 2)), None)
    with pytest.raises(ConfigError, match=r"^budget needs pricing='highest_losing' in uniform_price"):
        BUDGET.act(context("uniform_price", {"pricing": "lowest_winning"}, 2), BUDGET.params_model(), None,
                   np.ones((1, 2)), None)
    with pytest.raises(ConfigError, match=r"^budget: factor must be a finite float in \[1, 10\], got 0.5$"):
        agents.population("budget(factor=0.5):1")
