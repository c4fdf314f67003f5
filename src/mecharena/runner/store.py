"""The results database of a run directory: ``DIR/results.duckdb``.

Tables (one writer, the runner's parent process; each finished cell is one transaction, so
a crash or ``kill -9`` loses no committed cell):

* ``cells``: one row per computed cell, keyed by :meth:`Cell.key` (a content hash, so a cell
  computed once is reused by any spec that contains it): the cell's fields and JSON, metrics
  JSON ``{name: {mean, ci95}}``, curves JSON ``{name: [value per round]}``, versions, any
  warnings raised while computing it, and timings (``seconds``, ``finished_at``, ``backend``,
  ``worker``).
* ``metrics``: the same metrics, long: ``(key, metric, mean, lo, hi)``.
* ``plan``: the cells of the latest spec run here, with their labels and row ``position``.
* ``meta``: schema version, the spec's name, file and YAML text.

Views: ``results`` (plan joined with cells: one row per finished cell of the latest spec, in
spec order) and ``results_metrics`` (the same, one row per metric). Non-finite numbers are
stored as NULL (JSON ``null``). Everything but the timing columns is a deterministic function
of the spec, so the table is identical whatever the backend and the number of workers.
"""

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb

from mecharena.core.errors import MechArenaError
from mecharena.runner.spec import Plan, PlannedCell

SCHEMA_VERSION = "1"
DATABASE = "results.duckdb"
TIMING_COLUMNS = ("seconds", "finished_at", "backend", "worker")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS cells (
    key VARCHAR PRIMARY KEY,
    mechanism_id VARCHAR NOT NULL,
    config JSON NOT NULL,
    population_spec VARCHAR NOT NULL,
    information_policy JSON NOT NULL,
    enforcement_policy JSON NOT NULL,
    value_distribution VARCHAR NOT NULL,
    markets BIGINT NOT NULL,
    rounds BIGINT NOT NULL,
    seed BIGINT NOT NULL,
    cell JSON NOT NULL,
    metrics JSON NOT NULL,
    curves JSON NOT NULL,
    versions JSON NOT NULL,
    warnings JSON NOT NULL,
    seconds DOUBLE,
    finished_at TIMESTAMP,
    backend VARCHAR,
    worker VARCHAR
);
CREATE TABLE IF NOT EXISTS metrics (key VARCHAR NOT NULL, metric VARCHAR NOT NULL, mean DOUBLE, lo DOUBLE, hi DOUBLE);
CREATE TABLE IF NOT EXISTS plan (
    position INTEGER NOT NULL, key VARCHAR NOT NULL, mechanism VARCHAR NOT NULL, population VARCHAR NOT NULL,
    information VARCHAR NOT NULL, enforcement VARCHAR NOT NULL, seed BIGINT NOT NULL
);
CREATE OR REPLACE VIEW results AS
    SELECT p.position, p.key, p.mechanism, p.population, p.information, p.enforcement, p.seed,
           c.mechanism_id, c.config, c.population_spec, c.information_policy, c.enforcement_policy,
           c.value_distribution, c.markets, c.rounds, c.metrics, c.curves, c.versions, c.warnings, c.cell,
           c.seconds, c.finished_at, c.backend, c.worker
    FROM plan p JOIN cells c ON p.key = c.key ORDER BY p.position;
CREATE OR REPLACE VIEW results_metrics AS
    SELECT p.position, p.key, p.mechanism, p.population, p.information, p.enforcement, p.seed,
           m.metric, m.mean, m.lo, m.hi
    FROM plan p JOIN metrics m ON p.key = m.key ORDER BY p.position, m.metric;
"""
_TABLES = ("meta", "cells", "metrics", "plan")


class ResultsError(MechArenaError):
    """A run directory or its results database is missing, unreadable, locked or not ours."""


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (at any depth of lists and dicts) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no NaN) so that equal results are equal text."""
    return json.dumps(finite(value), sort_keys=True, allow_nan=False)


@dataclass(frozen=True, slots=True)
class CellResult:
    """A finished cell as a worker returns it."""

    key: str
    result: dict[str, Any]  # evaluate(): {"metrics", "curves", "versions"}
    warnings: tuple[str, ...]  # distinct warning messages raised while computing
    seconds: float
    worker: str  # host:pid


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise ResultsError(f"{path} is in use by another process (one writer at a time); "
                               f"wait for it to finish: {text}") from None
        raise ResultsError(f"{path} is not a readable DuckDB database: {text}") from None


