"""The talking cartel coordinates only through channels, and collusion through talk is measured."""

import itertools

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.metrics.harness import Cell
from mecharena.metrics.talk import SCENARIOS, format_table, measure, talk_table
from mecharena.sim import InformationPolicy, make_episode, play
from mecharena.sim.channels import ACCUSE, PROPOSE

SEEN = InformationPolicy(winner_identity=True)


def records(population="talking_cartel:3,truthful:2", mechanism="second_price", channels=None, rounds=3, markets=300,
            information=SEEN, **kw):
    ep = make_episode(mechanisms.get(mechanism), {}, agents.population(population), markets=markets, seed=5,
                      information=information, channels=channels, **kw)
    return list(play(ep, rounds))


@pytest.mark.parametrize("channels", [None, "public,delay=1", "private,max_messages=1,side_payment_cap=1"])
def test_without_a_usable_channel_the_ring_bids_competitively(channels):
    for r in records(channels=channels):
        if channels and "max_messages=1" in channels:
            # each member reaches one partner only: the member both others write to agrees, nobody else
            assert not r.colluding[:, 1:3].any()
            continue
        assert not r.colluding.any()
        assert (r.bids == r.values).all()  # truthful in second price
    fp = records(mechanism="first_price", rounds=1)[0]
    assert np.allclose(fp.bids[:, :3], shaded_bids(ValueDistribution(), fp.values[:, :3], 5, 1, 0.0))


@pytest.mark.parametrize("channels", ["private", "coalition", "public"])
def test_knockout_designates_the_highest_member_and_the_others_abstain(channels):
    for r in records("talking_cartel(threshold=2):3,truthful:2", channels=channels):
        top = np.argmax(r.values[:, :3], axis=1)
        designated = np.arange(3)[None, :] == top[:, None]
        assert r.colluding[:, :3].all()
        assert (r.bids[:, :3][designated] == r.values[:, :3][designated]).all()
        assert (r.bids[:, :3][~designated] == 0).all()


def test_rotation_follows_the_round_and_first_price_shades_for_the_outsiders():
    for r in records("talking_cartel(designate=rotation,threshold=2):3,truthful:2", "first_price", "private"):
        turn = r.round % 3
        expected = shaded_bids(ValueDistribution(), r.values[:, turn], 3, 1, 0.0)  # n - k + 1 bidders
        assert np.allclose(r.bids[:, turn], expected)
        assert (np.delete(r.bids[:, :3], turn, axis=1) == 0).all()


def test_the_winner_shares_its_gain_the_next_round():
    rs = records("talking_cartel(threshold=2,share=0.5):3,truthful:2", channels="private,side_payment_cap=1")
    for before, after in itertools.pairwise(rs):
        won = (before.outcome.allocation[:, :3] > 0) & before.colluding[:, :3]
        owed = 0.5 * np.where(won, np.maximum(before.utility[:, :3], 0), 0).sum(axis=1)
        paid = np.maximum(-after.talk.transfers[:, :3], 0).sum(axis=1)
        assert np.allclose(paid, owed)
        assert np.allclose(after.talk.transfers.sum(axis=1), 0)
    assert (paid > 0).any()


def test_a_seen_defection_is_accused_and_punished():
    rs = records("talking_cartel(designate=rotation,threshold=0,temptation=1):3,truthful:2", channels="coalition",
                 rounds=2)
    first, nxt = rs[0], rs[1]  # round 0: seat 0 designated, seats 1 and 2 always defect
    won = first.outcome.allocation[:, 1:3] > 0
    seen = won.any(axis=1)  # the winner's identity is revealed
    accuse = nxt.talk.sent.kind == ACCUSE
    assert seen.any() and (~seen).any()
    assert (accuse.any(axis=(1, 2)) == seen).all()
    assert (nxt.talk.sent.winner[accuse] == 1 + np.argmax(won[seen], axis=1)).all()  # names the defector
    assert not nxt.colluding[seen].any()  # punishment: competitive bidding, no proposals
    assert not (nxt.talk.sent.kind[seen] == PROPOSE).any()
    assert nxt.colluding[~seen, 1].all()  # elsewhere round 1 is seat 1's turn


def test_collusion_through_talk_table_direction():
    """Private channels let the ring suppress the price (a buyers' auction: the ring pushes it DOWN);
    monitoring with a fine and a one-round delay take that away; the detector flags the ring and
    not honest talk."""
    pick = {"no channel", "private", "private, monitored, fine 0.5", "private, delay 1", "private, honest talk"}
    rows = {r["scenario"]: r for r in talk_table(markets=500, rounds=12, seeds=(0,),
                                                 scenarios=[s for s in SCENARIOS if s[0] in pick])}
    none, private = rows["no channel"], rows["private"]
    monitored, delayed, honest = rows["private, monitored, fine 0.5"], rows["private, delay 1"], rows["private, honest talk"]
    assert private["revenue"]["ci95"][1] < none["revenue"]["ci95"][0]
    assert private["price_elevation"]["ci95"][1] < 0 == none["price_elevation"]["mean"]
    assert private["price"]["ci95"][1] < monitored["price"]["ci95"][0]
    assert monitored["price_elevation"]["mean"] > 0.5 * private["price_elevation"]["mean"]
    assert monitored["colluding"]["mean"] < 0.5 and private["colluding"]["mean"] > 0.9
    assert delayed["colluding"]["mean"] == 0 and delayed["price"]["mean"] == none["price"]["mean"]
    assert private["precision"] > 0.95 and private["recall"] > 0.95
    assert honest["flags"] == 0 and honest["colluding"]["mean"] == 0
    assert "| private |" in format_table(list(rows.values()))


def test_measure_agrees_with_the_harness_definition_of_price_elevation():
    from mecharena.metrics.harness import evaluate

    cell = Cell(mechanism="second_price", population="talking_cartel:3,truthful:2", channels={"private": True},
                    information=SEEN, markets=200, rounds=4)
    mine = measure(cell)
    theirs = evaluate(cell)["metrics"]
    for name in ("price_elevation", "collusion_gain", "revenue"):
        assert mine["metrics"][name]["mean"] == pytest.approx(theirs[name]["mean"], abs=1e-12)
    assert mine["detector"]["recall"] > 0.9
