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
"""

import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


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


def timed(fn: Callable[[], Any], repeats: int = 1, *, warmup: bool = False, children: bool = False) -> dict[str, Any]:
    """One path alone (see :func:`interleaved`): its medians and trials."""
    return interleaved({"only": fn}, repeats, warmup=warmup, children=children)["only"]


def report(name: str, body: Mapping[str, Any], load_before: list[float], repeats: int) -> dict[str, Any]:
    """A benchmark's JSON: its name, its measurements, the repetitions and the load around it."""
    return {"benchmark": name, **body, "repeats": repeats, "statistic": "median of interleaved repetitions",
            "load_before": load_before, "load_after": machine_load()}
