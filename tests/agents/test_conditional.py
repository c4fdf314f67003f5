import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Feedback, MarketContext, Observation
from mecharena.agents.conditional import estimate_others
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.sim import InformationPolicy, make_episode, play

CONDITIONAL = agents.REGISTRY.get("conditional")


def contributions(spec, rounds=30, mechanism="vcm", config=None, markets=100, **kw):
    """Mean contribution per round (T,) and the records."""
    episode = make_episode(mechanisms.get(mechanism), {"mpcr": 0.5} if config is None else config,
                           agents.population(spec), markets=markets, seed=7, **kw)
    recs = list(play(episode, rounds))
    return np.array([r.bids.mean() for r in recs]), recs


def test_conditional_cooperators_sustain_free_riders_do_not_and_a_mix_decays():
    """Fischbacher, Gächter and Fehr (2001, Econ. Letters 71: 397-404) types in the VCM with
    mpcr = 0.5: perfect conditional cooperators among themselves keep their first contribution
    for 30 rounds; free riders give nothing; with free riders among them the cooperators match a
    falling average and contributions decay toward zero, the classic decline that Fischbacher and
    Gächter (2010, AER 100: 541-556) explain by conditional cooperation."""
    cooperators, _ = contributions("conditional:4")
    np.testing.assert_allclose(cooperators, 0.5)
    riders, _ = contributions("free_rider:4")
    np.testing.assert_array_equal(riders, 0.0)
    mixed, recs = contributions("conditional:2,free_rider:2")
    assert (np.diff(mixed) < 0).all() and mixed[-1] < 1e-6 * mixed[0]
    np.testing.assert_allclose(recs[1].bids[:, :2], 0.5 / 3)  # matches the others' average: (0.5 + 0 + 0) / 3
    imperfect, _ = contributions("conditional(slope=0.8):4")
    np.testing.assert_allclose(imperfect, 0.5 * 0.8 ** np.arange(30))


def test_initial_contribution_is_a_share_of_the_endowment():
    first, _ = contributions("conditional(initial=0.3):3", rounds=1, config={"mpcr": 0.5, "endowment": 2.0})
    np.testing.assert_allclose(first, 0.6)


def test_payoff_inference_in_the_vcm_is_exact():
    """With nothing revealed, (c_own - paid) / mpcr recovers the total: the estimate equals the
    one read off every announced contribution."""
    mech = mechanisms.get("vcm")
    cfg = mech.config({"mpcr": 0.3})
    ctx = MarketContext(mech, cfg, mech.market_spec(cfg, 5), 5, ValueDistribution())
    _, recs = contributions("truthful:1,conditional(initial=0.4):2,free_rider:2", rounds=1, config={"mpcr": 0.3},
                            information=InformationPolicy(competing_bids=True))
    record = recs[0]
    own = record.bids[:, 1:3]
    feedback = Feedback(allocation=np.zeros_like(own), paid=(record.outcome.payments - record.outcome.receipts)[:, 1:3],
                        penalty=np.zeros_like(own), utility=record.utility[:, 1:3], active=np.ones(own.shape, bool))
    hidden = Observation(price=record.observation.price, winners=None, bids=None, bid_quantiles=None)
    np.testing.assert_allclose(estimate_others(ctx, own, hidden, feedback),
                               estimate_others(ctx, own, record.observation, feedback), atol=1e-12)
    np.testing.assert_allclose(estimate_others(ctx, own, hidden, feedback), (1.0 + 0.4) / 4)


def test_anonymous_quantiles_hide_the_free_riders():
    """The quantiles cover positive contributions only, so the cooperators see the median of their
    own kind and keep contributing: the information policy decides whether cooperation decays."""
    quantiles, _ = contributions("conditional:2,free_rider:2", information=InformationPolicy(bid_distribution=True))
    np.testing.assert_allclose(quantiles, 0.25)  # 0.5 from two of four seats, every round
    bids, _ = contributions("conditional:2,free_rider:2", information=InformationPolicy(competing_bids=True))
    np.testing.assert_allclose(bids, contributions("conditional:2,free_rider:2")[0])


def test_provision_point_reads_bids_quantiles_and_the_price():
    failed = {"threshold": 2.0}  # two cooperators give 0.5 each: the good fails
    spec = "conditional(slope=0.5):2,free_rider(share=0):2"
    hidden = contributions(spec, rounds=2, mechanism="provision_point", config=failed)[1][1].bids[:, 0]
    bids = contributions(spec, rounds=2, mechanism="provision_point", config=failed,
                         information=InformationPolicy(competing_bids=True))[1][1].bids[:, 0]
    quantiles = contributions(spec, rounds=2, mechanism="provision_point", config=failed,
                              information=InformationPolicy(bid_distribution=True))[1][1].bids[:, 0]
    np.testing.assert_allclose(hidden, 0.5)  # a failed good reveals nothing: keeps its first contribution
    np.testing.assert_allclose(bids, 0.5 * 0.5 / 3)
    np.testing.assert_allclose(quantiles, 0.5 * 0.5)
    provided = {"threshold": 1.0}
    shown = contributions(spec, rounds=2, mechanism="provision_point", config=provided)[1][1].bids[:, 0]
    secret = contributions(spec, rounds=2, mechanism="provision_point", config=provided,
                           information=InformationPolicy(clearing_price=False))[1][1].bids[:, 0]
    np.testing.assert_allclose(shown, 0.5 * 0.5 / 3)  # the price 1.0 / 4 reveals the total
    np.testing.assert_allclose(secret, 0.5)


def test_conditional_refuses_auctions():
    mech = mechanisms.get("second_price")
    cfg = mech.config({})
    ctx = MarketContext(mech, cfg, mech.market_spec(cfg, 2), 2, ValueDistribution())
    with pytest.raises(ConfigError, match=r"^conditional plays public-goods games; it supports vcm, provision_point, "
                                          r"got second_price$"):
        CONDITIONAL.act(ctx, CONDITIONAL.params_model(), None, np.ones((1, 2)), None)
    with pytest.raises(ConfigError, match=r"^conditional: slope must be a finite float in \[0, 1\], got 2$"):
        agents.population("conditional(slope=2):2")
