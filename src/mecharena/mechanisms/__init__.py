"""Mechanisms: one module each, a registry, and the validated engine entry points :func:`clear` (one round)
and :func:`advance` (one round from a state, for every mechanism, stateful or not).

The registry holds the built-in mechanisms and those of loaded plug-ins (:mod:`mecharena.plugins`);
a plug-in builds its :class:`Mechanism` from the same parts the built-in ones use: a
:class:`MechanismConfig`, a batched kernel returning :func:`finish`, a scalar reference returning
:func:`scalar_outcome`.
"""

from typing import Any

from mecharena.core.registry import Registry
from mecharena.mechanisms.schema import ActionField, StateField
from mecharena.mechanisms import (
    cda,
    clock,
    schema,
    first_price,
    k_double,
    lmsr,
    matching,
    mcafee,
    pay_as_bid,
    position,
    posted_price,
    prisoners_dilemma,
    provision_point,
    reputation,
    second_price,
    service,
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
    Step,
    advance,
    clear,
    finish,
    is_valid_number,
    scalar_outcome,
)

REGISTRY: Registry[Mechanism] = Registry(
    "mechanism",
    {
        m.name: m
        for m in (*(module.MECHANISM for module in (first_price, second_price, uniform_price, pay_as_bid, vcg,
                                                     mcafee, k_double, cda, posted_price, vcm, provision_point,
                                                     position, lmsr, matching, reputation, service,
                                                     prisoners_dilemma)),
                  clock.ENGLISH, clock.DUTCH)
    },
)


def get(name: str) -> Mechanism:
    """The registered mechanism ``name`` (raises UnknownIdError with suggestions)."""
    return REGISTRY.get(name)


def describe(mechanism: Mechanism) -> dict[str, Any]:
    """A mechanism as JSON: name, version, summary, description, promised properties, config fields, and the
    state and actions beyond bids it declares (empty lists for a mechanism of one round)."""
    model = mechanism.config_model
    fields = [{"name": name, "default": info.default, "allowed": model.allowed(name),
               "description": info.description or ""} for name, info in model.model_fields.items()]
    return {"name": mechanism.name, "version": mechanism.version, "summary": mechanism.summary,
            "description": (mechanism.doc or "").strip(), "properties": sorted(mechanism.properties(mechanism.config())),
            "config": fields, **schema.describe(mechanism.state, mechanism.actions)}


__all__ = ["PROPERTIES", "REGISTRY", "ActionField", "MarketSpec", "Mechanism", "MechanismConfig", "Outcome", "StateField",
           "Step", "advance", "clear", "describe", "finish", "get", "is_valid_number", "scalar_outcome"]
