"""The reputation marketplace (mechanisms/reputation.py): scores across rounds, the seller's economics, and
what the discovery engine finds in it.

Sources: Josang and Ismail 2002 (the Beta reputation system, forgetting factor); Aperjis and Johari 2010
(a decayed record holds at most 1 / (1 - lambda) ratings); Friedman and Resnick 2001 (cheap pseudonyms);
Shapiro 1983 and Tadelis 1999 (reputation premium, reputation as an asset).
"""


import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.agents.policy import feature_names, format_weights, start_weights
from mecharena.core.errors import ConfigError
from mecharena.mechanisms.base import advance
from mecharena.mechanisms.reputation import ReputationConfig, displayed
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play
from tests.conftest import load_usecase

REPUTATION = mechanisms.get("reputation")


def _rounds(config, rounds, markets=4000, n=3, *, seed=0, actions=None, bids=0.65):
    """``rounds`` steps of the batched step from the initial state: [(state before, step)]."""
    rng = np.random.default_rng(seed)
    values = rng.random((markets, n))
    state = REPUTATION.initial(REPUTATION.config(config), markets, n)
    out = []
    for _ in range(rounds):
        step = advance(REPUTATION, config, state, values, np.full((markets, n), bids), rng.random((markets, n)),
                       actions=actions(state) if callable(actions) else actions)
        out.append((state, step))
        state = step.state
    return values, out


@pytest.mark.parametrize("config", [{"prior_strength": 2.0, "prior_mean": 0.3}, {}, {"prior_strength": 0.5}])
def test_the_score_is_the_beta_posterior_mean_of_the_ratings(config):
    """Without forgetting or fakes, positive + negative evidence counts the sales, and the score after k positive
    ratings out of n is (m s + k) / (s + n)."""
    cfg = ReputationConfig(**config)
    _, steps = _rounds(config, 12, bids=0.2)
    sales = sum(step.events["sold"] for _, step in steps)
    state = steps[-1][1].state
    np.testing.assert_array_equal(state["positive"] + state["negative"], sales)
    k, n = state["positive"], sales
    expect = np.where(cfg.prior_strength + n > 0, (cfg.prior_mean * cfg.prior_strength + k)
                      / np.maximum(cfg.prior_strength + n, 1e-300), cfg.prior_mean)
    np.testing.assert_allclose(state["score"], expect, rtol=1e-12)
    assert np.all(state["positive"] == np.round(state["positive"]))  # whole ratings
    assert (n > 3).mean() > 0.1  # some listings have a record


@pytest.mark.parametrize("decay", [0.5, 0.8, 0.95])
def test_a_decayed_record_never_holds_more_than_one_over_one_minus_lambda_ratings(decay):
    _, steps = _rounds({"decay": decay}, 40, bids=0.2)  # cheap: most rounds sell
    weight = np.stack([step.state["positive"] + step.state["negative"] for _, step in steps])
    assert weight.max() <= 1 / (1 - decay) + 1e-9
    assert weight.max() > 0.9 / (1 - decay) * (1 - decay**40)  # and comes close to it


def test_the_honest_price_share_maximizes_one_rounds_trade_profit_at_an_accurate_score():
    """(p - c q)(r - p) with r = q, p = mu r peaks at mu = (1 + c) / 2 (the mechanism's truthful bid): a grid of
    shares on 200,000 markets with the score set to the seller's quality and the listing's worth switched off."""
    c, markets = 0.3, 200_000
    config = {"effort_cost": c, "future_value": 0.0}
    rng = np.random.default_rng(1)
    theta = rng.uniform(0.2, 1.0, (markets, 1))
    evidence = 1e6
    state = {"positive": theta * evidence, "negative": (1 - theta) * evidence, "listings": np.ones((markets, 1)),
             "score": theta.copy()}
    priority = rng.random((markets, 1))
    shares = np.round(np.arange(0.40, 0.91, 0.05), 2)
    profit = [advance(REPUTATION, config, state, theta, np.full((markets, 1), mu), priority).outcome.utility.mean()
              for mu in shares]
    assert shares[int(np.argmax(profit))] == pytest.approx((1 + c) / 2)
    truthful = REPUTATION.truthful(REPUTATION.config(config), theta, REPUTATION.market_spec(None, 1))
    np.testing.assert_array_equal(truthful, (1 + c) / 2)


def test_utility_is_trade_profit_less_fakes_and_fees_plus_the_listings_change_in_worth():
    """The accounting identity, with random effort, re-entries and fake reviews: re-entering abandons the old
    listing's worth, pays the fee, restarts the record, and counts one more identity."""
    config = {"listing_fee": 0.2, "fake_cost": 0.05, "prior_strength": 1.0, "decay": 0.9, "future_value": 2.0}
    cfg = ReputationConfig(**config)
    rng = np.random.default_rng(2)

    def actions(state):
        shape = state["score"].shape
        return {"quality": rng.random(shape), "reenter": (rng.random(shape) < 0.2).astype(float),
                "fakes": rng.random(shape) * 2}

    values, steps = _rounds(config, 6, actions=actions)
    for before, step in steps:
        ev, out = step.events, step.outcome
        worth = displayed(cfg, before["positive"], before["negative"])
        trade = ev["sold"] * (0.65 * ev["shown"] - cfg.effort_cost * ev["quality"])
        expect = trade - cfg.fake_cost * ev["fakes"] + cfg.future_value * (step.state["score"] - worth) - out.payments
        np.testing.assert_allclose(out.utility, expect, atol=1e-12)
        fresh = step.state["listings"] - before["listings"]
        np.testing.assert_array_equal(out.payments, cfg.listing_fee * fresh)
        np.testing.assert_array_equal(out.revenue, out.payments.sum(axis=1))
    first = steps[0][1].state["listings"]
    assert (first == 1).all()  # every seller's first listing is one identity, re-entry flag or not
    assert (steps[-1][1].state["listings"] > 2).any()


