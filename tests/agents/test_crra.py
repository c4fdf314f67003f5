import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import MarketContext
from mecharena.agents.crra import crra_bids
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError

CRRA = agents.REGISTRY.get("crra")
BNE = agents.REGISTRY.get("bne")


def context(name, config, n, values=None):
    mech = mechanisms.get(name)
    cfg = mech.config(config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, values or ValueDistribution())


def bids(ctx, values, rho):
    return CRRA.act(ctx, CRRA.params_model.build(rho=rho), None, values, None)


@pytest.mark.parametrize(("n", "rho"), [(2, 0.5), (3, 0.2), (5, 0.9), (10, 0.5), (3, -1.0), (5, -3.5)])
def test_uniform_first_price_bid_is_the_cox_smith_walker_closed_form(n, rho):
    """CRRA u(x) = x^(1-rho): b(v) = (n-1) v / (n-1 + (1-rho)) (Cox, Smith and Walker 1988, J. Risk and
    Uncertainty 1: 61-99; Krishna, Auction Theory, 2nd ed., section 4.1)."""
    v = np.linspace(0, 1, 501)[None, :].repeat(2, 0)
    got = bids(context("first_price", {}, n), v, rho)
    np.testing.assert_allclose(got, (n - 1) * v / (n - rho), atol=1e-9)


@pytest.mark.parametrize(("name", "config", "n"), [("first_price", {}, 4), ("first_price", {"reserve_price": 0.3}, 3),
                                                   ("pay_as_bid", {"units": 2}, 5)])
def test_risk_neutral_is_the_bne_and_risk_aversion_bids_higher(name, config, n):
    ctx = context(name, config, n)
    v = np.linspace(0.0, 1.0, 201)[None, :]
    neutral = bids(ctx, v, 0.0)
    np.testing.assert_allclose(neutral, BNE.act(ctx, BNE.params_model(), None, v, None), atol=1e-12)
    above = v > max(ctx.visible_reserve, 0.0) + 1e-9
    previous = neutral
    for rho in (0.2, 0.5, 0.8):
        higher = bids(ctx, v, rho)
        assert (higher[above] > previous[above]).all() and (higher <= v + 1e-12).all()
        previous = higher
    previous = neutral
    for rho in (-0.5, -2.0):  # risk-seeking: lower bids, a larger surplus at a lower chance of winning
        lower = bids(ctx, v, rho)
        assert (lower[above] < previous[above]).all() and (lower >= 0).all()
        previous = lower


@pytest.mark.parametrize(("n", "rho", "reserve", "dist"), [
    (3, 0.5, 0.0, ValueDistribution()),
    (4, 0.3, 0.25, ValueDistribution()),
    (3, 0.6, 0.0, ValueDistribution(kind="power", shape=2.0)),
    (3, -1.5, 0.0, ValueDistribution()),
    (4, -0.7, 0.2, ValueDistribution(kind="power", shape=2.0)),
])
def test_equilibrium_bid_is_a_numerical_best_response(n, rho, reserve, dist):
    """Against n-1 rivals who use the agent's own bid function, each value's bid maximises expected CRRA
    utility E[(v - b)^(1-rho) 1{b wins}], by a grid search over b with the rivals' highest bid simulated."""
    ctx = context("first_price", {"reserve_price": reserve}, n, dist)
    rng = np.random.default_rng(0)
    rival_values = dist.ppf(rng.random((200_000, n - 1)))
    top = np.sort(bids(ctx, rival_values, rho).max(axis=1))
    grid = np.linspace(reserve, 1.0, 2001)
    win = np.searchsorted(top, grid, side="left") / top.size
    for v in (0.4, 0.7, 0.95):
        utility = np.maximum(v - grid, 0.0) ** (1 - rho) * win
        best = grid[utility.argmax()]
        ours = float(bids(ctx, np.array([[v]]), rho)[0, 0])
        assert abs(best - ours) < 0.01, (v, best, ours)
        # the equilibrium bid is (within sampling noise) as good as the best grid bid
        ours_utility = (v - ours) ** (1 - rho) * np.searchsorted(top, ours) / top.size
        assert ours_utility >= utility.max() * 0.995


def test_the_announced_reserve_changes_the_bid_and_dominant_strategy_mechanisms_get_the_truth():
    v = np.array([[0.5, 0.9]])
    public = bids(context("first_price", {"reserve_price": 0.4}, 3), v, 0.5)
    secret = bids(context("first_price", {"reserve_price": 0.4, "reserve_visibility": "secret"}, 3), v, 0.5)
    np.testing.assert_allclose(secret, 2 * v / 2.5)
    assert (public > secret).all()
    for name, config in (("second_price", {"reserve_price": 0.2}), ("vcg", {"units": 2}), ("posted_price", {})):
        np.testing.assert_array_equal(bids(context(name, config, 3), v, 0.7), v)


def test_crra_refuses_what_it_cannot_solve():
    with pytest.raises(ConfigError, match=r"^crra has no equilibrium bid for k_double with this config"):
        bids(context("k_double", {"buyers": 1}, 2), np.ones((1, 2)), 0.5)
    with pytest.raises(ConfigError, match=r"^crra has no closed form with entry_fee > 0"):
        bids(context("first_price", {"entry_fee": 0.1}, 2), np.ones((1, 2)), 0.5)
    with pytest.raises(ConfigError, match=r"^crra for pay_as_bid needs unit demand"):
        bids(context("pay_as_bid", {"demand": 2}, 2), np.ones((1, 2, 2)), 0.5)
    with pytest.raises(ConfigError, match=r"^crra: rho must be a finite float in \[-4, 1\), got 1$"):
        agents.population("crra(rho=1):2")


def test_bids_are_computed_by_the_closed_form_helper():
    v = np.array([0.2, 0.8])
    np.testing.assert_allclose(crra_bids(ValueDistribution(), v, 2, 1, 0.0, 0.5), v / 1.5)
