"""Bad input at the engine boundary: clear errors with pinned messages."""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError

OUT_OF_RANGE = [
    ("first_price", "reserve_price", -5.0, r"reserve_price must be a finite float >= 0, got -5\.0"),
    ("second_price", "entry_fee", -0.1, r"entry_fee must be a finite float >= 0, got -0\.1"),
    ("second_price", "reserve_visibility", "hidden", r"reserve_visibility must be one of 'public', 'secret', got 'hidden'"),
    ("uniform_price", "units", 0, r"units must be a finite int in \[1, 100000\], got 0"),
    ("uniform_price", "pricing", "median", r"pricing must be one of 'highest_losing', 'lowest_winning', got 'median'"),
    ("pay_as_bid", "demand", 65, r"demand must be a finite int in \[1, 64\], got 65"),
    ("vcg", "reserve_price", float("inf"), r"reserve_price must be a finite float >= 0, got inf"),
    ("mcafee", "buyers", 0, r"buyers must be a finite int in \[1, 100000\], got 0"),
    ("k_double", "k", 1.5, r"k must be a finite float in \[0, 1\], got 1\.5"),
    ("cda", "buyers", "two", r"buyers must be a finite int in \[1, 100000\], got 'two'"),
    ("cda", "orders", 65, r"orders must be a finite int in \[1, 64\], got 65"),
    ("posted_price", "price", -1, r"price must be a finite float >= 0, got -1"),
    ("posted_price", "units", 0, r"units must be a finite int in \[1, 100000\], got 0"),
    ("vcm", "mpcr", 0, r"mpcr must be a finite float in \(0, 100\], got 0"),
    ("vcm", "endowment", -1, r"endowment must be a finite float > 0, got -1"),
    ("provision_point", "threshold", 0, r"threshold must be a finite float > 0, got 0"),
    ("provision_point", "rebate", "all", r"rebate must be one of 'none', 'proportional', got 'all'"),
    ("english", "increment", -0.1, r"increment must be a finite float >= 0, got -0.1"),
    ("english", "dropouts", "shown", r"dropouts must be one of 'hidden', 'visible', got 'shown'"),
    ("dutch", "start_price", 0, r"start_price must be a finite float > 0, got 0"),
    ("dutch", "reserve_price", 2.0, r"DutchConfig: Value error, reserve_price \(2.0\) must not exceed start_price \(1.0\)"),
    ("position", "slots", 17, r"slots must be a finite int in \[1, 16\], got 17"),
    ("position", "ctr_decay", 1.5, r"ctr_decay must be a finite float in \(0, 1\], got 1.5"),
    ("position", "pricing", "first", r"pricing must be one of 'gsp', 'vcg', got 'first'"),
    ("deferred_acceptance", "proposers", 0, r"proposers must be a finite int in \[1, 5\], got 0"),
    ("lmsr", "liquidity", 0, r"liquidity must be a finite float in \(0, 1000000.0\], got 0"),
    ("reputation", "effort_cost", 2, r"effort_cost must be a finite float in \[0, 1\], got 2"),
    ("reputation", "future_value", -1, r"future_value must be a finite float in \[0, 100\], got -1"),
    ("reputation", "prior_mean", 1.5, r"prior_mean must be a finite float in \[0, 1\], got 1.5"),
    ("reputation", "prior_strength", -1, r"prior_strength must be a finite float in \[0, 1000000.0\], got -1"),
    ("reputation", "decay", 0, r"decay must be a finite float in \(0, 1\], got 0"),
    ("reputation", "min_history", -1, r"min_history must be a finite float in \[0, 1000000.0\], got -1"),
    ("reputation", "unverified_weight", 2, r"unverified_weight must be a finite float in \[0, 1\], got 2"),
    ("reputation", "listing_fee", -1, r"listing_fee must be a finite float in \[0, 100\], got -1"),
    ("reputation", "fake_cost", -1, r"fake_cost must be a finite float in \[0, 100\], got -1"),
    ("reputation", "max_fakes", -1, r"max_fakes must be a finite float in \[0, 1000\], got -1"),
    ("service", "rate", 1.5, r"rate must be a finite float in \[0, 1\], got 1.5"),
    ("service", "tasks", 0, r"tasks must be a finite int in \[1, 100\], got 0"),
    ("service", "first_bias", -0.1, r"first_bias must be a finite float in \[0, 1\], got -0.1"),
    ("service", "resolution", "court", r"resolution must be one of 'refund', 'audit', got 'court'"),
    ("service", "audit_rate", 2, r"audit_rate must be a finite float in \[0, 1\], got 2"),
    ("service", "suspend_after", -1, r"suspend_after must be a finite float in \[0, 1000000.0\], got -1"),
    ("service", "effort_cost", 2, r"effort_cost must be a finite float in \[0, 1\], got 2"),
    ("service", "audit_fee", -1, r"audit_fee must be a finite float in \[0, 10\], got -1"),
    ("service", "penalty", 11, r"penalty must be a finite float in \[0, 10\], got 11"),
    ("service", "audit_cost", -1, r"audit_cost must be a finite float in \[0, 10\], got -1"),
    ("service", "notice", 1.5, r"notice must be a finite float in \[0, 1\], got 1.5"),
    ("service", "account_cost", -1, r"account_cost must be a finite float in \[0, 10\], got -1"),
    ("prisoners_dilemma", "noise", 0.6, r"noise must be a finite float in \[0, 0.5\], got 0.6"),
    ("prisoners_dilemma", "temptation", 101, r"temptation must be a finite float in \[-100, 100\], got 101"),
    ("prisoners_dilemma", "reward", -101, r"reward must be a finite float in \[-100, 100\], got -101"),
    ("prisoners_dilemma", "punishment", 101, r"punishment must be a finite float in \[-100, 100\], got 101"),
    ("prisoners_dilemma", "sucker", -101, r"sucker must be a finite float in \[-100, 100\], got -101"),
    ("service", "max_fakes", 1001, r"max_fakes must be a finite float in \[0, 1000\], got 1001"),
]


