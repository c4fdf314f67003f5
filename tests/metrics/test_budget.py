"""Budget metrics mean one thing in every mechanism family: the mechanism's budget surplus, money in minus
money out with the good it provides on its books (``mechanisms.base.finish``), and a deficit only when it pays
out more than it takes in."""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.metrics.harness import Cell, evaluate


def metrics(**cell):
    return evaluate(Cell(markets=200, rounds=2, **cell))["metrics"]


@pytest.mark.parametrize("mpcr", [0.3, 0.5, 1.5])
def test_a_vcm_that_pays_out_its_pot_is_budget_balanced(mpcr):
    """Full contribution: each earns mpcr n e (Isaac, Walker and Thomas 1984); the mechanism passes the whole
    multiplied pot on, so it neither keeps nor loses money: surplus 0 and no deficit."""
    m = metrics(mechanism="vcm", config={"mpcr": mpcr}, population="truthful:4")
    assert m["revenue"]["mean"] == 0.0
    assert m["deficit_rate"]["mean"] == 0.0
    assert "budget_balance" in mechanisms.get("vcm").properties(mechanisms.get("vcm").config({"mpcr": mpcr}))


def test_provision_point_surplus_is_what_it_keeps_after_buying_the_good():
    """Truthful contributions c_i = v_i (4 values, threshold 1): the good is bought at T when sum(c) >= T and the
    mechanism keeps sum(c) - T without a rebate, 0 with a proportional rebate; refunded failures count 0."""
    config = {"threshold": 1.0, "endowment": 1.0}
    kept = metrics(mechanism="provision_point", config=config, population="truthful:4")
    rebated = metrics(mechanism="provision_point", config={**config, "rebate": "proportional"}, population="truthful:4")
    assert rebated["revenue"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert kept["deficit_rate"]["mean"] == rebated["deficit_rate"]["mean"] == 0.0
    mech = mechanisms.get("provision_point")
    cfg = mech.config(config)
    rng = np.random.default_rng(0)
    c = rng.random((1000, 4))
    out = mech.kernel(cfg, c, c, rng.random((1000, 4)))
    total = c.sum(axis=1)
    np.testing.assert_allclose(out.revenue, np.where(total >= 1.0, total - 1.0, 0.0), atol=1e-12)
    # E[sum(c) - T; sum(c) >= T] for four U[0, 1] values and T = 1: E[S] - T + E[(T - S)+] = 2 - 1 + 1/120
    assert kept["revenue"]["mean"] == pytest.approx(1.0 + 1.0 / 120.0, abs=0.06)
