"""Small markets worked out by hand, and seeded tie-breaking."""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.core.seeding import market_uniforms


def clear(name, config, values, bids=None, priority=None, times=None):
    values = np.array([values], dtype=float)
    bids = values if bids is None else np.array([bids], dtype=float)
    priority = np.zeros(values.shape[:2]) if priority is None else np.array([priority], dtype=float)
    times = None if times is None else np.array([times], dtype=float)
    return mechanisms.clear(mechanisms.get(name), config, values, bids, priority, times)


# Buyers first (bids 0.9, 0.8, 0.5, 0.2), then sellers (asks 0.1, 0.3, 0.6, 0.7): q = 2.
BOOK = [0.9, 0.8, 0.5, 0.2, 0.1, 0.3, 0.6, 0.7]


def test_mcafee_trades_all_q_at_the_midpoint_when_it_fits():
    """p0 = (b3 + s3) / 2 = 0.55 lies in [s2, b2] = [0.3, 0.8]: both pairs trade at 0.55."""
    out = clear("mcafee", {"buyers": 4}, BOOK)
    assert out.allocation[0].tolist() == [1, 1, 0, 0, -1, -1, 0, 0]
    np.testing.assert_allclose(out.payments[0, :2], 0.55)
    np.testing.assert_allclose(out.receipts[0, 4:6], 0.55)
    assert out.revenue[0] == pytest.approx(0.0)


def test_mcafee_reduces_one_trade_when_the_midpoint_does_not_fit():
    """Bids 0.9, 0.8, 0.79; asks 0.1, 0.3, 0.95: q = 2, p0 = 0.87 > b2 = 0.8, so only the best
    pair trades; the buyer pays b2 = 0.8, the seller gets s2 = 0.3, the mechanism keeps 0.5."""
    out = clear("mcafee", {"buyers": 3}, [0.9, 0.8, 0.79, 0.1, 0.3, 0.95])
    assert out.allocation[0].tolist() == [1, 0, 0, -1, 0, 0]
    assert out.payments[0, 0] == pytest.approx(0.8) and out.receipts[0, 3] == pytest.approx(0.3)
    assert out.revenue[0] == pytest.approx(0.5)
    assert out.welfare[0] == pytest.approx(0.8) and out.max_welfare[0] == pytest.approx(0.8 + 0.5)


@pytest.mark.parametrize(("k", "price"), [(0.0, 0.5), (0.5, 0.55), (1.0, 0.6)])
def test_k_double_prices_inside_the_clearing_interval(k, price):
    """Clearing interval [max(s2, b3), min(b2, s3)] = [0.5, 0.6]; price = 0.5 + k * 0.1."""
    out = clear("k_double", {"buyers": 4, "k": k}, BOOK)
    assert out.allocation[0].tolist() == [1, 1, 0, 0, -1, -1, 0, 0]
    np.testing.assert_allclose(out.payments[0, :2], price)
    assert out.revenue[0] == pytest.approx(0.0)


def test_cda_price_time_priority():
    """Agents 0-1 buy, 2-4 sell. Times: ask 0.4 (agent 3, t=.05), ask 0.4 (agent 2, t=.1),
    bid 0.3 (agent 0, t=.2) stands, bid 0.5 (agent 1, t=.3) takes the EARLIER 0.4 ask at 0.4,
    ask 0.2 (agent 4, t=.4) hits the standing 0.3 bid at 0.3 (the standing order's price)."""
    values = [0.35, 0.6, 0.1, 0.1, 0.1]
    bids = [0.3, 0.5, 0.4, 0.4, 0.2]
    out = clear("cda", {"buyers": 2}, values, bids, times=[0.2, 0.3, 0.1, 0.05, 0.4])
    assert out.allocation[0].tolist() == [1, 1, 0, -1, -1]
    assert out.payments[0, :2].tolist() == [0.3, 0.4]
    assert out.receipts[0, 3:].tolist() == [0.4, 0.3]
    assert out.revenue[0] == 0.0
    # The ask of 0.2 arriving first instead of last stands in the book, so the 0.3 bid takes it
    # at 0.2: order timing moves the price (what a sniper exploits).
    early = clear("cda", {"buyers": 2}, values, bids, times=[0.2, 0.3, 0.1, 0.05, 0.0])
    assert early.allocation[0].tolist() == [1, 1, 0, -1, -1]
    assert early.payments[0, 0] == 0.2 and early.receipts[0, 4] == 0.2


def test_vcg_multi_unit_externality_by_hand():
    """2 units. A bids (0.9, 0.8), B bids (0.7, 0.1), C bids (0.6, 0). A wins both units and
    displaces B's 0.7 and C's 0.6: A pays 1.3. Truthful, this is also the efficient allocation."""
    values = [[0.9, 0.8], [0.7, 0.1], [0.6, 0.0]]
    out = clear("vcg", {"units": 2, "demand": 2}, values)
    assert out.allocation[0].tolist() == [2, 0, 0]
    assert out.payments[0, 0] == pytest.approx(1.3)
    uni = clear("uniform_price", {"units": 2, "demand": 2}, values)
    assert uni.payments[0, 0] == pytest.approx(2 * 0.7)  # the (k+1)-th bid per unit


def test_ties_are_broken_by_seeded_priority():
    """All bids equal: the highest priority wins; with seeded priorities every seat wins about
    equally often, and the same seed gives the same winners."""
    markets, n = 60_000, 4
    bids = np.full((markets, n), 0.5)
    priority = market_uniforms(9, ("priority", 0), 0, (markets, n))
    out = mechanisms.clear(mechanisms.get("first_price"), None, bids, bids, priority)
    winners = out.allocation.argmax(axis=1)
    assert np.array_equal(winners, priority.argmax(axis=1))
    share = np.bincount(winners, minlength=n) / markets
    assert np.all(np.abs(share - 1 / n) < 4 * np.sqrt(0.25 * 0.75 / markets))
