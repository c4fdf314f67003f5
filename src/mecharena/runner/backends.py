"""Where cells are computed: in this process, in a local process pool, or on Ray.

Each backend takes cells (as JSON-able dicts, so any worker can rebuild them) and yields a
:class:`~mecharena.runner.store.CellResult` (or a failure) as each cell finishes, in whatever
order they finish. The results themselves do not depend on the backend: :func:`compute` is a
pure function of the cell. Only the parent process writes to the database.

Workers are fresh processes (spawned, or Ray's): they know only the built-in mechanisms and
agents until they load the parent's plug-ins, which every backend passes along with each cell
(:func:`mecharena.plugins.sources`; a plug-in file must exist at the same path on the workers).
"""

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from mecharena import plugins as plugin_loader
from mecharena.core.errors import ConfigError
from mecharena.metrics.harness import Cell, evaluate
from mecharena.runner.store import CellResult, finite

Backend = Literal["local", "ray"]
BACKENDS = ("local", "ray")


@dataclass(frozen=True, slots=True)
class CellFailure:
    """A cell whose evaluation raised; the sweep goes on without it."""

    key: str
    error: str  # "Type: message"
    detail: str  # the worker's traceback


def compute(payload: dict[str, Any], plugins: Sequence[str] = ()) -> CellResult | CellFailure:
    """Evaluate one cell given as ``Cell.model_dump(mode="json")``. Runs in workers.

    ``plugins`` (sources for :func:`mecharena.plugins.load`, already checked by the parent) are
    loaded first; a process loads each once. Warnings are recorded with the result instead of
    going to whatever filters the worker process has, so that the outcome cannot depend on where
    the cell ran.
    """
    cell = Cell.model_validate(payload)
    key = cell.key()
    start = time.perf_counter()
    try:
        plugin_loader.load_all(plugins, check=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(cell)
    except Exception as exc:  # noqa: BLE001  (a failing cell must not stop the sweep; it is reported instead)
        return CellFailure(key, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    seen = tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return CellResult(key, finite(result), seen, time.perf_counter() - start, f"{socket.gethostname()}:{os.getpid()}")


def _init_worker() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them, and exit when the parent dies
    (after ``kill -9`` nobody else would tell them: they would wait for tasks forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        def watch() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def local(payloads: list[dict[str, Any]], workers: int, plugins: Sequence[str] = ()
          ) -> Iterator[CellResult | CellFailure]:
    """In this process (``workers == 1``) or a pool of ``workers`` fresh (spawned) processes.

    Spawned rather than forked: the parent holds a database connection and display threads
    that a fork would copy half-way.
    """
    if workers == 1 or len(payloads) <= 1:
        for payload in payloads:
            yield compute(payload, plugins)
        return
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(processes=min(workers, len(payloads)), initializer=_init_worker)
    try:
        yield from pool.imap_unordered(partial(compute, plugins=tuple(plugins)), payloads, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def import_ray() -> Any:
    """The ``ray`` module (an optional dependency), or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs the optional dependency ray, which is not installed; "
                          "install it with: pip install 'mecharena[ray]' (or use --backend local)") from None
    return ray


def on_ray(payloads: list[dict[str, Any]], workers: int | None, address: str | None, plugins: Sequence[str] = ()
           ) -> Iterator[CellResult | CellFailure]:
    """On a Ray cluster at ``address`` (a new local Ray instance when None), at most
    ``workers`` cells in flight (default: the cluster's CPUs). Workers must be able to import
    this version of mecharena."""
    ray = import_ray()
    own = not ray.is_initialized()
    if own:
        options: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                   "logging_level": "ERROR"}
        if address is None and workers:
            options["num_cpus"] = workers
        try:
            ray.init(**options)
        except Exception as exc:  # noqa: BLE001  (ray raises ConnectionError, RuntimeError, ValueError ...)
            where = f"at {address!r}" if address else "locally"
            raise ConfigError(f"cannot start or reach Ray {where}: {type(exc).__name__}: {exc}") from None
    limit = workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)
    task = ray.remote(num_cpus=1, max_retries=1)(compute)
    pending: dict[Any, str] = {}  # object ref -> cell key
    queue: Iterator[dict[str, Any]] = iter(payloads)

    def submit() -> None:
        for payload in queue:
            pending[task.remote(payload, tuple(plugins))] = Cell.model_validate(payload).key()
            return

    try:
        for _ in range(limit):
            submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the worker died (compute itself never raises)
                yield CellFailure(key, f"{type(exc).__name__}: {exc}", "")
            submit()
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if own:
            ray.shutdown()


def iterate(payloads: list[dict[str, Any]], backend: str, workers: int | None, address: str | None,
            plugins: Sequence[str] = ()) -> Iterator[CellResult | CellFailure]:
    """Dispatch to the chosen backend (see :func:`local` and :func:`on_ray`); workers load ``plugins`` first."""
    if backend == "local":
        return local(payloads, workers or os.cpu_count() or 1, plugins)
    return on_ray(payloads, workers, address, plugins)
