"""Deferred acceptance (mechanisms/matching.py) against its theory.

Sources: Gale and Shapley 1962, *Amer. Math. Monthly* 69(1) (stability); Dubins and Freedman 1981,
*Amer. Math. Monthly* 88(7), and Roth 1982, *Math. of OR* 7(4) (proposers cannot gain by misreporting;
receivers can, by truncation); Roth and Sotomayor 1990, *Two-Sided Matching*, ch. 2 and 4.
"""

import itertools

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.ledger import record_episode, replay
from mecharena.mechanisms import clear
from mecharena.sim.loop import make_episode, play

DA = mechanisms.get("deferred_acceptance")


def instances(rng, markets, p, r, unacceptable=0.15):
    """Random strict utilities in (0, 1), some pairs unacceptable (0)."""
    width = max(p, r)
    values = rng.random((markets, p + r, width)) * 0.98 + 0.01
    return np.where(rng.random(values.shape) < unacceptable, 0.0, values)


def test_no_blocking_pair_in_10000_random_instances(rng):
    p, r, b = 4, 4, 10_000
    values = instances(rng, b, p, r)
    out = clear(DA, {"proposers": p}, values, values, rng.random((b, p + r)))
    util = out.utility
    # IR: nobody is matched to a partner it finds unacceptable, so every utility is > 0 when matched
    assert ((out.allocation == 0) | (util > 0)).all()
    for i, j in itertools.product(range(p), range(r)):
        proposer_wants = values[:, i, j] > util[:, i]  # prefers j to its partner (or to being alone)
        receiver_wants = values[:, p + j, i] > util[:, p + j]
        blocking = proposer_wants & receiver_wants
        assert not blocking.any(), (i, j, np.argwhere(blocking)[:3])


def _strategies(r):
    """Every report up to equivalence: an ordered list of acceptable receivers (any subset, any order),
    as utility vectors (rank scores)."""
    for k in range(r + 1):
        for chosen in itertools.permutations(range(r), k):
            vector = np.zeros(r)
            vector[list(chosen)] = np.arange(k, 0, -1)
            yield vector


def test_no_proposer_gains_by_any_report(rng):
    """Exhaustive over the 16 rankings and truncations of 3 receivers, for each proposer, 3,000 instances."""
    p, r, b = 3, 3, 3000
    values = instances(rng, b, p, r)
    priority = rng.random((b, p + r))
    truthful = clear(DA, {"proposers": p}, values, values, priority).utility
    for seat in range(p):
        for report in _strategies(r):
            bids = values.copy()
            bids[:, seat, :r] = report
            gain = clear(DA, {"proposers": p}, values, bids, priority).utility[:, seat] - truthful[:, seat]
            assert gain.max() <= 1e-12, (seat, report, gain.max())


def test_a_receiver_can_gain_by_truncating_its_list(rng):
    """The classic cycle: proposers' first choices are receivers 0, 1, 2, receivers' first choices are
    proposers 1, 2, 0. Proposing gives every proposer its first choice (each receiver its third); receiver 0
    declaring only its top two acceptable makes proposer 0 move on and improves it to its second choice."""
    p = 3
    proposers = [[3, 2, 1], [1, 3, 2], [2, 1, 3]]  # utilities for receivers 0, 1, 2
    receivers = [[1, 3, 2], [2, 1, 3], [3, 2, 1]]  # utilities for proposers 0, 1, 2
    values = np.array([proposers + receivers], dtype=float) / 3
    priority = np.zeros((1, 6))
    truthful = clear(DA, {"proposers": p}, values, values, priority)
    assert truthful.utility[0].tolist() == [1.0, 1.0, 1.0, 1 / 3, 1 / 3, 1 / 3]
    truncated = values.copy()
    truncated[0, 3, 0] = 0.0  # receiver 0 declares proposer 0 unacceptable
    after = clear(DA, {"proposers": p}, values, truncated, priority)
    assert after.utility[0, 3] > truthful.utility[0, 3]
    # and in random markets truncation pays some receiver now and then, never a proposer (test above)
    b = 3000
    values = instances(rng, b, 3, 3)
    priority = rng.random((b, 6))
    base = clear(DA, {"proposers": 3}, values, values, priority).utility
    best = np.zeros(b)
    for cut in (0.25, 0.5, 0.75):
        bids = values.copy()
        bids[:, 3:, :] = np.where(values[:, 3:, :] >= cut, values[:, 3:, :], 0.0)
        best = np.maximum(best, (clear(DA, {"proposers": 3}, values, bids, priority).utility[:, 3:] - base[:, 3:])
                          .max(axis=1))
    assert (best > 1e-9).mean() > 0.01


def test_matching_plays_through_the_loop_and_the_ledger_replays_it(tmp_path):
    episode = make_episode(DA, {"proposers": 3}, agents.population("truthful:7", 0), markets=40, seed=5)
    record = next(play(episode, 1))
    assert record.values.shape == (40, 7, 4) and record.bids.shape == (40, 7, 4)
    assert (record.outcome.welfare <= record.outcome.max_welfare + 1e-12).all()
    path = record_episode(episode, tmp_path / "da", rounds=3)
    report = replay(path)
    assert report.ok and report.rounds == 3, report.to_dict()


@pytest.mark.parametrize(("n", "message"), [(3, "needs 1 to 5 receivers: between 4 and 8 agents, got 3"),
                                            (9, "needs 1 to 5 receivers: between 4 and 8 agents, got 9")])
def test_market_sizes_outside_the_enumeration_are_refused(n, message):
    with pytest.raises(ConfigError, match=message):
        make_episode(DA, {"proposers": 3}, agents.population(f"truthful:{n}", 0), markets=2, seed=0)
