"""Mechanisms: one module each, a registry, and the validated engine entry point :func:`clear`.

The registry holds the built-in mechanisms and those of loaded plug-ins (:mod:`mecharena.plugins`);
a plug-in builds its :class:`Mechanism` from the same parts the built-in ones use: a
:class:`MechanismConfig`, a batched kernel returning :func:`finish`, a scalar reference returning
:func:`scalar_outcome`.
"""

from typing import Any

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
from mecharena.mechanisms.base import (
    PROPERTIES,
    MarketSpec,
    Mechanism,
    MechanismConfig,
    Outcome,
    clear,
    finish,
    is_valid_number,
    scalar_outcome,
)

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


def describe(mechanism: Mechanism) -> dict[str, Any]:
    """A mechanism as JSON: name, version, summary, description, promised properties, config fields."""
    model = mechanism.config_model
    fields = [{"name": name, "default": info.default, "allowed": model.allowed(name),
               "description": info.description or ""} for name, info in model.model_fields.items()]
    return {"name": mechanism.name, "version": mechanism.version, "summary": mechanism.summary,
            "description": (mechanism.doc or "").strip(), "properties": sorted(mechanism.properties(mechanism.config())),
            "config": fields}


__all__ = ["PROPERTIES", "REGISTRY", "MarketSpec", "Mechanism", "MechanismConfig", "Outcome", "clear", "describe",
           "finish", "get", "is_valid_number", "scalar_outcome"]
