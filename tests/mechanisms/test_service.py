"""The AI-agent service marketplace (mechanisms/service.py): choice, escrow, disputes and strikes, and what the
discovery engine finds in it.

Source of the failure mode it is built around: Bansal et al. 2025, Magentic Marketplace (customers' assistants
take the first acceptable proposal far more often than the best one).
"""


import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.mechanisms.base import advance
from mecharena.mechanisms.service import ServiceConfig
from tests.conftest import load_usecase

SERVICE = mechanisms.get("service")
MARKETS = 4000


def _step(config, *, n=4, state=None, actions=None, values=None, seed=0, bids=1.0):
    rng = np.random.default_rng(seed)
    values = rng.random((MARKETS, n)) if values is None else np.broadcast_to(values, (MARKETS, n)).copy()
    priority = rng.random((MARKETS, n))
    state = SERVICE.initial(SERVICE.config(config), MARKETS, n) if state is None else state
    return values, advance(SERVICE, config, state, values, np.full((MARKETS, n), bids), priority, actions=actions)


def _posted(config, seed=0, n=4):
    """Tasks posted per market (v >= rate), read off an honest round: every posted task is served by someone."""
    return _step(config, seed=seed, n=n)[1].events["won"].sum(axis=1)


def test_honest_agents_split_first_choice_tasks_evenly_and_best_choice_gives_all_to_the_most_skilled():
    _, first = _step({"first_bias": 1.0})
    share = first.events["won"].sum(axis=0) / first.events["won"].sum()
    np.testing.assert_allclose(share, 0.25, atol=0.02)  # i.i.d. arrival times: each first equally often
    values, best = _step({"first_bias": 0.0})
    won = best.events["won"]
    top = np.argmax(values, axis=1)
    np.testing.assert_array_equal(won.sum(axis=1), won[np.arange(MARKETS), top])
    posted = won.sum(axis=1)
    assert (posted == _posted({})).all() and 0.9 < posted.mean() < 1.1  # two tasks, each posted when v >= 0.5


def test_an_agent_that_answers_at_once_wins_every_task_the_first_choice_decides():
    """First-proposal bias: haste = 1 puts its proposal first whatever its skill; under best choice it changes
    nothing."""
    haste = {"haste": np.tile([1.0, 0.0, 0.0, 0.0], (MARKETS, 1))}
    _, first = _step({}, actions=haste)
    np.testing.assert_array_equal(first.events["won"][:, 0], _posted({}))
    values, honest = _step({"first_bias": 0.0})
    _, hasty = _step({"first_bias": 0.0}, actions=haste)
    np.testing.assert_array_equal(hasty.events["won"], honest.events["won"])


def test_a_shortfall_customers_do_not_notice_saves_its_cost_unless_an_unasked_audit_finds_it():
    """Every agent's skill 0.8, best choice, effort 0.85 (a 15% shortfall, under notice = 0.2): per task the
    agent saves c (1 - e) theta = 0.036; audited at rate a it expects to lose a (rate theta + penalty)."""
    c, theta, e, penalty = 0.3, 0.8, 0.85, 0.2
    effort = {"quality": np.full((MARKETS, 4), e)}
    for a in (0.0, 0.3):
        config = {"first_bias": 0.0, "audit_rate": a, "penalty": penalty, "resolution": "audit", "audit_fee": 0.1}
        _, honest = _step(config, values=theta)
        _, shading = _step(config, values=theta, actions=effort)
        tasks = honest.events["won"].sum()
        gain = (shading.outcome.utility - honest.outcome.utility).sum() / tasks
        expect = c * (1 - e) * theta - a * (0.5 * theta + penalty)
        assert gain == pytest.approx(expect, abs=0.01)
        refunded = shading.events["refunded"].sum() / tasks
        assert refunded == pytest.approx(a, abs=0.03)  # only the unasked audits find it
        np.testing.assert_array_equal(shading.state["strikes"], shading.events["refunded"])


@pytest.mark.parametrize("resolution", ["refund", "audit"])
def test_a_noticed_shortfall_is_disputed_refunded_and_struck_and_an_audit_also_charges_the_agent(resolution):
    config = {"resolution": resolution, "audit_fee": 0.1, "penalty": 0.2, "first_bias": 0.0}
    values, step = _step(config, actions={"quality": np.full((MARKETS, 4), 0.5)})
    won = step.events["won"]
    np.testing.assert_array_equal(step.events["refunded"], won)
    np.testing.assert_array_equal(step.outcome.receipts, 0.0)  # the escrow goes back to the customers
    charged = 0.3 * won if resolution == "audit" else 0.0
    np.testing.assert_allclose(step.outcome.payments, charged)
    np.testing.assert_allclose(step.outcome.utility, -0.3 * 0.5 * np.clip(values, 0, 1) * won - charged)
    np.testing.assert_array_equal(step.state["strikes"], won)


