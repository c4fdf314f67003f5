"""Opponent archetypes differ in what they do: prices, acceptance, claims, commitments, grudges."""

from collections import Counter

import numpy as np
import pytest

from mecharena.core.errors import UnknownIdError
from mecharena.negotiation import core
from mecharena.negotiation.action import AcceptAction, OfferAction, RejectAction, WaitAction
from mecharena.negotiation.env import play_episode
from mecharena.negotiation.policies import ARCHETYPES, Archetype, make_policy
from mecharena.negotiation.scenario import RELEASE_REFUND, make_params

from .conftest import tiny_params

W = WaitAction()
RNG = np.random.default_rng(0)


def _offered(params, offer_from_0, steps_before=0):
    """Lab 1's observation after lab 0 made ``offer_from_0`` (following ``steps_before`` waits)."""
    state = core.reset(params)
    for _ in range(steps_before):
        state, _ = core.step(params, state, [W, W])
    state, _ = core.step(params, state, [offer_from_0, W])
    return state


def test_selfish_asks_more_than_cooperative():
    """Lab 1's block 0 is worth 4.35 to it (half of job 1's hours, all-or-nothing): 5.5 clears a 5% markup,
    not a 40% markup plus a 25% surplus."""
    params = tiny_params()
    state = _offered(params, OfferAction(to=1, want=[0], payment=5.5))
    obs = core.observe(params, state, 1)
    assert isinstance(Archetype("cooperative").act(obs, RNG), AcceptAction)
    assert not isinstance(Archetype("selfish").act(obs, RNG), AcceptAction)


def test_retaliatory_refuses_a_lab_that_wronged_it():
    params = tiny_params()
    state = _offered(params, OfferAction(to=1, want=[0], payment=5.5))
    grieved = state.grievance.copy()
    grieved[1, 0] = 1  # lab 0 once rejected, reneged on or lied to lab 1
    from dataclasses import replace

    wronged = replace(state, grievance=grieved)
    assert isinstance(Archetype("retaliatory").act(core.observe(params, state, 1), RNG), AcceptAction)
    assert isinstance(Archetype("retaliatory").act(core.observe(params, wronged, 1), RNG), RejectAction)
    assert isinstance(Archetype("cooperative").act(core.observe(params, wronged, 1), RNG), AcceptAction)


def test_deadline_panicked_overpays_as_the_deadline_nears():
    """Lab 0 needs block 0 (4 h by step 5 for a job worth 10); lab 1 sells it at 13, well above its use value (9.1)."""
    params = tiny_params(job_deadline=np.array([5, 8]), block_start=np.array([4, 4, 4, 5]),
                         block_duration=np.array([1, 1, 2, 1]), block_count=np.array([4, 4, 4, 8]),
                         job_min_rel=np.array([0.0, 0.0]))
    sell = OfferAction(to=0, give=[0], payment=-13.0)

    def lab0_after(steps):
        state = core.reset(params)
        for _ in range(steps):
            state, _ = core.step(params, state, [W, W])
        state, _ = core.step(params, state, [W, sell])
        return core.observe(params, state, 0)

    early, late = lab0_after(0), lab0_after(2)  # deadline 5 steps away, then 2
    assert not isinstance(Archetype("deadline_panicked").act(early, RNG), AcceptAction)
    assert isinstance(Archetype("deadline_panicked").act(late, RNG), AcceptAction)
    assert not isinstance(Archetype("cooperative").act(late, RNG), AcceptAction)


def test_deceptive_lies_and_reneges_the_others_do_not():
    lies, leaves, pitches = Counter(), Counter(), Counter()
    for seed in range(30):
        episode = play_episode("coalition_market", "expert", seed)
        seats = episode.transcript[0]["seats"]
        params = make_params("coalition_market", seed)
        for e in episode.transcript:
            if e["type"] == "pitch":
                from mecharena.negotiation.action import Claim

                pitches[seats[e["lab"]]] += 1
                lies[seats[e["lab"]]] += sum(core.lie(params, e["lab"], Claim(**c)) for c in e["claims"])
            if e["type"] == "leave":
                leaves[seats[e["lab"]]] += 1
    assert lies["deceptive"] > 0 and set(lies) - {"deceptive"} <= {k for k, v in lies.items() if v == 0}
    assert pitches["cooperative"] > 0 and lies["cooperative"] == 0
    assert leaves["deceptive"] > 0 and sum(leaves.values()) == leaves["deceptive"]


def test_no_archetype_gives_blocks_away():
    """Whenever an opponent hands over a block, it is paid at least the provider's buy-back."""
    for task in ("market_round", "coalition_market"):
        for seed in range(15):
            episode = play_episode(task, "expert", seed)
            seats = episode.transcript[0]["seats"]
            params = make_params(task, seed)
            for e in episode.transcript:
                if e["type"] != "trade":
                    continue
                for seller, buyer, blocks, received in ((e["sender"], e["to"], e["give"], -e["payment"]),
                                                        (e["to"], e["sender"], e["want"], e["payment"])):
                    if blocks and seats[seller] in ARCHETYPES:
                        floor = RELEASE_REFUND * sum(params.block_price[b] for b in blocks)
                        assert received >= floor - 1e-9, (task, seed, seats[seller], e)


class _Rude:
    """The expert, except that it rejects every offer it gets (each rejection wrongs the sender)."""

    name = "rude"

    def __init__(self):
        from mecharena.negotiation.policies import Expert

        self.expert = Expert()

    def act(self, obs, rng):
        from mecharena.negotiation.policies import incoming

        offers = incoming(obs)
        return RejectAction(offer=offers[0]["id"]) if offers else self.expert.act(obs, rng)


def test_retaliatory_never_deals_again_with_a_lab_that_rejected_it():
    differ = 0
    for seed in range(20):
        for task, opponents in (("market_round", 3), ("coalition_market", 5)):
            calm = play_episode(task, _Rude(), seed, opponents=["cooperative"] * opponents)
            angry = play_episode(task, _Rude(), seed, opponents=["retaliatory"] * opponents)
            differ += calm.values != angry.values
            wronged_at: dict[int, int] = {}
            for e in angry.transcript:
                if e["type"] == "reject" and e["lab"] == 0:
                    wronged_at.setdefault(e["sender"], e["t"])
                if e["type"] == "trade" and {e["sender"], e["to"]} & {0}:
                    other = e["to"] if e["sender"] == 0 else e["sender"]
                    assert e["t"] <= wronged_at.get(other, e["t"]), (task, seed, e)
                if e["type"] == "offer" and e["to"] == 0:
                    assert e["lab"] not in wronged_at or e["t"] <= wronged_at[e["lab"]], (task, seed, e)
    assert differ > 0


def test_archetypes_change_outcomes():
    """Markets in which every opponent has one archetype end differently for each pair of archetypes
    (the retaliatory one differs from the cooperative one only once wronged: see the test above)."""
    import itertools

    differ = set()
    for seed in range(6):
        results = {name: play_episode("market_round", "expert", seed, opponents=[name] * 3).values
                   for name in ARCHETYPES}
        differ |= {(a, b) for a, b in itertools.combinations(ARCHETYPES, 2) if results[a] != results[b]}
    assert set(itertools.combinations(ARCHETYPES, 2)) - differ == {("cooperative", "retaliatory")}


def test_unknown_policy_suggests_a_name():
    with pytest.raises(UnknownIdError, match=r"unknown policy 'exprt'; allowed: .*did you mean 'expert'\?"):
        make_policy("exprt")
