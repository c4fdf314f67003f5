"""Pydantic base for every user-facing config, with errors that name field, value and range."""

import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mecharena.core.errors import ConfigError

#: The largest root seed: seeds are signed 64-bit everywhere a seed travels (NumPy, DuckDB, JSON).
MAX_SEED = 2**63 - 1
#: The one seed type of every boundary (CLI option, HTTP field, MCP argument, config): a strict
#: integer in [0, 2^63 - 1] (no bool, no float, no numeric string).
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True, description="root seed, an integer in [0, 2^63 - 1]")]


def shown_value(value: Any, limit: int = 40) -> str:
    """``value`` for an error message: huge integers by their size, long text cut (never the whole input).

    >>> shown_value(10**5000)
    'an integer of 5001 digits'
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"an integer of {value.bit_length() * 30103 // 100000 + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as a seed, or :class:`ConfigError` naming ``name``, the value and what is allowed.

    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    mecharena.core.errors.ConfigError: seed must be an integer in [0, 2^63 - 1], got -1
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, 2^63 - 1], got {shown_value(value)}")
    return value


class StrictModel(BaseModel):
    """Frozen, no unknown fields, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def build(cls, **fields: Any) -> "StrictModel":
        """Validate ``fields`` into the model, raising :class:`ConfigError` on any problem."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise ConfigError(explain(cls, exc)) from None

    @classmethod
    def allowed(cls, name: str) -> str:
        """Human description of what field ``name`` accepts, e.g. ``'in [0, 1]'``."""
        info = cls.model_fields[name]
        if get_origin(info.annotation) is Literal:
            return "one of " + ", ".join(repr(a) for a in get_args(info.annotation))
        lower = upper = None
        options = [a for a in get_args(info.annotation) if a is not type(None)]
        optional = len(options) < len(get_args(info.annotation))  # ``X | None``
        metadata = list(info.metadata)
        if optional and get_origin(options[0]) is Annotated:  # e.g. ``Seed | None``: the bounds sit inside
            base, *extras = get_args(options[0])
            options = [base]
            for extra in extras:
                metadata.extend(getattr(extra, "metadata", [extra]))
        for meta in metadata:
            if isinstance(meta, at.Ge):
                lower = f"[{meta.ge}"
            elif isinstance(meta, at.Gt):
                lower = f"({meta.gt}"
            elif isinstance(meta, at.Le):
                upper = f"{meta.le}]"
            elif isinstance(meta, at.Lt):
                upper = f"{meta.lt})"
        kind = getattr(options[0] if optional else info.annotation, "__name__", str(info.annotation))
        or_null = " (or null)" if optional else ""
        if lower and upper:
            return f"a finite {kind} in {lower}, {upper}{or_null}"
        if lower:
            return f"a finite {kind} {'>=' if lower[0] == '[' else '>'} {lower[1:]}{or_null}"
        if upper:
            return f"a finite {kind} {'<=' if upper[-1] == ']' else '<'} {upper[:-1]}{or_null}"
        return f"a {kind}{or_null}"


def explain(model: type[StrictModel], exc: ValidationError) -> str:
    """One line per invalid field: ``reserve_price must be a finite float >= 0, got -5.0``."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or model.__name__
        owner, name = _owner(model, err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(owner.model_fields)
            lines.append(f"unknown field {field!r} for {owner.__name__}; allowed: {known}")
        elif err["type"] == "missing":
            lines.append(f"{field} is required ({owner.allowed(name)})")
        elif name in owner.model_fields:
            lines.append(f"{field} must be {owner.allowed(name)}, got {shown_value(err['input'])}")
        else:
            lines.append(f"{model.__name__}: {err['msg']}")
    return "; ".join(lines)


def _owner(model: type[StrictModel], loc: tuple) -> tuple[type[StrictModel], str]:
    """The model that declares the field an error's ``loc`` ends at, and that field's name: a nested model's
    field (``arena.rounds``) is described by the nested model."""
    owner, path = model, [p for p in loc if isinstance(p, str)]
    for part in path[:-1]:
        info = owner.model_fields.get(part)
        inner = [a for a in (get_args(info.annotation) or (info.annotation,)) if isinstance(a, type)
                 and issubclass(a, StrictModel)] if info is not None else []
        if not inner:
            return model, str(loc[0]) if loc else ""
        owner = inner[0]
    return owner, path[-1] if path else ""


def parse_assignments(items: Iterable[str], error: Callable[[str], str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``: values are JSON where they parse, else strings.

    Args:
        items: ``key=value`` strings (blank items are skipped).
        error: builds the message for a malformed item.

    Raises:
        ConfigError: an item without ``=`` or with an empty key.

    >>> parse_assignments(["units=3", "pricing=lowest_winning", "refund=false"], str)
    {'units': 3, 'pricing': 'lowest_winning', 'refund': False}
    """
    fields: dict[str, Any] = {}
    for item in filter(None, (i.strip() for i in items)):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(error(item))
        try:
            fields[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            fields[key.strip()] = raw.strip()
    return fields
