"""The round loop's compiled settlement and disclosure kernels against the plain NumPy formulations they
replaced (the references here), bit for bit: the clearing price, the fines and the digest of what a market
revealed, and the assembly of the groups' flags."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Observation
from mecharena.mechanisms.base import Outcome
from mecharena.mechanisms.policy import Enforcement
from mecharena.sim import loop


def reference_price(allocation, payments):
    bought = np.maximum(allocation, 0.0)
    units = bought.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(units > 0, (payments * (bought > 0)).sum(axis=1) / units, np.nan)


def outcome(allocation, payments):
    zeros = np.zeros(allocation.shape[0])
    return Outcome(allocation, payments, np.zeros_like(payments), payments, allocation >= 0, allocation > 0, zeros,
                   zeros, zeros)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 10, 16, 17, 40, 128, 129])
def test_the_clearing_price_matches_the_numpy_reference(n):
    rng = np.random.default_rng(n)
    for trial in range(10):
        allocation = rng.choice([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300], size=(60, n))
        payments = rng.choice([0.0, -0.0, 0.3, -0.2, 1e10], size=(60, n)) * rng.random((60, n))
        if trial == 9:  # non-finite entries take the NumPy path
            allocation[0, 0], payments[1, 0] = np.nan, np.inf
        with np.errstate(invalid="ignore", over="ignore"):
            price = loop.clearing_price(outcome(allocation, payments))
        assert price.tobytes() == reference_price(allocation, payments).tobytes()
    allocation = np.zeros((2, n))
    allocation[:, 0] = 1.0
    price = loop.clearing_price(outcome(allocation, np.full((2, n), -0.0)))  # a signed zero paid
    assert price.tobytes() == reference_price(allocation, np.full((2, n), -0.0)).tobytes()


def reference_penalties(rules, owner, audited, colluding, exited, active, bids):
    b, n = active.shape
    false_name = (owner != np.arange(n))[None, :] & active & (bids.reshape(b, n, -1) > 0).any(axis=2)
    shill_counts = np.zeros((b, n))
    np.add.at(shill_counts.T, owner, false_name.T.astype(float))
    return (rules.withdrawal_penalty * exited
            + audited[:, None] * (rules.collusion_penalty * colluding + rules.shill_penalty * shill_counts))


@pytest.mark.parametrize("owner", [[0, 1, 2, 3, 4], [0, 0, 0, 3, 4], [0, 1, 1, 1, 4]])
@pytest.mark.parametrize("width", [0, 3])
def test_the_fines_match_the_numpy_reference(owner, width):
    rng = np.random.default_rng(len(owner) + width)
    owner = np.array(owner)
    b, n = 300, owner.size
    rules = Enforcement(shill_penalty=0.7, withdrawal_penalty=0.3, collusion_penalty=1.1, audit_probability=0.5)
    flags = [rng.random((b, n)) < 0.4 for _ in range(3)]
    audited = rng.random(b) < 0.5
    bids = rng.choice([0.0, 0.4, -0.1, np.nan], size=(b, n, width) if width else (b, n))
    fines = loop.penalties(rules, owner, audited, *flags, bids)
    assert fines.tobytes() == reference_penalties(rules, owner, audited, *flags, bids).tobytes()


def reference_digest(observation):
    columns = [observation.price[:, None]]
    for part in (observation.winners, observation.bids, observation.bid_quantiles):
        if part is not None:
            columns.append(np.asarray(part, dtype=float).reshape(part.shape[0], -1))
    bits = np.ascontiguousarray(np.concatenate(columns, axis=1)).view(np.uint64)
    h = np.full(bits.shape[0], 14695981039346656037, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(bits.shape[1]):
            h = (h ^ bits[:, c]) * np.uint64(1099511628211)
    return h


def test_the_digest_matches_the_numpy_reference():
    rng = np.random.default_rng(0)
    b = 200
    price = np.where(rng.random(b) < 0.2, np.nan, rng.random(b))
    winners = rng.random((b, 4)) < 0.3
    bids = rng.random((b, 4, 2)) * (rng.random((b, 4, 2)) < 0.7)
    quantiles = rng.random((b, 5))
    for observation in (Observation(price, None, None, None), Observation(price, winners, None, None),
                        Observation(price, winners, bids, quantiles), Observation(price, None, bids[:, :, 0], None)):
        assert np.array_equal(loop.digest(observation), reference_digest(observation))


def test_the_groups_flags_are_laid_side_by_side():
    episode = loop.make_episode(mechanisms.get("first_price"), {}, agents.population("truthful:2,dropout:3,cartel:2"),
                                markets=5, seed=0)
    rng = np.random.default_rng(1)
    parts = [None, rng.random((5, 3)) < 0.5, rng.random((5, 2)) < 0.5]
    for default in (True, False):
        expected = np.concatenate([np.full((5, 2), default), parts[1], parts[2]], axis=1)
        assert np.array_equal(loop._flags(episode, parts, default), expected)
        ints = loop._flags(episode, [None, parts[1].astype(int), None], default)  # not bool: concatenated as given
        assert ints.dtype == np.int64 and np.array_equal(ints[:, 2:5], parts[1])
