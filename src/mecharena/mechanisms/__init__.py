"""Mechanisms: one module each, a registry, and the validated engine entry point :func:`clear`."""

from mecharena.core.registry import Registry
from mecharena.mechanisms import (
    cda,
    first_price,
    k_double,
    mcafee,
    pay_as_bid,
    posted_price,
    provision_point,
    second_price,
    uniform_price,
    vcg,
    vcm,
)
from mecharena.mechanisms.base import PROPERTIES, MarketSpec, Mechanism, Outcome, clear

REGISTRY: Registry[Mechanism] = Registry(
    "mechanism",
    {
        m.MECHANISM.name: m.MECHANISM
        for m in (first_price, second_price, uniform_price, pay_as_bid, vcg, mcafee, k_double, cda,
                  posted_price, vcm, provision_point)
    },
)


def get(name: str) -> Mechanism:
    """The registered mechanism ``name`` (raises UnknownIdError with suggestions)."""
    return REGISTRY.get(name)


__all__ = ["PROPERTIES", "REGISTRY", "MarketSpec", "Mechanism", "Outcome", "clear", "get"]
