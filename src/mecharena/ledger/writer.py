"""Recording an episode: the append-only :class:`Ledger` and :func:`record_episode`.

>>> import tempfile
>>> from mecharena import agents, mechanisms
>>> from mecharena.sim.loop import make_episode
>>> episode = make_episode(mechanisms.get("second_price"), {"reserve_price": 0.2}, agents.population("truthful:3"),
...                        markets=8, seed=1)
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = record_episode(episode, f"{tmp}/run", rounds=2)
...     read_meta(path).rounds_recorded
2
"""

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, Self

import pyarrow as pa

from mecharena.core.errors import ConfigError
from mecharena.ledger.meta import MODES, LedgerError, LedgerMeta, describe, read_meta, write_meta
from mecharena.ledger.store import (
    MANIFEST,
    ROUNDS_LOG,
    TRACES_LOG,
    export_tables,
    file_sha256,
    jsonl_line,
    write_duckdb,
    write_table,
)
from mecharena.ledger.tables import (
    EVENTS,
    MARKETS,
    ROUNDS,
    TABLES,
    Layout,
    events_table,
    markets_table,
    record_totals,
    rounds_table,
)
from mecharena.sim.loop import Episode, RoundRecord, play

MAX_FLUSH_ROUNDS = 10_000
#: Rounds per ``rounds`` Parquet part (and per part in aggregate mode, by default): a one-row
#: Parquet file costs more than a round of totals, and ``rounds.jsonl`` is the crash log.
TOTALS_ROUNDS = 256


