"""The event ledger: append-only records of what happened, and replay that re-derives it.

Record while an episode plays (:class:`Ledger`, :func:`record_episode`) in one of two modes:
``full`` keeps every seat of every market of every round (inputs and outcomes), ``aggregate``
only per-round totals. Events are Parquet parts (the source of truth, appended per round),
JSONL (one JSON object per event, written at close) and DuckDB views (:func:`connect`, or
``ledger.duckdb``); ``meta.json`` names everything needed to interpret them (mechanism and
version, config, population and agent versions, seed, policies, owner map, format version).
:func:`replay` re-clears a full-mode ledger from its events alone and compares every
recorded outcome bit for bit, after :func:`verify` has checked every part against the manifest
of SHA-256 hashes the writer kept. File layout: :mod:`mecharena.ledger.store`; columns:
:mod:`mecharena.ledger.tables`.
"""

from mecharena.ledger.integrity import verify
from mecharena.ledger.meta import FORMAT_VERSION, MODES, LedgerError, LedgerMeta, describe, read_meta
from mecharena.ledger.replay import Mismatch, ReplayReport, replay
from mecharena.ledger.store import connect, export_jsonl, finalize
from mecharena.ledger.writer import EpisodeSource, Ledger, record_episode

__all__ = ["FORMAT_VERSION", "MODES", "EpisodeSource", "Ledger", "LedgerError", "LedgerMeta", "Mismatch",
           "ReplayReport", "connect", "describe", "export_jsonl", "finalize", "read_meta", "record_episode",
           "replay", "verify"]