def test_fake_disputes_strike_rivals_out_under_refunds_and_cost_their_price_and_fee_under_audits():
    """Seat 0 buys 3 puppet tasks a round, one from each rival. Refunded unexamined: each rival takes a strike per
    round and three strikes suspend it; the puppeteer pays only the accounts. Audited: no strike, and the
    puppeteer pays each rival's price and the fee."""
    fakes = {"fakes": np.tile([3.0, 0.0, 0.0, 0.0], (MARKETS, 1))}
    config = {"suspend_after": 3.0}
    state = None
    for round_ in range(4):
        values, step = _step(config, state=state, actions=fakes, seed=round_)
        state = step.state
        suspended = step.events["suspended"][:, 1:]
        assert (suspended == (round_ == 3)).all()
        if round_ < 3:
            np.testing.assert_array_equal(state["strikes"][:, 1:], round_ + 1)
    assert (step.events["won"][:, 1:] == 0).all()  # seat 0 is left alone
    np.testing.assert_array_equal(step.events["won"][:, 0], _posted(config, seed=3))
    _, honest = _step({}, seed=9)
    _, faking = _step({}, actions=fakes, seed=9)
    np.testing.assert_allclose(honest.outcome.utility[:, 0] - faking.outcome.utility[:, 0], 0.03)  # 3 accounts
    audit = {"resolution": "audit", "audit_fee": 0.1}
    values, audited = _step(audit, actions=fakes, seed=9)
    np.testing.assert_array_equal(audited.state["strikes"], 0.0)
    _, plain = _step(audit, seed=9)
    cost = (0.5 * np.clip(values[:, 1:], 0, 1) + 0.1).sum(axis=1) + 0.03
    np.testing.assert_allclose(plain.outcome.utility[:, 0] - audited.outcome.utility[:, 0], cost)


def test_welfare_is_everyones_surplus_customers_and_platform_included():
    """Transfers cancel: welfare = agents' utility + customers' surplus + the platform's revenue, with random
    effort, haste and puppets under every design; revenue is fees and penalties less audits."""
    rng = np.random.default_rng(5)
    actions = {"quality": rng.random((MARKETS, 4)), "haste": rng.random((MARKETS, 4)),
               "fakes": rng.random((MARKETS, 4)) * (rng.random((MARKETS, 4)) < 0.3)}
    for config in (*SERVICE.examples, {"resolution": "audit", "audit_fee": 0.2, "audit_cost": 0.05}):
        _, step = _step(config, actions=actions, seed=6)
        out = step.outcome
        total = out.utility.sum(axis=1) + step.events["customer"].sum(axis=1) + out.revenue
        np.testing.assert_allclose(out.welfare, total, atol=1e-12)
        assert (out.welfare <= out.max_welfare + 1e-12).all()
    cfg = ServiceConfig(audit_cost=0.0, resolution="audit", audit_fee=0.1, penalty=0.2)
    _, step = _step(cfg.model_dump(), actions=actions, seed=6)
    assert (step.outcome.revenue >= -1e-12).all() and step.outcome.revenue.max() > 0


def test_actions_outside_the_schema_are_flagged_inside_the_batch_not_raised():
    bad = {"quality": np.tile([1.5, 1.0, 1.0, 1.0], (MARKETS, 1)), "haste": np.tile([0.0, -1.0, 0.0, 0.0], (MARKETS, 1)),
           "fakes": np.tile([0.0, 0.0, np.nan, 0.0], (MARKETS, 1))}
    rng = np.random.default_rng(7)
    values, priority = rng.random((MARKETS, 4)), rng.random((MARKETS, 4))
    state = SERVICE.initial(SERVICE.config({}), MARKETS, 4)
    step = advance(SERVICE, {}, state, values, np.ones((MARKETS, 4)), priority, actions=bad, strict=False)
    assert not step.outcome.valid[:, :3].any() and step.outcome.valid[:, 3].all()
    clean = advance(SERVICE, {}, state, values, np.ones((MARKETS, 4)), priority)
    np.testing.assert_array_equal(step.events["delay"], clean.events["delay"])  # the fields fell back to defaults


@pytest.mark.slow
def test_the_search_finds_haste_and_fake_disputes_and_the_repair_closes_them():
    """No attack named: the policy search over proposing, effort, haste and puppet tasks finds the first-proposal
    bias at launch (it answers at once and takes most tasks) with a shortfall just under what customers notice
    (effort 0.8) and, once proposals are ranked, fake disputes that strike the rivals out; under the repair it
    finds nothing (upper bound below 0.003 per round)."""
    table = load_usecase("service_marketplace").use_case_table(("launch", "ranked", "repaired"), generations=12,
                                                               markets=150, eval_markets=800)
    launch, ranked, repaired = (table["found"][d] for d in ("launch", "ranked", "repaired"))
    assert launch["gain"]["ci95"][0] > 0.04 and launch["behaviour"]["haste"] > 0.8, launch
    assert launch["behaviour"]["task_share"] > 0.8 and 0.79 < launch["behaviour"]["effort"] < 0.85, launch  # shading
    assert ranked["gain"]["ci95"][0] > 0.02 and ranked["behaviour"]["rivals_suspended"] > 0.3, ranked
    assert repaired["gain"]["ci95"][1] < 0.003, repaired
    cost = table["costs"]["repaired - launch"]
    assert cost["revenue"]["ci95"][1] < 0  # the platform pays for its audits
    assert cost["welfare"]["ci95"][0] > 0  # and tasks go to skill, not speed