class Ledger:
    """An append-only ledger of one episode, written while it plays.

    :meth:`record` checks the round and appends its totals to ``rounds.jsonl`` (one line,
    flushed to the operating system). In full mode every ``flush_rounds`` rounds (default 1)
    become an event part: ``events`` and ``markets`` Parquet files built column by column from
    the NumPy arrays, no per-event Python objects. Totals go to a ``rounds`` part every
    ``TOTALS_ROUNDS`` rounds (in aggregate mode every ``flush_rounds``, default the same) and at
    close; the first round is written at once so that ``ledger.duckdb`` exists early (see
    :mod:`mecharena.ledger.store`). With ``background`` the Parquet work runs on one writer
    thread while the next rounds play; a part waits for the previous one, so when
    :meth:`record` returns every part but the newest is on disk; :meth:`flush` waits for all.
    Each part's line (SHA-256, size, rows, rounds) is appended to the manifest ``parts.jsonl``
    once the part is in place. :meth:`close` writes the JSONL export of events and markets and
    marks the metadata closed with the manifest's SHA-256 (see :mod:`mecharena.ledger.integrity`).

    Crashes: without ``background`` a round is on disk when :meth:`record` returns, so a crash
    loses at most the round in flight; with it, the newest recorded round is being written
    while the next one plays, so a crash loses at most those two (in aggregate mode the totals
    line of every recorded round is already in ``rounds.jsonl``). Everything written stays
    readable, and :func:`~mecharena.ledger.finalize` tidies up after the crash.

    The arrays of a recorded round are read until its part is written: do not mutate them in
    place (the round loop never does).

    Args:
        directory: where to write; created if missing, must not already hold files.
        mode: ``"full"`` (every seat of every market) or ``"aggregate"`` (per-round totals).
        meta: the run's metadata, e.g. from :func:`mecharena.ledger.describe`.
        jsonl: export events and markets to JSONL at close. It costs far more than recording
            (see ``mecharena bench ledger``); :func:`~mecharena.ledger.export_jsonl` can write
            it later instead. ``rounds.jsonl`` is always written.
        flush_rounds: rounds per event part in full mode (default 1), per ``rounds`` part in
            aggregate mode (default ``TOTALS_ROUNDS``).
        background: write parts on a writer thread.

    Raises:
        ConfigError: bad mode or flush_rounds, or a directory that is not empty.
        LedgerError: the directory cannot be created.
    """

    def __init__(self, directory: str | os.PathLike[str], mode: str, meta: LedgerMeta, *, jsonl: bool = True,
                 flush_rounds: int | None = None, background: bool = True) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        full = mode == "full"
        flush_rounds = (1 if full else TOTALS_ROUNDS) if flush_rounds is None else flush_rounds
        if isinstance(flush_rounds, bool) or not isinstance(flush_rounds, int) \
                or not 1 <= flush_rounds <= MAX_FLUSH_ROUNDS:
            raise ConfigError(f"flush_rounds must be an integer in [1, {MAX_FLUSH_ROUNDS}], got {flush_rounds!r}")
        if not isinstance(directory, str | os.PathLike):
            raise ConfigError(f"directory must be a path (str or os.PathLike), got {type(directory).__name__}")
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"ledger directory must be a directory, got the file {str(path)!r}")
        if path.is_dir() and any(path.iterdir()):
            raise ConfigError(f"ledger directory must be new or empty (ledgers are append-only), "
                              f"got {str(path)!r} which already holds files")
        self._meta = meta.model_copy(update={"mode": mode, "status": "open", "rounds_recorded": 0})
        self._dir = path
        self._full = full
        self._jsonl = jsonl
        self._events_every = flush_rounds if full else 0
        self._totals_every = TOTALS_ROUNDS if full else flush_rounds
        self._layout = Layout.from_meta(self._meta)
        self._records: list[RoundRecord] = []  # full mode: rounds not yet in an event part
        self._totals: list[dict[str, Any]] = []  # totals not yet in a rounds part
        self._next_round: int | None = None
        self._event_seq = 0
        self._totals_seq = 0
        self._written = 0  # rounds committed (updated by the writer; read after a wait)
        self._has_duckdb = False
        self._pending: Future[None] | None = None
        self._closed = False
        try:
            for table in TABLES[mode]:
                (path / table).mkdir(parents=True, exist_ok=True)
            self._meta = write_meta(path, self._meta)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger in {str(path)!r}: {exc.strerror}") from None
        self._log: IO[str] = self._open(ROUNDS_LOG)
        self._manifest: IO[str] = self._open(MANIFEST)  # appended by whoever writes parts (the writer thread)
        self._traces: IO[str] | None = None  # opened at the first round with notes
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mecharena-ledger") if background else None

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def meta(self) -> LedgerMeta:
        """The metadata as last written (status ``open`` until closed)."""
        return self._meta

    def record(self, record: RoundRecord) -> None:
        """Append one round.

        Raises:
            LedgerError: the ledger is closed, the round is not the next one, shapes differ
                from the metadata, or a write failed.
        """
        self._check_open()
        if self._next_round is not None and record.round != self._next_round:
            raise LedgerError(f"rounds must be recorded in order: expected round {self._next_round}, "
                              f"got {record.round}")
        self._layout.check(record)
        first = self._next_round is None
        self._next_round = record.round + 1
        totals = record_totals(record)
        self._append(self._log, ROUNDS_LOG, [totals])
        self._note(record.notes)
        self._totals.append(totals)
        if self._full:  # aggregate mode keeps no arrays (holding them costs fresh memory pages)
            self._records.append(record)
        self._submit(events=first or len(self._records) >= self._events_every,
                     totals=first or len(self._totals) >= self._totals_every)

    def annotate(self, notes: list[dict[str, Any]]) -> None:
        """Append notes known only after the rounds (a decision's regret) to ``traces.jsonl``, keyed like the
        agents' own (round, agent, market, seat).

        Raises:
            LedgerError: the ledger is closed, or a write failed.
        """
        self._check_open()
        self._note(notes)

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError(f"ledger {str(self._dir)!r} is closed; open a new one to record more rounds")

    def _note(self, notes: Any) -> None:
        """Append ``notes`` to ``traces.jsonl``, opened at the first notes."""
        if notes:
            if self._traces is None:
                self._traces = self._open(TRACES_LOG)
            self._append(self._traces, TRACES_LOG, notes)

    def _open(self, name: str) -> IO[str]:
        try:
            return (self._dir / name).open("a")
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger in {str(self._dir)!r}: {exc.strerror}") from None

    def _append(self, log: IO[str], name: str, rows) -> None:
        """Append JSON lines and hand them to the operating system (the crash logs)."""
        try:
            log.write("".join(jsonl_line(row) for row in rows))
            log.flush()
        except OSError as exc:
            raise LedgerError(f"could not append to {str(self._dir / name)!r}: {exc.strerror}") from None

    def flush(self) -> None:
        """Write every recorded round to Parquet and wait until it is there."""
        self._submit(events=True, totals=True)
        self._wait()

    def close(self, *, status: str = "closed") -> None:
        """Flush, export JSONL, make sure ``ledger.duckdb`` exists, mark the metadata ``status``.
        Closing twice does nothing.

        Raises:
            LedgerError: a write failed.
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._log.close()
            if self._traces is not None:
                self._traces.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._manifest.close()
        if self._jsonl and self._full:
            export_tables(self._dir, self._meta, (EVENTS, MARKETS))
        if self._written and (not self._has_duckdb or self._traces is not None):  # the traces view, too
            write_duckdb(self._dir, self._meta)
        try:
            manifest = file_sha256(self._dir / MANIFEST)
        except OSError as exc:
            raise LedgerError(f"could not read back {str(self._dir / MANIFEST)!r}: {exc.strerror}") from None
        self._meta = write_meta(self._dir, self._meta.model_copy(
            update={"status": status, "rounds_recorded": self._written, "manifest_sha256": manifest}))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # keep what was recorded; the original error is what matters
            self.close(status="aborted")

    def _submit(self, *, events: bool, totals: bool) -> None:
        """Hand the buffered rounds to the writer: an event part when ``events``, a rounds part
        when ``totals`` (never totals ahead of their events)."""
        records = self._records if (events or totals) and self._records else []
        rows = self._totals if totals and self._totals else []
        if not records and not rows:
            return
        if records:
            self._records = []
        if rows:
            self._totals = []
        job = (self._event_seq if records else None, records, self._totals_seq if rows else None, rows)
        self._event_seq += bool(records)
        self._totals_seq += bool(rows)
        self._wait()
        if self._pool is None:
            self._write(*job)
        else:
            self._pending = self._pool.submit(self._write, *job)

    def _write(self, event_seq: int | None, records: list[RoundRecord], totals_seq: int | None,
               rows: list[dict[str, Any]]) -> None:
        """Build and write the parts (on the writer thread when ``background``)."""
        try:
            if records:
                for name, build in ((EVENTS, events_table), (MARKETS, markets_table)):  # markets last: the commit
                    parts = [build(self._layout, record) for record in records]
                    self._list(write_table(self._dir, name, event_seq,
                                           parts[0] if len(parts) == 1 else pa.concat_tables(parts)))
            if rows:
                self._list(write_table(self._dir, ROUNDS, totals_seq, rounds_table(rows)))
            self._written += len(records) if self._full else len(rows)
            if not self._has_duckdb:
                write_duckdb(self._dir, self._meta)
                self._has_duckdb = True
        except (pa.ArrowException, OSError) as exc:
            raise LedgerError(f"could not write to the ledger {str(self._dir)!r}: {exc}") from None

    def _list(self, entry: dict[str, Any]) -> None:
        """Append a written part's line to the manifest (after the part is in place: a listed part exists)."""
        self._manifest.write(jsonl_line(entry))
        self._manifest.flush()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # re-raises the writer's LedgerError here


