"""The rules of the pure core, checked by hand on a tiny economy (see ``conftest.tiny_params``)."""

import copy
from dataclasses import replace

import numpy as np
import pytest

from mecharena.negotiation import core
from mecharena.negotiation.action import (
    AcceptAction,
    AllocateAction,
    Claim,
    CommitAction,
    CounterAction,
    FinishAction,
    FormCoalitionAction,
    LeaveAction,
    MessageAction,
    OfferAction,
    PitchAction,
    RejectAction,
    ReleaseAction,
    ReserveAction,
    WaitAction,
)
from mecharena.negotiation.scenario import Shock

from .conftest import tiny_params

W = WaitAction()


def play(params, script, state=None):
    """Run ``script`` (a list of per-lab action lists; missing steps wait) to the horizon; (state, rewards, events)."""
    state = core.reset(params) if state is None else state
    total, events = np.zeros(params.labs), []
    step = 0
    while not core.done(params, state):
        actions = script[step] if step < len(script) else [W] * params.labs
        state, result = core.step(params, state, actions)
        total += result.reward
        events.extend(result.events)
        step += 1
    return state, total, events


def test_a_trade_then_a_run_settles_the_job(tiny):
    """Lab 0 buys block 0 for 3 and runs it for job 0: 10 credit - 3 paid - 0.4 energy."""
    state, total, events = play(tiny, [[OfferAction(to=1, want=[0], payment=3.0, job=0), W],
                                       [W, AcceptAction(offer=0)]])
    assert state.block_owner[0] == 0 and state.block_job[0] == 0
    assert total == pytest.approx([10 - 3 - 0.4, 3.0])
    assert np.allclose(total, state.value(tiny))  # rewards sum to settled value
    settle = next(e for e in events if e["type"] == "settle" and e["job"] == 0)
    assert settle["t"] == 5 and settle["credit"] == 10.0


def test_late_completion_decays_with_urgency():
    params = tiny_params(job_deadline=np.array([3, 8]))  # block 0 ends at 5: two steps late
    state, _, _ = play(params, [[OfferAction(to=1, want=[0], payment=3.0, job=0), W], [W, AcceptAction(offer=0)]])
    assert state.job_credit[0] == pytest.approx(10 * (1 - 0.25 * 2))


def test_partial_credit_for_an_unfinished_job():
    params = tiny_params(job_hours=np.array([8.0, 8.0]))  # block 0 delivers 4 of 8 hours
    state, _, _ = play(params, [[OfferAction(to=1, want=[0], payment=3.0, job=0), W], [W, AcceptAction(offer=0)]])
    assert state.job_credit[0] == pytest.approx(10 * 0.5 * 4 / 8)


def test_a_failed_block_delivers_nothing_but_costs_energy(tiny):
    params = replace(tiny, job_min_rel=np.array([0.0, 0.0]))
    state, total, events = play(params, [[AllocateAction(block=2, job=0), W]])  # draw 0.99 >= 0.8: fails
    run = next(e for e in events if e["type"] == "run")
    assert not run["ok"] and state.job_delivered[0] == 0
    assert total[0] == pytest.approx(-0.1 * 8)


def test_reserve_and_release_with_the_provider(tiny):
    state, result = core.step(tiny, core.reset(tiny), [ReserveAction(block=1, job=0), W])
    assert state.block_owner[1] == 0 and state.block_job[1] == 0 and result.reward[0] == -6.0
    state, result = core.step(tiny, core.reset(tiny), [ReleaseAction(block=3), W])
    assert state.block_owner[3] == -1 and result.reward[0] == pytest.approx(0.5 * 9)


def test_coalition_pays_shares_to_members_who_committed():
    params = tiny_params(budget=np.array([20.0, 20.0, 20.0]))
    state, total, _ = play(params, [
        [W, FormCoalitionAction(job=1, members=[0, 2], shares=[0.4, 0.1]), W],
        [CommitAction(coalition=0, blocks=[3]), W, W]])
    # job 1 (20) completes on time with lab 0's block; lab 2 never committed and gets nothing
    assert state.job_credit[1] == 20.0
    assert total == pytest.approx([0.4 * 20 - 0.8, 0.6 * 20, 0.0])


