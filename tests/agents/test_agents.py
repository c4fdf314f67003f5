import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import MarketContext
from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution, parse_distribution
from mecharena.core.errors import ConfigError, UnknownIdError


def first_price_bne(v, n, r):
    """Riley and Samuelson (1981); Krishna, *Auction Theory*, 2nd ed., eq. 2.5 with reserve."""
    return np.where(v >= r, v - (v**n - r**n) / (n * v ** (n - 1)), v)


@pytest.mark.parametrize(("n", "r"), [(2, 0.0), (3, 0.25), (5, 0.5), (10, 0.0), (10, 0.3)])
def test_first_price_bne_matches_the_closed_form(n, r):
    v = np.linspace(0.001, 1, 2001)
    got = shaded_bids(ValueDistribution(), v, n, 1, r)
    np.testing.assert_allclose(got, first_price_bne(v, n, r), atol=1e-6)


@pytest.mark.parametrize(("n", "k"), [(3, 2), (6, 3), (8, 1)])
def test_pay_as_bid_bne_is_the_conditional_mean_of_the_kth_rival(n, k):
    """b(v) = E[Y_k | Y_k < v], Y_k the k-th highest of n-1 U[0,1] rivals (Krishna, ch. 13):
    compared with a direct Monte Carlo estimate of the conditional mean."""
    rng = np.random.default_rng(0)
    rivals = -np.sort(-rng.random((400_000, n - 1)), axis=1)
    y = rivals[:, k - 1] if k <= n - 1 else np.zeros(len(rivals))
    for v in (0.3, 0.6, 0.9):
        below = y[y < v]
        se = below.std() / np.sqrt(below.size)
        assert abs(shaded_bids(ValueDistribution(), np.array(v), n, k, 0.0) - below.mean()) < 4 * se + 1e-9


def test_bne_with_other_distributions_shades_below_value_and_increases():
    for dist in (ValueDistribution(kind="power", shape=3.0), ValueDistribution(kind="exponential", shape=2.0, high=2.0)):
        v = np.linspace(dist.low + 1e-3, dist.high, 500)
        b = shaded_bids(dist, v, 4, 1, 0.0)
        assert (b <= v + 1e-12).all() and (np.diff(b) > 0).all()


def test_power_distribution_first_price_bne_closed_form():
    """F(v) = v^a: b(v) = v - integral_0^v F^(n-1) / F(v)^(n-1) = v (a(n-1)) / (a(n-1) + 1)."""
    a, n = 2.0, 4
    v = np.linspace(0.01, 1, 200)
    got = shaded_bids(ValueDistribution(kind="power", shape=a), v, n, 1, 0.0)
    np.testing.assert_allclose(got, v * a * (n - 1) / (a * (n - 1) + 1), atol=1e-7)


def context(name, config, n):
    mech = mechanisms.get(name)
    cfg = mech.config(config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, ValueDistribution())


def act(name, ctx, values):
    agent = agents.REGISTRY.get(name)
    return agent.act(ctx, agent.params_model(), None, values, None)


def test_secret_reserve_is_planned_as_zero_and_public_reserve_shapes_bids():
    v = np.array([[0.6, 0.8]])
    public = act("bne", context("first_price", {"reserve_price": 0.5}, 2), v)
    secret = act("bne", context("first_price", {"reserve_price": 0.5, "reserve_visibility": "secret"}, 2), v)
    np.testing.assert_allclose(secret, v / 2)
    np.testing.assert_allclose(public, first_price_bne(v, 2, 0.5))


def test_bne_refuses_what_neither_a_closed_form_nor_the_solver_can_play():
    """Two-sided markets have no closed form and the symmetric solver covers one-sided ones only."""
    with pytest.raises(ConfigError, match=r"^bne has no closed form for k_double .*solver cannot play it: .*one-sided"):
        act("bne", context("k_double", {"buyers": 1}, 2), np.ones((1, 2)))


def test_distributions_invert_their_cdf():
    u = np.linspace(0, 1, 101)
    for dist in (ValueDistribution(), ValueDistribution(kind="power", shape=0.5, low=1, high=3),
                 ValueDistribution(kind="exponential", shape=4.0)):
        np.testing.assert_allclose(dist.cdf(dist.ppf(u)), u, atol=1e-12)


def test_distribution_and_population_specs():
    assert parse_distribution("power:shape=2,high=2") == ValueDistribution(kind="power", shape=2, high=2)
    kinds = "'uniform', 'power', 'exponential', 'empirical'"
    with pytest.raises(ConfigError, match=rf"^kind must be one of {kinds}, got 'normal'$"):
        parse_distribution("normal")
    with pytest.raises(ConfigError, match=r"high must be > low \(2\.0\), got 1\.0"):
        parse_distribution("uniform:low=2,high=1")
    with pytest.raises(ConfigError, match=r"must look like name=value, got 'shape'"):
        parse_distribution("power:shape")
    pop = agents.population("bne:3, truthful:2")
    assert pop.size == 5 and pop.spec == "bne:3,truthful:2"
    with pytest.raises(ConfigError, match=r"^population must look like TYPE\[\(name=value,\.\.\.\)\]:COUNT\[,\.\.\.\], got 'bne' in 'bne'$"):
        agents.population("bne")
    with pytest.raises(ConfigError, match=r"^population count for 'bne' must be in \[1, 10000\], got 0$"):
        agents.population("bne:0")
    with pytest.raises(UnknownIdError, match=r"unknown agent 'truthfull'; did you mean 'truthful'"):
        agents.population("truthfull:3")


def test_mixed_population_fills_seats_in_order():
    from mecharena.sim import make_episode, play

    episode = make_episode(mechanisms.get("first_price"), {}, agents.population("truthful:1,bne:3"), markets=50, seed=0)
    record = next(play(episode, 1))
    np.testing.assert_array_equal(record.bids[:, 0], record.values[:, 0])
    np.testing.assert_allclose(record.bids[:, 1:], first_price_bne(record.values[:, 1:], 4, 0.0))


def test_dirichlet_mixtures_draw_a_composition_per_seed():
    spec = "dirichlet(n=10,alpha=0.5):truthful,bne,dropout(outside=0.1),cartel"
    drawn = {agents.population(spec, seed).spec for seed in range(8)}
    assert len(drawn) > 3
    assert all(agents.population(spec, s).size == 10 for s in range(8))
    assert agents.population(spec, 3).spec == agents.population(spec, 3).spec
    with pytest.raises(ConfigError, match=r"needs a seed to draw its shares"):
        agents.population(spec)
    with pytest.raises(ConfigError, match=r"^n must be a finite int in \[1, 10000\], got 0$"):
        agents.population("dirichlet(n=0):truthful", 1)
    with pytest.raises(UnknownIdError, match=r"unknown agent 'robot'"):
        agents.population("dirichlet(n=3):truthful,robot", 1)
