import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Draws, MarketContext
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.sim import InformationPolicy, make_episode, play

SNIPER = agents.REGISTRY.get("sniper")


def records(spec, buyers=2, rounds=5, markets=10_000, seed=0, **kw):
    episode = make_episode(mechanisms.get("cda"), {"buyers": buyers}, agents.population(spec), markets=markets,
                           seed=seed, **kw)
    return list(play(episode, rounds))


def context(name="cda", config=None, n=4, seats=slice(0, 2)):
    mech = mechanisms.get(name)
    cfg = mech.config({"buyers": 2} if config is None and name == "cda" else config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, ValueDistribution(), seats=seats)


def draws(markets):
    return Draws(0, ("agent", 0, 0), 0, markets)


@pytest.mark.parametrize(("buyers", "template", "seat"), [
    (2, "sniper({}):1,truthful:3", 0),
    (3, "sniper({}):1,truthful:5", 0),
    (2, "truthful:2,sniper({}):1,truthful:1", 2),
])
def test_sniping_late_beats_ordering_at_a_random_time_with_the_same_price_rule(buyers, template, seat):
    """Kaplan's sniper (Rust, Miller and Palmer 1994, J. Econ. Dynamics and Control 18: 61-96): in the
    continuous double auction the late order trades at the standing book's price, so against truthful
    traders sending at random times it earns more than the same order sent at a random time
    (lateness=1). Same seeds: the truthful traders draw the same values, times and priorities."""
    late = records(template.format("lateness=0.05"), buyers)
    random = records(template.format("lateness=1"), buyers)
    gain = sum(r.utility[:, seat] for r in late) - sum(r.utility[:, seat] for r in random)
    se = gain.std() / np.sqrt(gain.size)
    assert gain.mean() > 6 * se > 0


def test_orders_are_late_individually_rational_and_shaded_toward_the_reference():
    ctx = context()
    values = np.array([[0.9, 0.2], [0.4, 0.7]])
    state = SNIPER.init(ctx, SNIPER.params_model(), 2, draws(2))
    np.testing.assert_array_equal(state.reference, 0.5)  # median of U[0, 1]
    action = SNIPER.act(ctx, SNIPER.params_model.build(shading=0.5, lateness=0.1), state, values, draws(2))
    np.testing.assert_allclose(action.bids, [[0.7, 0.2], [0.4, 0.6]])  # buyer: min(v, v + s (p - v))
    assert ((action.times > 0.9) & (action.times <= 1.0)).all()
    seller = SNIPER.params_model.build(shading=0.5)
    sellers = context(seats=slice(2, 4))  # the last two seats sell
    asks = SNIPER.act(sellers, seller, SNIPER.init(sellers, seller, 2, draws(2)), values, draws(2)).bids
    np.testing.assert_allclose(asks, [[0.9, 0.35], [0.45, 0.7]])  # seller: max(c, c + s (p - c))
    truthful = SNIPER.act(ctx, SNIPER.params_model.build(shading=0.0), state, values, draws(2)).bids
    np.testing.assert_array_equal(truthful, values)


def test_every_parameter_changes_the_orders():
    ctx, values = context(), np.array([[0.9, 0.2], [0.4, 0.7]])

    def order(**fields):
        params = SNIPER.params_model.build(**fields)
        return SNIPER.act(ctx, params, SNIPER.init(ctx, params, 2, draws(2)), values, draws(2))

    base = order()
    assert not np.array_equal(base.times, order(lateness=0.5).times)
    assert not np.array_equal(base.bids, order(shading=0.9).bids)


def test_reference_follows_the_announced_price_and_stays_put_when_it_is_hidden():
    shown = records("sniper(shading=1):1,truthful:3", rounds=2, markets=2_000)
    hidden = records("sniper(shading=1):1,truthful:3", rounds=2, markets=2_000,
                     information=InformationPolicy(clearing_price=False))
    v = hidden[1].values[:, 0]
    np.testing.assert_allclose(hidden[1].bids[:, 0], np.minimum(v, 0.5))
    price = shown[0].observation.price
    expected = np.minimum(v, np.where(np.isfinite(price), price, 0.5))
    np.testing.assert_allclose(shown[1].bids[:, 0], expected)
    assert not np.array_equal(shown[1].bids[:, 0], hidden[1].bids[:, 0])


def test_seats_on_the_selling_side_ask_at_least_their_cost():
    record = records("truthful:2,sniper(shading=1):2", rounds=2, markets=500)[1]
    assert (record.bids[:, 2:] >= record.values[:, 2:] - 1e-12).all()
    assert (record.bids[:, 2:] > record.values[:, 2:]).any()


def test_sniper_refuses_other_mechanisms_and_bad_parameters():
    with pytest.raises(ConfigError, match=r"^sniper needs a mechanism that processes orders in time order; "
                                          r"it supports cda, got k_double$"):
        SNIPER.init(context("k_double", {"buyers": 2}), SNIPER.params_model(), 1, draws(1))
    with pytest.raises(ConfigError, match=r"^sniper needs .* got first_price$"):
        episode = make_episode(mechanisms.get("first_price"), {}, agents.population("sniper:2"), markets=1, seed=0)
        list(play(episode, 1))
    with pytest.raises(ConfigError, match=r"^sniper: lateness must be a finite float in \[0, 1\], got 2"):
        agents.population("sniper(lateness=2):1")
