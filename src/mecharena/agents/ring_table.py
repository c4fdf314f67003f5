"""A ring of K seats that plays role tables: the joint strategy found by the coalition search.

The group's K seats are one ring: each knows the others' values (a group sees the values of all
its seats). In every market the members are ranked by value within the ring (role 0: the ring's
highest value; ties go to the lower seat) and the member of role r bids ``table_r(own value)``,
a bid table over ``points`` evenly spaced values on [low, high] as in ``best_response``: the
nearest grid value's bid, or the linear interpolation of its two neighbours; ``x`` abstains.
Bid 0 and ``x`` both keep the member out of the auction (suppression), other entries shade or
overbid. Members that enter bid under the ring's agreement and are marked as colluding (audits
fine them).

Spec: ``ring_table(low=0,high=1,tables=0/0.5/1;x/x/x):2``: role tables separated by ``;``,
role 0 first, one table per seat of the group.
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from mecharena.agents.base import Action, AgentType, Draws, MarketContext
from mecharena.agents.respond import TableParams, parse_table, table_bids
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray

VERSION = 1
MAX_RING = 8
ROLE_SEPARATOR = ";"


class RingParams(StrictModel):
    """Role tables over ``points`` evenly spaced values on [low, high]."""

    low: float = Field(0.0, description="value of each table's first entry")
    high: float = Field(1.0, description="value of each table's last entry")
    tables: str = Field("0/1;0/1", description=f"role tables separated by '{ROLE_SEPARATOR}' (role 0: the ring's "
                                               "highest value), each bids separated by '/'; 'x' abstains")
    interpolate: Literal["nearest", "linear"] = Field("nearest", description="between grid values")

    @classmethod
    def build(cls, **fields: Any) -> "RingParams":
        """Validate ``fields``; a malformed ``tables`` text gets its own message (the role and entry)."""
        if isinstance(fields.get("tables"), str):
            check_tables(fields["tables"])
        return super().build(**fields)

    @field_validator("tables")
    @classmethod
    def _tables(cls, text: str) -> str:
        try:
            check_tables(text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return text

    def roles(self) -> tuple[TableParams, ...]:
        """One ``best_response`` table per role (validated there: entries, grid order).

        Raises:
            ConfigError: a role table that is not a valid bid table.
        """
        return tuple(TableParams.build(low=self.low, high=self.high, bids=t, interpolate=self.interpolate)
                     for t in self.tables.split(ROLE_SEPARATOR))


def check_tables(text: str) -> None:
    """Raise :class:`ConfigError` unless ``text`` holds 2 to MAX_RING valid bid tables separated by ';'."""
    roles = text.split(ROLE_SEPARATOR)
    if not 2 <= len(roles) <= MAX_RING:
        raise ConfigError(f"tables must hold 2 to {MAX_RING} role tables separated by '{ROLE_SEPARATOR}', "
                          f"got {len(roles)}")
    for r, table in enumerate(roles):
        try:
            parse_table(table)
        except ConfigError as exc:
            raise ConfigError(f"tables role {r}: {exc}") from None


def ranks(values: FloatArray) -> IntArray:
    """(B, S) each seat's role: its rank by value within the ring (0: highest; ties to the lower seat)."""
    order = np.argsort(-values, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(values.shape[1])[None, :], axis=1)
    return rank


def ring_bids(roles: tuple[TableParams, ...], values: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """(bids, enter), each (B, S), of the ring whose seats hold ``values`` (B, S), S = len(roles)."""
    rank = ranks(values)
    bids, enter = np.zeros(values.shape), np.zeros(values.shape, bool)
    for r, table in enumerate(roles):
        mine = rank == r
        b, e = table_bids(table, values)
        bids, enter = np.where(mine, b, bids), np.where(mine, e, enter)
    return bids, enter


def init(context: MarketContext, params: RingParams, seats: int, draws: Draws) -> tuple[TableParams, ...]:
    roles = params.roles()
    if context.spec.units_per_agent or context.spec.orders_per_agent:
        raise ConfigError(f"ring_table plays one bid per seat; {context.mechanism.name} is configured for "
                          "several units or orders per agent")
    if seats != len(roles):
        raise ConfigError(f"ring_table has {len(roles)} role tables, so its group must hold {len(roles)} seats "
                          f"(ring_table(...):{len(roles)}), got {seats}")
    return roles


def act(context: MarketContext, params: RingParams, state: tuple[TableParams, ...], values: FloatArray,
        draws: Draws) -> Action:
    bids, enter = ring_bids(state, values)
    return Action(bids=np.minimum(bids, context.spec.action_high), enter=enter, colluding=enter.copy())


AGENT = AgentType(name="ring_table", version=VERSION,
                  summary="a ring of K seats playing role tables by rank of value within the ring (a found coalition)",
                  act=act, init=init, params_model=RingParams)
