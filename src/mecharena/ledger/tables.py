"""The three event tables and how a :class:`~mecharena.sim.loop.RoundRecord` becomes Arrow columns.

``events`` (full mode), one row per (round, market, seat), in that order:

=============  ==============================  =================================================
column         type                            meaning
=============  ==============================  =================================================
round          int32                           round t
market         int64                           global market index (``episode.start + b``)
seat, owner    int32                           the seat and the seat of the agent owning it
value, bid     double or fixed_size_list[W]    W = ``value_width`` / ``bid_width`` of the meta
time           double or fixed_size_list[W]    order time(s); null when the round had none
priority       double                          tie-breaking priority
active         bool                            entered this round
colluding      bool                            bid under a collusive agreement
exited         bool                            took part last round and sat this one out
valid          bool                            the action was valid
participated   bool                            entered with an eligible action
allocation     double                          units received (negative: sold)
payment        double                          paid to the mechanism
receipt        double                          received from the mechanism
penalty        double                          fines charged (withdrawal, collusion, shill)
utility        double                          net of fines and side payments, false names merged into owners
flagged        bool                            fined by the operator's message detector (monitored channels)
transfer       double                          side payments received minus paid (message channels)
=============  ==============================  =================================================

``markets`` (full mode), one row per (round, market): round, market, audited, revenue,
welfare (identities merged), max_welfare, price (the announced mean price per unit; null when
hidden or nothing sold) and digest (uint64 digest of everything the market revealed).

``rounds`` (both modes), one row per round: sums over the round's markets (``revenue``,
``fines``, ``welfare``, ``max_welfare``, ``surplus``, ``units``, ``payments``, ``receipts``),
counts (``audited`` markets; ``participants``, ``active``, ``invalid``, ``exited``,
``colluding`` seats) and means (``revenue_mean``, ``welfare_mean``, ``surplus_mean`` per
market, ``participation`` per seat, ``efficiency`` = welfare / max_welfare, null when 0).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mecharena.core.types import BoolArray, FloatArray
from mecharena.ledger.meta import LedgerError, LedgerMeta
from mecharena.mechanisms.base import Outcome
from mecharena.sim.loop import RoundRecord

EVENTS, MARKETS, ROUNDS = "events", "markets", "rounds"
TABLES = {"full": (EVENTS, MARKETS, ROUNDS), "aggregate": (ROUNDS,)}

#: Columns of ``events`` compared by replay, and the Outcome / record field each comes from.
SEAT_CHECKS = ("allocation", "payment", "receipt", "penalty", "utility", "valid", "participated")
#: Columns of ``markets`` compared by replay.
MARKET_CHECKS = ("revenue", "welfare", "max_welfare", "price", "digest")

ROUND_SUMS = ("revenue", "fines", "welfare", "max_welfare", "surplus", "units", "payments", "receipts")
ROUND_COUNTS = ("markets", "seats", "audited", "participants", "active", "invalid", "exited", "colluding")
ROUND_MEANS = ("revenue_mean", "welfare_mean", "surplus_mean", "participation", "efficiency")

_F64 = pa.float64()


def _wide(width: int) -> pa.DataType:
    return pa.list_(_F64, width) if width else _F64


def events_schema(meta: LedgerMeta) -> pa.Schema:
    """Schema of the ``events`` table for the widths recorded in ``meta``."""
    return pa.schema(
        [("round", pa.int32()), ("market", pa.int64()), ("seat", pa.int32()), ("owner", pa.int32()),
         ("value", _wide(meta.value_width)), ("bid", _wide(meta.bid_width)), ("time", _wide(meta.time_width)),
         ("priority", _F64)]
        + [(name, pa.bool_()) for name in ("active", "colluding", "exited", "valid", "participated")]
        + [(name, _F64) for name in ("allocation", "payment", "receipt", "penalty", "utility")]
        + [("flagged", pa.bool_()), ("transfer", _F64)]
        + [(f"action_{name}", _F64) for name in meta.actions] + [(f"state_{name}", _F64) for name in meta.seat_state]
    )


def markets_schema(meta: LedgerMeta) -> pa.Schema:
    """Schema of the ``markets`` table: :data:`MARKETS_SCHEMA` and the mechanism's per-market state."""
    return pa.schema(list(MARKETS_SCHEMA) + [(f"state_{name}", _F64) for name in meta.market_state])


