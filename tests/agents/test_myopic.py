import itertools

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents._competitive import others_threshold
from mecharena.agents.base import MarketContext
from mecharena.agents.myopic import QUANTILES, best_grid_bid, quantile_cdf
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.sim import InformationPolicy, make_episode, play

MYOPIC = agents.REGISTRY.get("myopic")
SPEC = "myopic:2,truthful:1,bne:1"


def rounds(information, spec=SPEC, mechanism="first_price", config=None, count=2, markets=500):
    episode = make_episode(mechanisms.get(mechanism), config or {}, agents.population(spec), markets=markets, seed=3,
                           information=information)
    return list(play(episode, count))


def context(name, config, n):
    mech = mechanisms.get(name)
    cfg = mech.config(config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, ValueDistribution())


def beat(threshold, v, increment=0.01, reserve=0.0):
    h = np.maximum(threshold, reserve)
    return np.where(h < v, np.minimum(v, np.maximum(threshold + increment, reserve)), v)


def test_revealed_bids_it_bids_just_above_the_highest_other_bid():
    first, second = rounds(InformationPolicy(competing_bids=True))
    bids = first.bids
    others = np.stack([np.delete(bids, i, axis=1).max(axis=1) for i in range(2)], axis=1)
    np.testing.assert_allclose(second.bids[:, :2], beat(others, second.values[:, :2]))


def test_revealed_price_only_it_bids_just_above_the_last_price():
    first, second = rounds(InformationPolicy(clearing_price=True))
    price = first.observation.price[:, None]
    np.testing.assert_allclose(second.bids[:, :2], beat(price, second.values[:, :2]))


def test_revealed_quantiles_only_it_maximises_against_the_quantile_cdf():
    first, second = rounds(InformationPolicy(clearing_price=False, bid_distribution=True))
    q = np.repeat(first.observation.bid_quantiles[:, None, :], 2, axis=1)
    v = second.values[:, :2]
    expected = best_grid_bid(q, v, 3, 1, 0.0)
    np.testing.assert_allclose(second.bids[:, :2], expected)
    # the grid bid is the best of the grid against F(b)^(n-1)
    grid = v[..., None] * np.arange(1, 65) / 64
    gains = (v[..., None] - grid) * quantile_cdf(q[:, :, None, :], grid) ** 3
    np.testing.assert_allclose((v - expected) * quantile_cdf(q, expected) ** 3, gains.max(axis=2), atol=1e-12)


def test_nothing_revealed_it_shades_by_a_fixed_share():
    for record in rounds(InformationPolicy(clearing_price=False), count=3):
        np.testing.assert_allclose(record.bids[:, :2], 0.8 * record.values[:, :2])


def test_each_information_path_and_parameter_changes_the_bids():
    policies = [InformationPolicy(clearing_price=False), InformationPolicy(),
                InformationPolicy(clearing_price=False, bid_distribution=True), InformationPolicy(competing_bids=True),
                InformationPolicy(reserve=False)]
    config = {"reserve_price": 0.3}
    second = [rounds(p, config=config)[1].bids[:, :2] for p in policies]
    for a, b in itertools.combinations(range(len(second)), 2):
        assert not np.array_equal(second[a], second[b]), (policies[a], policies[b])
    base = rounds(InformationPolicy(competing_bids=True))[1].bids[:, :2]
    assert not np.array_equal(base, rounds(InformationPolicy(competing_bids=True), "myopic(increment=0.05):2,"
                                                                                   "truthful:1,bne:1")[1].bids[:, :2])
    quiet = InformationPolicy(clearing_price=False)
    assert not np.array_equal(rounds(quiet)[1].bids[:, :2], rounds(quiet, "myopic(shade=0.5):2,truthful:1,bne:1")[1].bids[:, :2])


def test_others_threshold_removes_its_own_bid():
    rng = np.random.default_rng(0)
    bids = np.round(rng.random((200, 5)), 1)  # ties included
    for k in (1, 2, 3, 5):
        got = others_threshold(bids, bids[:, :2], k)
        for i in range(2):
            rest = -np.sort(-np.delete(bids, i, axis=1), axis=1)
            want = rest[:, k - 1] if k <= 4 else np.zeros(200)
            np.testing.assert_array_equal(got[:, i], want)


def test_pay_as_bid_uses_the_kth_other_bid():
    first, second = rounds(InformationPolicy(competing_bids=True), "myopic:2,truthful:3", "pay_as_bid", {"units": 2})
    threshold = others_threshold(first.bids, first.bids[:, :2], 2)
    np.testing.assert_allclose(second.bids[:, :2], beat(threshold, second.values[:, :2]))


def test_quantile_cdf_passes_through_the_quantiles():
    q = np.array([[0.1, 0.2, 0.2, 0.5, 0.9]])
    np.testing.assert_allclose(quantile_cdf(q, np.array([0.1])), [0.0])
    np.testing.assert_allclose(quantile_cdf(q, np.array([0.5])), [0.75])
    np.testing.assert_allclose(quantile_cdf(q, np.array([0.35])), [0.625])
    np.testing.assert_allclose(quantile_cdf(q, np.array([0.2])), [0.5])  # a point mass jumps at once
    np.testing.assert_allclose(quantile_cdf(q, np.array([1.0])), [1.0])
    assert len(QUANTILES) == q.shape[1]


def test_truthful_where_dominant_and_refusals():
    v = np.array([[0.3, 0.8]])
    for name, config in (("second_price", {}), ("uniform_price", {"units": 2}), ("vcg", {})):
        np.testing.assert_array_equal(MYOPIC.act(context(name, config, 3), MYOPIC.params_model(), None, v, None), v)
    with pytest.raises(ConfigError, match=r"^myopic does not price an entry fee; set entry_fee=0 in first_price$"):
        MYOPIC.act(context("first_price", {"entry_fee": 0.1}, 2), MYOPIC.params_model(), None, v, None)
    with pytest.raises(ConfigError, match=r"^myopic for pay_as_bid needs unit demand \(demand=1\), got demand=2$"):
        MYOPIC.act(context("pay_as_bid", {"demand": 2}, 2), MYOPIC.params_model(), None, np.ones((1, 2, 2)), None)
    with pytest.raises(ConfigError, match=r"^myopic has no best response for k_double with this config"):
        MYOPIC.act(context("k_double", {}, 2), MYOPIC.params_model(), None, v, None)
    with pytest.raises(ConfigError, match=r"^myopic: shade must be a finite float in \[0, 1\], got -0.1$"):
        agents.population("myopic(shade=-0.1):1")
