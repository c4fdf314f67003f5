"""Published analytic results, reproduced by seeded simulation.

Tolerances come from the simulations' own confidence intervals: the expected value must lie
within 4 standard errors of the estimate (the 95% interval is 1.96).
"""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.metrics import mean_ci
from tests.conftest import run, within

N_R = [(2, 0.0), (2, 0.5), (5, 0.3), (10, 0.0), (10, 0.5)]


def second_price_revenue(n: int, r: float) -> float:
    return 2 * n * (1 - r ** (n + 1)) / (n + 1) - (1 - r**n)


@pytest.mark.parametrize(("n", "r"), N_R)
def test_revenue_equivalence_first_price_bne_vs_second_price_truthful(n, r):
    """Revenue equivalence (Myerson 1981; Riley and Samuelson 1981; Krishna, *Auction Theory*,
    2nd ed., prop. 3.1): with i.i.d. U[0,1] values and reserve r, first price under the symmetric
    BNE and second price under truthful bidding both earn 2n(1-r^(n+1))/(n+1) - (1-r^n)."""
    fp, fp_trace = run("first_price", {"reserve_price": r}, f"bne:{n}")
    sp, sp_trace = run("second_price", {"reserve_price": r}, f"truthful:{n}")
    expected = second_price_revenue(n, r)
    assert within(fp["revenue"], expected) and within(sp["revenue"], expected)
    # Same seeds, same values: the paired difference has a much tighter interval.
    assert within(mean_ci(fp_trace.revenue - sp_trace.revenue), 0.0)
    # Efficiency is the same too (both allocate to the highest value above r).
    assert np.array_equal(fp_trace.welfare, sp_trace.welfare)


@pytest.mark.parametrize(("n", "r"), N_R)
def test_second_price_closed_form_revenue_and_efficiency(n, r):
    """Second price with reserve r, U[0,1] values (Krishna, *Auction Theory*, 2nd ed., sec. 2.5):
    E[revenue] = 2n(1-r^(n+1))/(n+1) - (1-r^n) ((n-1)/(n+1) at r = 0); the item is sold iff the
    highest value is >= r, so E[welfare] = n(1-r^(n+1))/(n+1) and efficiency = 1 - r^(n+1)."""
    sp, _ = run("second_price", {"reserve_price": r}, f"truthful:{n}", seed=1)
    assert within(sp["revenue"], second_price_revenue(n, r))
    assert within(sp["welfare"], n * (1 - r ** (n + 1)) / (n + 1))
    assert within(sp["efficiency"], 1 - r ** (n + 1))
    if r == 0:
        assert within(sp["revenue"], (n - 1) / (n + 1))


def test_myerson_optimal_reserve_is_one_half_for_uniform_values():
    """Myerson (1981), *Math. Oper. Res.* 6: 58-73: the optimal reserve solves v - (1-F(v))/f(v) = 0,
    i.e. r* = 1/2 for U[0,1], whatever n. With common random numbers across reserves, revenue at
    r = 1/2 beats every other reserve on the grid by more than the paired interval."""
    n = 2
    grid = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7]
    traces = {r: run("second_price", {"reserve_price": r}, f"truthful:{n}", seed=2)[1] for r in grid}
    for r in grid:
        assert within(mean_ci(traces[r].revenue), second_price_revenue(n, r))
        if r != 0.5:
            gap = mean_ci(traces[0.5].revenue - traces[r].revenue)
            assert gap["ci95"][0] > 0, (r, gap)
    best = max(grid, key=lambda r: traces[r].revenue.mean())
    assert best == 0.5


@pytest.mark.parametrize(("n", "p"), [(1, 0.5), (3, 0.4), (5, 0.7), (10, 0.8)])
def test_posted_price_revenue(n, p):
    """Posted price p, one unit, n truthful takers with U[0,1] values: the unit sells iff some value
    is >= p, so E[revenue] = p (1 - p^n) (Hartline, *Mechanism Design and Approximation*, ch. 4)."""
    m, _ = run("posted_price", {"price": p}, f"truthful:{n}", seed=3)
    assert within(m["revenue"], p * (1 - p**n))


@pytest.mark.parametrize(("n", "k"), [(3, 1), (5, 2), (8, 3), (10, 7)])
def test_uniform_price_revenue_with_unit_demand(n, k):
    """k units, (k+1)-th price, unit demand, U[0,1] values, truthful bidding: revenue is k times
    the mean of the (k+1)-th highest of n uniforms, (n-k)/(n+1), i.e. k(n-k)/(n+1)
    (Krishna, *Auction Theory*, 2nd ed., ch. 12; order statistics: David and Nagaraja, 2003)."""
    m, _ = run("uniform_price", {"units": k}, f"truthful:{n}", seed=4)
    assert within(m["revenue"], k * (n - k) / (n + 1))
    assert m["efficiency"]["mean"] == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "k"), [(4, 2), (6, 3)])