@pytest.mark.parametrize(("name", "field", "value", "message"), OUT_OF_RANGE)
def test_every_config_field_out_of_range_is_named(name, field, value, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        mechanisms.get(name).config({field: value})


def test_every_config_field_is_covered_by_an_out_of_range_case():
    covered = {(name, field) for name, field, _, _ in OUT_OF_RANGE}
    for name, mech in mechanisms.REGISTRY.items():
        for field, info in mech.config_model.model_fields.items():
            if info.annotation is bool:
                continue  # every bool is in range; a non-bool is tested below
            assert any(f == field for n, f in covered if n == name) or any(
                f == field for _, f in covered), (name, field)


def test_non_bool_flag_and_unknown_field():
    with pytest.raises(ConfigError, match=r"^refund must be a bool, got 'maybe'$"):
        mechanisms.get("provision_point").config({"refund": "maybe"})
    with pytest.raises(ConfigError, match=r"^unknown field 'reserve' for SealedBidConfig; allowed: reserve_price, "):
        mechanisms.get("second_price").config({"reserve": 0.5})


def test_unknown_mechanism_suggests():
    with pytest.raises(UnknownIdError, match=r"unknown mechanism 'vickrey'"):
        mechanisms.get("vickrey")
    with pytest.raises(UnknownIdError, match=r"did you mean 'pay_as_bid'"):
        mechanisms.get("pay_as_bids")


def test_two_sided_market_needs_a_seller():
    with pytest.raises(ConfigError, match=r"^buyers must be < the number of agents \(3\) so that someone sells, got 3$"):
        mechanisms.clear(mechanisms.get("mcafee"), {"buyers": 3}, np.ones((1, 3)), np.ones((1, 3)), np.zeros((1, 3)))


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (-1.0, "-1.0"), (np.inf, "inf")])
def test_invalid_bids_raise_with_index_and_rule(bad, shown):
    values = np.full((4, 3), 0.5)
    bids = values.copy()
    bids[2, 1] = bad
    with pytest.raises(InvalidActionError,
                       match=rf"^bids\[2, 1\] = {shown} is not a valid action for second_price: each bid must be finite and >= 0$"):
        mechanisms.clear(mechanisms.get("second_price"), None, values, bids, np.zeros((4, 3)))
    # not strict: flagged, treated as abstaining, other markets unaffected
    out = mechanisms.clear(mechanisms.get("second_price"), None, values, bids, np.zeros((4, 3)), strict=False)
    assert not out.valid[2, 1] and out.valid.sum() == 11 and out.allocation[2, 1] == 0
    assert out.revenue.tolist() == [0.5, 0.5, 0.5, 0.5]


