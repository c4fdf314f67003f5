"""Message channels in the round loop: delivery by channel and delay, drops, side payments, the detector."""

import json

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Action, AgentType, NoParams, Outbox
from mecharena.agents.population import Group, Population
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.ledger.writer import record_episode
from mecharena.mechanisms.policy import Enforcement
from mecharena.sim import channels as ch
from mecharena.sim.loop import make_episode, play


def talker(fill, name: str = "talker") -> AgentType:
    """Bids its value; ``fill(box, values, round)`` writes its messages; its state is the last inbox heard."""

    def talk(context, params, state, values, inbox, draws):
        b, s = values.shape
        box = Outbox.empty(b, s, 3)
        fill(box, values, 0 if state is None else int(state[1]) + 1)
        return box

    def hear(context, params, state, values, inbox, draws):
        return inbox, (-1 if state is None else state[1]) + 1

    return AgentType(name=name, version=1, summary="test talker", act=lambda c, p, s, v, d: Action(bids=v.copy()),
                     talk=talk, hear=hear)


def population(agent: AgentType, talkers: int, truthful: int = 0) -> Population:
    groups = [Group(agent, NoParams(), talkers, 0, 1)]
    if truthful:
        groups.append(Group(agents.REGISTRY.get("truthful"), NoParams(), truthful, talkers, 1))
    return Population(tuple(groups))


def episode(agent, talkers=3, truthful=0, channels=None, markets=4, enforcement=None, mechanism="second_price"):
    return make_episode(mechanisms.get(mechanism), {}, population(agent, talkers, truthful), markets=markets, seed=1,
                        channels=channels, enforcement=enforcement)


def send(channel, to=-1, kind=ch.CHAT, value=None, payment=0.0, slot=0, seat=None):
    def fill(box, values, t):
        rows = slice(None) if seat is None else slice(seat, seat + 1)
        box.channel[:, rows, slot] = channel
        box.to[:, rows, slot] = to
        box.kind[:, rows, slot] = kind
        box.value[:, rows, slot] = t if value is None else value
        box.payment[:, rows, slot] = payment
    return fill


def test_without_channels_nothing_changes_and_silent_agents_are_unaffected_by_open_channels():
    pop = agents.population("bne:2,truthful:3")
    plain = make_episode(mechanisms.get("first_price"), {}, pop, markets=50, seed=3)
    opened = make_episode(mechanisms.get("first_price"), {}, pop, markets=50, seed=3,
                          channels={"public": True, "private": True, "monitored": True})
    for a, b in zip(play(plain, 3), play(opened, 3), strict=True):
        assert a.talk is None and b.talk is not None
        assert (a.bids == b.bids).all() and (a.utility == b.utility).all() and (a.digest == b.digest).all()
        assert not b.talk.sent.channel.any() and b.notes == ()


def test_each_channel_reaches_exactly_its_readers():
    seats = 5
    # seat 0 sends public; seat 1 private to 3; seat 2 on the coalition channel (coalition {2, 4})
    msgs = ch.Messages.empty(1, seats, 1)
    msgs.channel[0, :3, 0] = (ch.PUBLIC, ch.PRIVATE, ch.COALITION)
    msgs.to[0, 1, 0] = 3
    policy = ch.ChannelPolicy(public=True, private=True, coalition=True, coalitions=((2, 4),))
    readable = ch.route(msgs, ch.together(policy, [], seats))
    assert readable[0, 0, 0].tolist() == [False, True, True, True, True]
    assert readable[0, 1, 0].tolist() == [False, False, False, True, False]
    assert readable[0, 2, 0].tolist() == [False, False, False, False, True]
    box = ch.inbox(msgs, readable, slice(3, 5))  # seats 3 and 4
    assert box.channel[0, 0, :, 0].tolist() == [ch.PUBLIC, ch.PRIVATE, 0, 0, 0]
    assert box.channel[0, 1, :, 0].tolist() == [ch.PUBLIC, 0, ch.COALITION, 0, 0]


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_messages_arrive_delay_rounds_after_they_are_sent(delay):
    ep = episode(talker(send(ch.PUBLIC)), channels={"public": True, "delay": delay})
    for record in play(ep, 6):
        got = record.talk.delivered
        if record.round < delay:
            assert not got.channel.any()
        else:
            assert (got.sent[got.channel > 0] == record.round - delay).all() and got.channel.any()
            assert (got.value[got.channel > 0] == record.round - delay).all()  # the content sent then


