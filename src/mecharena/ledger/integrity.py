"""Integrity of a ledger's files: is every part there, whole, unedited and in sequence?

As each Parquet part lands (written under a temporary name, then renamed), the writer appends
its line to the manifest ``parts.jsonl``: table, sequence number, SHA-256, size in bytes, rows,
first and last round. At close ``meta.json`` records the manifest's SHA-256 and its own
checksum (see :mod:`mecharena.ledger.meta`), so an edit anywhere is caught by one of:

* ``meta.json``: its checksum (:func:`~mecharena.ledger.meta.read_meta`);
* ``parts.jsonl``: present, and matching ``manifest_sha256`` once the ledger is closed;
* each listed part: present (else *missing*), as long as written (else *truncated*), with its
  SHA-256 (else *changed*, or *the content of another part*: swapped or copied);
* each part on disk: listed (else *extra*: a copy of another part, or foreign);
* sequence: parts numbered 0, 1, 2, ... without gaps, ``events`` and ``markets`` parts in
  pairs, rounds contiguous from round 0 in part order, and each part's rows the rounds it
  spans (``markets`` rows per round in full mode);
* counts: the rounds the parts hold equal ``rounds_recorded`` once closed.

Ledgers of format version 1 have no manifest: only sequence and counts can be checked, from the
files themselves, and :func:`verify` says so in a note. A ledger still open (its writer running,
or killed) has no ``manifest_sha256`` yet: its listed parts are verified, and a part newer than
the last listed one of its table is the writer's part in flight, not an error.
"""

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mecharena.ledger.meta import META_FILE, LedgerError, LedgerMeta
from mecharena.ledger.store import MANIFEST, PART_FILE, file_sha256, part_name
from mecharena.ledger.tables import EVENTS, MARKETS, ROUNDS, TABLES

#: Problems named in full in the error; the rest are counted.
SHOWN_PROBLEMS = 6
_KEYS = {"table", "part", "sha256", "bytes", "rows", "first_round", "last_round"}


def read_manifest(directory: Path, *, complete: bool) -> list[dict[str, Any]]:
    """The lines of ``parts.jsonl``.

    Args:
        directory: the ledger.
        complete: the ledger is closed, so every line must be whole; otherwise a torn last
            line (a writer killed mid-append) is dropped.

    Raises:
        LedgerError: the manifest is missing (when ``complete``), unreadable or holds a malformed line.
    """
    path = directory / MANIFEST
    if not path.is_file():
        if complete:
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} is missing")
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} cannot be read: {exc}") from None
    lines = text.split("\n")
    if lines[-1] and complete:
        raise LedgerError(f"ledger {str(directory)!r} is corrupt: the last line of {MANIFEST} is cut short")
    entries = []
    for number, line in enumerate(lines[:-1], 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or set(entry) != _KEYS:
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} line {number} is not a part "
                              f"entry (an object with {', '.join(sorted(_KEYS))})")
        entries.append(entry)
    return entries


def _on_disk(directory: Path, table: str) -> dict[int, Path]:
    folder = directory / table
    if not folder.is_dir():
        raise LedgerError(f"ledger {str(directory)!r} is corrupt: the {table}/ folder is missing")
    found = {}
    for path in folder.iterdir():
        match = PART_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _label(table: str, seq: int) -> str:
    return f"{table}/{part_name(seq)}"


def _rounds_in(path: Path) -> tuple[int, int | None, int | None]:
    """(rows, first round, last round) of a part, read from its ``round`` column."""
    try:
        rounds = pq.read_table(path, columns=["round"], page_checksum_verification=True).column("round")
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise LedgerError(f"ledger file {str(path)!r} is corrupt or unreadable: {exc}") from None
    values = rounds.to_pylist()
    return len(values), (min(values) if values else None), (max(values) if values else None)


def verify(directory: Path, meta: LedgerMeta) -> tuple[str, ...]:
    """Check that the ledger's parts are the ones its writer wrote (see the module docstring).

    Returns:
        Notes: what could not be verified (a format version 1 ledger, parts in flight).

    Raises:
        LedgerError: one line naming every problem found (the first few in full) and the part
            it concerns.
    """
    closed = meta.status != "open"
    notes: list[str] = []
    problems: list[str] = []
    disk = {table: _on_disk(directory, table) for table in TABLES[meta.mode]}
    if closed and meta.manifest_sha256 is None:
        notes.append(f"the ledger was written by a version of mecharena without part checksums (format version "
                     f"{meta.format_version}): its parts cannot be verified, only their sequence and counts")
        listing = {table: {seq: dict(zip(("rows", "first_round", "last_round"), _rounds_in(path), strict=True))
                           for seq, path in found.items()} for table, found in disk.items()}
    else:
        listing = _check_files(directory, meta, disk, problems, notes)
    _check_sequence(meta, listing, problems)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise LedgerError(f"ledger {str(directory)!r} is corrupt: {shown}{more}")
    return tuple(notes)