MARKETS_SCHEMA = pa.schema(
    [("round", pa.int32()), ("market", pa.int64()), ("audited", pa.bool_()), ("revenue", _F64),
     ("welfare", _F64), ("max_welfare", _F64), ("price", _F64), ("digest", pa.uint64())]
)
ROUNDS_SCHEMA = pa.schema(
    [("round", pa.int32())]
    + [(name, pa.int64()) for name in ROUND_COUNTS]
    + [(name, _F64) for name in ROUND_SUMS + ROUND_MEANS]
)
SCHEMAS_FIXED = {MARKETS: MARKETS_SCHEMA, ROUNDS: ROUNDS_SCHEMA}


@dataclass(frozen=True, slots=True)
class Layout:
    """Columns that are the same every round, built once per ledger, and the expected shapes."""

    markets: int  # B
    seats: int  # N
    value_width: int
    bid_width: int
    time_width: int
    market: pa.Array  # (B * N,) int64  global market of each event
    seat: pa.Array  # (B * N,) int32
    owner: pa.Array  # (B * N,) int32
    market_ids: pa.Array  # (B,) int64
    no_times: pa.Array  # (B * N,) all null
    events_schema: pa.Schema
    markets_schema: pa.Schema
    actions: tuple[str, ...]  # the mechanism's action fields beyond bids
    seat_state: tuple[str, ...]  # its per-seat state fields
    market_state: tuple[str, ...]  # its per-market state fields

    @classmethod
    def from_meta(cls, meta: LedgerMeta) -> "Layout":
        b, n = meta.markets, meta.seats
        ids = np.arange(meta.start, meta.start + b, dtype=np.int64)
        return cls(
            markets=b, seats=n, value_width=meta.value_width, bid_width=meta.bid_width, time_width=meta.time_width,
            market=pa.array(np.repeat(ids, n)),
            seat=pa.array(np.tile(np.arange(n, dtype=np.int32), b)),
            owner=pa.array(np.tile(np.asarray(meta.owner, dtype=np.int32), b)),
            market_ids=pa.array(ids),
            no_times=pa.nulls(b * n, _wide(meta.time_width)),
            events_schema=events_schema(meta),
            markets_schema=markets_schema(meta),
            actions=tuple(meta.actions), seat_state=tuple(meta.seat_state), market_state=tuple(meta.market_state),
        )

    def check(self, record: RoundRecord) -> None:
        """Raise :class:`LedgerError` unless ``record`` has the shapes this ledger was opened for."""
        b, n = self.markets, self.seats
        expected = {
            "values": (b, n) + ((self.value_width,) if self.value_width else ()),
            "bids": (b, n) + ((self.bid_width,) if self.bid_width else ()),
            "priority": (b, n),
        }
        if record.times is not None:
            expected["times"] = (b, n) + ((self.time_width,) if self.time_width else ())
        for name, shape in expected.items():
            got = np.shape(getattr(record, name))
            if got != shape:
                raise LedgerError(f"round {record.round}: {name} must have shape {shape} as the ledger's metadata "
                                  f"says (markets, seats[, width]), got {got}")


def _column(array: np.ndarray, width: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(array, dtype=np.float64).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width) if width else flat


def _bools(array: BoolArray) -> pa.Array:
    return pa.array(np.asarray(array, dtype=bool).reshape(-1))


