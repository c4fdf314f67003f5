"""The exploit library: failure reports kept as readable JSON and queryable in DuckDB.

Layout of a library directory::

    ID.json            one FailureReport per file (the source of truth), indented JSON
    exploits.duckdb    table ``exploits``: one row per report, main fields flattened, full JSON in ``report``
    traces/ID/         the report's baseline and deviated ledgers (see mecharena.fuzz.report)

Reports are looked up by id or by a unique prefix of one. :meth:`Library.replay` re-clears both
trace ledgers of a report (:func:`mecharena.ledger.replay`) and recomputes the gain from their
events; the exploit reproduces when both ledgers replay exactly and the recomputed gain has the
same 64 bits as the recorded one.
"""

import difflib
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from pydantic import ValidationError

from mecharena.core.errors import MechArenaError, UnknownIdError
from mecharena.fuzz.report import FailureReport, ledger_gain
from mecharena.ledger import replay as replay_ledger

DATABASE = "exploits.duckdb"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exploits (
    id VARCHAR PRIMARY KEY,
    mechanism VARCHAR,
    mechanism_version INTEGER,
    config VARCHAR,
    population VARCHAR,
    information VARCHAR,
    enforcement VARCHAR,
    "values" VARCHAR,
    family VARCHAR,
    agent VARCHAR,
    deviators INTEGER,
    gain_mean DOUBLE,
    gain_lo DOUBLE,
    gain_hi DOUBLE,
    frequency DOUBLE,
    severity VARCHAR,
    severity_relative DOUBLE,
    recorded_gain DOUBLE,
    trace_baseline VARCHAR,
    trace_deviated VARCHAR,
    report VARCHAR
)
"""


class LibraryError(MechArenaError, ValueError):
    """An exploit library directory, or a report in it, is missing, ambiguous or unreadable."""


def _row(report: FailureReport) -> list[Any]:
    """The ``exploits`` row of ``report`` (column order of the table)."""
    return [report.id, report.mechanism, report.mechanism_version, json.dumps(report.config, sort_keys=True),
            report.population, report.information.model_dump_json(), report.enforcement.model_dump_json(),
            report.values, report.strategy.family, report.strategy.agent, report.agents_involved.deviators,
            report.gain.mean, report.gain.ci95[0], report.gain.ci95[1], report.frequency, report.severity.label,
            report.severity.relative, report.trace.recorded_gain, report.trace.baseline, report.trace.deviated,
            report.model_dump_json()]


def same_float(a: float, b: float) -> bool:
    """True when ``a`` and ``b`` have the same 64 bits (so 0.0 and -0.0 differ, NaN equals NaN)."""
    return bool(np.float64(a).view(np.uint64) == np.float64(b).view(np.uint64))


class Library:
    """A directory of failure reports.

    Args:
        directory: the library directory.
        create: create it if missing (for adding reports); otherwise it must exist.

    Raises:
        LibraryError: ``directory`` is missing (and ``create`` is False) or not a directory.
    """

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = False) -> None:
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise LibraryError(f"exploit library {str(path)!r} must be a directory, got a file")
        if not path.exists():
            if not create:
                raise LibraryError(f"exploit library {str(path)!r} does not exist; fuzz with a library directory "
                                   f"to create one")
            path.mkdir(parents=True)
        self.directory = path

    @property
    def database(self) -> Path:
        return self.directory / DATABASE

    def add(self, report: FailureReport) -> bool:
        """Store ``report`` as ``ID.json`` and as its row in ``exploits.duckdb``.

        Adding the same report again changes nothing; a report with the id of a stored one but
        other contents (e.g. a re-estimated gain) replaces it.

        Returns:
            True when the library changed.
        """
        text = report.model_dump_json(indent=2) + "\n"
        path = self.directory / f"{report.id}.json"
        unchanged = path.is_file() and path.read_text() == text
        if not unchanged:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        with duckdb.connect(str(self.database)) as con:
            con.execute(_SCHEMA)
            stored = con.execute("SELECT report FROM exploits WHERE id = ?", [report.id]).fetchone()
            if stored is not None and stored[0] == report.model_dump_json():
                return not unchanged
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM exploits WHERE id = ?", [report.id])
            con.execute(f"INSERT INTO exploits VALUES ({', '.join('?' * len(_row(report)))})", _row(report))
            con.execute("COMMIT")
        return True

    def ids(self) -> list[str]:
        """Ids of the stored reports, sorted."""
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def get(self, key: str) -> FailureReport:
        """The report whose id is ``key`` or starts with it.

        Raises:
            UnknownIdError: no stored id starts with ``key`` (close ids are suggested).
            LibraryError: ``key`` is empty, or a prefix of several ids; or the report file is corrupt.
        """
        return self._load(self.resolve(key))

    def resolve(self, key: str) -> str:
        """The full id that ``key`` names (see :meth:`get`)."""
        ids = self.ids()
        if not isinstance(key, str) or not key:
            raise LibraryError(f"exploit id must be a non-empty id or id prefix, got {key!r}")
        if key in ids:
            return key
        matches = [i for i in ids if i.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(repr(m) for m in matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise LibraryError(f"exploit id prefix {key!r} is ambiguous: it matches {len(matches)} exploits "
                               f"({shown}); give more characters")
        close = difflib.get_close_matches(key, ids, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        known = ", ".join(ids) if ids else "none (the library is empty)"
        raise UnknownIdError(f"unknown exploit id {key!r} in {str(self.directory)!r}{hint} Known: {known}")

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on ``exploits.duckdb`` (read-only) and return its rows."""
        if not self.database.is_file():
            raise LibraryError(f"exploit library {str(self.directory)!r} has no {DATABASE} yet; add a report first")
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def replay(self, key: str) -> dict[str, Any]:
        """Replay both trace ledgers of a report and recompute its gain from their events.

        The trace ledgers are a smaller sample (``trace.markets`` markets) than the fresh evaluation
        whose gain ``fuzz`` and ``exploits list``/``show`` report (``gain.markets``), so the two
        gains differ by sampling; the result names both, with their sizes.

        Returns:
            ``{"id", "baseline": ReplayReport dict, "deviated": ..., "recorded_gain",
            "replayed_gain" (both on the trace ledgers), "trace": {"markets", "rounds", "seed"} of
            those ledgers, "reported_gain": the report's fresh gain {"mean", "ci95", "markets",
            "rounds", "seed"}, "exact": the two trace gains have the same 64 bits, "ok": both
            ledgers replay exactly and the gains are exact}``.

        Raises:
            UnknownIdError / LibraryError: see :meth:`get`.
            LedgerError: a trace ledger is missing or corrupt beyond replaying.
        """
        report = self.get(key)
        baseline = self.directory / report.trace.baseline
        deviated = self.directory / report.trace.deviated
        reports = {"baseline": replay_ledger(baseline), "deviated": replay_ledger(deviated)}
        replayed = ledger_gain(baseline, deviated, report.agents_involved.deviators, report.agents_involved.after)
        exact = same_float(replayed, report.trace.recorded_gain)
        gain = report.gain
        return {"id": report.id, **{k: v.to_dict() for k, v in reports.items()},
                "recorded_gain": report.trace.recorded_gain, "replayed_gain": replayed,
                "trace": {"markets": report.trace.markets, "rounds": report.trace.rounds, "seed": report.trace.seed},
                "reported_gain": {"mean": gain.mean, "ci95": list(gain.ci95), "markets": gain.markets,
                                  "rounds": gain.rounds, "seed": gain.seed},
                "exact": exact, "ok": exact and all(r.ok for r in reports.values())}

    def list(self) -> "list[FailureReport]":  # defined last: the name shadows the builtin in the class
        """Every stored report, sorted by id."""
        return [self._load(i) for i in self.ids()]

    def _load(self, report_id: str) -> FailureReport:
        path = self.directory / f"{report_id}.json"
        try:
            return FailureReport.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise UnknownIdError(f"unknown exploit id {report_id!r} in {str(self.directory)!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LibraryError(f"exploit report {str(path)!r} cannot be read: {exc}") from None
        except ValidationError as exc:
            raise LibraryError(f"exploit report {str(path)!r} is not a valid failure report: "
                               f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']} at "
                               f"{'.'.join(map(str, exc.errors()[0]['loc']))}") from None