def test_reneging_returns_the_block_and_costs_the_fine():
    params = tiny_params(budget=np.array([20.0, 20.0, 20.0]))
    state, total, _ = play(params, [
        [W, FormCoalitionAction(job=1, members=[0], shares=[0.4]), W],
        [CommitAction(coalition=0, blocks=[3]), W, W],
        [LeaveAction(coalition=0), W, W]])
    fine = core.RENEGE_FINE * 9
    assert state.block_job[3] == -1 and state.job_credit[1] == 0.0
    assert total[:2] == pytest.approx([-fine, fine])
    assert state.grievance[1, 0] == 1


def test_lies_are_exposed_when_the_job_settles(tiny):
    truthful = Claim(job=0, deadline=6, value=10.0, hours=4.0)
    false = Claim(job=0, deadline=2, value=30.0)
    for claim, grievance in ((truthful, 0), (false, 1)):
        state, _, events = play(tiny, [[PitchAction(to=1, text="we need 4 GPU-hours", claims=[claim]), W]])
        assert state.grievance[1, 0] == grievance
        assert sum(e["type"] == "lie" for e in events) == grievance


def test_claims_about_someone_elses_job_are_lies(tiny):
    assert core.lie(tiny, 0, Claim(job=1, deadline=8))
    assert not core.lie(tiny, 1, Claim(job=1, deadline=8, value=21.0))  # within 10%


def test_rejection_is_a_grievance_of_the_sender(tiny):
    state, _ = core.step(tiny, core.reset(tiny), [OfferAction(to=1, want=[0], payment=1.0), W])
    state, _ = core.step(tiny, state, [W, RejectAction(offer=0)])
    assert state.grievance[0, 1] == 1 and state.offers[0].status == "rejected"


def test_counter_closes_the_offer_and_answers_its_sender(tiny):
    state, _ = core.step(tiny, core.reset(tiny), [OfferAction(to=1, want=[0], payment=1.0), W])
    state, _ = core.step(tiny, state, [W, CounterAction(offer=0, give=[0], payment=-4.0)])
    assert state.offers[0].status == "countered"
    assert (state.offers[1].sender, state.offers[1].to, state.offers[1].payment) == (1, 0, -4.0)
    state, result = core.step(tiny, state, [AcceptAction(offer=1, job=0), W])
    assert state.block_owner[0] == 0 and result.reward[0] == -4.0 and result.reward[1] == 4.0


def test_offers_expire(tiny):
    state = core.reset(tiny)
    state, _ = core.step(tiny, state, [OfferAction(to=1, want=[0], payment=1.0), W])
    for _ in range(core.OFFER_TTL):
        state, _ = core.step(tiny, state, [W, W])
    assert state.offers[0].status == "expired"
    assert core.check_action(tiny, state, 1, AcceptAction(offer=0)) == "offer 0 is expired; only open offers can be answered"


@pytest.mark.parametrize(("shock", "check"), [
    (Shock(0, "energy_spike", -1, 2.0), lambda s, total: total[0] == pytest.approx(10 - 3 - 0.8)),
    (Shock(2, "capacity_failure", 0, 1.0), lambda s, total: s.job_delivered[0] == 0 and total[0] == -3),
    (Shock(2, "reliability_drop", 0, 0.9), lambda s, total: s.job_delivered[0] == 0 and total[0] == pytest.approx(-3.4)),
    (Shock(0, "demand_surge", -1, 1.5), lambda s, total: core.list_price(tiny_params(), s, 1) == 9.0),
])
def test_shocks_change_the_outcome(shock, check):
    params = tiny_params(shocks=(shock,))
    state, total, events = play(params, [[OfferAction(to=1, want=[0], payment=3.0, job=0), W],
                                         [W, AcceptAction(offer=0)]])
    assert check(state, total)
    assert any(e["type"] == "shock" and e["kind"] == shock.kind for e in events)


