"""A plug-in with a broken kernel is refused at load time, and the message names the check that failed."""

import dataclasses
import re

import pytest

from mecharena import mechanisms, plugins
from mecharena.mechanisms.checker import CHECKS, MechanismCheckError, check_mechanism, run_checks
from tests.plugins.helpers import variant

# check -> (the kernel's last line, after ``out = BASE.kernel(...)``; the failure it must cause)
BROKEN = {
    "outcome": ("return out.market(0)", "the kernel returned a dict, not an Outcome"),
    "shapes": ("return dataclasses.replace(out, payments=out.payments.sum(axis=1))",
               r"payments has shape \(60,\) dtype float64, expected shape \(60, 1\) dtype float64"),
    "finite": ("return dataclasses.replace(out, payments=np.full(bids.shape, np.nan))",
               r"payments is not finite: payments\[0, 0\] = nan"),
    "inputs_unchanged": ("bids[:, 0] = 0.5; return out", "clearing mutated its inputs: bids changed"),
    "deterministic": ("return dataclasses.replace(out, revenue=out.revenue + np.random.default_rng().random())",
                      "revenue differs between two identical calls"),
    "reference": ("return first_price.MECHANISM.kernel(config, values, bids, priority)",
                  r"market \d+: batched payments=.* but the scalar reference gives"),
}


@pytest.mark.parametrize("check", list(BROKEN))
def test_a_broken_kernel_is_rejected_naming_the_check(tmp_path, check):
    line, detail = BROKEN[check]
    path = variant(tmp_path, "def kernel(config, values, bids, priority, times=None):\n"
                             f"    out = BASE.kernel(config, values, bids, priority)\n    {line}\n\n\n"
                             "MECHANISM = dataclasses.replace(BASE, kernel=kernel)")
    with pytest.raises(plugins.PluginError, match=rf"^plugin {path}: mechanism 'variant' failed check_mechanism on "
                                                  rf"'{check}' \({re.escape(CHECKS[check])}\): variant .* agents: {check}: {detail}"):
        plugins.load(str(path))
    assert "variant" not in mechanisms.REGISTRY


def test_a_kernel_that_raises_fails_the_check_it_was_in(tmp_path):
    path = variant(tmp_path, "def kernel(config, values, bids, priority, times=None):\n    return 1 / 0\n\n\n"
                             "MECHANISM = dataclasses.replace(BASE, kernel=kernel)")
    with pytest.raises(plugins.PluginError, match="on 'outcome' .* outcome: raised ZeroDivisionError: division by zero"):
        plugins.load(str(path))


def test_every_failed_check_is_reported_one_line_each(tmp_path):
    path = variant(tmp_path, 'MECHANISM = dataclasses.replace(first_price.MECHANISM, name="variant", '
                             'properties=lambda c: frozenset({"truthful"} if c.reserve_price else {"budget_balance"}))')
    with pytest.raises(plugins.PluginError) as caught:
        plugins.load(str(path))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert re.search(r"failed check_mechanism on 'truthful' \(truthful bidding is a weakly dominant strategy\): "
                     r".* gains .* by bidding", lines[1])
    assert "on 'budget_balance'" in lines[0] and "revenue is not zero" in lines[0]


def test_check_false_skips_the_battery_but_not_validation(tmp_path):
    """Workers load what their parent already checked; field types are still validated."""
    path = variant(tmp_path, "MECHANISM = dataclasses.replace(BASE, properties=lambda config: frozenset({'truthfull'}))")
    assert plugins.load(str(path), check=False).mechanisms[0].name == "variant"


def test_run_checks_reports_every_check():
    """``run_checks`` goes on after a failure; each check is passed, failed, not run or not promised."""
    base = mechanisms.get("second_price")
    report = run_checks(base)
    assert report.passed and report.cases == check_mechanism(base)
    assert report.status["truthful"] == "passed" and report.status["budget_balance"] == "not promised"
    assert set(report.status) == set(CHECKS) and "not run" not in report.status.values()
    # a false claim in the configs with a reserve only: the other cases still run and pass
    liar = dataclasses.replace(base, properties=lambda c: frozenset({"ir", "truthful", "efficient"} if c.reserve_price
                                                                    else {"ir"}))
    report = run_checks(liar, configs=({"reserve_price": 0.3}, {}))
    assert report.status["efficient"] == "failed" and report.status["ir"] == "passed"
    assert 5 <= report.cases < 10 and [f.check for f in report.failures] == ["efficient"]
    with pytest.raises(MechanismCheckError, match="efficient: truthful bidding did not reach the maximum welfare"):
        check_mechanism(liar, configs=({"reserve_price": 0.3}, {}))