def _check_files(directory: Path, meta: LedgerMeta, disk: dict[str, dict[int, Path]], problems: list[str],
                 notes: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """Compare the files with the manifest; returns the listed entries per table and sequence."""
    closed = meta.status != "open"
    if closed:
        try:
            actual = file_sha256(directory / MANIFEST)
        except FileNotFoundError:
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} is missing") from None
        except OSError as exc:
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} cannot be read: "
                              f"{exc.strerror}") from None
        if actual != meta.manifest_sha256:
            raise LedgerError(f"ledger {str(directory)!r} is corrupt: {MANIFEST} was edited after the ledger was "
                              f"closed (its SHA-256 is not the manifest_sha256 in {META_FILE})")
    listed: dict[str, dict[int, dict[str, Any]]] = {table: {} for table in disk}
    for entry in read_manifest(directory, complete=closed):
        table, seq = entry["table"], entry["part"]
        if table not in listed or not isinstance(seq, int) or seq in listed[table]:
            problems.append(f"{MANIFEST} lists {table}/part {seq!r} twice or in no table of a {meta.mode} ledger")
            continue
        listed[table][seq] = entry
    owners = {entry["sha256"]: _label(table, seq)
              for table, entries in listed.items() for seq, entry in entries.items()}
    in_flight = 0
    for table, entries in listed.items():
        for seq, entry in sorted(entries.items()):
            label, path = _label(table, seq), disk[table].get(seq)
            if path is None:
                problems.append(f"{label} is missing")
                continue
            digest, size = file_sha256(path), path.stat().st_size
            if digest == entry["sha256"]:
                continue
            if digest in owners:
                problems.append(f"{label} holds the content of {owners[digest]} (parts swapped or copied)")
            elif size < entry["bytes"]:
                problems.append(f"{label} is truncated: {size} of its {entry['bytes']} bytes")
            else:
                problems.append(f"{label} was changed after it was written: its SHA-256 is not the one recorded")
        last = max(entries, default=-1)
        for seq in sorted(set(disk[table]) - set(entries)):
            if not closed and seq > last:  # the writer renames a part before listing it
                in_flight += 1
                continue
            label = _label(table, seq)
            other = owners.get(file_sha256(disk[table][seq]))
            problems.append(f"{label} is extra: a copy of {other}" if other else
                            f"{label} is extra: the ledger's writer never wrote it")
    if in_flight:
        notes.append(f"{in_flight} part(s) written after the last line of {MANIFEST} (the writer is still running "
                     f"or was interrupted) are not verified")
    return listed


def _check_sequence(meta: LedgerMeta, listing: dict[str, dict[int, dict[str, Any]]], problems: list[str]) -> None:
    """Numbering without gaps, events and markets in pairs, contiguous rounds, counts."""
    rows_per_round = {EVENTS: meta.markets * meta.seats, MARKETS: meta.markets, ROUNDS: 1}
    for table, entries in listing.items():
        gaps = sorted(set(range(max(entries, default=-1) + 1)) - set(entries))
        problems.extend(f"{_label(table, seq)} is missing" for seq in gaps
                        if f"{_label(table, seq)} is missing" not in problems)
        expected_round, previous = 0, -1
        for seq, entry in sorted(entries.items()):
            label, first, last = _label(table, seq), entry["first_round"], entry["last_round"]
            if first is None or entry["rows"] != (last - first + 1) * rows_per_round[table]:
                problems.append(f"{label} holds {entry['rows']} rows, not whole rounds of {rows_per_round[table]}")
            elif first != expected_round and seq == previous + 1:  # after a gap, the missing part is the problem
                problems.append(f"{label} starts at round {first}, expected round {expected_round} "
                                f"(rounds out of order or missing)")
            if last is not None:
                expected_round = last + 1
            previous = seq
    if meta.mode == "full":
        committed = max(listing[MARKETS], default=-1)
        for mine, other in ((EVENTS, MARKETS), (MARKETS, EVENTS)):
            for seq in sorted(set(listing[mine]) - set(listing[other])):
                if meta.status == "open" and seq > committed:  # events land before their markets part
                    continue
                label = f"{_label(other, seq)} is missing"
                if label not in problems:
                    problems.append(f"{label} (its pair {_label(mine, seq)} is there)")
    if meta.status != "open":
        table = MARKETS if meta.mode == "full" else ROUNDS
        held = sum(e["rows"] for e in listing[table].values()) // rows_per_round[table]
        if held != meta.rounds_recorded:
            problems.append(f"{META_FILE} says rounds_recorded={meta.rounds_recorded} but the {table} parts hold "
                            f"{held} rounds")
