"""Run a checked plan into a run directory, resumably.

:func:`run_plan` stores the plan, skips every cell already stored with the same key and the
same mechanism and agent versions, computes the rest on the chosen backend and commits each
cell the moment it finishes. Interrupting it (Ctrl-C, ``kill -9``, a crash) loses no committed
cell; running it again computes only what is missing. A cell whose evaluation raises is
reported in the summary and not stored (so a rerun tries it again).
"""

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mecharena import plugins
from mecharena.core.errors import ConfigError
from mecharena.runner.backends import BACKENDS, CellFailure, import_ray, iterate
from mecharena.runner.spec import Plan, PlannedCell
from mecharena.runner.store import DATABASE, ResultStore


@dataclass(frozen=True, slots=True)
class RunProgress:
    """What a display needs after each finished cell (and once at the start, with ``cell=None``)."""

    total: int  # distinct cells in the plan
    done: int  # stored so far (including those stored before this run)
    cell: PlannedCell | None  # the cell that just finished
    seconds: float = 0.0  # its compute time
    error: str | None = None  # set when it failed


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The outcome of :func:`run_plan`."""

    name: str
    out: str
    database: str
    backend: str
    workers: int | None  # None: ray's default (the cluster's CPUs)
    cells: int  # rows in the plan
    distinct: int  # distinct cells (keys) in the plan
    skipped: int  # already stored before this run
    computed: int  # computed and stored by this run
    failed: list[dict[str, Any]] = field(default_factory=list)  # {key, mechanism, population, ..., error}
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _current(stored: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    """A stored cell is reused only if it was computed by the same mechanism and agent versions."""
    return stored is not None and all(stored.get(part) == value for part, value in expected.items())


def check_backend(backend: str, workers: int | None, address: str | None) -> None:
    """Validate the backend options.

    Raises:
        ConfigError: unknown backend, workers < 1, an address without the ray backend, or the ray
            backend without ray installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if address is not None and backend != "ray":
        raise ConfigError(f"address is only used by the ray backend, got address={address!r} with backend {backend!r}")
    if backend == "ray":
        import_ray()


def run_plan(plan: Plan, out: str | Path, *, backend: str = "local", workers: int | None = None,
             address: str | None = None, on_progress: Callable[[RunProgress], None] | None = None) -> RunSummary:
    """Compute every missing cell of ``plan`` and store it in ``out/results.duckdb``.

    Args:
        plan: a checked plan (:func:`~mecharena.runner.spec.load_spec`).
        out: the run directory (created if needed).
        backend: ``"local"`` (process pool; ``workers=1`` runs in this process) or ``"ray"``.
        workers: parallel workers (default: CPU count; for ray, the cluster's CPUs).
        address: the Ray cluster address (ray backend only; default: start a local Ray).
        on_progress: called once at the start and after each finished cell.

    Returns:
        A :class:`RunSummary`.

    Raises:
        ConfigError: bad backend options, or ray missing for the ray backend.
        ResultsError: the database cannot be created, is locked or is from another schema.
    """
    check_backend(backend, workers, address)
    started = time.perf_counter()
    out = Path(out)
    first: dict[str, PlannedCell] = {}
    for planned in plan.cells:
        first.setdefault(planned.key, planned)
    failed: list[dict[str, Any]] = []
    computed = 0
    n_workers = workers or (os.cpu_count() or 1)
    with ResultStore.create(out) as store:
        store.set_plan(plan)
        stored = store.stored_versions()
        todo = [p for key, p in first.items() if not _current(stored.get(key), p.versions)]
        skipped = len(first) - len(todo)
        if on_progress:
            on_progress(RunProgress(len(first), skipped, None))
        payloads = [p.cell.model_dump(mode="json") for p in todo]
        with contextlib.closing(iterate(payloads, backend, workers, address, plugins.sources())) as stream:
            for outcome in stream:
                planned = first.get(outcome.key)
                if planned is None:  # a worker running another mecharena version computed another key
                    raise ConfigError(f"a worker returned cell key {outcome.key!r}, which is not in the plan; "
                                      "every worker must run the same mecharena version as this process")
                if isinstance(outcome, CellFailure):
                    failed.append({"key": outcome.key, "mechanism": planned.mechanism, "population": planned.population,
                                   "information": planned.information, "enforcement": planned.enforcement,
                                   "seed": planned.seed, "error": outcome.error})
                    if on_progress:
                        on_progress(RunProgress(len(first), skipped + computed, planned, error=outcome.error))
                    continue
                store.commit(planned, outcome, backend)
                computed += 1
                if on_progress:
                    on_progress(RunProgress(len(first), skipped + computed, planned, outcome.seconds))
    return RunSummary(plan.spec.name, str(out), str(out / DATABASE), backend,
                      n_workers if backend == "local" else workers, len(plan.cells), len(first), skipped,
                      computed, failed, round(time.perf_counter() - started, 3))
