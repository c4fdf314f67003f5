"""Replay: rebuild every recorded outcome from the events alone and compare, bit for bit.

For each recorded round, the values, bids, order times and priorities of the ``events``
table are cleared again by the engine (:func:`mecharena.sim.loop.clear_round`, the mechanism and
config named by the metadata, with the recorded entries: a seller that sat out asks nothing); a
mechanism that keeps state steps from the state the ledger
recorded after the previous round (the initial state for round 0) with the recorded actions
beyond bids, and the state it reaches is compared with the recorded one, so every state
transition is checked; fines are recomputed from the recorded audits, collusion
flags, exits, entries and bids, the metadata's owner map and enforcement rules, exactly as
:func:`mecharena.sim.loop.play_round` charges them:

    penalty[b, i] = withdrawal * exited[b, i]
                    + audited[b] * (collusion * colluding[b, i] + shill * false_names_bidding[b, i])

where ``false_names_bidding[b, i]`` counts the false-name identities owned by seat i that
entered with a positive bid. Utility merges false names into their owner and subtracts fines;
the announcement and its digest are rebuilt by the round loop's own functions. Allocation,
payment, receipt, penalty, utility, validity and participation per seat; revenue, welfare,
maximum welfare, announced price and digest per market; and the ``rounds`` totals are then
compared with what was recorded: floats by their 64 bits (NaN equals NaN), so any change to
the engine, the inputs or the files shows up. Before that, :func:`mecharena.ledger.integrity.verify`
checks that every part is present, whole, unedited and in sequence, and that the metadata
was not edited: a damaged ledger is an error, never a partial replay reported as exact.
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mecharena import mechanisms
from mecharena.agents.base import MarketContext
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.types import BoolArray, FloatArray, IntArray
from mecharena.ledger.integrity import verify
from mecharena.ledger.meta import LedgerError, LedgerMeta, read_meta
from mecharena.ledger.store import event_parts, part_files, part_name, read_part
from mecharena.ledger.tables import (
    EVENTS,
    MARKET_CHECKS,
    MARKETS,
    ROUND_COUNTS,
    ROUND_MEANS,
    ROUND_SUMS,
    ROUNDS,
    SEAT_CHECKS,
    round_totals,
)
from mecharena.mechanisms.base import mechanism_draws
from mecharena.mechanisms.schema import State
from mecharena.sim.loop import clear_round, digest, merge_identities, merged_best, observe, penalties

DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One recorded number that replay does not reproduce."""

    round: int
    market: int | None  # global market index; None for a round total
    seat: int | None  # None for a per-market or per-round field
    field: str  # column name; ``rounds.NAME`` for a round total
    recorded: Any
    replayed: Any


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :func:`replay` checked and what did not match."""

    directory: str
    mechanism: str
    mechanism_version: int  # as recorded
    status: str  # the ledger's status: closed, open (interrupted), aborted, recovered
    rounds: int  # rounds checked
    market_rounds: int  # (round, market) pairs checked
    events: int  # (round, market, seat) events checked
    mismatch_count: int  # all mismatching values
    mismatches: tuple[Mismatch, ...]  # the first ``limit`` of them
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every recorded value was reproduced exactly."""
        return self.mismatch_count == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite floats as strings)."""
        data = {name: getattr(self, name) for name in self.__slots__ if name != "mismatches"}
        data["ok"] = self.ok
        data["notes"] = list(self.notes)
        data["mismatches"] = [{k: _plain(v) for k, v in asdict(m).items()} for m in self.mismatches]
        return data


def _plain(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return repr(x)
    return x


def _float_column(table: pa.Table, name: str, path: Path, rows: int, width: int) -> tuple[FloatArray, BoolArray]:
    """(rows[, width]) float64 (NaN where null) and the (rows,) null mask."""
    column = _column(table, name, path).combine_chunks()
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    try:
        if width:
            if not pa.types.is_fixed_size_list(column.type) or column.type.list_size != width:
                raise LedgerError(f"ledger file {str(path)!r}: column {name!r} must hold lists of {width} numbers "
                                  f"as the metadata says, got {column.type}")
            # the child values, null entries included (flatten() would skip them); .values ignores the offset
            flat = column.values.slice(column.offset * width, len(column) * width)
            array = flat.to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(rows, width)
        else:
            array = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise LedgerError(f"ledger file {str(path)!r}: column {name!r} is not numeric: {exc}") from None
    return array, nulls


def _column(table: pa.Table, name: str, path: Path) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise LedgerError(f"ledger file {str(path)!r} lacks the column {name!r}")
    return table.column(name)


def _array(table: pa.Table, name: str, path: Path, dtype: type) -> np.ndarray:
    column = _column(table, name, path)
    if column.null_count and dtype is not np.float64:
        raise LedgerError(f"ledger file {str(path)!r}: column {name!r} has null entries")
    try:
        array = column.to_numpy()
        if dtype is np.float64 and column.null_count:
            array = np.where(column.is_null().to_numpy(zero_copy_only=False), np.nan, array)
        return array.astype(dtype, copy=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise LedgerError(f"ledger file {str(path)!r}: column {name!r} cannot be read as {dtype.__name__}: "
                          f"{exc}") from None


def _differs(recorded: np.ndarray, replayed: np.ndarray) -> BoolArray:
    """Elementwise: not the same 64 bits (floats; NaN matches NaN) or not equal (other types)."""
    if recorded.dtype == np.float64:
        replayed = np.asarray(replayed, dtype=np.float64)
        same = (recorded.view(np.uint64) == replayed.view(np.uint64)) | (np.isnan(recorded) & np.isnan(replayed))
        return ~same
    return recorded != np.asarray(replayed, dtype=recorded.dtype)


class _Collector:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.items: list[Mismatch] = []

    def compare(self, field: str, recorded: np.ndarray, replayed: np.ndarray, round_: int,
                market_ids: IntArray | None) -> None:
        bad = _differs(recorded, replayed)
        hits = int(np.count_nonzero(bad))
        if not hits:
            return
        self.count += hits
        room = self.limit - len(self.items)
        if room <= 0:
            return
        replayed = np.broadcast_to(np.asarray(replayed, dtype=recorded.dtype), recorded.shape)
        for index in np.argwhere(bad)[:room]:
            idx = tuple(int(i) for i in index)
            market = None if market_ids is None else int(market_ids[idx[0]])
            seat = idx[1] if len(idx) > 1 else None
            self.items.append(Mismatch(round_, market, seat, field, recorded[idx].item(), replayed[idx].item()))


def replay(directory: str | os.PathLike[str], *, limit: int = DEFAULT_LIMIT) -> ReplayReport:
    """Re-clear every round of a full-mode ledger and compare with what it recorded.

    Args:
        directory: the ledger directory.
        limit: how many mismatches to list (all are counted).

    Returns:
        A :class:`ReplayReport`; ``report.ok`` when everything matched.

    Raises:
        ConfigError: the ledger was recorded in aggregate mode.
        LedgerError: missing directory, missing or corrupt metadata or event files, parts
            missing, extra, truncated, edited or out of sequence (see
            :mod:`mecharena.ledger.integrity`).
        UnknownIdError: the recorded mechanism is not registered.
    """
    path = Path(directory)
    meta = read_meta(path)
    if meta.mode != "full":
        raise ConfigError(f"replay needs a ledger recorded in mode 'full' (every seat's bids and outcomes), "
                          f"got mode {meta.mode!r} in {str(path)!r}, which keeps only per-round totals; "
                          f"record again with mode='full'")
    mechanism = mechanisms.get(meta.mechanism)
    try:
        config = mechanism.config(meta.config)
        spec = mechanism.market_spec(config, meta.seats)
    except MechArenaError as exc:
        raise LedgerError(f"ledger metadata {str(path / 'meta.json')!r}: the recorded config no longer "
                          f"validates: {exc}") from None
    context = MarketContext(mechanism, config, spec, meta.seats, meta.values, meta.information, meta.enforcement)
    notes = []
    if mechanism.version != meta.mechanism_version:
        notes.append(f"{meta.mechanism} is VERSION {mechanism.version} now but the ledger was recorded with VERSION "
                     f"{meta.mechanism_version}: outcomes may legitimately differ")
    if meta.status == "open":
        notes.append("the ledger was never closed (its writer was interrupted); replaying the rounds it flushed")
    unverified = verify(path, meta)
    totals = _recorded_totals(path, meta)
    declared = ([a.name for a in mechanism.actions], [f.name for f in mechanism.state if f.per == "seat"],
                [f.name for f in mechanism.state if f.per == "market"])
    recorded = (meta.actions, meta.seat_state, meta.market_state)
    if declared != recorded:
        raise LedgerError(f"ledger metadata {str(path / 'meta.json')!r}: {meta.mechanism} now declares actions, seat "
                          f"and market state {declared} but the ledger recorded {recorded}")
    collector = _Collector(limit)
    rounds = 0
    missing_totals: list[int] = []
    carried: dict[int, State] = {}  # round -> the mechanism's state after it, as recorded
    for seq in event_parts(path):
        rounds += _replay_part(path, seq, meta, context, totals, collector, missing_totals, carried)
    b, n = meta.markets, meta.seats
    if rounds == 0:
        notes.append("the ledger holds no rounds")
    if missing_totals:
        notes.append(f"{len(missing_totals)} rounds (from round {missing_totals[0]}) have no totals in Parquet yet; "
                     f"their totals were not checked (mecharena.ledger.finalize adds them from rounds.jsonl)")
    notes.extend(unverified)
    return ReplayReport(str(path), meta.mechanism, meta.mechanism_version, meta.status, rounds, rounds * b,
                        rounds * b * n, collector.count, tuple(collector.items), tuple(notes))


def _recorded_totals(directory: Path, meta: LedgerMeta) -> dict[int, dict[str, Any]]:
    """round -> its recorded ``rounds`` row (as NumPy scalars of the column types)."""
    rows: dict[int, dict[str, Any]] = {}
    for path in part_files(directory, meta, ROUNDS):
        table = read_part(path)
        columns = {name: _array(table, name, path, np.int64 if name in ROUND_COUNTS else np.float64)
                   for name in ROUND_COUNTS + ROUND_SUMS + ROUND_MEANS}
        for i, t in enumerate(_array(table, "round", path, np.int64)):
            rows[int(t)] = {name: column[i:i + 1] for name, column in columns.items()}
    return rows


def _state_before(context: MarketContext, meta: LedgerMeta, carried: dict[int, State], t: int, b: int, n: int,
                  seq: int) -> State:
    """The mechanism's state when round ``t`` began: the initial state (drawn as the episode drew it), or what the
    ledger recorded after ``t - 1``."""
    if t == 0 or not context.mechanism.stateful:
        return context.mechanism.initial(context.config, b, n, mechanism_draws(meta.seed, meta.start, b))
    if t - 1 not in carried:
        raise LedgerError(f"ledger part {part_name(seq)}: round {t} of a stateful mechanism cannot be replayed without "
                          f"the state after round {t - 1}, which no earlier part recorded")
    return carried.pop(t - 1)


def _replay_part(directory: Path, seq: int, meta: LedgerMeta, context: MarketContext,
                 totals: dict[int, dict[str, Any]], collector: _Collector, missing_totals: list[int],
                 carried: dict[int, State]) -> int:
    """Replay every round of event part ``seq``; returns the number of rounds. A stateful mechanism steps from
    the state recorded after the previous round (``carried``, filled here for the next part)."""
    paths = {t: directory / t / part_name(seq) for t in (EVENTS, MARKETS)}
    events, markets = read_part(paths[EVENTS]), read_part(paths[MARKETS])
    b, n = meta.markets, meta.seats
    round_ids = np.unique(_array(markets, "round", paths[MARKETS], np.int64))
    r = round_ids.size
    if events.num_rows != r * b * n or markets.num_rows != r * b:
        raise LedgerError(f"ledger part {part_name(seq)} is corrupt: {r} rounds of {b} markets x {n} seats need "
                          f"{r * b * n} events and {r * b} market rows, got {events.num_rows} and {markets.num_rows}")
    market_ids = np.arange(meta.start, meta.start + b, dtype=np.int64)
    owner = np.asarray(meta.owner, dtype=np.int64)
    layout_ok = (
        np.array_equal(_array(events, "round", paths[EVENTS], np.int64), np.repeat(round_ids, b * n))
        and np.array_equal(_array(events, "market", paths[EVENTS], np.int64), np.tile(np.repeat(market_ids, n), r))
        and np.array_equal(_array(events, "seat", paths[EVENTS], np.int64), np.tile(np.arange(n), r * b))
        and np.array_equal(_array(events, "owner", paths[EVENTS], np.int64), np.tile(owner, r * b))
        and np.array_equal(_array(markets, "round", paths[MARKETS], np.int64), np.repeat(round_ids, b))
        and np.array_equal(_array(markets, "market", paths[MARKETS], np.int64), np.tile(market_ids, r))
    )
    if not layout_ok:
        raise LedgerError(f"ledger part {part_name(seq)} is corrupt: its rows are not the (round, market, seat) "
                          f"grid of {b} markets x {n} seats and owners the metadata describes")

    def seats(name: str, dtype: type = np.float64) -> np.ndarray:
        return _array(events, name, paths[EVENTS], dtype).reshape(r, b, n)

    def wide(name: str, width: int) -> tuple[FloatArray, BoolArray]:
        """(r, b, n[, width]) values and, per round, whether it has them (a round without order
        times has a null ``time`` in every row)."""
        array, nulls = _float_column(events, name, paths[EVENTS], r * b * n, width)
        nulls = nulls.reshape(r, b * n)
        if (nulls.any(axis=1) & ~nulls.all(axis=1)).any():
            raise LedgerError(f"ledger file {str(paths[EVENTS])!r}: column {name!r} must be null in every row of a "
                              f"round or in none")
        return array.reshape((r, b, n) + ((width,) if width else ())), ~nulls.any(axis=1)

    (values, has_values), (bids, has_bids) = wide("value", meta.value_width), wide("bid", meta.bid_width)
    if not (has_values.all() and has_bids.all()):
        raise LedgerError(f"ledger file {str(paths[EVENTS])!r}: values and bids must not be null")
    times, has_times = wide("time", meta.time_width)
    priority = seats("priority")
    flags = {name: seats(name, np.bool_) for name in ("active", "colluding", "exited")}
    recorded = {name: seats(name, np.bool_ if name in ("valid", "participated") else np.float64)
                for name in SEAT_CHECKS}
    audited = _array(markets, "audited", paths[MARKETS], np.bool_).reshape(r, b)
    # Ledgers of episodes with message channels record the detector's flags and the side payments;
    # those recorded before the columns existed have neither (and had no channels).
    talk = (seats("flagged", np.bool_), seats("transfer")) if meta.channels is not None else None
    recorded_markets = {name: _array(markets, name, paths[MARKETS], np.uint64 if name == "digest" else np.float64)
                        .reshape(r, b) for name in MARKET_CHECKS}
    actions = {name: seats(f"action_{name}") for name in meta.actions}
    recorded_state = {**{name: seats(f"state_{name}") for name in meta.seat_state},
                      **{name: _array(markets, f"state_{name}", paths[MARKETS], np.float64).reshape(r, b)
                         for name in meta.market_state}}
    for k in range(r):
        t = int(round_ids[k])
        round_times = times[k] if has_times[k] else None
        before = _state_before(context, meta, carried, t, b, n, seq)
        try:
            step = clear_round(context, before, values[k], bids[k], priority[k], round_times,
                               {name: a[k] for name, a in actions.items()}, flags["active"][k])
        except MechArenaError as exc:
            raise LedgerError(f"ledger part {part_name(seq)}: round {t} cannot be cleared from its recorded "
                              f"inputs: {exc}") from None
        out = merged_best(context, before, values[k], priority[k], owner, step.outcome)
        for name, array in recorded_state.items():
            collector.compare(f"state_{name}", array[k], step.state[name], t, market_ids)
        if recorded_state:
            carried[t] = {name: array[k] for name, array in recorded_state.items()}
        utility, welfare = merge_identities(owner, values[k], out, context.mechanism.additive_values)
        fines = penalties(context.enforcement, owner, audited[k], flags["colluding"][k], flags["exited"][k],
                          flags["active"][k], bids[k])
        utility = utility - fines
        if talk is not None:  # the loop's order: the detector's fines, then side payments
            flagged, transfer = talk
            extra = context.enforcement.collusion_penalty * (flagged[k] & ~(audited[k][:, None] & flags["colluding"][k]))
            fines, utility = fines + extra, utility - extra + transfer[k]
        observation = observe(context, out, bids[k])
        replayed = {"allocation": out.allocation, "payment": out.payments, "receipt": out.receipts,
                    "penalty": fines, "utility": utility, "valid": out.valid, "participated": out.participated}
        for name in SEAT_CHECKS:
            collector.compare(name, recorded[name][k], replayed[name], t, market_ids)
        replayed_markets = {"revenue": out.revenue, "welfare": welfare, "max_welfare": out.max_welfare,
                            "price": observation.price, "digest": digest(observation)}
        for name in MARKET_CHECKS:
            collector.compare(name, recorded_markets[name][k], replayed_markets[name], t, market_ids)
        if t not in totals:
            missing_totals.append(t)
            continue
        again = round_totals(t, out, fines, utility, welfare, flags["active"][k], flags["exited"][k],
                             flags["colluding"][k], audited[k])
        for name, value in totals[t].items():
            expected = np.nan if again[name] is None else again[name]
            collector.compare(f"rounds.{name}", value, np.asarray([expected]), t, None)
    return r