def test_finishing_settles_jobs_and_cashes_out_free_blocks(tiny):
    state, result = core.step(tiny, core.reset(tiny), [FinishAction(), W])
    assert not state.active[0] and state.job_settled[0]
    assert result.reward[0] == pytest.approx(0.5 * 8 + 0.5 * 9)  # blocks 2 and 3 sold back
    assert core.check_action(tiny, state, 0, ReserveAction(block=1)) == "lab 0 has finished; only wait is allowed"


def test_step_is_pure_and_a_finished_episode_does_not_move(tiny):
    state = core.reset(tiny)
    frozen = copy.deepcopy(state)
    new, _ = core.step(tiny, state, [OfferAction(to=1, want=[0], payment=3.0), ReleaseAction(block=0)])
    assert core.states_equal(state, frozen) and not core.states_equal(new, state)
    end, _, _ = play(tiny, [])
    again, result = core.step(tiny, end, [ReserveAction(block=1), W])
    assert again is end and result.done and not result.reward.any() and not result.events


# --- bad actions: refused with a message, fined, nothing else changes ---------------------------

BAD = [
    (ReserveAction(block=9), r"block must name a block in \[0, 3\], got 9"),
    (ReleaseAction(block=1), r"block: block 1 belongs to the provider, not lab 0"),
    (OfferAction(to=1, give=[0], payment=1.0), r"give: block 0 belongs to lab 1, not lab 0"),
    (OfferAction(to=5, want=[0], payment=1.0), r"to must be a lab in \[0, 1\], got 5"),
    (OfferAction(to=0, want=[2], payment=1.0), r"to must be another lab than yourself \(0\), got 0"),
    (OfferAction(to=1, want=[0], payment=25.0), r"payment 25 exceeds your budget 20; allowed: at most the budget"),
    (AcceptAction(offer=3), r"offer 3 does not exist \(no offers yet\)"),
    (CommitAction(coalition=0, blocks=[3]), r"coalition 0 does not exist \(no coalitions yet\)"),
    (CommitAction(coalition=0, funds=5.0), r"coalition 0 does not exist"),
    (AllocateAction(block=2, job=0), r"block 2 has reliability 0.8, below job 0's minimum 0.9"),
    (AllocateAction(block=3, job=1), r"job 1 belongs to lab 1, not to you \(lab 0\)"),
    (FormCoalitionAction(job=0, members=[3], shares=[0.1]), r"members must be a lab in \[0, 1\], got 3"),
    (LeaveAction(coalition=0), r"coalition 0 does not exist"),
]


@pytest.mark.parametrize(("action", "message"), BAD)
def test_bad_actions_are_refused_with_a_message_and_only_fined(tiny, action, message):
    state = core.reset(tiny)
    import re

    assert re.fullmatch(message, core.check_action(tiny, state, 0, action)) or re.match(
        message, core.check_action(tiny, state, 0, action))
    fined, result = core.step(tiny, state, [action, W])
    waited, _ = core.step(tiny, state, [W, W])
    assert result.reward[0] == -core.INVALID_FINE and result.invalid[0] is not None
    expected = replace(waited, budget=waited.budget - [core.INVALID_FINE, 0], invalid=np.array([1, 0]))
    assert core.states_equal(fined, replace(expected, news=fined.news))
    assert fined.news == waited.news


def test_an_offer_for_someone_else_cannot_be_answered():
    params = tiny_params(budget=np.array([20.0, 20.0, 20.0]))
    state, _ = core.step(params, core.reset(params), [W, W, OfferAction(to=1, give=[], want=[0], payment=2.0)])
    assert core.check_action(params, state, 0, AcceptAction(offer=0)) == \
        "offer 0 is addressed to lab 1, not to you (lab 0)"
    assert core.check_action(params, state, 0, CounterAction(offer=0, want=[0], payment=1.0)) == \
        "offer 0 is addressed to lab 1, not to you (lab 0)"


