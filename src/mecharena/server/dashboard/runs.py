"""The runs pages: the run directories under ``--runs`` with their status and progress, one run's comparison
and figures, and a ``simulate --ledger DIR`` recording round by round (templates ``runs.html``, ``run.html``,
``ledger.html``)."""

import io
import math
import shutil
import tempfile
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, Response

from mecharena.ledger import connect as connect_ledger
from mecharena.ledger import read_meta
from mecharena.ledger.meta import META_FILE, LedgerError
from mecharena.ledger.queries import market_messages, market_rounds
from mecharena.report.data import Results, group, load_results, pooled
from mecharena.report.tables import number
from mecharena.runner.store import DATABASE, ResultsError, ResultStore
from mecharena.server.dashboard.render import MarketError, error_page, parse_market, render, round_view

STATUSES = ("complete", "running", "empty", "corrupt", "ledger")
FIGURES = ("bars", "heatmap", "curve")
CACHE_SIZE = 32  # loaded results and rendered figures kept in memory
BACK = ("/", "back to the runs")


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What the runs page shows of one run directory."""

    name: str
    status: str  # one of STATUSES
    done: int | None  # finished cells of the latest plan; None when unknown (being written)
    planned: int | None  # cells in the latest plan
    locked: bool  # a writer (a running sweep) holds results.duckdb
    note: str

    @property
    def progress(self) -> str:
        if self.status == "ledger":  # a recording, not a sweep: it has no cells
            return "-"
        return f"{'?' if self.done is None else self.done}/{'?' if self.planned is None else self.planned}"


def _locked(exc: Exception) -> bool:
    return "lock" in str(exc).lower() or "in use by another process" in str(exc)


@contextmanager
def readable(directory: Path) -> Iterator[tuple[Path, bool]]:
    """A run directory whose ``results.duckdb`` can be opened read-only, and whether a writer holds it.

    A running sweep holds the database's write lock, and DuckDB refuses readers in other processes;
    then the database (and its write-ahead log) is copied into a temporary directory and that
    snapshot is read: it holds every cell committed so far.

    Raises:
        ResultsError: the database is missing or unreadable (a lock is not an error).
    """
    try:
        ResultStore.open(directory).close()
    except ResultsError as exc:
        if not _locked(exc):
            raise
        with tempfile.TemporaryDirectory(prefix="mecharena-ui-") as tmp:
            target = Path(tmp)
            try:
                for name in (DATABASE, DATABASE + ".wal"):
                    if (directory / name).is_file():
                        shutil.copyfile(directory / name, target / name)
            except OSError as copy_error:
                raise ResultsError(f"{directory / DATABASE} is being written by a running sweep and could not be "
                                   f"copied for reading: {copy_error}; reload in a moment") from None
            try:
                yield target, True
            except ResultsError as read_error:  # name the run's database, not the snapshot
                raise ResultsError(str(read_error).replace(str(target), str(directory))) from None
        return
    yield directory, False


def replay_command(directory: Path) -> str:
    """The command that replays the ledger in ``directory``."""
    return f"mecharena replay {directory}"


def inspect_run(directory: Path) -> RunStatus:
    """Status and progress of one run directory (never raises for a bad database: it is ``corrupt``).

    A directory without ``results.duckdb`` but with a ledger's ``meta.json`` is a ``simulate
    --ledger DIR`` recording: status ``ledger``, or ``corrupt`` when its metadata cannot be read.
    """
    name = directory.name
    if not (directory / DATABASE).exists() and (directory / META_FILE).is_file():
        try:
            meta = read_meta(directory)
        except LedgerError as exc:
            return RunStatus(name, "corrupt", None, None, False, f"the ledger cannot be read: {exc}")
        return RunStatus(name, "ledger", None, None, False,
                         f"a ledger of {meta.mechanism} x {meta.population} ({meta.mode} mode, "
                         f"{meta.rounds_recorded} rounds of {meta.markets} markets, {meta.status}): "
                         f"`{replay_command(directory)}` replays it")
    if not (directory / DATABASE).exists():
        return RunStatus(name, "empty", 0, 0, False, f"no {DATABASE} yet: `mecharena run SPEC --out {directory}` "
                                                      "writes one")
    locked = False
    try:
        with readable(directory) as (source, locked), ResultStore.open(source) as store:
            done = store.finished()
            planned = store.plan_size()
    except Exception as exc:  # noqa: BLE001 - a snapshot of a file being written may be torn; anything else is corrupt
        if locked or _locked(exc):
            return RunStatus(name, "running", None, None, True,
                             "a sweep is writing the results; progress cannot be read at this instant, reload")
        return RunStatus(name, "corrupt", None, None, False, f"the results file cannot be read: {exc}")
    if planned and done >= planned:
        return RunStatus(name, "complete", done, planned, locked, "every planned cell is finished")
    if locked:
        return RunStatus(name, "running", done, planned, True, "a sweep is writing the results")
    if done == 0:
        return RunStatus(name, "empty", done, planned, False, "no finished cell yet")
    return RunStatus(name, "running", done, planned, False,
                     "not finished and no sweep is writing: rerun `mecharena run` with the same spec and --out "
                     "to resume")


def _stamp(directory: Path) -> tuple:
    """What changes when the results change: size and mtime of the database and its log."""
    out = []
    for name in (DATABASE, DATABASE + ".wal"):
        try:
            stat = (directory / name).stat()
            out.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


class Cache:
    """A small thread-safe LRU map."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def _curve_of(results: Results, metric: str) -> str:
    """The per-round curve shown for ``metric``: its own, else revenue, efficiency or price."""
    if metric in results.curve_names:
        return metric
    return next((c for c in ("revenue", "efficiency", "price") if c in results.curve_names),
                results.curve_names[0] if results.curve_names else metric)