def test_contribution_above_endowment_and_non_monotone_marginal_bids():
    with pytest.raises(InvalidActionError, match=r"each contribution must be finite and in \[0, 2\.0\]"):
        mechanisms.clear(mechanisms.get("vcm"), {"endowment": 2.0}, np.ones((1, 2)), np.array([[1.0, 3.0]]),
                         np.zeros((1, 2)))
    with pytest.raises(InvalidActionError, match=r"bids\[0, 1\] = \[0\.2, 0\.5\] .* non-increasing"):
        mechanisms.clear(mechanisms.get("vcg"), {"demand": 2}, np.ones((1, 2, 2)),
                         np.array([[[0.5, 0.1], [0.2, 0.5]]]), np.zeros((1, 2)))


@pytest.mark.parametrize(("values", "bids", "priority", "message"), [
    (np.ones(3), np.ones(3), np.zeros(3), r"^values must have shape \(B, N\), got \(3,\)$"),
    (np.ones((2, 3)), np.ones((2, 4)), np.zeros((2, 3)), r"^bids must have the shape of values \(2, 3\), got \(2, 4\)$"),
    (np.ones((2, 3)), np.ones((2, 3)), np.zeros((3, 2)), r"^priority must have shape \(B, N\) = \(2, 3\), got \(3, 2\)$"),
    (np.full((1, 2), np.nan), np.ones((1, 2)), np.zeros((1, 2)), r"^values must be finite$"),
    (np.ones((1, 2)), np.ones((1, 2)), np.array([[0.0, np.nan]]), r"^priority must be finite$"),
    (np.ones((0, 2)), np.ones((0, 2)), np.zeros((0, 2)), r"^values must hold at least one market and one agent"),
    ([["a", "b"]], np.ones((1, 2)), np.zeros((1, 2)), r"^values must be an array of numbers"),
])
def test_wrong_shapes_are_named(values, bids, priority, message):
    with pytest.raises(InvalidActionError, match=message):
        mechanisms.clear(mechanisms.get("second_price"), None, values, bids, priority)


def test_multi_unit_values_must_be_decreasing_marginal_values():
    with pytest.raises(InvalidActionError, match=r"^values must be non-increasing along the units axis"):
        mechanisms.clear(mechanisms.get("vcg"), {"demand": 2}, np.array([[[0.2, 0.5]]]), np.zeros((1, 1, 2)),
                         np.zeros((1, 1)))


def test_multi_unit_shape_must_match_demand():
    with pytest.raises(InvalidActionError, match=r"^values must have shape \(B, N, 3\), got \(2, 4\)$"):
        mechanisms.clear(mechanisms.get("vcg"), {"demand": 3}, np.ones((2, 4)), np.ones((2, 4)), np.zeros((2, 4)))


def test_cda_times_out_of_range_are_invalid():
    mech = mechanisms.get("cda")
    values = np.array([[0.9, 0.1]])
    with pytest.raises(InvalidActionError, match=r"bids\[0, 1\] = 0\.1 .* and times must be in \[0, 1\]"):
        mechanisms.clear(mech, {"buyers": 1}, values, values, np.zeros((1, 2)), times=np.array([[0.5, 2.0]]))
