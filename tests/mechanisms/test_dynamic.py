"""Clock auctions (English, Dutch) and the position auction (GSP beside VCG) against their theory.

Sources: Vickrey 1961 and Krishna, *Auction Theory*, 2nd ed., ch. 2 (English = second price,
Dutch = first price, strategically, with private values); Edelman, Ostrovsky and Schwarz 2007,
*AER* 97(1), and Varian 2007, *IJIO* 25(6) (GSP's locally envy-free equilibrium has VCG's
positions and payments; truthful GSP pays at least VCG).
"""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.mechanisms import clear
from mecharena.mechanisms.checker import check_mechanism
from mecharena.mechanisms.policy import InformationPolicy
from mecharena.mechanisms.position import envy_free_bids
from mecharena.metrics.run import simulate_summary
from mecharena.sim.loop import make_episode, play

OUTCOME = ("allocation", "payments", "receipts", "utility", "valid", "participated", "revenue", "welfare",
           "max_welfare")


def same(a, b):
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in OUTCOME)


@pytest.mark.parametrize("name", ["english", "dutch", "position"])
def test_every_example_config_passes_the_checker(name):
    """The battery includes the scalar reference, a different algorithm (the clock run level by level)."""
    assert check_mechanism(mechanisms.get(name), markets=120) > 0


def _market(rng, b=4000, n=4):
    values = rng.random((b, n))
    bids = np.where(rng.random((b, n)) < 0.5, values, rng.random((b, n)) * 1.2)
    bids[:200] = np.round(bids[:200] * 4) / 4  # ties
    return values, bids, rng.random((b, n))


@pytest.mark.parametrize("reserve", [0.0, 0.3])
def test_a_continuous_english_clock_is_second_price_market_by_market(rng, reserve):
    values, bids, priority = _market(rng)
    config = {"reserve_price": reserve}
    assert same(clear(mechanisms.get("english"), config, values, bids, priority),
                clear(mechanisms.get("second_price"), config, values, bids, priority))
    plans = np.repeat(bids[:, :, None], 3, axis=2)  # the same drop price whatever the count: visible = hidden
    assert same(clear(mechanisms.get("english"), {**config, "dropouts": "visible"}, values, plans, priority),
                clear(mechanisms.get("second_price"), config, values, bids, priority))


@pytest.mark.parametrize("increment", [0.01, 0.1])
def test_with_an_increment_the_english_price_is_within_one_step_of_second_price(rng, increment):
    values, _, priority = _market(rng)
    english = clear(mechanisms.get("english"), {"increment": increment}, values, values, priority)
    second = clear(mechanisms.get("second_price"), None, values, values, priority)
    gap = english.revenue - second.revenue
    assert (np.abs(gap) <= increment + 1e-12).all() and gap.mean() > 0.3 * increment


def test_visible_dropouts_let_a_plan_depend_on_how_many_rivals_are_out():
    """Bidder 0 plans to drop at 0.5 while nobody is out and at 0.9 once one rival is out (stay longer); rivals
    drop at 0.3 and 0.6. Hidden, it uses its first plan and bidder 2 wins at 0.5; visible, bidder 1's exit
    at 0.3 moves it to 0.9, so bidder 2 drops at 0.6 and bidder 0 wins at 0.6. A plan that falls below the clock
    when a rival drops (0.2 after the first exit) drops at that same level."""
    english = mechanisms.get("english")
    values, priority = np.array([[1.0, 1.0, 1.0]]), np.array([[0.1, 0.2, 0.3]])
    plans = np.array([[[0.5, 0.9], [0.3, 0.3], [0.6, 0.6]]])
    for config, winner, price in (({"dropouts": "hidden"}, 2, 0.5), ({"dropouts": "visible"}, 0, 0.6)):
        bids = plans if config["dropouts"] == "visible" else plans[:, :, 0]
        out = clear(english, config, values, bids, priority)
        ref = english.reference(english.config(config), values[0].tolist(), bids[0].tolist(), priority[0].tolist())
        assert out.allocation[0].tolist() == ref["allocation"] == [float(i == winner) for i in range(3)]
        assert out.revenue[0] == ref["revenue"] == price
    together = np.array([[[0.9, 0.2], [0.3, 0.3], [0.6, 0.6]]])  # bidder 0 leaves with bidder 1, at 0.3
    out = clear(english, {"dropouts": "visible"}, values, together, priority)
    assert out.allocation[0].tolist() == [0.0, 0.0, 1.0] and out.revenue[0] == 0.3


@pytest.mark.parametrize("reserve", [0.0, 0.2])
def test_a_continuous_dutch_clock_is_first_price_for_the_same_bids(rng, reserve):
    values, bids, priority = _market(rng)
    bids = np.minimum(bids, 0.999)  # below the start price: the clock reaches every bid
    config = {"reserve_price": reserve}
    assert same(clear(mechanisms.get("dutch"), config, values, bids, priority),
                clear(mechanisms.get("first_price"), config, values, bids, priority))


def test_a_dutch_winner_pays_the_first_level_at_or_below_its_stop_price(rng):
    values, _, priority = _market(rng)
    out = clear(mechanisms.get("dutch"), {"increment": 0.1, "start_price": 1.0}, values, values * 0.8, priority)
    won = out.allocation > 0
    paid, stop = out.payments[won], (values * 0.8)[won]
    assert ((paid <= stop + 1e-12) & (paid > stop - 0.1 - 1e-12)).all()
    assert np.allclose(np.round(paid * 10), paid * 10)  # a level of the clock: 1.0 - 0.1 t


