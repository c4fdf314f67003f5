"""Every registered mechanism passes the checker, and the checker catches broken ones."""

import dataclasses

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.mechanisms import first_price, second_price
from mecharena.mechanisms.checker import MechanismCheckError, check_mechanism


@pytest.mark.parametrize("name", list(mechanisms.REGISTRY))
def test_every_mechanism_passes_the_checker(name):
    mechanism = mechanisms.get(name)
    assert check_mechanism(mechanism) >= len(mechanism.examples)


def test_checker_catches_a_kernel_that_differs_from_its_reference():
    broken = dataclasses.replace(second_price.MECHANISM, kernel=first_price.MECHANISM.kernel)
    with pytest.raises(MechanismCheckError, match="scalar reference"):
        check_mechanism(broken)


def test_checker_catches_a_false_truthfulness_claim():
    liar = dataclasses.replace(first_price.MECHANISM, properties=lambda c: frozenset({"truthful"}))
    with pytest.raises(MechanismCheckError, match=r"gains .* by bidding"):
        check_mechanism(liar)


def test_checker_catches_a_false_ir_claim():
    mech = mechanisms.get("provision_point")
    liar = dataclasses.replace(mech, properties=lambda c: frozenset({"ir"}))
    with pytest.raises(MechanismCheckError, match="negative utility"):
        check_mechanism(liar, configs=({"refund": False},))


def test_checker_catches_nondeterminism_and_mutation():
    base = second_price.MECHANISM
    state = {"calls": 0}

    def flaky(config, values, bids, priority, times=None):
        state["calls"] += 1
        out = base.kernel(config, values, bids, priority)
        return dataclasses.replace(out, revenue=out.revenue + state["calls"] * 1e-3)

    with pytest.raises(MechanismCheckError, match="differs between two identical calls"):
        check_mechanism(dataclasses.replace(base, kernel=flaky))

    def mutating(config, values, bids, priority, times=None):
        out = base.kernel(config, values, bids, priority)
        bids[0, 0] = 0.123
        return out

    with pytest.raises(MechanismCheckError, match="mutated its inputs"):
        check_mechanism(dataclasses.replace(base, kernel=mutating))


def test_checker_catches_budget_deficit():
    mech = mechanisms.get("mcafee")

    def generous(config, values, bids, priority, times=None):
        out = mech.kernel(config, values, bids, priority)
        extra = np.where(out.allocation < 0, 0.01, 0.0)
        return dataclasses.replace(out, receipts=out.receipts + extra, revenue=out.revenue - extra.sum(axis=1))

    def generous_reference(config, values, bids, priority, times=None):
        ref = mech.reference(config, values, bids, priority)
        ref["receipts"] = [r + (0.01 if a < 0 else 0.0) for r, a in zip(ref["receipts"], ref["allocation"], strict=True)]
        ref["revenue"] = sum(ref["payments"]) - sum(ref["receipts"])
        return ref

    broken = dataclasses.replace(mech, kernel=generous, reference=generous_reference)
    with pytest.raises(MechanismCheckError, match="lost money"):
        check_mechanism(broken)


def test_checker_rejects_unknown_property_names():
    typo = dataclasses.replace(second_price.MECHANISM, properties=lambda c: frozenset({"truthfull"}))
    with pytest.raises(MechanismCheckError, match=r"promises unknown properties \['truthfull'\]"):
        check_mechanism(typo)
