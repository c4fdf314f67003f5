"""The LMSR prediction market (mechanisms/lmsr.py), a mechanism whose book carries across rounds.

Sources: Hanson 2003 ("Combinatorial information market design", *Information Systems Frontiers*
5(1)) and 2007 (*J. Prediction Markets* 1(1)): bounded loss b ln n, myopic truthfulness.
"""

import math

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.ledger import record_episode, replay
from mecharena.mechanisms.base import advance
from mecharena.sim.loop import make_episode, play

LMSR = mechanisms.get("lmsr")


def _reports(rng, shape):
    """Random reports with extremes: near-certain, abstaining, invalid."""
    r = rng.random(shape)
    r = np.where(rng.random(shape) < 0.1, 1 - 1e-12, r)
    r = np.where(rng.random(shape) < 0.1, 1e-12, r)
    return np.where(rng.random(shape) < 0.05, 0.0, r)


@pytest.mark.parametrize("liquidity", [0.1, 1.0, 25.0])
def test_the_market_makers_worst_case_loss_never_exceeds_b_ln_2(rng, liquidity):
    """10,000 markets x 15 rounds of 5 traders with random (and extreme) reports."""
    b, n = 10_000, 5
    config = {"liquidity": liquidity}
    state = LMSR.initial(LMSR.config(config), b, n)
    worst = 0.0
    for _ in range(15):
        step = advance(LMSR, config, state, rng.random((b, n)), _reports(rng, (b, n)), rng.random((b, n)),
                       strict=False)
        state = step.state
        worst = max(worst, float(step.events["worst_case_loss"].max()))
        np.testing.assert_allclose(step.events["worst_case_loss"],
                                   np.maximum(state["q_yes"], state["q_no"]) - state["collected"])
    bound = liquidity * math.log(2)
    assert worst <= bound * (1 + 1e-12)
    assert worst > 0.99 * bound  # near-certain reports come close to it


@pytest.mark.parametrize("r", [0.6, 0.9, 0.999])
def test_one_trader_moving_the_price_from_one_half_risks_b_ln_2r(r):
    b = 2.0
    step = advance(LMSR, {"liquidity": b}, LMSR.initial(LMSR.config({"liquidity": b}), 1, 1), np.array([[r]]),
                   np.array([[r]]), np.array([[0.5]]))
    assert step.events["worst_case_loss"][0] == pytest.approx(b * math.log(2 * r), rel=1e-12)
    price = 1 / (1 + math.exp(-(step.state["q_yes"][0] - step.state["q_no"][0]) / b))
    assert price == pytest.approx(r, rel=1e-12)


def test_moving_the_price_to_ones_belief_is_the_best_report_from_any_state(rng):
    """Myopic truthfulness from random books: no report on a grid beats the belief for the first trader."""
    b, markets = 1.0, 2000
    state = {"q_yes": rng.random(markets) * 6 - 3, "q_no": rng.random(markets) * 6 - 3,
             "collected": rng.random(markets), "yes": np.zeros((markets, 1)), "no": np.zeros((markets, 1))}
    beliefs, priority = rng.random((markets, 1)), np.full((markets, 1), 0.5)
    truthful = advance(LMSR, {"liquidity": b}, state, beliefs, beliefs, priority).outcome.utility[:, 0]
    assert (truthful >= -1e-12).all()  # individually rational
    for report in np.linspace(0.001, 0.999, 97):
        lie = advance(LMSR, {"liquidity": b}, state, beliefs, np.full((markets, 1), report), priority)
        assert (lie.outcome.utility[:, 0] <= truthful + 1e-12).all()


def test_the_book_carries_over_so_a_second_round_of_the_same_beliefs_trades_nothing():
    """A lone truthful trader with (nearly) the same belief every round, in [0.7, 0.7 + 1e-9], moves the price to
    it in round 0 and has (nearly) nothing left to buy afterwards."""
    episode = make_episode(LMSR, {}, agents.population("truthful:1", 0), markets=50, seed=1,
                           values=agents.parse_distribution("uniform:low=0.7,high=0.700000001"))
    records = list(play(episode, 3))
    assert (records[0].outcome.allocation > 0).all() and (records[0].outcome.payments > 0).all()
    for r in records[1:]:
        np.testing.assert_allclose(r.outcome.allocation, 0.0, atol=1e-8)
        np.testing.assert_allclose(r.state["q_yes"] - r.state["q_no"], math.log(0.7 / 0.3), atol=1e-8)


def test_an_lmsr_ledger_records_the_book_and_replays_it(tmp_path):
    episode = make_episode(LMSR, {"liquidity": 0.5}, agents.population("truthful:3,zic:2", 0), markets=20, seed=2)
    path = record_episode(episode, tmp_path / "lmsr", rounds=5, flush_rounds=2)
    report = replay(path)
    assert report.ok and report.rounds == 5, report.to_dict()