def events_table(layout: Layout, record: RoundRecord) -> pa.Table:
    """The round's ``events`` rows, (B * N) of them, market-major."""
    out = record.outcome
    n_rows = layout.markets * layout.seats
    times = layout.no_times if record.times is None else _column(record.times, layout.time_width)
    columns = [
        pa.array(np.full(n_rows, record.round, dtype=np.int32)), layout.market, layout.seat, layout.owner,
        _column(record.values, layout.value_width), _column(record.bids, layout.bid_width), times,
        _column(record.priority, 0),
        _bools(record.active), _bools(record.colluding), _bools(record.exited), _bools(out.valid),
        _bools(out.participated),
        _column(out.allocation, 0), _column(out.payments, 0), _column(out.receipts, 0), _column(record.penalties, 0),
        _column(record.utility, 0),
        *((_bools(np.zeros(n_rows, dtype=bool)), _column(np.zeros(n_rows), 0)) if record.talk is None
          else (_bools(record.talk.flagged), _column(record.talk.transfers, 0))),
        *(_column(record.actions[name], 0) for name in layout.actions),
        *(_column(record.next_state[name], 0) for name in layout.seat_state),
    ]
    return pa.Table.from_arrays(columns, schema=layout.events_schema)


def markets_table(layout: Layout, record: RoundRecord) -> pa.Table:
    """The round's ``markets`` rows, B of them."""
    out = record.outcome
    price = np.asarray(record.observation.price, dtype=np.float64)
    columns = [
        pa.array(np.full(layout.markets, record.round, dtype=np.int32)), layout.market_ids,
        _bools(record.audited), _column(out.revenue, 0), _column(record.welfare, 0), _column(out.max_welfare, 0),
        pa.array(price, mask=np.isnan(price)), pa.array(np.asarray(record.digest, dtype=np.uint64)),
        *(_column(record.next_state[name], 0) for name in layout.market_state),
    ]
    return pa.Table.from_arrays(columns, schema=layout.markets_schema)


def round_totals(
    round_: int,
    outcome: Outcome,
    penalties: FloatArray,
    utility: FloatArray,
    welfare: FloatArray,
    active: BoolArray,
    exited: BoolArray,
    colluding: BoolArray,
    audited: BoolArray,
) -> dict[str, Any]:
    """One ``rounds`` row: sums, counts and means over the round's markets.

    Args:
        round_: the round.
        outcome: the mechanism's outcome, fields (B, N) and (B,).
        penalties: (B, N) fines.
        utility: (B, N) utility net of fines, false names merged.
        welfare: (B,) realized welfare, false names merged.
        active, exited, colluding: (B, N) seat flags.
        audited: (B,) markets audited.

    Returns:
        ``{column: Python scalar}`` for every column of the ``rounds`` table.
    """
    b, n = penalties.shape
    sums = {
        "revenue": float(outcome.revenue.sum()),
        "fines": float(penalties.sum()),
        "welfare": float(welfare.sum()),
        "max_welfare": float(outcome.max_welfare.sum()),
        "surplus": float(utility.sum()),
        "units": float(np.maximum(outcome.allocation, 0.0).sum()),
        "payments": float(outcome.payments.sum()),
        "receipts": float(outcome.receipts.sum()),
    }
    counts = {
        "markets": b, "seats": b * n,
        "audited": int(np.count_nonzero(audited)),
        "participants": int(np.count_nonzero(outcome.participated)),
        "active": int(np.count_nonzero(active)),
        "invalid": int(b * n - np.count_nonzero(outcome.valid)),
        "exited": int(np.count_nonzero(exited)),
        "colluding": int(np.count_nonzero(colluding)),
    }
    means = {
        "revenue_mean": sums["revenue"] / b,
        "welfare_mean": sums["welfare"] / b,
        "surplus_mean": sums["surplus"] / b,
        "participation": counts["participants"] / (b * n),
        "efficiency": sums["welfare"] / sums["max_welfare"] if sums["max_welfare"] != 0 else None,
    }
    return {"round": int(round_)} | counts | sums | means


def record_totals(record: RoundRecord) -> dict[str, Any]:
    """:func:`round_totals` of a round record."""
    return round_totals(record.round, record.outcome, record.penalties, record.utility, record.welfare,
                        record.active, record.exited, record.colluding, record.audited)


def rounds_table(rows: list[dict[str, Any]]) -> pa.Table:
    """``rounds`` rows (one dict per round, never per event) as a table."""
    return pa.Table.from_pydict({name: [row[name] for row in rows] for name in ROUNDS_SCHEMA.names},
                                schema=ROUNDS_SCHEMA)