class ResultStore:
    """One open results database. Use :meth:`create` to write and :meth:`open` to read."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.connection = connection
        self.path = path

    @classmethod
    def create(cls, directory: str | Path) -> "ResultStore":
        """Open ``directory/results.duckdb`` for writing, creating the directory and schema.

        Raises:
            ResultsError: the directory cannot be created, or the database is locked, corrupt
                or from another schema version.
        """
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the run directory {directory}: {exc}") from None
        if not directory.is_dir():
            raise ResultsError(f"{directory} is not a directory")
        path = directory / DATABASE
        store = cls(_connect(path, read_only=False), path)
        try:
            tables = store._tables()
            if "meta" in tables:
                store._check_schema()
            store.connection.execute("BEGIN")
            store.connection.execute(_SCHEMA)
            store.connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
            store.connection.execute("COMMIT")
        except duckdb.Error as exc:
            store.close()
            raise ResultsError(f"{path} is not a usable results database: {exc}") from None
        except ResultsError:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, directory: str | Path) -> "ResultStore":
        """Open ``directory/results.duckdb`` read-only.

        Raises:
            ResultsError: missing directory or database, corrupt file, not a results database.
        """
        directory = Path(directory)
        if not directory.exists():
            raise ResultsError(f"run directory {directory} does not exist")
        if not directory.is_dir():
            raise ResultsError(f"{directory} is not a directory; give the run directory (--out of `mecharena run`)")
        path = directory / DATABASE
        if not path.is_file():
            raise ResultsError(f"{directory} has no {DATABASE}; run `mecharena run SPEC.yaml --out {directory}` first")
        store = cls(_connect(path, read_only=True), path)
        try:
            missing = [t for t in _TABLES if t not in store._tables()]
            if missing:
                raise ResultsError(f"{path} is not a mecharena results database (missing tables: {', '.join(missing)})")
            store._check_schema()
        except duckdb.Error as exc:
            store.close()
            raise ResultsError(f"{path} is not a readable results database: {exc}") from None
        except ResultsError:
            store.close()
            raise
        return store

    def _tables(self) -> set[str]:
        rows = self.connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
        return {r[0] for r in rows}

    def _check_schema(self) -> None:
        row = self.connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            found = row[0] if row else "none"
            raise ResultsError(f"{self.path} has results schema version {found}; this mecharena reads "
                               f"version {SCHEMA_VERSION}; use a new --out directory")

    def close(self) -> None:
        """Close the connection (a writer checkpoints its log into the file)."""
        self.connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def set_plan(self, plan: Plan) -> None:
        """Replace the plan (and the spec in ``meta``) with ``plan``'s cells, in one transaction."""
        con = self.connection
        rows = [[c.position, c.key, c.mechanism, c.population, c.information, c.enforcement, c.seed]
                for c in plan.cells]
        meta = {"spec_name": plan.spec.name, "spec_file": plan.where, "spec_yaml": plan.source,
                "spec_json": dumps(plan.spec.model_dump(mode="json")), "plan_cells": str(len(plan.cells)),
                "planned_at": datetime.now(UTC).isoformat(timespec="seconds")}
        con.execute("BEGIN")
        try:
            con.execute("DELETE FROM plan")
            if rows:
                con.executemany("INSERT INTO plan VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            for name, value in meta.items():
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [name, value])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def commit(self, planned: PlannedCell, result: CellResult, backend: str) -> None:
        """Store one finished cell durably (one transaction: the cell and its metric rows)."""
        cell = planned.cell
        data = result.result
        row = [result.key, cell.mechanism, dumps(cell.config), cell.population,
               dumps(cell.information.model_dump(mode="json")), dumps(cell.enforcement.model_dump(mode="json")),
               cell.values, cell.markets, cell.rounds, cell.seed, dumps(cell.model_dump(mode="json")),
               dumps(data["metrics"]), dumps(data["curves"]), dumps(data["versions"]), dumps(list(result.warnings)),
               result.seconds, datetime.now(UTC).replace(tzinfo=None), backend, result.worker]
        metric_rows = [[result.key, name, *(None if x is None else finite(float(x)) for x in (m["mean"], *m["ci95"]))]
                       for name, m in data["metrics"].items()]
        con = self.connection
        con.execute("BEGIN")
        try:
            con.execute(f"INSERT OR REPLACE INTO cells VALUES ({', '.join('?' * len(row))})", row)
            con.execute("DELETE FROM metrics WHERE key = ?", [result.key])
            if metric_rows:
                con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", metric_rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # --- reading ----------------------------------------------------------------------------

    def stored_versions(self) -> dict[str, dict[str, Any]]:
        """``{key: versions}`` of every stored cell."""
        return {k: json.loads(v) for k, v in self.connection.execute("SELECT key, versions FROM cells").fetchall()}

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict."""
        return dict(self.connection.execute("SELECT name, value FROM meta").fetchall())

    def finished(self) -> int:
        """Number of finished cells (rows of ``results``)."""
        return self.connection.execute("SELECT count(*) FROM results").fetchone()[0]

    def plan_size(self) -> int:
        """Number of cells in the latest plan (finished or not)."""
        return self.connection.execute("SELECT count(*) FROM plan").fetchone()[0]

    def results(self, timings: bool = True) -> tuple[list[str], list[tuple]]:
        """Columns and rows of the ``results`` view in spec order; without the timing columns
        when ``timings`` is False (what remains is identical across backends and workers)."""
        exclude = f" EXCLUDE ({', '.join(TIMING_COLUMNS)})" if not timings else ""
        cursor = self.connection.execute(f"SELECT *{exclude} FROM results ORDER BY position")
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