def comparison(results: Results, metric: str) -> dict[str, Any]:
    """Mechanism x population rows; per information policy the pooled mean and its 95% interval (as text)."""
    several = len(results.rules) > 1
    header = ["mechanism", "population", "cells"]
    for rules in results.rules:
        suffix = f" ({rules})" if several else ""
        header += [f"mean{suffix}", f"95% CI{suffix}"]
    rows = []
    for (mechanism, population), members in group(results.rows, lambda r: (r.mechanism, r.population)).items():
        by_rules = group(members, lambda r: r.rules)
        estimates = []
        for rules in results.rules:
            estimate = pooled(by_rules.get(rules, []), metric)
            interval = "–"
            if math.isfinite(estimate.mean):
                half = estimate.half if math.isfinite(estimate.half) else 0.0
                interval = f"[{number(estimate.mean - half)}, {number(estimate.mean + half)}]"
            estimates.append((rules, number(estimate.mean), interval))
        rows.append({"mechanism": mechanism, "population": population, "cells": len(members), "estimates": estimates})
    return {"header": header, "rows": rows}


class RunPages:
    """The runs pages over the run directories under ``runs``, with their loaded results and figures cached."""

    def __init__(self, runs: Path) -> None:
        self.runs = Path(runs)
        self.cache = Cache()
        self.figure_lock = threading.Lock()  # matplotlib's font and text caches are not thread-safe

    def directory(self, name: str) -> Path | None:
        """The run directory ``name`` directly under ``runs``, or None."""
        if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
            return None
        path = self.runs / name
        return path if path.is_dir() else None

    def not_found(self, name: str) -> HTMLResponse:
        return error_page(404, "Run not found", f"There is no run directory {self.runs / name}: the runs page lists "
                                                f"the run directories under {self.runs}.", BACK)

    def runs_page(self, refresh: str | None) -> HTMLResponse:
        """``GET /``: every run directory with its status and progress."""
        problem, statuses = "", []
        if not self.runs.exists():
            problem = "missing"
        elif not self.runs.is_dir():
            problem = "not a directory"
        else:
            try:
                children = sorted(p for p in self.runs.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError as exc:
                children, problem = [], str(exc.strerror or exc)
            statuses = [inspect_run(p) for p in children]
        ok = refresh is not None and refresh.isdigit() and 1 <= int(refresh) <= 3600
        return render("runs.html", runs=self.runs, problem=problem, statuses=statuses,
                      refresh=int(refresh) if ok else None)

    def load(self, directory: Path) -> tuple[Results, bool]:
        """The run's results (cached until the database changes) and whether a sweep is writing it.

        Raises:
            ResultsError: unreadable database or no finished cell.
        """
        def make() -> tuple[Results, bool]:
            with readable(directory) as (source, locked):
                return load_results(source), locked
        return self.cache.get(("results", str(directory.resolve()), _stamp(directory)), make)

    def comparison_page(self, name: str, metric: str | None, market: str | None = None) -> HTMLResponse:
        """``GET /runs/{name}``: the comparison under ``metric`` and its figures, or a ledger's ``market``."""
        directory = self.directory(name)
        if directory is None:
            return self.not_found(name)
        status = inspect_run(directory)
        if status.status == "ledger":
            try:
                return self.ledger_page(name, directory, market)
            except MarketError as exc:
                return error_page(422, name, str(exc), (f"/runs/{urllib.parse.quote(name)}", "the first market"))
        if status.status == "corrupt" and not (directory / DATABASE).exists():  # a ledger with bad metadata
            return error_page(422, name, status.note)
        if status.status == "corrupt":
            return error_page(422, name, f"The results file {directory / DATABASE} cannot be read: "
                                         f"{status.note.removeprefix('the results file cannot be read: ')}")
        if not status.done:
            detail = "a sweep is writing it; reload in a moment" if status.status == "running" else status.note
            return render("run.html", name=name, waiting=f"No finished cells yet ({status.progress}): {detail}.")
        try:
            results, locked = self.load(directory)
        except ResultsError as exc:
            if status.status == "running":  # a snapshot caught a write half-way: not an error of the run
                return render("run.html", name=name, waiting=f"A sweep is writing the results ({status.progress} "
                                                             "cells); they could not be read at this instant: reload.")
            return error_page(422, name, f"The results file {directory / DATABASE} cannot be read: {exc}")
        chosen = metric or (results.headline() or results.metric_names)[0]
        context = {"name": name, "waiting": "", "results": results, "metric": chosen, "locked": locked,
                   "running": status.status == "running"}
        if chosen not in results.metric_names:
            return render("run.html", 422, **context)
        curve_note = (f"{chosen} per round (mean over seeds)" if chosen in results.curve_names else
                      f"{chosen} has no per-round curve; showing {_curve_of(results, chosen)} per round")
        return render("run.html", **context, **comparison(results, chosen), curve_note=curve_note)

    def ledger_page(self, name: str, directory: Path, market: str | None) -> HTMLResponse:
        """What a ledger recorded, the command that replays it and, round by round, one market (its first unless
        ``market``): bids, winners, payments and, for a mechanism that keeps state, each seat's declared actions
        and its state after the round.

        Raises:
            MarketError: ``market`` is not an integer, or not a market of the ledger.
        """
        meta = read_meta(directory)
        first, last = meta.start, meta.start + meta.markets - 1
        chosen = parse_market(market)
        chosen = first if chosen is None else chosen
        if not first <= chosen <= last:
            raise MarketError(f"market must be in [{first}, {last}] (the ledger has {meta.markets} markets), "
                              f"got {chosen}")
        con = connect_ledger(directory)
        try:
            data, messages = market_rounds(con, chosen), market_messages(con, chosen)
        finally:
            con.close()
        fields = [("mechanism", f"{meta.mechanism} v{meta.mechanism_version}"),
                  ("config", ", ".join(f"{k}={v}" for k, v in meta.config.items()) or "defaults"),
                  ("population", meta.population), ("seed", meta.seed), ("markets", meta.markets),
                  ("seats", meta.seats), ("rounds recorded", meta.rounds_recorded), ("mode", meta.mode),
                  ("status", meta.status), ("mecharena", meta.package_version)]
        rounds = {t: round_view(data[t], set(), messages.get(t, [])) for t in sorted(data)}
        return render("ledger.html", name=name, replay=replay_command(directory), fields=fields, market=chosen,
                      first=first, last=last, rounds=rounds)

    def figure(self, name: str, kind: str, metric: str | None) -> Response:
        """``GET /runs/{name}/figures/{kind}.png``: a report figure of ``metric`` as PNG (cached)."""
        directory = self.directory(name)
        if directory is None:
            return self.not_found(name)
        if kind not in FIGURES:
            return error_page(404, "Figure not found", f"unknown figure {kind!r}; allowed: {', '.join(FIGURES)}")
        try:
            results, _ = self.load(directory)
        except ResultsError:
            status = inspect_run(directory)
            if status.status == "ledger":
                return error_page(404, "No figures", f"{name} is a ledger, not a sweep: "
                                                     f"`{replay_command(directory)}` replays it")
            if not status.done and status.status != "corrupt":
                return error_page(404, "No results yet", f"run {name} has no finished cell yet ({status.progress})")
            try:  # once more: a snapshot of a database being written may catch a write half-way
                results, _ = self.load(directory)
            except ResultsError as exc:
                return error_page(422, name, f"The results file {directory / DATABASE} cannot be read: {exc}")
        chosen = metric or (results.headline() or results.metric_names)[0]
        if chosen not in results.metric_names:
            return error_page(422, "Unknown metric", f"unknown metric {chosen!r}; allowed: "
                                                     f"{', '.join(results.metric_names)}")

        def draw() -> bytes:
            from mecharena.report import figures  # matplotlib: only when a figure is asked for

            with self.figure_lock:
                if kind == "bars":
                    drawn = figures.metric_bars(results, chosen)
                elif kind == "heatmap":
                    drawn = figures.heatmap(results, chosen)
                else:
                    curve = _curve_of(results, chosen)
                    drawn = figures.curves(results, curve, f"{curve} per round (mean over seeds)")
                buffer = io.BytesIO()
                figures.save(drawn, buffer)  # savefig takes a file object as well as a path
                return buffer.getvalue()

        png = self.cache.get(("figure", str(directory.resolve()), _stamp(directory), kind, chosen), draw)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