def test_agents_hear_what_was_delivered_before_they_act():
    seen = []

    def act(context, params, state, values, draws):
        inbox, _ = state
        seen.append(inbox.value[inbox.channel > 0].copy())
        return Action(bids=values.copy())

    base = talker(send(ch.PUBLIC, value=0.25))
    agent = AgentType(name="reader", version=1, summary="", act=act, talk=base.talk, hear=base.hear)
    list(play(episode(agent, channels="public"), 2))
    assert all(s.size and (s == 0.25).all() for s in seen)


def test_invalid_messages_are_dropped_and_counted_the_rest_delivered():
    def fill(box, values, t):
        box.channel[:, 0, 0], box.to[:, 0, 0] = ch.PRIVATE, 9  # no seat 9
        box.channel[:, 1, 0], box.to[:, 1, 0] = ch.PRIVATE, 1  # to itself
        box.channel[:, 2, 0] = ch.PUBLIC  # closed
        box.channel[:, 0, 1], box.to[:, 0, 1], box.value[:, 0, 1] = ch.PRIVATE, 2, np.nan  # not finite
        box.channel[:, 1, 1], box.to[:, 1, 1] = ch.PRIVATE, 2  # fine
        box.channel[:, 2, 1], box.to[:, 2, 1], box.payment[:, 2, 1] = ch.PRIVATE, 0, -1.0  # negative payment
        box.channel[:, 2, 2], box.to[:, 2, 2] = ch.PRIVATE, 0  # beyond max_messages=2

    record = next(play(episode(talker(fill), channels={"private": True, "max_messages": 2}), 1))
    assert record.talk.dropped[0].tolist() == [2, 1, 3]
    assert record.talk.sent.channel[0].tolist() == [[0, 0], [0, ch.PRIVATE], [0, 0]]
    assert record.talk.readable[0, 1, 1].tolist() == [False, False, True]


def test_side_payments_move_utility_within_the_cap_and_the_payers_means():
    # every talker pays 0.3 then 0.5 to the next seat each round; cap 0.6, no endowment
    def fill(box, values, t):
        for slot, amount in ((0, 0.3), (1, 0.5)):
            box.channel[:, :, slot], box.payment[:, :, slot] = ch.PRIVATE, amount
            box.to[:, :, slot] = (np.arange(3) + 1) % 3

    paying = episode(talker(fill), channels={"private": True, "side_payment_cap": 0.6}, markets=300)
    silent_plain = make_episode(mechanisms.get("second_price"), {}, population(talker(lambda b, v, t: None), 3),
                                markets=300, seed=1)
    wealth = np.zeros((300, 3))
    for base, record in zip(play(silent_plain, 4), play(paying, 4), strict=True):
        moved = record.talk.transfers
        assert np.allclose(moved.sum(axis=1), 0.0)
        assert np.allclose(record.utility, base.utility + moved)
        # a payment is granted only within the payer's means (wealth plus this round's utility)
        means = wealth + base.utility
        first = np.where(0.3 <= np.minimum(means, 0.6) + 1e-12, 0.3, 0.0)
        second = np.where(0.5 <= np.minimum(means, 0.6) - first + 1e-12, 0.5, 0.0)
        out = first + second  # what each seat paid
        assert (out <= 0.6 + 1e-12).all()
        expected = -out + np.roll(out, 1, axis=1)
        assert np.allclose(moved, expected)
        assert (record.talk.refused == (2 - (first > 0) - (second > 0))).all()
        wealth = wealth + record.utility
    assert record.talk.refused.any() and (record.talk.transfers != 0).any()


def test_the_operator_fines_flagged_agreements_once_on_monitored_channels():
    rules = Enforcement(collusion_penalty=0.4, audit_probability=0.5)
    pop = "talking_cartel(threshold=2):3,truthful:2"  # never tempted: every member honours the agreement
    kw = {"markets": 400, "seed": 2, "enforcement": rules}
    watched = make_episode(mechanisms.get("second_price"), {}, agents.population(pop), channels="private,monitored", **kw)
    unwatched = make_episode(mechanisms.get("second_price"), {}, agents.population(pop), channels="private", **kw)
    a, b = next(play(watched, 1)), next(play(unwatched, 1))
    assert a.talk.flagged.any() and not b.talk.flagged.any()
    assert (a.talk.flagged == a.colluding).all()  # the ring's proposals, honoured
    caught = a.audited[:, None] & a.colluding
    assert np.allclose(a.penalties, 0.4 * (a.talk.flagged | caught))
    assert np.allclose(b.penalties, 0.4 * caught)


