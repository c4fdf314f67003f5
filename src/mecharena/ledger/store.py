"""Files of a ledger directory: Parquet parts, JSONL and the DuckDB views.

Layout::

    meta.json                      metadata (see mecharena.ledger.meta)
    events/part-000000000.parquet  full mode: one row per (round, market, seat)
    markets/part-000000000.parquet full mode: one row per (round, market)
    rounds/part-000000000.parquet  both modes: one row per round
    parts.jsonl                    the manifest: one line per Parquet part as it lands (table,
                                   sequence number, SHA-256, bytes, rows, first and last round)
    rounds.jsonl                   one line per round, appended as each round is recorded
    traces.jsonl                   agents' decision notes (LLM prompts, answers, tool calls,
                                   parsed actions), appended as each round is recorded; absent
                                   when no agent wrote any
    events.jsonl, markets.jsonl    one JSON object per row, exported at close
    ledger.duckdb                  views events / markets / rounds over the Parquet parts

Every Parquet part is a complete file with page checksums, written under a temporary name and
renamed into place; its manifest line follows (see :mod:`mecharena.ledger.integrity`). Event
parts (full mode) pair ``events/part-S`` with ``markets/part-S``; the markets file is written second, so a part is *committed* once it exists. ``rounds`` parts have their own
sequence and batch many rounds (a one-row Parquet file costs more than a round of totals);
between them ``rounds.jsonl``, appended every round, is the crash log. A crash therefore loses
at most the round being written: committed parts stay readable, and :func:`finalize` turns
the logged totals past the last ``rounds`` part (for rounds whose events are committed) into
a new part and rebuilds the derived files. The JSONL export and ``ledger.duckdb`` derive from
the Parquet parts (DuckDB's ``COPY ... (FORMAT JSON)``, no per-row Python). Non-finite numbers
(only possible in invalid bids or times) appear in JSONL as ``NaN`` / ``Infinity``, as
Python's json module writes and reads them.
"""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mecharena.ledger.meta import FORMAT_VERSION, LedgerError, LedgerMeta, read_meta, write_meta
from mecharena.ledger.tables import EVENTS, MARKETS, ROUNDS, ROUNDS_SCHEMA, TABLES, rounds_table

DUCKDB_FILE = "ledger.duckdb"
MANIFEST = "parts.jsonl"
ROUNDS_LOG = "rounds.jsonl"
TRACES = "traces"
TRACES_LOG = "traces.jsonl"
PART_FILE = re.compile(r"^part-(\d{9})\.parquet$")

#: Parquet writer options, chosen by timing the events table (measured on a 2-core machine:
#: dictionaries cost ~15% and buy little for mostly unique floats; lz4 costs no more CPU than
#: no compression and writes a third of the bytes); statistics only on ``round``, the column
#: that queries across parts filter on.
PARQUET_OPTIONS = {
    "compression": "lz4",
    "use_dictionary": False,
    "write_statistics": ["round"],
    "data_page_version": "2.0",
    "write_batch_size": 1 << 16,
    "write_page_checksum": True,  # CRC32 per page, checked by read_part
}


def part_name(seq: int) -> str:
    return f"part-{seq:09d}.parquet"


