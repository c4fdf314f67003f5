"""The reputation gamer (agents/reputation_gamer.py) in the reputation marketplace: low effort, and the fewest whole
fake reviews that keep its Beta-posterior score (Josang and Ismail 2002) at a target even after a negative rating.
Fake reviews bias the scores buyers rely on (Dellarocas 2006, Management Science 52(10); Mayzlin, Dover and
Chevalier 2014, AER 104(8)); a verified-purchase rule ignores them.
"""

import numpy as np
import pytest

from mecharena import agents
from mecharena.core.errors import ConfigError
from mecharena.mechanisms.reputation import ReputationConfig, displayed
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

TARGET, EFFORT = 0.9, 0.2
POPULATION = "reputation_gamer:1,truthful:3"  # seat 0 games, seats 1-3 are honest


def _records(config=None, population=POPULATION, rounds=20, markets=1000, seed=0):
    cell = Cell(mechanism="reputation", config=config or {}, population=population, values="uniform:persistent=true",
                rounds=rounds, markets=markets, seed=seed)
    return list(play(cell.episode(), rounds))


def fewest_fakes(config: ReputationConfig, positive, negative, target):
    """By search, not the agent's formula: the fewest whole fakes f in 0, 1, ..., max_fakes whose evidence keeps the
    displayed score >= target after the round in every case the buyer can bring (no sale, a positive or a
    negative rating); max_fakes where none does. Also returns where some f does."""
    lam, w = config.decay, config.unverified_weight
    found = np.full(positive.shape, np.nan)
    for f in range(int(config.max_fakes) + 1):
        cases = [(lam * positive + w * f + good, lam * negative + bad) for good, bad in ((0, 0), (1, 0), (0, 1))]
        safe = np.all([displayed(config, pos, neg) >= target for pos, neg in cases], axis=0)
        found = np.where(np.isnan(found) & safe, f, found)
    return np.nan_to_num(found, nan=config.max_fakes), ~np.isnan(found)


@pytest.mark.parametrize(("config", "target"), [
    ({}, TARGET),
    ({"prior_strength": 2.0, "decay": 0.8, "max_fakes": 20.0}, TARGET),
    ({"min_history": 8.0, "max_fakes": 10.0}, 0.6),  # the evidence must reach min_history to be shown
    ({"unverified_weight": 0.5, "prior_mean": 0.3, "max_fakes": 20.0}, TARGET),
])
def test_the_gamer_buys_the_fewest_fakes_that_hold_its_score_at_the_target(config, target):
    """Every round, in every market, its fakes are the fewest whole reviews that keep its score >= T after the
    round whatever its buyer does (found by search over the mechanism's own ``displayed``); where max_fakes
    allows that many, its score after the round is >= T. It lists at the honest share (1 + c) / 2 with effort E."""
    cfg = ReputationConfig(**config)
    records = _records(config, population=f"reputation_gamer(target={target}):1,truthful:3")
    feasible_rounds = 0
    for record in records:
        before, after = record.state, record.next_state
        want, feasible = fewest_fakes(cfg, before["positive"][:, 0], before["negative"][:, 0], target)
        np.testing.assert_array_equal(record.actions["fakes"][:, 0], want)
        assert (after["score"][:, 0][feasible] >= target - 1e-12).all()
        feasible_rounds += feasible.mean()
        np.testing.assert_allclose(record.bids[:, 0], (1 + cfg.effort_cost) / 2)
        np.testing.assert_array_equal(record.actions["quality"][:, 0], EFFORT)
        np.testing.assert_array_equal(record.actions["reenter"][:, 0], 0)
    assert feasible_rounds / len(records) > 0.4  # the check above is not vacuous (0.6 to 1 in these cases)
    assert (records[-1].next_state["listings"][:, 0] == 1).all()  # one identity: it games the record it keeps