class EpisodeSource(Protocol):
    """Anything that builds an episode and knows its rounds, e.g. :class:`mecharena.metrics.harness.Cell`."""

    rounds: int

    def episode(self) -> Episode: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


def record_episode(
    source: Episode | EpisodeSource,
    directory: str | os.PathLike[str],
    rounds: int | None = None,
    mode: str = "full",
    *,
    jsonl: bool = True,
    flush_rounds: int | None = None,
    background: bool = True,
    on_round: Callable[[int], None] | None = None,
) -> Path:
    """Play ``source`` for ``rounds`` rounds and record every round in a new ledger.

    Args:
        source: an :class:`~mecharena.sim.loop.Episode`, or an experiment cell (anything with
            ``episode()``, ``rounds`` and ``model_dump``), recorded in the metadata too.
        directory: the new ledger's directory.
        rounds: rounds to play; defaults to the cell's; required for an Episode.
        mode: ``"full"`` or ``"aggregate"``.
        jsonl: see :class:`Ledger`.
        flush_rounds: see :class:`Ledger`.
        background: see :class:`Ledger`.
        on_round: called with each round index after it is recorded (progress bars).

    Returns:
        The ledger directory.

    Raises:
        ConfigError: bad arguments (see :class:`Ledger` and :func:`~mecharena.sim.loop.play`).
    """
    if isinstance(source, Episode):
        episode, cell = source, None
        if rounds is None:
            raise ConfigError("rounds is required when recording an Episode (a Cell carries its own)")
    elif callable(getattr(source, "episode", None)):
        episode, cell = source.episode(), source.model_dump(mode="json")
        rounds = source.rounds if rounds is None else rounds
    else:
        raise ConfigError(f"source must be an Episode or a Cell, got {type(source).__name__}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
    meta = describe(episode, rounds=rounds, cell=cell)
    with Ledger(directory, mode, meta, jsonl=jsonl, flush_rounds=flush_rounds, background=background) as ledger:
        for record in play(episode, rounds):
            ledger.record(record)
            if on_round is not None:
                on_round(record.round)
    return ledger.directory


__all__ = ["TOTALS_ROUNDS", "EpisodeSource", "Ledger", "read_meta", "record_episode"]
