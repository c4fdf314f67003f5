"""The regulator: screens what the market reveals, and the audits it triggers catch a ring far more often than
audits at random; it sees only what the information policy reveals; its flags reach the traces."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.loop import make_episode, play

BIDS = InformationPolicy(competing_bids=True)
FINE = Enforcement(collusion_penalty=1.0)
RING = "cartel:3,truthful:1"  # a rotation ring: the designated member bids, the two others abstain


def records(population, information=BIDS, markets=600, rounds=12, start=0, enforcement=FINE):
    episode = make_episode(mechanisms.get("second_price"), {}, agents.population(population, 3), markets=markets,
                           seed=3, information=information, enforcement=enforcement, start=start)
    return list(play(episode, rounds))


def audits(recs):
    """(R, B) audited market-rounds and (R, B) those where some seat colluded."""
    return np.stack([r.audited for r in recs]), np.stack([r.colluding.any(axis=1) for r in recs])


def test_audits_it_triggers_catch_the_ring_far_above_the_base_rate_and_cost_it():
    recs = records(f"{RING},regulator:1")
    audited, colluding = audits(recs)
    base = colluding.mean()  # what an audit at random catches
    assert 0.5 < base < 0.95
    precision, recall = colluding[audited].mean(), audited[colluding].mean()
    assert precision > 0.9 and precision > base + 0.05 and recall > 0.7, (precision, recall, base)
    fined = np.stack([r.penalties for r in recs])
    caught = np.stack([r.audited[:, None] & r.colluding for r in recs])
    np.testing.assert_array_equal(fined > 0, caught)  # the collusion penalty, exactly where an audit found collusion
    idle = records(f"{RING},regulator(rate=0):1")  # the same seats and draws, no audits asked
    assert not audits(idle)[0].any()
    ring = sum(r.utility[:, :3].sum() for r in recs)
    assert ring < sum(r.utility[:, :3].sum() for r in idle) - fined.sum() * 0.99


def test_an_honest_market_is_rarely_flagged_and_never_fined():
    recs = records("truthful:4,regulator:1")
    audited, _ = audits(recs)
    assert audited.mean() < 0.03
    assert all((r.penalties == 0).all() for r in recs)
    assert all((r.bids[:, 4] == 0).all() and not r.active[:, 4].any() for r in recs)  # it never takes part


def test_it_sees_only_what_the_market_reveals():
    price_only = InformationPolicy(clearing_price=True)
    assert not audits(records(f"{RING},regulator:1", price_only))[0].any()  # bids hidden: no screen to read
    audited, colluding = audits(records(f"{RING},regulator(price_floor=0.3):1", price_only))
    assert audited.mean() > 0.1 and colluding[audited].all()
    hidden = InformationPolicy(clearing_price=False)
    assert not audits(records(f"{RING},regulator(price_floor=0.3):1", hidden))[0].any()


def test_each_audit_it_asks_for_is_traced_and_the_batch_split_changes_nothing():
    whole = records(f"{RING},regulator:1", markets=40, rounds=6)
    for r in whole:
        flags = [n for n in r.notes if n["kind"] == "flag"]
        assert sorted(n["market"] for n in flags) == np.flatnonzero(r.audited).tolist()
        assert all(n["seat"] == 4 and n["agent"] == "regulator" for n in flags)
    parts = [records(f"{RING},regulator:1", markets=20, rounds=6, start=s) for s in (0, 20)]
    for t, r in enumerate(whole):
        np.testing.assert_array_equal(r.audited, np.concatenate([p[t].audited for p in parts]))
        np.testing.assert_array_equal(r.utility, np.concatenate([p[t].utility for p in parts]))


@pytest.mark.parametrize("field, value", [("rate", 1.5), ("threshold", 0.0), ("memory", 0.0), ("cover", -0.1)])
def test_bad_parameters_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^regulator: {field} must be"):
        agents.population(f"regulator({field}={value}):1,truthful:2")
