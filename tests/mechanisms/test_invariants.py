"""Hypothesis property tests of invariants on small random markets."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mecharena import mechanisms

bid = st.one_of(st.floats(0, 2, allow_nan=False), st.sampled_from([0.0, 0.25, 0.5, 1.0]))


@st.composite
def market(draw, min_agents=1, max_agents=7):
    n = draw(st.integers(min_agents, max_agents))
    values = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n))
    bids = draw(st.lists(bid, min_size=n, max_size=n))
    priority = draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=n, max_size=n))
    return np.array([values]), np.array([bids]), np.array([priority])


def clear(name, config, values, bids, priority):
    return mechanisms.clear(mechanisms.get(name), config, values, bids, priority)


SINGLE = st.sampled_from(["first_price", "second_price"])
MULTI = st.sampled_from(["uniform_price", "pay_as_bid", "vcg"])


@settings(max_examples=200, deadline=None)
@given(SINGLE, market(), st.floats(0, 1), st.floats(0, 0.2))
def test_single_item_never_overallocates_and_winner_pays_at_most_its_bid(name, m, reserve, fee):
    values, bids, priority = m
    out = clear(name, {"reserve_price": reserve, "entry_fee": fee}, values, bids, priority)
    assert out.allocation.sum() <= 1
    won = out.allocation[0] > 0
    assert (out.payments[0][won] <= bids[0][won] + fee + 1e-12).all()
    assert (bids[0][won] >= reserve).all()
    # truthful bidders with no fee are IR
    truthful = clear(name, {"reserve_price": reserve}, values, values, priority)
    assert (truthful.utility >= -1e-12).all()


@settings(max_examples=200, deadline=None)
@given(MULTI, market(), st.integers(1, 6), st.floats(0, 0.8))
def test_multi_unit_supply_respected_and_payments_below_bids(name, m, units, reserve):
    values, bids, priority = m
    config = {"units": units, "reserve_price": reserve}
    out = clear(name, config, values, bids, priority)
    assert out.allocation.sum() <= units
    assert ((out.allocation == 0) | (out.allocation == 1)).all()
    assert (out.payments <= bids * out.allocation + 1e-12).all()
    assert (clear(name, config, values, values, priority).utility >= -1e-12).all()


@settings(max_examples=150, deadline=None)
@given(MULTI, st.integers(1, 5), st.integers(1, 8), st.integers(2, 4), st.data())
def test_multi_unit_demand_supply_and_payments(name, n, units, demand, data):
    values = -np.sort(-np.array(data.draw(st.lists(st.floats(0, 1), min_size=n * demand, max_size=n * demand)))
                      .reshape(1, n, demand), axis=2)
    raw = np.array(data.draw(st.lists(bid, min_size=n * demand, max_size=n * demand))).reshape(1, n, demand)
    bids = -np.sort(-raw, axis=2)
    priority = np.array([data.draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=n, max_size=n))])
    config = {"units": units, "demand": demand}
    out = clear(name, config, values, bids, priority)
    assert out.allocation.sum() <= units and (out.allocation <= demand).all()
    won = np.arange(demand)[None, None, :] < out.allocation[:, :, None]
    assert (out.payments <= np.where(won, bids, 0).sum(axis=2) + 1e-12).all()
    assert (clear(name, config, values, values, priority).utility >= -1e-12).all()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["mcafee", "k_double", "cda"]), market(min_agents=2, max_agents=8), st.data())
def test_double_auctions_balance_units_and_respect_orders(name, m, data):
    values, bids, priority = m
    n = values.shape[1]
    config = {"buyers": data.draw(st.integers(1, n - 1))}
    out = clear(name, config, values, bids, priority)
    nb = config["buyers"]
    assert out.allocation[0, :nb].sum() == -out.allocation[0, nb:].sum() <= min(nb, n - nb)
    assert (out.allocation[0, :nb] >= 0).all() and (out.allocation[0, nb:] <= 0).all()
    buyers, sellers = out.allocation[0] > 0, out.allocation[0] < 0
    assert (out.payments[0][buyers] <= bids[0][buyers] + 1e-12).all()
    assert (out.receipts[0][sellers] >= bids[0][sellers] - 1e-12).all()
    assert out.revenue[0] >= -1e-12
    truthful = clear(name, config, values, values, priority)
    assert (truthful.utility >= -1e-12).all()


@settings(max_examples=150, deadline=None)
@given(market(), st.floats(0, 1), st.integers(1, 4))
def test_posted_price_sells_at_most_units_to_acceptors(m, price, units):
    values, bids, priority = m
    out = clear("posted_price", {"price": price, "units": units}, values, bids, priority)
    assert out.allocation.sum() <= units
    assert (bids[out.allocation > 0] >= price).all()
    assert np.allclose(out.revenue, price * out.allocation.sum())


@settings(max_examples=150, deadline=None)
@given(market(), st.floats(0.1, 3), st.booleans(), st.sampled_from(["none", "proportional"]))
def test_provision_point_never_runs_a_deficit_and_refunds_when_not_provided(m, threshold, refund, rebate):
    values, bids, priority = m
    c = np.minimum(bids, 1.0)
    out = clear("provision_point", {"threshold": threshold, "refund": refund, "rebate": rebate}, values, c, priority)
    assert out.revenue[0] >= -1e-12
    provided = c.sum() >= threshold
    assert bool(out.allocation[0, 0]) == provided
    # budget surplus: contributions - refunds - rebates - the good's cost T when provided
    if provided and rebate == "proportional":
        assert np.isclose(out.revenue[0], 0.0, atol=1e-12)
    if provided and rebate == "none":
        assert np.isclose(out.revenue[0], c.sum() - threshold, atol=1e-12)
    if not provided:
        assert np.isclose(out.revenue[0], 0.0 if refund else c.sum(), atol=1e-12)
    if not provided and refund:
        assert np.allclose(out.utility, 0.0)
