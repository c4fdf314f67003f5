import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Draws, Feedback, MarketContext, Observation
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.sim import InformationPolicy, make_episode, play

FREE_RIDER = agents.REGISTRY.get("free_rider")


def records(mechanism, config, spec, rounds, markets=200, **kw):
    episode = make_episode(mechanisms.get(mechanism), config, agents.population(spec), markets=markets, seed=5, **kw)
    return list(play(episode, rounds))


def context(name, config, n):
    mech = mechanisms.get(name)
    cfg = mech.config(config)
    return MarketContext(mech, cfg, mech.market_spec(cfg, n), n, ValueDistribution())


def test_free_riders_never_contribute_in_the_vcm():
    """Free riders of Fischbacher, Gächter and Fehr (2001): 0 whatever the others do, even when
    the others contribute and everything is revealed."""
    for spec in ("free_rider:4", "free_rider:2,truthful:2"):
        for record in records("vcm", {"mpcr": 0.5}, spec, 10, information=InformationPolicy(competing_bids=True)):
            np.testing.assert_array_equal(record.bids[:, :2], 0.0)


def test_provision_point_top_up_after_a_narrow_revealed_failure():
    ctx = context("provision_point", {"threshold": 2.0}, 4)
    params = FREE_RIDER.params_model.build(share=0.5)
    draws = Draws(0, ("agent", 0, 0), 0, 3)
    state = FREE_RIDER.init(ctx, params, 2, draws)
    np.testing.assert_array_equal(FREE_RIDER.act(ctx, params, state, np.full((3, 2), 0.9), draws), 0.0)
    last = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.0]])
    others = np.array([[1.7, 0.0], [1.0, 0.0], [2.5, 0.0]])  # totals 1.7 (short 0.3), 1.1 (short 0.9), 2.5 (provided)
    observation = Observation(price=np.full(3, np.nan), winners=None, bids=np.concatenate([last, others], axis=1),
                              bid_quantiles=None)
    zeros = np.zeros((3, 2))
    feedback = Feedback(allocation=zeros, paid=zeros, penalty=zeros, utility=zeros, active=np.ones((3, 2), bool))
    action = agents.Action(bids=last)
    state = FREE_RIDER.update(ctx, params, state, zeros, action, observation, feedback, draws)
    values = np.array([[0.5, 0.2], [0.95, 0.5], [1.0, 1.0]])
    got = FREE_RIDER.act(ctx, params, state, values, draws)
    # market 0: short 0.3 < v = 0.5 tops up 0.15; v = 0.2 < 0.3 rides free. Market 1: short 0.9 < 0.95:
    # its own 0.1 plus 0.45. Market 2: provided, rides free.
    np.testing.assert_allclose(got, [[0.15, 0.0], [0.55, 0.0], [0.0, 0.0]])
    pure = FREE_RIDER.params_model.build(share=0.0)
    np.testing.assert_allclose(FREE_RIDER.act(ctx, pure, state, values, draws), [[0.0, 0.0], [0.1, 0.0], [0.0, 0.0]])


def test_revealed_contributions_and_share_change_what_it_gives():
    spec = "conditional:2,free_rider:2"
    config = {"threshold": 1.2}  # two conditional cooperators give 0.5 each: short by 0.2
    shown = records("provision_point", config, spec, 2, information=InformationPolicy(competing_bids=True))
    hidden = records("provision_point", config, spec, 2)
    np.testing.assert_array_equal(hidden[1].bids[:, 2:], 0.0)
    v = shown[1].values[:, 2:]
    np.testing.assert_allclose(shown[1].bids[:, 2:], np.where(v > 0.2, 0.1, 0.0))
    none = records("provision_point", config, "conditional:2,free_rider(share=0):2", 2,
                   information=InformationPolicy(competing_bids=True))
    np.testing.assert_array_equal(none[1].bids[:, 2:], 0.0)


def test_free_rider_refuses_auctions():
    with pytest.raises(ConfigError, match=r"^free_rider plays public-goods games; it supports vcm, provision_point, "
                                          r"got first_price$"):
        FREE_RIDER.act(context("first_price", {}, 2), FREE_RIDER.params_model(), None, np.ones((1, 2)), None)
    with pytest.raises(ConfigError, match=r"^free_rider: share must be a finite float in \[0, 1\], got 1.5$"):
        agents.population("free_rider(share=1.5):2")