def write_table(directory: Path, table: str, seq: int, data: pa.Table) -> dict[str, Any]:
    """Write ``table/part-seq.parquet`` atomically (temporary name, then rename).

    Returns:
        Its manifest entry (see :func:`manifest_entry`), hashed from the bytes written.
    """
    path = directory / table / part_name(seq)
    tmp = path.with_name(path.name + ".tmp")
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, **PARQUET_OPTIONS)
    blob = sink.getvalue()
    with tmp.open("wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    return manifest_entry(table, seq, data, hashlib.sha256(blob).hexdigest(), blob.size)


def manifest_entry(table: str, seq: int, data: pa.Table, sha256: str, size: int) -> dict[str, Any]:
    """The ``parts.jsonl`` line of a part: where it is, its SHA-256 and size, and what it holds."""
    rounds = pc.min_max(data.column("round")).as_py() if data.num_rows else {"min": None, "max": None}
    return {"table": table, "part": seq, "sha256": sha256, "bytes": size, "rows": data.num_rows,
            "first_round": rounds["min"], "last_round": rounds["max"]}


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sequence(directory: Path, table: str) -> list[int]:
    folder = directory / table
    if not folder.is_dir():
        raise LedgerError(f"ledger {str(directory)!r} is corrupt: the {table}/ folder is missing")
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise LedgerError(f"ledger folder {str(folder)!r} cannot be read: {exc.strerror}") from None
    return sorted(int(m.group(1)) for m in map(PART_FILE.match, names) if m)


def event_parts(directory: Path) -> list[int]:
    """Sequence numbers of the committed event parts (full mode), in order.

    Raises:
        LedgerError: a committed part lacks its events file.
    """
    seqs = _sequence(directory, MARKETS)
    for seq in seqs:
        if not (directory / EVENTS / part_name(seq)).is_file():
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {EVENTS}/{part_name(seq)} is missing "
                              f"although {MARKETS}/{part_name(seq)} was committed")
    return seqs


def part_files(directory: Path, meta: LedgerMeta, table: str) -> list[Path]:
    """The committed Parquet files of ``table``, in order."""
    seqs = _sequence(directory, ROUNDS) if table == ROUNDS else event_parts(directory)
    return [directory / table / part_name(seq) for seq in seqs]


def read_part(path: Path) -> pa.Table:
    """One Parquet part, with any reading problem as :class:`LedgerError`."""
    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise LedgerError(f"ledger file {str(path)!r} is corrupt or unreadable: {exc}") from None


def _num_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise LedgerError(f"ledger file {str(path)!r} is corrupt or unreadable: {exc}") from None


def recorded_rounds(directory: Path, meta: LedgerMeta) -> int:
    """Rounds whose record is committed: event rounds in full mode, totals in aggregate mode
    (counted from the Parquet footers, without reading data)."""
    if meta.mode == "full":
        return sum(_num_rows(p) for p in part_files(directory, meta, MARKETS)) // meta.markets
    return sum(_num_rows(p) for p in part_files(directory, meta, ROUNDS))


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(paths: list[Path]) -> str:
    return "[" + ", ".join(_sql_string(str(p.resolve())) for p in paths) + "]"