def test_messages_are_traced_in_the_notes_and_the_ledger(tmp_path):
    ep = episode(talker(send(ch.PRIVATE, to=0, kind=ch.REPORT, seat=1)), channels="private", markets=2)
    record = next(play(ep, 1))
    notes = [n for n in record.notes if n["kind"] == "message"]
    assert len(notes) == 2 and {n["market"] for n in notes} == {0, 1}
    assert notes[0] | {"text": None} == {"kind": "message", "text": None, "round": 0, "agent": "talker", "market": 0,
                                          "seat": 1, "channel": "private", "to": 0, "message": "report", "winner": -1,
                                          "cap": 0.0, "value": 0.0, "payment": 0.0, "delivered": 0}
    quiet = episode(talker(send(ch.PRIVATE, to=0, seat=1)), channels="private,trace=false", markets=2)
    assert next(play(quiet, 1)).notes == ()
    directory = record_episode(ep, tmp_path / "ledger", rounds=2)
    lines = [json.loads(line) for line in (directory / "traces.jsonl").read_text().splitlines()]
    assert [(n["round"], n["message"]) for n in lines] == [(0, "report")] * 2 + [(1, "report")] * 2


def test_boundary_messages_are_refused_with_field_value_and_allowed():
    policy = ch.ChannelPolicy(private=True, max_messages=2, side_payment_cap=0.5)
    ok = ch.check_messages(policy, [{"channel": "private", "to": 2, "payment": 0.2}], 0, 3, 1.0)
    assert ok[0].to == 2
    cases = [
        ([{"channel": "private", "to": 7}], r"messages\[0\]\.to must be a seat in \[0, 2\] other than the sender 0, got 7"),
        ([{"channel": "private", "to": 0}], r"other than the sender 0, got 0"),
        ([{"channel": "public"}], r"messages\[0\]\.channel must be one of the open channels \('private',\), got 'public'"),
        ([{"channel": "private", "to": 1}] * 3, r"at most max_messages=2 per round, got 3"),
        ([{"channel": "private", "to": 1, "payment": 0.3}] * 2, r"side payments to 0.6, above side_payment_cap=0.5"),
        ([{"channel": "private", "to": 1, "payment": 0.4}], None),
        ([{"channel": "private", "to": 1, "winner": 5}], r"messages\[0\]\.winner must be a seat in \[0, 2\] or null, got 5"),
        ([{"channel": "private", "to": 1, "kind": "bribe"}], r"messages\[0\]: kind must be one of 'propose'"),
        ([{"channel": "private", "to": 1, "payment": -1}], r"messages\[0\]: payment must be a finite float in \[0"),
    ]
    for raw, match in cases:
        if match is None:
            with pytest.raises(InvalidActionError, match=r"above the payer's means 0.1"):
                ch.check_messages(policy, raw, 0, 3, 0.1)
            continue
        with pytest.raises(InvalidActionError, match=match):
            ch.check_messages(policy, raw, 0, 3, 1.0)
    with pytest.raises(InvalidActionError, match="this market opens no channel, got 1 messages"):
        ch.check_messages(None, [{"channel": "public"}], 0, 3, 1.0)


def test_bad_channel_configs_name_field_value_and_allowed():
    pop = agents.population("truthful:3")
    second = mechanisms.get("second_price")
    with pytest.raises(ConfigError, match=r"delay must be a finite int in \[0, 100\], got -1"):
        make_episode(second, {}, pop, markets=1, seed=0, channels={"private": True, "delay": -1})
    with pytest.raises(ConfigError, match=r"channels.coalitions\[0\] must name seats in \[0, 2\], got 3"):
        make_episode(second, {}, pop, markets=1, seed=0, channels={"coalition": True, "coalitions": [[0, 3]]})
    with pytest.raises(ConfigError, match="unknown field 'secret' for ChannelPolicy"):
        ch.parse_channels("private,secret")
    with pytest.raises(ConfigError, match=r"max_messages must be a finite int in \[1, 64\], got 0"):
        ch.parse_channels("private,max_messages=0")
    assert ch.parse_channels("none") is None and ch.parse_channels("private,delay=2").delay == 2


def test_a_recorded_talking_cartel_replays_exactly_fines_and_side_payments_included(tmp_path):
    """The ledger records the detector's flags and the side payments, so replay rebuilds every
    utility, fine and total of a monitored cartel that pays its members."""
    from mecharena.ledger import replay

    rules = Enforcement(collusion_penalty=0.4, audit_probability=0.3)
    ep = make_episode(mechanisms.get("second_price"), {}, agents.population("talking_cartel(share=0.5):3,truthful:2"),
                      markets=50, seed=4, enforcement=rules, channels="private,monitored,side_payment_cap=0.5")
    directory = record_episode(ep, tmp_path / "cartel", rounds=4)
    records = list(play(ep, 4))
    assert any(r.talk.flagged.any() for r in records) and any((r.talk.transfers != 0).any() for r in records)
    report = replay(directory)
    assert report.ok and report.to_dict()["mismatches"] == [], report.to_dict()
