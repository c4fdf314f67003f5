"""Timing shared by every benchmark: interleaved repetitions, medians, CPU beside wall, load.

A shared machine's load comes and goes, so paths that are compared are timed in turn, round
after round (``a b c a b c ...``), and each reports the median of its repetitions: a burst of
load hits them alike and one lucky run does not decide. CPU seconds (``time.process_time``, all
threads of this process, plus ``resource.getrusage(RUSAGE_CHILDREN)`` for work done by
subprocesses that have exited) are reported beside wall seconds: when the two differ, the
wall time waited on something (another process, the disk, a server). Ratios meant to judge a
path (``meets`` flags) use CPU time, which load from other processes does not inflate.
:func:`machine_load` is ``os.getloadavg()``, recorded before and after so a reader can tell a
quiet run from a contended one.

>>> times = interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, repeats=3)
>>> sorted(times["a"])
['cpu_s', 'cpu_trials', 'wall_s', 'wall_trials']
>>> len(times["b"]["wall_trials"])
3
>>> rate(10, 0.0)  # a run shorter than the clock's resolution
10000000000.0
"""

import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

TICK = 1e-9  # the least duration a rate divides by: a tiny run can read 0 CPU seconds
LOAD_WINDOWS = "1, 5, 15 min"


def machine_load() -> list[float]:
    """The 1, 5 and 15 minute load averages (``os.getloadavg``), rounded; empty where unsupported."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_seconds(children: bool = False) -> float:
    """CPU seconds of this process (all threads), plus those of its exited children when ``children``."""
    seconds = time.process_time()
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


def interleaved(paths: Mapping[str, Callable[[], Any]], repeats: int, *, warmup: bool = True,
                children: bool = False, after: Callable[[str, Any], None] | None = None) -> dict[str, dict[str, Any]]:
    """Time every path ``repeats`` times, in turn, and summarize each by its medians.

    Args:
        paths: name -> a call doing one repetition of the work.
        repeats: repetitions per path (>= 1).
        warmup: call each path once first, untimed (compilation, caches).
        children: count the CPU time of exited subprocesses too.
        after: called with (name, result) after each timed call, untimed (e.g. to delete output).

    Returns:
        name -> ``{"wall_s", "cpu_s"}`` (medians) and ``{"wall_trials", "cpu_trials"}`` (every repetition).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup:
        for name, fn in paths.items():
            result = fn()
            if after is not None:
                after(name, result)
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start, start_cpu = time.perf_counter(), cpu_seconds(children)
            result = fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds(children) - start_cpu)
            if after is not None:
                after(name, result)
    return {name: {"wall_s": statistics.median(wall[name]), "cpu_s": statistics.median(cpu[name]),
                   "wall_trials": wall[name], "cpu_trials": cpu[name]} for name in paths}


def timed(fn: Callable[[], Any], repeats: int = 1, *, warmup: bool = False, children: bool = False,
          after: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """One path alone (see :func:`interleaved`): its medians and trials; ``after`` gets each result."""
    then = None if after is None else (lambda _name, result: after(result))
    return interleaved({"only": fn}, repeats, warmup=warmup, children=children, after=then)["only"]


def rate(work: float, seconds: float) -> float:
    """``work`` per second, a duration under :data:`TICK` counted as one tick."""
    return work / max(seconds, TICK)


def medians(times: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The JSON of :func:`interleaved`'s paths: wall and CPU medians, and every trial, keyed by path."""
    return {"wall_seconds": {name: t["wall_s"] for name, t in times.items()},
            "cpu_seconds": {name: t["cpu_s"] for name, t in times.items()},
            "wall_trials": {name: t["wall_trials"] for name, t in times.items()},
            "cpu_trials": {name: t["cpu_trials"] for name, t in times.items()}}


def rates(times: Mapping[str, Mapping[str, Any]], work: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Work per wall second and per CPU second of each path (medians), keyed ``per_s`` and ``per_cpu_s``."""
    return {"per_s": {name: rate(work[name], t["wall_s"]) for name, t in times.items()},
            "per_cpu_s": {name: rate(work[name], t["cpu_s"]) for name, t in times.items()}}


def report(name: str, body: Mapping[str, Any], load_before: list[float], repeats: int) -> dict[str, Any]:
    """A benchmark's JSON: its name, its measurements, the repetitions and the load around it."""
    return {"benchmark": name, **body, "repeats": repeats, "statistic": "median of interleaved repetitions",
            "load_before": load_before, "load_after": machine_load()}


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return " ".join(_shown(v) for v in value)
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={_shown(v)}" for k, v in value.items()) + ")"
    return str(value)


def load_text(result: Mapping[str, Any]) -> str:
    """The load a benchmark ran under, before -> after: ``"1.2 0.8 0.5 -> 1.9 1 0.6"`` (1, 5, 15 min)."""
    return f"{_shown(result.get('load_before', []))} -> {_shown(result.get('load_after', []))}"


def rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A benchmark's JSON as (measure, value) rows for a table: nested dicts flattened to ``a.b``,
    numbers rounded, lists of numbers space-separated, lists of records one row each, the load
    before and after on one row, and the trials behind each median left to the JSON.

    >>> rows({"benchmark": "x", "cpu_seconds": {"a": 0.123456}, "cpu_trials": {"a": [0.1]},
    ...       "load_before": [1.0, 0.5, 0.25],
    ...       "load_after": [2.0, 0.75, 0.25]})
    [('cpu_seconds.a', '0.1235'), ('load (1, 5, 15 min)', '1 0.5 0.25 -> 2 0.75 0.25')]
    """
    out: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if key.rpartition(".")[2].endswith("_trials"):
            return
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                add(f"{key}.{sub}", inner)
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            for i, record in enumerate(value):
                out.append((f"{key}[{i}]", ", ".join(f"{k}={_shown(v)}" for k, v in record.items())))
        else:
            out.append((key, _shown(value)))

    for key, value in result.items():
        if key == "benchmark" or key == "load_after":
            continue
        if key == "load_before":
            out.append((f"load ({LOAD_WINDOWS})", load_text(result)))
            continue
        add(key, value)
    return out