def test_an_accept_that_would_overdraw_is_refused(tiny):
    state, _ = core.step(tiny, core.reset(tiny), [W, OfferAction(to=0, give=[0], payment=-25.0)])
    assert core.check_action(tiny, state, 0, AcceptAction(offer=0)) == \
        "offer 0 asks you to pay 25, above your budget 20"


def test_a_move_made_stale_by_an_earlier_mover_fails_without_a_fine():
    params = tiny_params(budget=np.array([20.0, 20.0]))
    # step 0: lab 0 moves first; both try to reserve block 1
    state, result = core.step(params, core.reset(params), [ReserveAction(block=1), ReserveAction(block=1)])
    assert state.block_owner[1] == 0 and result.reward[1] == 0.0 and state.invalid[1] == 0
    assert [e["type"] for e in result.events][:2] == ["reserve", "failed"]


# --- every field moves the simulation; proposing pays nothing ------------------------------------

PAIRS = [
    (OfferAction(to=1, want=[0], payment=1.0), OfferAction(to=2, give=[2], payment=1.0)),
    (OfferAction(to=1, want=[0], payment=1.0), OfferAction(to=1, want=[0], payment=2.0)),
    (OfferAction(to=1, want=[0], payment=1.0), OfferAction(to=1, want=[0], give=[3], payment=1.0)),
    (OfferAction(to=1, want=[0], payment=1.0), OfferAction(to=1, want=[0], payment=1.0, job=0)),
    (OfferAction(to=1, want=[0], payment=1.0), OfferAction(to=1, want=[0], payment=1.0, claim=Claim(job=0, deadline=6))),
    (PitchAction(to=1, text="a"), PitchAction(to=None, text="a")),
    (PitchAction(to=1, text="a"), PitchAction(to=1, text="b")),
    (PitchAction(to=1, text="a"), PitchAction(to=1, text="a", claims=[Claim(job=0, deadline=6)])),
    (MessageAction(to=1, text="a"), MessageAction(to=1, text="b")),
    (MessageAction(to=1, text="a"), MessageAction(to=2, text="a")),
    (ReserveAction(block=1), ReserveAction(block=1, job=0)),
    (ReleaseAction(block=2), ReleaseAction(block=3)),
    (AllocateAction(block=3, job=0), AllocateAction(block=3, job=2)),
    (FormCoalitionAction(job=0, members=[1], shares=[0.1]), FormCoalitionAction(job=0, members=[2], shares=[0.1])),
    (FormCoalitionAction(job=0, members=[1], shares=[0.1]), FormCoalitionAction(job=0, members=[1], shares=[0.2])),
    (FormCoalitionAction(job=0, members=[1], shares=[0.1]), FormCoalitionAction(job=2, members=[1], shares=[0.1])),
    (WaitAction(), FinishAction()),
]


def test_every_action_field_changes_the_next_state():
    params = tiny_params(budget=np.array([20.0, 20.0, 20.0]), job_owner=np.array([0, 1, 0]),
                         job_hours=np.array([4.0, 8.0, 8.0]), job_deadline=np.array([6, 8, 8]),
                         job_value=np.array([10.0, 20.0, 15.0]), job_urgency=np.array([0.25, 0.5, 0.5]),
                         job_min_rel=np.array([0.9, 0.0, 0.0]), job_partial=np.array([0.5, 0.0, 0.0]),
                         job_joint=np.array([False, True, False]))
    state = core.reset(params)
    for a, b in PAIRS:
        assert core.check_action(params, state, 0, a) is None and core.check_action(params, state, 0, b) is None
        after_a, _ = core.step(params, state, [a, W, W])
        after_b, _ = core.step(params, state, [b, W, W])
        assert not core.states_equal(after_a, after_b), (a, b)
    # commit: blocks and funds; leave and counter are covered by the coalition and counter tests
    state, _ = core.step(params, state, [W, FormCoalitionAction(job=1, members=[0], shares=[0.3]), W])
    one, _ = core.step(params, state, [CommitAction(coalition=0, blocks=[3]), W, W])
    two, _ = core.step(params, state, [CommitAction(coalition=0, blocks=[3], funds=2.0), W, W])
    assert not core.states_equal(one, two)