def connect(directory: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``events``, ``markets``, ``rounds`` (those the
    mode has) over the committed Parquet parts of the ledger in ``directory``, and ``traces``
    over ``traces.jsonl`` when agents wrote notes.

    Unlike ``ledger.duckdb``, whose views name absolute paths, this works wherever the
    directory has moved. Tables with no committed part yet are absent.

    >>> import tempfile
    >>> from mecharena import agents, mechanisms
    >>> from mecharena.ledger import record_episode
    >>> from mecharena.sim.loop import make_episode
    >>> episode = make_episode(mechanisms.get("second_price"), {}, agents.population("truthful:4"), markets=5, seed=3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     con = connect(record_episode(episode, f"{tmp}/run", rounds=3))
    ...     con.execute("SELECT count(*), count(DISTINCT market) FROM events").fetchone()
    (60, 5)

    Raises:
        LedgerError: not a ledger, or corrupt.
    """
    path = Path(directory)
    meta = read_meta(path)
    con = duckdb.connect()
    for table in TABLES[meta.mode]:
        files = part_files(path, meta, table)
        if files:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({_file_list(files)})")
    _traces_view(con, path)
    return con


def _traces_view(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    """The ``traces`` view over ``traces.jsonl``, when it has lines."""
    log = directory / TRACES_LOG
    if log.exists() and log.stat().st_size:
        con.execute(f"CREATE OR REPLACE VIEW {TRACES} AS SELECT * FROM read_json({_sql_string(str(log.resolve()))}, "
                    f"format = 'newline_delimited')")


def export_jsonl(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``TABLE.jsonl`` for each table of the ledger from its committed Parquet parts, in
    the order they were recorded (DuckDB's ``COPY ... (FORMAT JSON)``; no per-row Python).

    Returns:
        The JSONL files written.

    Raises:
        LedgerError: not a ledger, corrupt parts, or a write error.
    """
    path = Path(directory)
    meta = read_meta(path)
    return export_tables(path, meta, TABLES[meta.mode])


def export_tables(directory: Path, meta: LedgerMeta, tables: tuple[str, ...]) -> list[Path]:
    """``TABLE.jsonl`` for each of ``tables`` from the committed parts (see :func:`export_jsonl`)."""
    written: list[Path] = []
    if not tables:
        return written
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        for table in tables:
            target = directory / f"{table}.jsonl"
            tmp = target.with_name(target.name + ".tmp")
            files = part_files(directory, meta, table)
            if files:
                source = f"SELECT * FROM read_parquet({_file_list(files)})"
                con.execute(f"COPY ({source}) TO {_sql_string(str(tmp))} (FORMAT JSON)")
            else:
                tmp.write_text("")
            os.replace(tmp, target)
            written.append(target)
    except duckdb.Error as exc:
        raise LedgerError(f"could not export the ledger {str(directory)!r} to JSONL: {exc}") from None
    except OSError as exc:
        raise LedgerError(f"could not write JSONL in {str(directory)!r}: {exc.strerror}") from None
    finally:
        con.close()
    return written


def jsonl_line(row: dict[str, Any]) -> str:
    """One JSON object and a newline (for per-round rows, never per event)."""
    return json.dumps(row, separators=(",", ":")) + "\n"


def write_duckdb(directory: Path, meta: LedgerMeta) -> None:
    """(Re)create ``ledger.duckdb``: views over the glob of each table's parts, so a view also
    sees parts added later. Needs a committed part of every table of the mode.

    Raises:
        LedgerError: DuckDB could not write the file.
    """
    path = directory / DUCKDB_FILE
    tmp = directory / (DUCKDB_FILE + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            for table in TABLES[meta.mode]:
                glob = _sql_string(str((directory / table).resolve() / "part-*.parquet"))
                con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({glob})")
            _traces_view(con, directory)
        finally:
            con.close()
        os.replace(tmp, path)
    except duckdb.Error as exc:
        raise LedgerError(f"could not write {DUCKDB_FILE} in {str(directory)!r}: {exc}") from None


def logged_rounds(directory: Path) -> list[dict[str, Any]]:
    """The complete lines of ``rounds.jsonl`` (a torn last line, cut by a crash, is dropped).

    Raises:
        LedgerError: a complete line is not a ``rounds`` row.
    """
    path = directory / ROUNDS_LOG
    if not path.is_file():
        return []
    try:
        lines = path.read_text().split("\n")[:-1]
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"ledger log {str(path)!r} cannot be read: {exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LedgerError(f"ledger log {str(path)!r} line {number} is not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or set(row) != set(ROUNDS_SCHEMA.names):
            raise LedgerError(f"ledger log {str(path)!r} line {number} must be an object with the columns "
                              f"{', '.join(ROUNDS_SCHEMA.names)}")
        rows.append(row)
    return rows


def _max_round(paths: list[Path]) -> int:
    """The last round in the ``round`` column of ``paths`` (-1 when there are none)."""
    last = -1
    for path in paths:
        try:
            rounds = pq.read_table(path, columns=["round"]).column("round").to_pylist()
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise LedgerError(f"ledger file {str(path)!r} is corrupt or unreadable: {exc}") from None
        last = max([last, *rounds])
    return last


def _recover_log(directory: Path, meta: LedgerMeta) -> dict[str, Any] | None:
    """Write the logged totals that no ``rounds`` part holds yet (and, in full mode, whose
    events are committed) as a new ``rounds`` part; returns its manifest entry, if any."""
    seqs = _sequence(directory, ROUNDS)
    last = _max_round([directory / ROUNDS / part_name(s) for s in seqs])
    limit = _max_round(part_files(directory, meta, MARKETS)) if meta.mode == "full" else float("inf")
    tail = [row for row in logged_rounds(directory) if last < row["round"] <= limit]
    if tail:
        try:
            table = rounds_table(tail)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise LedgerError(f"ledger log {str(directory / ROUNDS_LOG)!r} holds a malformed row: {exc}") from None
        return write_table(directory, ROUNDS, (seqs[-1] + 1) if seqs else 0, table)
    return None


def _rebuild_manifest(directory: Path, meta: LedgerMeta, listed: list[dict[str, Any]]) -> str:
    """Rewrite ``parts.jsonl`` to list exactly the parts on disk (those the writer had not
    listed yet are hashed now); returns its SHA-256."""
    known = {(e["table"], e["part"]): e for e in listed}
    lines = []
    for table in TABLES[meta.mode]:
        for seq in _sequence(directory, table):
            entry = known.get((table, seq))
            if entry is None:
                path = directory / table / part_name(seq)
                data = read_part(path)
                entry = manifest_entry(table, seq, data, file_sha256(path), path.stat().st_size)
            lines.append(jsonl_line(entry))
    path = directory / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    try:
        tmp.write_text("".join(lines))
        os.replace(tmp, path)
    except OSError as exc:
        raise LedgerError(f"could not write {str(path)!r}: {exc.strerror}") from None
    return file_sha256(path)


def complete(directory: Path, meta: LedgerMeta, *, status: str, jsonl: bool) -> LedgerMeta:
    """Rewrite the JSONL files (``rounds.jsonl`` always, the others when ``jsonl``) and
    ``ledger.duckdb`` from the committed parts, and the metadata with ``status``."""
    export_tables(directory, meta, TABLES[meta.mode] if jsonl else (ROUNDS,))
    if all(part_files(directory, meta, table) for table in TABLES[meta.mode]):
        write_duckdb(directory, meta)
    final = meta.model_copy(update={"status": status, "rounds_recorded": recorded_rounds(directory, meta)})
    return write_meta(directory, final)


def finalize(directory: str | os.PathLike[str], *, jsonl: bool = True) -> LedgerMeta:
    """Repair a ledger whose writer stopped without closing it.

    Drops the files of the part that was being written, turns the totals logged in
    ``rounds.jsonl`` after the last ``rounds`` part (for rounds whose events are committed)
    into a new part, rewrites the JSONL files and ``ledger.duckdb`` from the Parquet parts and
    marks the ledger ``recovered``; the manifest then lists exactly the parts kept. On a closed
    ledger it only rebuilds the derived files. Either way it first verifies the parts (see
    :mod:`mecharena.ledger.integrity`), so that it never seals a damaged ledger as whole.

    Returns:
        The updated metadata.

    Raises:
        LedgerError: not a ledger, or corrupt.
    """
    from mecharena.ledger.integrity import read_manifest, verify  # integrity reads this module's layout

    path = Path(directory)
    meta = read_meta(path)
    verify(path, meta)
    if meta.status != "open":
        return complete(path, meta, status=meta.status, jsonl=jsonl)
    listed = read_manifest(path, complete=False)
    committed = {ROUNDS: set(_sequence(path, ROUNDS))}
    if meta.mode == "full":
        committed[EVENTS] = committed[MARKETS] = set(event_parts(path))
    try:
        for table, seqs in committed.items():
            for name in os.listdir(path / table):
                match = PART_FILE.match(name)
                if name.endswith(".tmp") or (match and int(match.group(1)) not in seqs):
                    (path / table / name).unlink()
    except OSError as exc:
        raise LedgerError(f"cannot clean the ledger {str(path)!r}: {exc.strerror}") from None
    _recover_log(path, meta)
    sealed = meta.model_copy(update={"manifest_sha256": _rebuild_manifest(path, meta, listed),
                                     "format_version": FORMAT_VERSION})
    return complete(path, sealed, status="recovered", jsonl=jsonl)