def test_the_gamers_score_overstates_its_quality_and_its_buyers_pay_for_it():
    """Average rule, default config (max_fakes 5, unverified_weight 1), T = 0.9, E = 0.2.

    * After round 1 its score is at least 5/6 (five fakes and at worst one negative rating in round 1; later
      rounds only add evidence of at least T), so it exceeds its delivered quality E theta <= 0.2 by more than
      0.6 in every market and its quality type theta (mean 1/2) by about 0.4 on average; honest sellers' scores
      estimate their type (their average-rule score is the share of positive ratings of quality theta), so their
      mean gap is about 0, below it (a first negative rating stops their sales at score 0).
    * Its buyers expect quality r >= 5/6 at price 0.65 r >= 0.54 and get q <= 0.2: every one of them loses more
      than 0.34. Honest sellers' buyers get the quality the score estimates, so on average they about break even
      (0.003 here: a buyer gains 0.175 r where r = theta, but sales select the listings whose score is lucky).
    """
    records = _records()
    theta = records[0].values
    for record in records[1:]:
        score = record.next_state["score"]
        assert (score[:, 0] >= 5 / 6 - 1e-12).all()
        assert (score[:, 0] > EFFORT * theta[:, 0] + 0.6).all()
    final = records[-1].next_state["score"]
    gamer_gap, honest_gap = (final[:, 0] - theta[:, 0]).mean(), (final[:, 1:] - theta[:, 1:]).mean()
    assert gamer_gap > 0.3 and honest_gap < 0.05, (gamer_gap, honest_gap)
    later = records[1:]
    sold = np.concatenate([r.events["sold"] for r in later]) > 0
    buyer = np.concatenate([r.events["buyer"] for r in later])
    assert sold[:, 0].sum() > 1000 and sold[:, 1:].sum() > 1000  # many trades of each kind
    assert (buyer[:, 0][sold[:, 0]] < -0.34).all()
    honest_buyers = buyer[:, 1:][sold[:, 1:]].mean()
    assert honest_buyers > -0.1 and buyer[:, 0][sold[:, 0]].mean() < honest_buyers - 0.3
    assert (sum(r.events["fakes"][:, 0] for r in records) > 0).all()  # it paid for its score in every market


def test_verified_purchases_only_leave_the_gamer_nothing_to_buy_and_its_score_follows_its_quality():
    """unverified_weight = 0: fakes would not count, so it buys none, and its record is its buyers' ratings only.
    Each rating is positive with the probability q = E theta of the sale (drawn apart from the buyer's decision to
    buy), so over all its sales the positive ratings minus the delivered qualities is a sum of independent mean-0
    terms: within 4 standard errors sqrt(sum q (1 - q)) of 0 (158 against 136.6, standard error 10.8, here). Its
    final score (mean 0.06 here, against 0.91 when fakes count) is within 0.1 of its mean delivered quality
    E E[theta] = 0.1."""
    records = _records({"unverified_weight": 0.0})
    for record in records:
        np.testing.assert_array_equal(record.actions["fakes"][:, 0], 0.0)
        np.testing.assert_array_equal(record.events["fakes"][:, 0], 0.0)
    final = records[-1].next_state
    sales = [(r.events["sold"][:, 0] > 0, r.events["quality"][:, 0]) for r in records]
    delivered = sum(q[sold].sum() for sold, q in sales)
    spread = np.sqrt(sum((q * (1 - q))[sold].sum() for sold, q in sales))
    ratings = (final["positive"][:, 0] + final["negative"][:, 0]).sum()
    assert ratings > 500
    assert abs(final["positive"][:, 0].sum() - delivered) < 4 * spread, (final["positive"][:, 0].sum(), delivered)
    theta = records[0].values[:, 0]
    score = final["score"][:, 0]
    assert abs(score.mean() - EFFORT * theta.mean()) < 0.1, (score.mean(), EFFORT * theta.mean())
    assert score.mean() < 0.3


def test_the_gamer_refuses_other_mechanisms_and_bad_parameters():
    cell = Cell(mechanism="second_price", population="reputation_gamer:1,truthful:2", markets=4)
    with pytest.raises(ConfigError, match=r"^reputation_gamer sells in the reputation marketplace; it supports "
                                          r"reputation, got second_price$"):
        list(play(cell.episode(), 1))
    with pytest.raises(ConfigError, match=r"^reputation_gamer: target must be a finite float in \[0, 1\), got 1$"):
        agents.population("reputation_gamer(target=1):1")
    with pytest.raises(ConfigError, match=r"^reputation_gamer: effort must be a finite float in \[0, 1\], got 1.5$"):
        agents.population("reputation_gamer(effort=1.5):1")