def test_verified_purchases_only_ignore_fake_reviews_but_their_buyer_still_pays():
    base = {"prior_strength": 2.0}
    fakes = {"fakes": np.full((4000, 3), 3.0)}
    _, honest = _rounds({**base, "unverified_weight": 0.0}, 5)
    _, faking = _rounds({**base, "unverified_weight": 0.0}, 5, actions=fakes)
    _, counted = _rounds(base, 5, actions=fakes)
    np.testing.assert_array_equal(honest[-1][1].state["score"], faking[-1][1].state["score"])
    assert (counted[-1][1].state["score"] > honest[-1][1].state["score"]).mean() > 0.9
    gap = honest[0][1].outcome.utility - faking[0][1].outcome.utility
    np.testing.assert_allclose(gap, 0.15)  # 3 fakes at 0.05


def test_actions_outside_the_schema_are_flagged_inside_the_batch_not_raised():
    """A non-integer re-entry flag, a quality above 1 and negative fakes: those seats' actions are invalid and
    their fields fall back to the defaults; the other seats clear as usual."""
    markets, n = 5, 3
    state = REPUTATION.initial(REPUTATION.config({}), markets, n)
    bad = {"reenter": np.array([[0.5, 0, 0]] * markets), "quality": np.array([[1, 1.5, 1]] * markets),
           "fakes": np.array([[0, 0, -1.0]] * markets)}
    step = advance(REPUTATION, {}, state, np.full((markets, n), 0.5), np.full((markets, n), 0.65),
                   np.random.default_rng(3).random((markets, n)), actions=bad, strict=False)
    assert not step.outcome.valid.any()
    clean = advance(REPUTATION, {}, state, np.full((markets, n), 0.5), np.full((markets, n), 0.65),
                    np.random.default_rng(3).random((markets, n)))
    np.testing.assert_array_equal(step.state["score"], clean.state["score"])


def test_a_policy_sees_its_own_score_and_the_round():
    """Features of a stateful market: the round and the seat's own state after last round. A policy whose
    quality is its own score delivers, each round, the score it had after the previous one."""
    names = feature_names(REPUTATION)
    assert names[-6:] == ("round", "own_positive", "own_negative", "own_listings", "own_score", "final")
    width = len(names)
    weights = start_weights(REPUTATION)
    weights[3 * width:4 * width] = 0.0
    weights[3 * width + names.index("own_score")] = 1.0
    cell = Cell(mechanism="reputation", config={"prior_mean": 0.7}, markets=200, seed=4,
                population=f"policy(w={format_weights(weights)}):1,truthful:2", values="uniform:persistent=true")
    records = list(play(cell.episode(), 5))
    np.testing.assert_allclose(records[0].actions["quality"][:, 0], 0.7)  # the prior mean before any rating
    for before, after in zip(records, records[1:], strict=False):
        np.testing.assert_allclose(after.actions["quality"][:, 0], before.next_state["score"][:, 0])


def test_a_policy_with_a_weight_count_the_market_cannot_read_is_refused_naming_the_counts():
    cell = Cell(mechanism="reputation", markets=4, population=f"policy(w={'/'.join(['0'] * 33)}):1,truthful:2")
    with pytest.raises(ConfigError, match=r"^policy: w holds 33 weights; reputation takes 30 or 48 or 60 or 96 or 120 "
                                          r"\(16 features: bias, .*own_score, final; a ring's 20 add partner_won, "
                                          r"partner_bid, led, caught; action fields: quality, reenter, fakes\)$"):
        list(play(cell.episode(), 1))


@pytest.mark.slow
def test_the_search_finds_fake_reviews_and_shirking_and_the_repair_closes_them():
    """No attack named: the policy search over price, quality, re-entry and fake reviews finds a gain under the
    average rule, made of fake reviews that lift the score above the seller's type; under the repair (verified
    purchases only, forgetting, an entry fee) it finds nothing (upper bound below 0.003 per round)."""
    table = load_usecase("reputation_marketplace").use_case_table(("average", "repaired"), generations=20, markets=200,
                                                                  eval_markets=1000)
    average, repaired = table["found"]["average"], table["found"]["repaired"]
    assert average["gain"]["ci95"][0] > 0.03, average
    assert average["behaviour"]["fakes"] > 0.1 and average["behaviour"]["score_gap"] > 0.1, average
    assert repaired["gain"]["ci95"][1] < 0.003, repaired
    assert repaired["behaviour"]["fakes"] < 0.05  # it stops buying what no longer counts
    cost = table["costs"]["repaired - average"]
    assert cost["buyer_welfare"]["ci95"][0] > 0  # honest buyers gain from the repair; sellers pay for it
    assert cost["seller_profit"]["ci95"][1] < 0
