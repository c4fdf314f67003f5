"""Ledger metadata: everything needed to re-run or re-clear what the events record.

``meta.json`` sits beside the events. It names the mechanism (with its ``VERSION``), the
validated config, the population (normalized spec and agent versions), seed, the block of
markets (``start``, ``markets``), the information and enforcement policies, the value
distribution, the owner map of seats, the trailing widths of the value / bid / time columns,
the recording mode, the package version and the ledger format version. It is rewritten
(atomically) when the ledger opens and when it closes, never in between.

Integrity (format version 2): ``checksum`` is the SHA-256 of the other fields (canonical JSON),
so :func:`read_meta` refuses a hand-edited file; ``manifest_sha256``, set at close, is the
SHA-256 of ``parts.jsonl``, the manifest the writer appends one line to as each Parquet part
lands (its table, sequence number, SHA-256, size, rows and rounds; see
:mod:`mecharena.ledger.integrity`). Ledgers of format version 1 have neither and read as before.

>>> LedgerMeta.model_fields["format_version"].default
2
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from mecharena import __version__
from mecharena.agents.values import ValueDistribution
from mecharena.core.config import Seed, StrictModel, shown_value
from mecharena.core.errors import MechArenaError
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.channels import ChannelPolicy
from mecharena.sim.loop import Episode

FORMAT = "mecharena.ledger"
FORMAT_VERSION = 2
MODES = ("full", "aggregate")
META_FILE = "meta.json"

Mode = Literal["full", "aggregate"]
Status = Literal["open", "closed", "aborted", "recovered"]


class LedgerError(MechArenaError, ValueError):
    """A ledger directory, its metadata or its event files are missing, unreadable or inconsistent."""


#: Metadata fields of a stateful mechanism's ledger (empty lists otherwise).
STATEFUL = ("actions", "seat_state", "market_state")


class LedgerMeta(StrictModel):
    """The contents of ``meta.json``.

    ``status`` is ``open`` while a writer holds the ledger (and stays so if it crashed),
    ``closed`` after :meth:`Ledger.close`, ``aborted`` when the recording loop raised, and
    ``recovered`` after :func:`mecharena.ledger.finalize` repaired an interrupted ledger.
    """

    format: Literal["mecharena.ledger"] = FORMAT
    format_version: int = Field(FORMAT_VERSION, ge=1, description="layout of the ledger files")
    package_version: str = __version__
    mode: Mode = "full"
    status: Status = "open"
    mechanism: str
    mechanism_version: int = Field(ge=0)
    config: dict[str, Any]
    population: str = Field(description="normalized population spec")
    agent_versions: dict[str, int]
    seed: Seed
    start: int = Field(0, ge=0, description="global index of the first market")
    markets: int = Field(ge=1, description="B, markets per round")
    seats: int = Field(ge=1, description="N, seats per market")
    owner: list[int] = Field(description="(N,) seat -> the seat of the agent that owns it")
    value_width: int = Field(0, ge=0, description="K of values (B, N, K); 0: values are (B, N)")
    bid_width: int = Field(0, ge=0, description="trailing width of bids (units or orders); 0: (B, N)")
    time_width: int = Field(0, ge=0, description="trailing width of order times; 0: (B, N)")
    uses_times: bool = False
    rounds: int | None = Field(None, ge=1, description="rounds planned (None: not known in advance)")
    rounds_recorded: int = Field(0, ge=0, description="rounds on disk when the ledger was last closed")
    information: InformationPolicy
    enforcement: Enforcement
    values: ValueDistribution
    channels: ChannelPolicy | None = Field(None, description="message channels (None: agents could not talk)")
    actions: list[str] = Field([], description="the mechanism's action fields beyond bids: events columns action_NAME")
    seat_state: list[str] = Field([], description="the mechanism's per-seat state after each round: events columns "
                                  "state_NAME")
    market_state: list[str] = Field([], description="its per-market state after each round: markets columns "
                                    "state_NAME")
    cell: dict[str, Any] | None = Field(None, description="the experiment cell, when the run came from one")
    manifest_sha256: str | None = Field(None, description="SHA-256 of parts.jsonl when the ledger was last closed "
                                        "(None while open, and in format version 1)")
    checksum: str | None = Field(None, description="SHA-256 of the other fields (None in format version 1)")

    @model_validator(mode="after")
    def _owner_map(self) -> "LedgerMeta":
        if len(self.owner) != self.seats:
            raise ValueError(f"owner must list one owning seat per seat ({self.seats}), got {len(self.owner)}")
        if any(not 0 <= o < self.seats for o in self.owner):
            raise ValueError(f"owner entries must be seats in [0, {self.seats - 1}], got {self.owner}")
        return self


def describe(episode: Episode, rounds: int | None = None, cell: dict[str, Any] | None = None) -> LedgerMeta:
    """The metadata of a recording of ``episode`` (mode and status are set by the :class:`Ledger`).

    Args:
        episode: the episode to be recorded.
        rounds: rounds planned, if known.
        cell: the experiment cell as JSON-ready data (``Cell.model_dump(mode="json")``), if any.
    """
    ctx = episode.context
    units = int(ctx.spec.value_width)
    orders = int(getattr(ctx.spec, "orders_per_agent", 0) or 0)
    return LedgerMeta(
        mechanism=ctx.mechanism.name,
        mechanism_version=ctx.mechanism.version,
        config=ctx.config.model_dump(mode="json"),
        population=episode.population.spec,
        agent_versions=episode.population.versions,
        seed=episode.seed,
        start=episode.start,
        markets=episode.markets,
        seats=episode.population.size,
        owner=[int(o) for o in episode.owner],
        value_width=units,
        bid_width=units or orders,
        time_width=orders,
        uses_times=ctx.mechanism.uses_times,
        rounds=rounds,
        information=ctx.information,
        enforcement=ctx.enforcement,
        values=ctx.values,
        channels=episode.channels,
        actions=[a.name for a in ctx.mechanism.actions],
        seat_state=[f.name for f in ctx.mechanism.state if f.per == "seat"],
        market_state=[f.name for f in ctx.mechanism.state if f.per == "market"],
        cell=cell,
    )


def meta_checksum(meta: LedgerMeta) -> str:
    """SHA-256 (hex) of every field but ``checksum``, as canonical JSON (sorted keys, no spaces)."""
    # the fields of a stateful mechanism count only where present, so ledgers written before them still verify
    data = meta.model_dump(mode="json", exclude={"checksum"} | {k for k in STATEFUL if not getattr(meta, k)})
    if not meta.values.persistent:  # likewise persistent values
        del data["values"]["persistent"]
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_meta(directory: Path, meta: LedgerMeta) -> LedgerMeta:
    """Write ``meta.json`` atomically (a crash leaves the old file or the new one, never half),
    with its ``checksum`` (re)computed.

    Returns:
        The metadata as written.
    """
    meta = meta.model_copy(update={"checksum": meta_checksum(meta)})
    path = directory / META_FILE
    tmp = path.with_name(META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return meta


def ledger_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a Path after checking that it exists and is a directory.

    Raises:
        LedgerError: it does not exist or is not a directory.
    """
    path = Path(directory)
    if not path.exists():
        raise LedgerError(f"ledger directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise LedgerError(f"ledger directory {str(path)!r} is not a directory")
    return path


def read_meta(directory: str | os.PathLike[str]) -> LedgerMeta:
    """Read and validate ``meta.json`` of the ledger in ``directory``.

    Raises:
        LedgerError: missing directory or metadata, invalid JSON, invalid fields, another
            format, a newer format version than this package reads, or contents that do not
            match their ``checksum`` (the file was edited after it was written).
    """
    path = ledger_directory(directory) / META_FILE
    if not path.is_file():
        raise LedgerError(f"{str(path.parent)!r} is not a ledger: {META_FILE} is missing")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise LedgerError(f"ledger metadata {str(path)!r} is not valid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise LedgerError(f"ledger metadata {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                          f"column {exc.colno}") from None
    except OSError as exc:
        raise LedgerError(f"ledger metadata {str(path)!r} cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise LedgerError(f"ledger metadata {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise LedgerError(f"ledger metadata {str(path)!r} has format {data.get('format')!r}, expected {FORMAT!r}")
    version = data.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise LedgerError(f"ledger format_version must be <= {FORMAT_VERSION} (this mecharena {__version__}), "
                          f"got {version}; upgrade mecharena to read it")
    try:
        meta = LedgerMeta.model_validate(data)
    except ValidationError as exc:
        raise LedgerError(f"ledger metadata {str(path)!r} is invalid: {_explain(exc)}") from None
    if (meta.checksum is not None or meta.format_version >= 2) and meta.checksum != meta_checksum(meta):
        raise LedgerError(f"ledger metadata {str(path)!r} was edited after it was written: its contents do not match "
                          f"its checksum {shown_value(meta.checksum)}")
    return meta


def _explain(exc: ValidationError) -> str:
    """One clause per invalid field, naming the field, what it must be and the bad value."""
    parts = []
    for err in exc.errors():
        where = ".".join(map(str, err["loc"]))
        if err["type"] == "missing":
            parts.append(f"{where} is required")
        elif not where:  # a whole-model check
            parts.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            parts.append(f"{where}: {err['msg']}, got {err.get('input')!r}")
    return "; ".join(parts)