def test_pay_as_bid_bne_is_revenue_equivalent_to_uniform_price(n, k):
    """Weber (1983) / Krishna, *Auction Theory*, ch. 13: with unit demand the pay-as-bid symmetric
    BNE earns the same expected revenue as the (k+1)-th price auction, k(n-k)/(n+1)."""
    m, _ = run("pay_as_bid", {"units": k}, f"bne:{n}", seed=5)
    assert within(m["revenue"], k * (n - k) / (n + 1))


@pytest.mark.parametrize("config", [{"units": 1}, {"units": 3}, {"units": 4, "reserve_price": 0.35}])
def test_vcg_equals_k_plus_1_price_under_unit_demand(config, rng):
    """Under unit demand VCG payments equal the (k+1)-th price (Vickrey 1961; Krishna, ch. 12):
    identical outcomes on the same bids, including random (non-truthful) bids and ties."""
    values = rng.random((5000, 7))
    bids = np.where(rng.random(values.shape) < 0.5, values, np.round(rng.random(values.shape) * 8) / 8)
    priority = rng.random(values.shape)
    vcg = mechanisms.clear(mechanisms.get("vcg"), config, values, bids, priority)
    uni = mechanisms.clear(mechanisms.get("uniform_price"), config, values, bids, priority)
    for name in vcg.__slots__:
        np.testing.assert_allclose(getattr(vcg, name), getattr(uni, name), rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(("buyers", "sellers"), [(2, 2), (5, 5), (8, 4), (3, 9)])
def test_mcafee_truthful_ir_budget_surplus_and_efficiency_bound(buyers, sellers, rng):
    """McAfee (1992), *J. Econ. Theory* 56: 434-450, Theorem 1: truthful reporting is dominant,
    the mechanism is IR and never runs a deficit, and it loses at most the least valuable efficient
    trade, so efficiency >= 1 - 1/q when q trades are efficient."""
    mech = mechanisms.get("mcafee")
    config = {"buyers": buyers}
    markets = 4000
    values = rng.random((markets, buyers + sellers))
    priority = rng.random(values.shape)
    truth = mechanisms.clear(mech, config, values, values, priority)
    assert (truth.utility >= -1e-12).all()
    assert (truth.revenue >= -1e-12).all()
    v = -np.sort(-values[:, :buyers], axis=1)
    c = np.sort(values[:, buyers:], axis=1)
    m = min(buyers, sellers)
    q = (v[:, :m] >= c[:, :m]).sum(axis=1)
    has = q > 0
    assert (truth.welfare[has] >= (1 - 1 / q[has]) * truth.max_welfare[has] - 1e-12).all()
    # Dominance: no report on a grid improves any agent's utility, whatever the others do (truthful here).
    for agent in (0, buyers - 1, buyers, buyers + sellers - 1):
        for lie in np.linspace(0, 1, 21):
            bids = values.copy()
            bids[:, agent] = lie
            dev = mechanisms.clear(mech, config, values, bids, priority)
            assert (dev.utility[:, agent] <= truth.utility[:, agent] + 1e-12).all(), (agent, lie)


@pytest.mark.parametrize(("n", "mpcr"), [(4, 0.5), (10, 0.3), (3, 0.9)])
def test_zero_contribution_is_the_selfish_nash_of_the_public_goods_game(n, mpcr, rng):
    """Linear VCM with 1/n < MPCR < 1 (Isaac, Walker and Thomas 1984; Ledyard 1995): each unit
    contributed returns only MPCR < 1 to the contributor, so 0 is a dominant strategy; the Nash
    outcome earns n*e in total while full contribution earns MPCR*n^2*e (efficiency 1/(n MPCR))."""
    mech = mechanisms.get("vcm")
    config = {"mpcr": mpcr}
    values = rng.random((3000, n))
    priority = rng.random(values.shape)
    others = rng.random(values.shape)  # arbitrary contributions of the others
    for agent in range(n):
        zero = others.copy()
        zero[:, agent] = 0.0
        base = mechanisms.clear(mech, config, values, zero, priority).utility[:, agent]
        for c in (0.1, 0.5, 1.0):
            dev = zero.copy()
            dev[:, agent] = c
            gain = mechanisms.clear(mech, config, values, dev, priority).utility[:, agent] - base
            np.testing.assert_allclose(gain, -(1 - mpcr) * c, atol=1e-12)
    nash, _ = run("vcm", config, f"bne:{n}", markets=1000)
    full, _ = run("vcm", config, f"truthful:{n}", markets=1000)
    assert nash["participation"]["mean"] == 0.0
    assert nash["welfare"]["mean"] == pytest.approx(n * 1.0)
    assert full["welfare"]["mean"] == pytest.approx(mpcr * n * n)
    assert nash["efficiency"]["mean"] == pytest.approx(1 / (n * mpcr))


def test_full_contribution_is_dominant_when_mpcr_exceeds_one():
    """With MPCR > 1 every unit contributed returns more than it costs (Ledyard 1995)."""
    m, _ = run("vcm", {"mpcr": 1.5}, "bne:4", markets=100)
    assert m["participation"]["mean"] == 1.0 and m["efficiency"]["mean"] == pytest.approx(1.0)