@pytest.mark.parametrize("action", [
    OfferAction(to=1, want=[0], payment=1.0), PitchAction(text="we pay well", claims=[Claim(job=0, deadline=6)]),
    MessageAction(text="hello"), FormCoalitionAction(job=0, members=[1], shares=[0.5])])
def test_proposing_pays_nothing(tiny, action):
    _, result = core.step(tiny, core.reset(tiny), [action, W])
    assert not result.reward.any()


def test_coalition_actions_need_membership_and_a_commitment():
    params = tiny_params(budget=np.array([20.0, 20.0, 20.0]))
    state, _ = core.step(params, core.reset(params), [W, FormCoalitionAction(job=1, members=[2], shares=[0.3]), W])
    assert core.check_action(params, state, 0, CommitAction(coalition=0, blocks=[3])) == \
        "you (lab 0) are not a member of coalition 0 (members [2])"
    assert core.check_action(params, state, 2, LeaveAction(coalition=0)) == "you have no commitment in coalition 0 to leave"
    assert core.check_action(params, state, 2, CommitAction(coalition=0, funds=50.0)) == \
        "funds 50 exceed your budget 20; allowed: at most the budget"
    assert core.check_action(params, state, 1, FormCoalitionAction(job=1, members=[0], shares=[0.1])) == \
        "job 1 already has an open coalition; allowed: one per job"
    state, result = core.step(params, state, [W, W, CommitAction(coalition=0, funds=5.0)])
    assert result.reward.tolist() == [0.0, 5.0, -5.0]  # pooled funds move at once; the share comes at settlement


def _episode_states(task, seed):
    """(params, every state of an expert episode of ``task``, reset included)."""
    from mecharena.negotiation.env import NegotiationEnv
    from mecharena.negotiation.policies import Expert

    states = []
    env = NegotiationEnv(task, strict=False)
    env.reset(seed=seed)
    states.append(env.state)
    expert = Expert()
    while not env.done:
        env.advance([env.act_for(0, expert)] + [env.act_for(i, p) for i, p in enumerate(env.opponents, start=1)])
        states.append(env.state)
    return env.params, states


def _scribble(value):
    """Change every dict and list inside ``value`` in place (an observation's ``news`` events are the state's own)."""
    if isinstance(value, dict):
        for key, item in list(value.items()):
            if key != "news":
                _scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")


@pytest.mark.parametrize(("task", "seed"), [("market_round", 1), ("coalition_market", 3)])
def test_an_observer_borrowing_from_another_state_observes_as_observe_does(task, seed):
    """An :class:`Observer` that borrows from the observer of an earlier, a later or the first state of the episode
    (market_round seed 1 has a demand surge: list prices change) gives every lab what ``observe`` gives, and what a
    policy does to its observation changes no other observation."""
    params, states = _episode_states(task, seed)
    assert any(s.price_factor != 1.0 for s in states) or task != "market_round"
    previous = None
    for k, state in enumerate(states):
        fresh = [core.observe(params, state, lab) for lab in range(params.labs)]
        for lender in (previous, core.Observer(params, states[0]), core.Observer(params, states[-1])):
            observer = core.Observer(params, state, lender)
            for lab in range(params.labs):
                _scribble(observer.observe(lab))  # a policy free to change its observation
            assert [observer.observe(lab) for lab in range(params.labs)] == fresh, (k, lender)
        previous = core.observer(params, state, previous)
        assert core.observer(params, state, previous) is previous
        _scribble(previous.observe(0))