@pytest.mark.parametrize(("mechanism", "config", "population"), [
    ("dutch", {}, "bne:3"), ("dutch", {}, "bne:5"), ("english", {}, "truthful:3"), ("english", {}, "bne:5"),
])
def test_equilibrium_revenue_of_the_clocks_is_revenue_equivalent(mechanism, config, population):
    """Uniform values, r = 0: expected revenue (n - 1)/(n + 1) (bne in Dutch is first price's closed form;
    in English, where dropping at one's value is dominant, it is truthful)."""
    n = int(population.split(":")[1])
    revenue = simulate_summary(mechanism, config, population, markets=60_000, rounds=1, seed=2)["metrics"]["revenue"]
    lo, hi = revenue["ci95"]
    assert lo <= (n - 1) / (n + 1) <= hi


def test_position_auction_with_one_slot_is_second_price(rng):
    values, bids, priority = _market(rng)
    for pricing in ("gsp", "vcg"):
        out = clear(mechanisms.get("position"), {"slots": 1, "pricing": pricing, "reserve_price": 0.1}, values, bids,
                    priority)
        assert same(out, clear(mechanisms.get("second_price"), {"reserve_price": 0.1}, values, bids, priority))


@pytest.mark.parametrize("config", [{}, {"slots": 2, "reserve_price": 0.3}, {"slots": 5, "ctr_decay": 0.85},
                                    {"slots": 4, "ctr_decay": 0.5, "reserve_price": 0.1}])
@pytest.mark.parametrize("n", [2, 4, 7])
def test_gsp_envy_free_equilibrium_pays_what_vcg_does_and_truthful_gsp_pays_more(rng, config, n):
    position = mechanisms.get("position")
    values, priority = rng.random((3000, n)), rng.random((3000, n))
    gsp = position.config(config)
    vcg = gsp.model_copy(update={"pricing": "vcg"})
    envy_free = clear(position, gsp, values, envy_free_bids(gsp, values), priority)
    truthful_vcg = clear(position, vcg, values, values, priority)
    np.testing.assert_array_equal(envy_free.allocation, truthful_vcg.allocation)
    np.testing.assert_allclose(envy_free.payments, truthful_vcg.payments, atol=1e-12)
    truthful_gsp = clear(position, gsp, values, values, priority)
    assert (truthful_gsp.payments >= truthful_vcg.payments - 1e-12).all()
    assert (truthful_gsp.revenue > truthful_vcg.revenue + 1e-9).mean() > 0.3 if n > 2 else True


@pytest.mark.parametrize("config", [{}, {"slots": 2, "reserve_price": 0.3}, {"slots": 4, "ctr_decay": 0.9}])
def test_the_envy_free_bids_are_an_equilibrium_of_gsp(rng, config):
    """No bidder gains by any other bid: a grid over [0, 1.2] plus every rival's bid and its neighbours."""
    position = mechanisms.get("position")
    n, b = 5, 400
    values, priority = rng.random((b, n)), rng.random((b, n))
    gsp = position.config(config)
    bids = envy_free_bids(gsp, values)
    base = clear(position, gsp, values, bids, priority).utility
    for seat in range(n):
        rivals = np.delete(bids, seat, axis=1)
        candidates = np.concatenate([np.broadcast_to(np.linspace(0, 1.2, 121), (b, 121)), rivals,
                                     rivals + 1e-9, np.maximum(rivals - 1e-9, 0)], axis=1)
        for j in range(candidates.shape[1]):
            deviated = bids.copy()
            deviated[:, seat] = candidates[:, j]
            gain = clear(position, gsp, values, deviated, priority).utility[:, seat] - base[:, seat]
            assert gain.max() <= 1e-9, (seat, j, gain.max())


def test_the_envy_free_agent_plays_through_the_loop_and_needs_every_seat():
    position = mechanisms.get("position")
    episode = make_episode(position, {}, agents.population("envy_free:4", 0), markets=500, seed=3)
    record = next(play(episode, 1))
    vcg = clear(position, {"pricing": "vcg"}, record.values, record.values, record.priority)
    np.testing.assert_allclose(record.outcome.revenue, vcg.revenue, atol=1e-12)
    episode = make_episode(position, {}, agents.population("envy_free:3,truthful:1", 0), markets=5, seed=3)
    with pytest.raises(ConfigError, match=r"^envy_free plays a complete-information equilibrium: its group must hold "
                                          r"every seat of the market \(4\), got 3; use envy_free:4$"):
        next(play(episode, 1))


@pytest.mark.parametrize("config", [{}, {"slots": 2, "reserve_price": 0.2}, {"slots": 4, "ctr_decay": 0.8}])
def test_repeated_gsp_balanced_bidders_converge_to_vcg_revenue(config):
    """Cary et al. (2007): asynchronous balanced bidding reaches the envy-free equilibrium, whose payments are
    VCG's. Five bidders keep their values (persistent) and see last round's bids; round 0 is truthful GSP,
    which pays more than VCG; by round 60 every one of 1,000 markets pays exactly what VCG would."""
    position = mechanisms.get("position")
    episode = make_episode(position, config, agents.population("balanced:5", 0), markets=1000, seed=1,
                           values=agents.parse_distribution("uniform:persistent=true"),
                           information=InformationPolicy(competing_bids=True))
    records = list(play(episode, 60))
    values = records[0].values
    vcg = clear(position, {**config, "pricing": "vcg"}, values, values, records[0].priority).revenue
    assert (records[0].outcome.revenue > vcg + 1e-9).mean() > 0.5
    np.testing.assert_allclose(records[-1].outcome.revenue, vcg, atol=1e-9)
    with pytest.raises(ConfigError, match=r"^balanced best-responds to last round's bids: the information policy "
                                          r"must announce them \(competing_bids=true\)$"):
        next(play(make_episode(position, config, agents.population("balanced:3", 0), markets=2, seed=1), 1))
