"""The web dashboard (``mecharena ui``): a FastAPI shell over the runner, report, fuzz and designer layers.

No economics lives here: the pages show what :mod:`mecharena.report` computes from a run directory,
what :mod:`mecharena.fuzz.library` stores and replays, and what :class:`~mecharena.designer.env.DesignerEnv`
plays. HTML is built with Python string templates and :func:`html.escape`; figures are rendered on the
server (matplotlib's Agg canvas, the report's own figure functions) and served as PNG; the CSS and a
tiny optional script ship in ``mecharena/server/static``. Every page works without JavaScript (plain
links and forms).

Pages (ids and classes are a contract: the browser tests rely on them):

* ``GET /``: ``table#runs``, one ``tr.run`` per directory under ``--runs`` with ``td.status``
  (complete / running / empty / corrupt, or ledger for a ``simulate --ledger DIR`` recording),
  ``td.progress`` (``done/planned`` cells) and ``a.run-link``. A run whose ``results.duckdb`` is
  locked by a running sweep is read from a snapshot copy, so its progress still shows.
* ``GET /runs/{name}?metric=M``: ``form#metric-form`` (``select#metric``, ``button#apply``),
  ``table#comparison`` (mechanism x population rows, the metric's seed-pooled mean and 95% CI per
  information policy), ``img.bars``, ``img.heatmap`` and ``img.curve`` from
  ``/runs/{name}/figures/{kind}.png?metric=M``. For a ledger: ``table#ledger`` (what it recorded)
  and ``code#replay-command``, the command that replays it.
* ``GET /exploits?library=DIR``: ``table#exploits``, ``tr.exploit`` rows with ``a.exploit-link``;
  ``GET /exploits/{id}``: the failure report, the replay verdict and ``div#timeline`` with one
  ``div.round`` per recorded round of one market (bids, winners, payments; with and without the
  deviation).
* ``GET /live``: ``form#start`` (``select#stage``, ``select#policy``, ``button#start-button``);
  ``GET /live/{session}``: ``div#mechanism``, ``div#why``, ``div#rounds`` (one ``div.round`` per
  round played), ``form#policy-step`` and ``form#manual-step`` (one input per
  :class:`~mecharena.designer.action.MechanismAction` field). Invalid manual input answers 422 with
  ``div.error`` naming the field and leaves the episode unchanged. Sessions live in memory,
  bounded in number, and expire when idle.

Errors are pages, never tracebacks: unknown run or exploit (404), an unreadable results file or
exploit report (422 with ``div.error``: the data is bad, not the server), invalid form input
(422), and a global handler (500) for anything unexpected.
"""

import html
import io
import math
import secrets
import shutil
import tempfile
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mecharena import agents
from mecharena.agents.respond import bid_function
from mecharena.core.errors import ConfigError, InvalidActionError, MechArenaError, UnknownIdError
from mecharena.core.types import FloatArray
from mecharena.designer import core as designer
from mecharena.designer.action import COALITIONS, FLAGS, PENALTIES, RULES, MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import Policy, make_policy
from mecharena.designer.population import STAGES
from mecharena.fuzz.library import Library, LibraryError
from mecharena.fuzz.report import FailureReport
from mecharena.fuzz.score import agent_seats
from mecharena.ledger import connect as connect_ledger
from mecharena.ledger import read_meta
from mecharena.ledger.meta import META_FILE, LedgerError, LedgerMeta
from mecharena.ledger.queries import market_messages, market_rounds, utility_by_market
from mecharena.report.data import Results, group, load_results, pooled
from mecharena.report.tables import number
from mecharena.runner.store import DATABASE, ResultsError, ResultStore
from mecharena.server.app import BodyLimit
from mecharena.server.shell import SessionLimitError, SessionStore

STATIC = Path(__file__).with_name("static")
STATUSES = ("complete", "running", "empty", "corrupt", "ledger")
FIGURES = ("bars", "heatmap", "curve")
LIVE_POLICIES = ("random", "greedy", "learned")
DEFAULT_MAX_SESSIONS = 32
DEFAULT_IDLE_TIMEOUT = 1800.0  # seconds
MAX_FORM_BYTES = 64 * 1024
CACHE_SIZE = 32  # loaded results and rendered figures kept in memory
LIVE_FEATURES = (("welfare", "welfare"), ("fairness", "fairness"), ("participation", "participation"),
                 ("stability", "stability"), ("price_mean", "price"), ("dropouts", "dropouts"),
                 ("collusion", "collusion"), ("sold", "sold"))
TRUE, FALSE = ("on", "true", "1", "yes"), ("off", "false", "0", "no", "")

PolicyFactory = Callable[[str, int, int], Policy]  # (name, stage, seed) -> a policy


def esc(value: Any) -> str:
    """``value`` as text escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number with 4 significant digits (a dash for None or NaN); anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
        return number(0.0 if x == 0 else x)  # no "-0"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


# --- pages ----------------------------------------------------------------------------------

NAV = ('<nav><span class="brand">mecharena</span><a id="nav-runs" href="/">Runs</a>'
       '<a id="nav-exploits" href="/exploits">Exploits</a><a id="nav-live" href="/live">Live referee</a></nav>')


def page(title: str, body: str, status: int = 200, head: str = "") -> HTMLResponse:
    """A complete HTML page with the navigation bar, the stylesheet and the optional script."""
    text = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} · mecharena</title><link rel='stylesheet' href='/static/ui.css'>{head}</head>"
            f"<body>{NAV}<main>{body}</main><script src='/static/ui.js' defer></script></body></html>")
    return HTMLResponse(text, status_code=status)


def error_page(status: int, heading: str, message: str, extra: str = "") -> HTMLResponse:
    """``<h1>heading</h1>`` and ``<div class="error">message</div>`` with ``status``."""
    return page(heading, f"<h1>{esc(heading)}</h1><div class='error'>{esc(message)}</div>{extra}", status)


def table(table_id: str, header: list[str], rows: list[str], row_note: str = "") -> str:
    """A table with a head row and pre-rendered ``<tr>`` rows (an empty body when there are none)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    note = f"<p class='note'>{esc(row_note)}</p>" if row_note and not rows else ""
    return f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


def market_form(action: str, first: int, last: int, chosen: int, hidden: str = "") -> str:
    """The form that picks a market in [first, last] for a round-by-round view at ``action``."""
    return (f"<form id='market-form' method='get' action='{esc(action)}'>{hidden}<label for='market'>market "
            f"({first} to {last})</label> <input id='market' name='market' type='number' min='{first}' max='{last}' "
            f"value='{chosen}'> <button id='show-market' type='submit'>Show</button></form>")


def link(path: str, query: dict[str, Any] | None = None) -> str:
    """``path`` with a URL-encoded query (entries that are None are left out)."""
    items = {k: v for k, v in (query or {}).items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


class MarketError(ConfigError):
    """A round-by-round view was asked for a market that is not an integer, or that the trace or ledger lacks."""


def parse_market(market: str | None) -> int | None:
    """The ``market`` query field as an int (None where it is absent or empty).

    Raises:
        MarketError: it is not an integer.
    """
    if market in (None, ""):
        return None
    try:
        return int(market)
    except ValueError:
        raise MarketError(f"market must be an integer, got {market!r}") from None


# --- run directories ------------------------------------------------------------------------


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


# --- the live referee -------------------------------------------------------------------------


def describe(action: MechanismAction) -> str:
    """A one-line summary of a mechanism."""
    reserve = "current reserve" if action.reserve is None else f"reserve {fmt(action.reserve)}"
    shown = [f.replace("_", " ") for f in FLAGS if getattr(action, f)]
    fines = [f"{p.removesuffix('_penalty')} {fmt(getattr(action, p))}" for p in PENALTIES if getattr(action, p) > 0]
    return (f"{action.rule}, {reserve}; reveals: {', '.join(shown) or 'nothing'}; fines: {', '.join(fines) or 'none'}; "
            f"coalition: {action.coalition}")


def parse_manual(form: dict[str, str]) -> MechanismAction:
    """A :class:`MechanismAction` from the manual form's fields.

    Blank numbers keep the field's default (a blank ``reserve`` keeps the reserve in force); a
    missing checkbox is False, as HTML forms send them.

    Raises:
        ConfigError: a field is unknown, of the wrong type or out of range (the message names it).
    """
    fields: dict[str, Any] = {}
    for name, raw in form.items():
        value = raw.strip()
        if name in FLAGS:
            if value.lower() not in TRUE + FALSE:
                raise ConfigError(f"{name} must be a checkbox value (on or off, true or false), got {raw!r}")
            fields[name] = value.lower() in TRUE
        elif value:
            fields[name] = value
    for flag in FLAGS:
        fields.setdefault(flag, False)
    return MechanismAction.build(**fields)


@dataclass(slots=True)
class LiveEpisode:
    """One referee episode played in the browser: the environment, the designer and what happened."""

    stage: int
    policy_name: str
    policy: Policy
    seed: int
    env: DesignerEnv
    observation: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)  # every round played: step, rule, FEATURES
    steps: list[dict[str, Any]] = field(default_factory=list)  # step, actor, mechanism, reward, components
    why: list[str] = field(default_factory=list)  # the reason for the last choice
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, stage: int, policy_name: str, policy: Policy, seed: int) -> "LiveEpisode":
        env = DesignerEnv(stage=stage)
        observation = env.reset(seed=seed)
        why = [("no choice yet: the episode starts under the default mechanism (second price, no reserve, "
               "price revealed); step to let the designer choose, or choose yourself")]
        return cls(stage, policy_name, policy, seed, env, observation, why=why)

    @property
    def done(self) -> bool:
        return self.env.done

    def step_policy(self) -> None:
        """The designer picks the mechanism from what it observes; one step is played under it.

        Raises:
            InvalidActionError: the episode is over.
        """
        with self.lock:
            self._require_running()
            why = self._explain()
            self._play(self.policy.act(self.observation), "policy", why)

    def step_manual(self, form: dict[str, str]) -> None:
        """Play one step under the mechanism of the manual form (validated before anything changes).

        Raises:
            ConfigError: invalid input (the message names the field); the episode is unchanged.
            InvalidActionError: the episode is over.
        """
        action = parse_manual(form)
        with self.lock:
            self._require_running()
            self._play(action, "manual", ["your own mechanism (manual step): " + describe(action)])

    def _require_running(self) -> None:
        if self.done:
            raise InvalidActionError(f"the episode is over ({designer.HORIZON} steps); start a new one")

    def _play(self, action: MechanismAction, actor: str, why: list[str]) -> None:
        observation, reward, _, info = self.env.step(action)
        step = len(self.steps) + 1
        window = observation["window"]["rounds"][-designer.ROUNDS:]
        features = observation["window"]["features"]
        for values in window:
            self.rounds.append({"round": len(self.rounds) + 1, "step": step, "rule": self.env.mechanism.rule,
                                **dict(zip(features, values, strict=True))})
        self.steps.append({"step": step, "actor": actor, "mechanism": describe(self.env.mechanism), "reward": reward,
                           **{c: info[c] for c in designer.COMPONENTS}})
        self.observation = observation
        self.why = why

    def _explain(self) -> list[str]:
        """Why the policy chooses what it does from the observation it saw (the policy says)."""
        proxies = self.observation["proxies"]
        return self.policy.explain(self.observation) + [
            "proxies seen: " + ", ".join(f"{k} = {fmt(v)}" for k, v in proxies.items())]


# --- the dashboard ----------------------------------------------------------------------------


class Dashboard:
    """The state behind the app: directories, caches, sessions and the policy factory."""

    def __init__(self, runs: Path, exploits: Path, *, policies: PolicyFactory | None = None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.runs = Path(runs)
        self.exploits = Path(exploits)
        self.cache = Cache()
        self.figure_lock = threading.Lock()  # matplotlib's font and text caches are not thread-safe
        self.sessions = SessionStore(max_sessions=max_sessions, idle_timeout=idle_timeout)
        self.sessions_lock = threading.Lock()
        self.policy_factory = policies
        self._learned: dict[int, Policy] = {}
        self._learned_lock = threading.Lock()

    # runs ---------------------------------------------------------------------------------

    def run_directory(self, name: str) -> Path | None:
        """The run directory ``name`` directly under ``--runs``, or None."""
        if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
            return None
        path = self.runs / name
        return path if path.is_dir() else None

    def runs_page(self, refresh: str | None) -> HTMLResponse:
        head = ""
        if refresh and refresh.isdigit() and 1 <= int(refresh) <= 3600:
            head = f"<meta http-equiv='refresh' content='{int(refresh)}'>"
        body = [(f"<h1>Runs</h1><p class='note'>Run directories under <code>{esc(self.runs)}</code> "
                "(each written by <code>mecharena run SPEC --out DIR</code>). "
                f"<a href='/'>reload</a> · <a href='/?refresh=5'>reload every 5 s</a></p>")]
        statuses: list[RunStatus] = []
        if not self.runs.exists():
            body.append(f"<div class='error'>The runs directory {esc(self.runs)} does not exist. Start the dashboard "
                        f"with <code>--runs DIR</code> naming a directory of run directories, or run "
                        f"<code>mecharena run SPEC --out {esc(self.runs / 'NAME')}</code>.</div>")
        elif not self.runs.is_dir():
            body.append(f"<div class='error'>The runs directory {esc(self.runs)} is not a directory.</div>")
        else:
            try:
                children = sorted(p for p in self.runs.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError as exc:
                children = []
                body.append(f"<div class='error'>The runs directory {esc(self.runs)} cannot be read: "
                            f"{esc(exc.strerror or exc)}</div>")
            statuses = [inspect_run(p) for p in children]
        rows = [f"<tr class='run' data-status='{s.status}'><td class='name'><a class='run-link' "
                f"href='/runs/{esc(urllib.parse.quote(s.name))}'>{esc(s.name)}</a></td>"
                f"<td class='status {s.status}'>{s.status}</td><td class='progress'>{s.progress}</td>"
                f"<td class='note'>{esc(s.note)}</td></tr>" for s in statuses]
        body.append(table("runs", ["name", "status", "progress (cells)", "note"], rows,
                          "No run directories yet." if self.runs.is_dir() else ""))
        return page("Runs", "".join(body), head=head)

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
        directory = self.run_directory(name)
        if directory is None:
            return self.run_not_found(name)
        status = inspect_run(directory)
        title = f"<h1>{esc(name)}</h1>"
        if status.status == "ledger":
            try:
                return page(name, title + self._ledger(directory) + self._ledger_rounds(name, directory, market))
            except MarketError as exc:
                first = f"<p><a href='/runs/{esc(urllib.parse.quote(name))}'>the first market</a></p>"
                return error_page(422, name, str(exc), first)
        if status.status == "corrupt" and not (directory / DATABASE).exists():  # a ledger with bad metadata
            return page(name, f"{title}<div class='error'>{esc(status.note)}</div>", 422)
        if status.status == "corrupt":
            return page(name, f"{title}<div class='error'>The results file {esc(directory / DATABASE)} cannot be "
                              f"read: {esc(status.note.removeprefix('the results file cannot be read: '))}</div>", 422)
        if not status.done:
            detail = ("a sweep is writing it; reload in a moment" if status.status == "running" else status.note)
            return page(name, f"{title}<p class='note' id='no-results'>No finished cells yet ({status.progress}): "
                              f"{esc(detail)}.</p>")
        try:
            results, locked = self.load(directory)
        except ResultsError as exc:
            if status.status == "running":  # a snapshot caught a write half-way: not an error of the run
                return page(name, f"{title}<p class='note' id='no-results'>A sweep is writing the results "
                                  f"({status.progress} cells); they could not be read at this instant: reload.</p>")
            return page(name, f"{title}<div class='error'>The results file {esc(directory / DATABASE)} cannot be "
                              f"read: {esc(exc)}</div>", 422)
        metrics = list(results.metric_names)
        chosen = metric or (results.headline() or results.metric_names)[0]
        options = "".join(f"<option value='{esc(m)}'{' selected' if m == chosen else ''}>{esc(m)}</option>"
                          for m in metrics)
        form = (f"<form id='metric-form' method='get' action='/runs/{esc(urllib.parse.quote(name))}'>"
                f"<label for='metric'>metric</label> <select id='metric' name='metric' data-autosubmit>{options}"
                f"</select> <button id='apply' type='submit'>Apply</button></form>")
        overview = self._overview(results, status, locked)
        if chosen not in metrics:
            return page(name, f"{title}{overview}{form}<div class='error'>unknown metric {esc(repr(chosen))}; "
                              f"allowed: {esc(', '.join(metrics))}</div>", 422)
        base = f"/runs/{urllib.parse.quote(name)}/figures"
        curve = chosen if chosen in results.curve_names else None
        curve_note = (f"{chosen} per round (mean over seeds)" if curve else
                      f"{chosen} has no per-round curve; showing {self._curve_of(results, chosen)} per round")
        figures = (f"<h2>{esc(chosen)} by mechanism and population</h2>"
                   f"<figure><img class='bars' src='{esc(link(base + '/bars.png', {'metric': chosen}))}' "
                   f"alt='{esc(chosen)} by mechanism and population'><figcaption>{esc(chosen)}: mean over seeds with "
                   f"95% CI</figcaption></figure>"
                   f"<h2>Heatmap</h2><figure><img class='heatmap' "
                   f"src='{esc(link(base + '/heatmap.png', {'metric': chosen}))}' alt='heatmap of {esc(chosen)}'>"
                   f"<figcaption>{esc(chosen)}: mechanism x population</figcaption></figure>"
                   f"<h2>Learning curve</h2><figure><img class='curve' "
                   f"src='{esc(link(base + '/curve.png', {'metric': chosen}))}' alt='{esc(curve_note)}'>"
                   f"<figcaption>{esc(curve_note)}</figcaption></figure>")
        body = (f"{title}{overview}{form}<h2>{esc(chosen)}: mean and 95% CI (pooled over seeds)</h2>"
                f"{self._comparison(results, chosen)}{figures}")
        return page(name, body)

    @staticmethod
    def _curve_of(results: Results, metric: str) -> str:
        if metric in results.curve_names:
            return metric
        return next((c for c in ("revenue", "efficiency", "price") if c in results.curve_names),
                    results.curve_names[0] if results.curve_names else metric)

    @staticmethod
    def _ledger(directory: Path) -> str:
        """What a ledger recorded, and the command that replays it."""
        meta: LedgerMeta = read_meta(directory)
        config = ", ".join(f"{k}={v}" for k, v in meta.config.items()) or "defaults"
        fields = [("mechanism", f"{meta.mechanism} v{meta.mechanism_version}"), ("config", config),
                  ("population", meta.population), ("seed", meta.seed), ("markets", meta.markets),
                  ("seats", meta.seats), ("rounds recorded", meta.rounds_recorded), ("mode", meta.mode),
                  ("status", meta.status), ("mecharena", meta.package_version)]
        rows = [f"<tr class='ledger-field'><td class='field'>{esc(k)}</td><td class='value'>{esc(v)}</td></tr>"
                for k, v in fields]
        return (f"<p class='note'>A ledger written by <code>mecharena simulate --ledger DIR</code>: the events of "
                f"one simulation, not a sweep. Replay it (every outcome rebuilt from its events) with "
                f"<code id='replay-command'>{esc(replay_command(directory))}</code>.</p>"
                + table("ledger", ["field", "value"], rows))

    def _ledger_rounds(self, name: str, directory: Path, market: str | None) -> str:
        """Round by round, one market of a ledger (its first unless ``market``): bids, winners, payments and, for a
        mechanism that keeps state, each seat's declared actions and its state after the round.

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
        divs = "".join(f"<div class='round' data-round='{t}'><h3>Round {t}</h3><div class='ledgers'>"
                       f"{self._ledger_round('recorded', 'as recorded', data[t], set(), messages.get(t, []))}</div></div>"
                       for t in sorted(data))
        form = market_form(f"/runs/{urllib.parse.quote(name)}", first, last, chosen)
        return (f"<h2>Rounds: market {chosen}</h2><p class='note'>What each round of this market recorded; where the "
                f"mechanism keeps state, each seat's declared actions and its state after the round.</p>{form}"
                f"<div id='timeline'>{divs}</div>")

    @staticmethod
    def _overview(results: Results, status: RunStatus, locked: bool) -> str:
        text = "<p class='note'>"
        if results.description:
            text += f"{esc(results.description)}<br>"
        text += (f"spec {esc(results.name)}: {len(results.rows)} of {results.planned} planned cells finished; "
                 f"mechanisms: {esc(', '.join(results.mechanisms))}; populations: {esc(', '.join(results.populations))}"
                 f"; information: {esc(', '.join(results.rules))}; seeds: {esc(', '.join(map(str, results.seeds)))}"
                 "</p>")
        if status.status == "running":
            writer = "a sweep is writing it" if locked else "no sweep is writing it (interrupted: rerun to resume)"
            text += (f"<p class='warn' id='partial'>Running: {len(results.rows)}/{results.planned} cells finished; "
                     f"{writer}. The comparison shows the finished cells.</p>")
        return text

    @staticmethod
    def _comparison(results: Results, metric: str) -> str:
        """Mechanism x population rows; per information policy the pooled mean and its 95% interval."""
        by_pair = group(results.rows, lambda r: (r.mechanism, r.population))
        several = len(results.rules) > 1
        header = ["mechanism", "population", "cells"]
        for rules in results.rules:
            suffix = f" ({rules})" if several else ""
            header += [f"mean{suffix}", f"95% CI{suffix}"]
        rows = []
        for (mechanism, population), members in by_pair.items():
            cells = [f"<td class='text mechanism'>{esc(mechanism)}</td>",
                     f"<td class='text population'>{esc(population)}</td>", f"<td class='cells'>{len(members)}</td>"]
            by_rules = group(members, lambda r: r.rules)
            for rules in results.rules:
                estimate = pooled(by_rules.get(rules, []), metric)
                interval = "–"
                if math.isfinite(estimate.mean):
                    half = estimate.half if math.isfinite(estimate.half) else 0.0
                    interval = f"[{number(estimate.mean - half)}, {number(estimate.mean + half)}]"
                cells += [f"<td class='mean' data-rules='{esc(rules)}'>{number(estimate.mean)}</td>",
                          f"<td class='ci' data-rules='{esc(rules)}'>{interval}</td>"]
            rows.append(f"<tr class='comparison-row'>{''.join(cells)}</tr>")
        return table("comparison", header, rows)

    def figure(self, name: str, kind: str, metric: str | None) -> Response:
        directory = self.run_directory(name)
        if directory is None:
            return self.run_not_found(name)
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

        def render() -> bytes:
            from mecharena.report import figures  # matplotlib: only when a figure is asked for

            with self.figure_lock:
                if kind == "bars":
                    drawn = figures.metric_bars(results, chosen)
                elif kind == "heatmap":
                    drawn = figures.heatmap(results, chosen)
                else:
                    curve = self._curve_of(results, chosen)
                    drawn = figures.curves(results, curve, f"{curve} per round (mean over seeds)")
                buffer = io.BytesIO()
                figures.save(drawn, buffer)  # savefig takes a file object as well as a path
                return buffer.getvalue()

        png = self.cache.get(("figure", str(directory.resolve()), _stamp(directory), kind, chosen), render)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    def run_not_found(self, name: str) -> HTMLResponse:
        return error_page(404, "Run not found", f"There is no run directory {self.runs / name}: the runs page lists "
                                                f"the run directories under {self.runs}.",
                          "<p><a href='/'>back to the runs</a></p>")

    # exploits -------------------------------------------------------------------------------

    def library_directory(self, library: str | None) -> tuple[Path, str | None]:
        """The library directory and the query value that keeps it in links (None: the default)."""
        if not library:
            return self.exploits, None
        path = Path(library)
        return path, (None if path == self.exploits else library)

    def exploits_page(self, library: str | None) -> HTMLResponse:
        directory, keep = self.library_directory(library)
        body = [(f"<h1>Exploits</h1><p class='note'>Failure reports in <code>{esc(directory)}</code>, found by "
                "<code>mecharena fuzz --library DIR</code>.</p>"
                "<form id='library-form' method='get' action='/exploits'><label for='library'>library</label> "
                f"<input id='library' name='library' value='{esc(directory)}'> <button type='submit'>Open</button>"
                "</form>")]
        rows: list[str] = []
        try:
            lib = Library(directory)
        except LibraryError as exc:
            body.append(f"<div class='error'>{esc(exc)}</div>")
            lib = None
        if lib is not None:
            for report_id in lib.ids():
                href = esc(link(f"/exploits/{urllib.parse.quote(report_id)}", {"library": keep}))
                try:
                    r = lib.get(report_id)
                except (LibraryError, UnknownIdError) as exc:
                    rows.append(f"<tr class='exploit corrupt'><td><a class='exploit-link' href='{href}'>"
                                f"{esc(report_id)}</a></td><td class='text' colspan='7'>{esc(exc)}</td></tr>")
                    continue
                rows.append(
                    f"<tr class='exploit'><td><a class='exploit-link' href='{href}'>{esc(r.id)}</a></td>"
                    f"<td class='text'>{esc(r.mechanism)} v{r.mechanism_version}</td>"
                    f"<td class='text'>{esc(r.population)}</td><td class='text'>{esc(r.strategy.family)}</td>"
                    f"<td>{r.agents_involved.deviators}</td><td>{self._gain(r)}</td><td>{r.frequency:.1%}</td>"
                    f"<td class='text severity {esc(r.severity.label)}'>{esc(r.severity.label)}</td></tr>")
        body.append(table("exploits", ["id", "mechanism", "population", "family", "deviators", "gain [95% CI]",
                                       "frequency", "severity"], rows,
                          "No failure reports in this library." if lib is not None else ""))
        return page("Exploits", "".join(body))

    @staticmethod
    def _gain(r: FailureReport) -> str:
        lo, hi = r.gain.ci95
        return f"{r.gain.mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    def exploit_page(self, exploit_id: str, library: str | None, market: str | None) -> HTMLResponse:
        directory, keep = self.library_directory(library)
        back = f"<p><a href='{esc(link('/exploits', {'library': keep}))}'>back to the exploit library</a></p>"
        try:
            lib = Library(directory)
            report = lib.get(exploit_id)
        except UnknownIdError as exc:
            return error_page(404, "Exploit not found", str(exc), back)
        except LibraryError as exc:
            text = str(exc)
            if "does not exist" in text:
                return error_page(404, "Exploit not found", text, back)
            if "ambiguous" in text or "non-empty" in text:
                return error_page(400, "Exploit not found", text, back)
            return error_page(422, f"Exploit {exploit_id}", text, back)
        try:
            chosen = parse_market(market)
        except MarketError as exc:
            return error_page(422, f"Exploit {report.id}", str(exc), back)
        body = [f"<h1>Exploit {esc(report.id)}</h1>", self._report_table(report), self._bid_function(report)]
        try:
            body.append(self._replay_section(lib, report))
            body.append(self._timeline(directory, report, chosen, keep))
        except MarketError as exc:
            return error_page(422, f"Exploit {report.id}", str(exc), back)
        except MechArenaError as exc:  # missing or corrupt trace ledgers
            body.append(f"<div class='error' id='replay-error'>The trace of this report cannot be replayed: "
                        f"{esc(exc)}</div><div id='timeline'></div>")
        body.append(back)
        return page(f"Exploit {report.id}", "".join(body))

    @staticmethod
    def _report_table(r: FailureReport) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in r.config.items()) or "defaults"
        relative = "n/a" if r.severity.relative is None else f"{r.severity.relative:.1%} of welfare per agent and round"
        rows = [
            ("mechanism", f"{r.mechanism} v{r.mechanism_version} ({settings})", "mechanism"),
            ("population", r.population, "population"),
            ("affected rule", r.affected_rule, "rule"),
            ("family", f"{r.strategy.family}: {r.strategy.summary}", "family"),
            ("parameters", ", ".join(f"{k}={v}" for k, v in r.strategy.params.items()) or "none", "params"),
            ("deviators", (f"{r.agents_involved.deviators} at seats {r.agents_involved.seats} playing "
                          f"{r.agents_involved.agent}"), "deviators"),
            ("gain", (f"{Dashboard._gain(r)} per agent and round ({r.gain.markets} markets x {r.gain.rounds} rounds, "
                     f"seed {r.gain.seed})"), "gain"),
            ("frequency", f"{r.frequency:.1%} of markets", "frequency"),
            ("severity", f"{r.severity.label} ({relative})", "severity"),
            ("mitigation", r.mitigation, "mitigation"),
            ("regression", r.regression.command, "regression"),
        ]
        body = "".join(f"<tr><th>{esc(k)}</th><td class='text' id='report-{key}'>{esc(v)}</td></tr>"
                       for k, v, key in rows)
        return f"<table id='report'>{body}</table>"

    @staticmethod
    def _bid_function(r: FailureReport) -> str:
        """The discovery engine's strategy (a ``best_response`` table) as an inline SVG: its bid against
        its value beside truthful bidding (dashed), gaps where it abstains; "" for other strategies."""
        group = agents.population(f"{r.strategy.agent}:1").groups[0]
        found = bid_function(group.params) if group.agent.name == "best_response" else None
        if found is None:
            return ""
        values, bids, names = found
        width, height, pad = 480, 260, 36
        low, high = float(values[0]), float(values[-1])
        drawn_bids = bids if names is None else np.concatenate([bids, names])
        top = float(np.nanmax(np.append(drawn_bids, high)))  # the truthful line reaches (high, high)

        def x(v: float) -> float:
            return pad + (width - 2 * pad) * (v - low) / (high - low)

        def y(b: float) -> float:
            return height - pad - (height - 2 * pad) * b / top

        def lines(curve: FloatArray, colour: str, label: str) -> str:
            runs = np.split(np.arange(curve.size), np.flatnonzero(np.diff(np.isfinite(curve))) + 1)
            return "".join(f"<polyline class='{label}' fill='none' stroke='{colour}' stroke-width='2' points='"
                           + " ".join(f"{x(values[i]):.1f},{y(curve[i]):.1f}" for i in run) + "'/>"
                           for run in runs if np.isfinite(curve[run[0]]))

        drawn = lines(bids, "#d62728", "bids") + ("" if names is None else lines(names, "#9467bd", "names"))
        truthful = (f"<line stroke='#999' stroke-dasharray='4 3' x1='{x(low):.1f}' y1='{y(low):.1f}' "
                    f"x2='{x(high):.1f}' y2='{y(high):.1f}'/>")
        axes = (f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#555'/>"
                f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#555'/>"
                f"<text x='{pad}' y='{height - 8}'>{low:g}</text><text x='{width - pad - 10}' y='{height - 8}'>"
                f"{high:g}</text><text x='{width / 2 - 20}' y='{height - 8}'>value</text>"
                f"<text x='2' y='{pad + 4}'>{top:.2g}</text><text x='2' y='{height / 2}'>bid</text>")
        legend = (f"<text x='{pad}' y='16' fill='#d62728'>its bid</text>"
                  f"<text x='{pad + 70}' y='16' fill='#999'>truthful</text>"
                  + ("" if names is None else f"<text x='{pad + 150}' y='16' fill='#9467bd'>each false name</text>"))
        return (f"<h2>Bid function</h2><svg id='bid-function' width='{width}' height='{height}' role='img' "
                f"aria-label='the deviation bid against its value, beside truthful bidding'>{axes}{truthful}{drawn}"
                f"{legend}</svg>")

    @staticmethod
    def _replay_section(lib: Library, report: FailureReport) -> str:
        result = lib.replay(report.id)
        verdict = ("reproduced exactly: both ledgers replay bit for bit and the recomputed gain equals the "
                   "recorded one" if result["ok"] else "NOT reproduced")
        parts = "; ".join(f"{name}: {result[name]['rounds']} rounds, {result[name]['events']} events, "
                          f"{result[name]['mismatch_count']} mismatches" for name in ("baseline", "deviated"))
        return (f"<h2>Replay</h2><p id='replay' class='{'ok' if result['ok'] else 'error'}'>{esc(verdict)} "
                f"(recorded gain {result['recorded_gain']!r}, replayed {result['replayed_gain']!r}; {esc(parts)})</p>")

    def _timeline(self, directory: Path, report: FailureReport, market: int | None, keep: str | None) -> str:
        """Round by round, one market of both trace ledgers: bids, winners, payments (and messages); for a
        mechanism that keeps state, each seat's declared actions and its state after the round.

        Raises:
            MarketError: ``market`` is not a market of the trace.
            LedgerError: a trace ledger is missing or corrupt.
        """
        ledgers = {"deviated": directory / report.trace.deviated, "baseline": directory / report.trace.baseline}
        metas = {k: read_meta(p) for k, p in ledgers.items()}
        first = metas["deviated"].start
        count = metas["deviated"].markets
        k = report.agents_involved.deviators
        connections = {name: connect_ledger(path) for name, path in ledgers.items()}
        try:
            seats = {name: agent_seats(np.asarray(metas[name].owner, dtype=np.int64), k) for name in ledgers}
            if market is None:
                market, why = self._telling_market(connections, seats, first, count)
            else:
                why = "chosen"
                if not first <= market < first + count:
                    raise MarketError(f"market must be in [{first}, {first + count - 1}] (the trace has {count} "
                                      f"markets), got {market}")
            data = {name: market_rounds(con, market) for name, con in connections.items()}
            messages = {name: market_messages(con, market) for name, con in connections.items()}
        finally:
            for con in connections.values():
                con.close()
        owners = {name: np.asarray(metas[name].owner, dtype=np.int64) for name in ledgers}
        rounds = sorted(set(data["deviated"]) | set(data["baseline"]))
        hidden = f"<input type='hidden' name='library' value='{esc(keep)}'>" if keep else ""
        form = market_form(f"/exploits/{urllib.parse.quote(report.id)}", first, first + count - 1, market, hidden)
        titles = {"deviated": "with the deviation", "baseline": "without the deviation (baseline)"}
        deviators = {name: {int(s) for s in np.flatnonzero(np.isin(owners[name], seats[name]))}  # and false names
                     for name in ledgers}
        divs = []
        for t in rounds:
            ledgers_html = "".join(self._ledger_round(name, titles[name], data[name].get(t), deviators[name],
                                                      messages[name].get(t, []))
                                   for name in ("deviated", "baseline"))
            divs.append(f"<div class='round' data-round='{t}'><h3>Round {t}</h3><div class='ledgers'>{ledgers_html}"
                        f"</div></div>")
        return (f"<h2>Timeline: market {market}</h2><p class='note'>{esc(why)}; the replayed trace ledgers, with "
                f"the deviation (deviator seats highlighted) and without it on the same seed.</p>{form}"
                f"<div id='timeline'>{''.join(divs)}</div>")

    @staticmethod
    def _telling_market(connections: dict, seats: dict, first: int, count: int) -> tuple[int, str]:
        """The market where the deviators gained most over the trace (the most telling one)."""
        totals = {name: utility_by_market(con, seats[name].tolist()) for name, con in connections.items()}
        gains = {m: totals["deviated"].get(m, 0.0) - totals["baseline"].get(m, 0.0) for m in range(first, first + count)}
        best = max(gains, key=lambda m: (gains[m], -m))
        return best, f"market {best} is where the deviators gained most ({fmt(gains[best])} over the trace)"

    @staticmethod
    def _ledger_round(name: str, title: str, data: dict[str, Any] | None, deviators: set[int],
                      messages: list[str]) -> str:
        """One round of one ledger (``name`` its CSS class), ``deviators``' seats highlighted."""
        if data is None:
            return f"<div class='ledger {name}'><h4>{title}</h4><p>not recorded</p></div>"
        bids = ", ".join(f"seat {s['seat']}{'*' if s['seat'] in deviators else ''} {fmt(s['bid'])}"
                         for s in data["seats"] if s["active"])
        won = [s for s in data["seats"] if (s["allocation"] or 0) > 0]
        sold = [s for s in data["seats"] if (s["allocation"] or 0) < 0]
        winners = ", ".join(f"seat {s['seat']}" + (f" ({fmt(s['allocation'])} units)" if s["allocation"] != 1 else "")
                            for s in won) or "none"
        paying = [s for s in data["seats"] if (s["payment"] or 0) != 0 or (s["receipt"] or 0) != 0]
        payments = "; ".join(f"seat {s['seat']} pays {fmt(s['payment'])}" + (
            f", receives {fmt(s['receipt'])}" if s["receipt"] else "") for s in paying) or "nobody pays"
        extra = list(data["seats"][0]["extra"]) if data["seats"] else []  # a stateful mechanism's actions and state
        rows = "".join(
            f"<tr class='{'deviator' if s['seat'] in deviators else 'seat'}'><td>{s['seat']}</td><td>{fmt(s['value'])}"
            f"</td><td>{fmt(s['bid']) if s['active'] else 'out'}</td>"
            f"<td class='{'won' if (s['allocation'] or 0) > 0 else ''}'>{fmt(s['allocation'])}</td>"
            f"<td>{fmt(s['payment'])}</td><td>{fmt(s['utility'])}</td>"
            + "".join(f"<td>{fmt(s['extra'][c])}</td>" for c in extra) + "</tr>" for s in data["seats"])
        heads = "".join(f"<th class='{c.split('_')[0]}'>{esc(c.replace('_', ' ', 1))}</th>" for c in extra)
        sellers = f"<p class='sellers'>sellers: {esc(', '.join('seat ' + str(s['seat']) for s in sold))}</p>" if sold else ""
        said = ("<p class='messages'>messages: " + esc(" | ".join(messages)) + "</p>") if messages else \
            "<p class='messages'>no messages</p>"
        return (f"<div class='ledger {name}'><h4>{title}</h4><p class='bids'>bids: {esc(bids) or 'none'}</p>"
                f"<p class='winners'>winners: {esc(winners)}</p>{sellers}<p class='payments'>payments: {esc(payments)}; "
                f"revenue {fmt(data['revenue'])}, price {fmt(data['price'])}</p>"
                f"<table class='seats'><thead><tr><th>seat</th><th>value</th><th>bid</th><th>units</th><th>payment</th>"
                f"<th>utility</th>{heads}</tr></thead><tbody>{rows}</tbody></table>{said}</div>")

    # live -----------------------------------------------------------------------------------

    def policy(self, name: str, stage: int, seed: int) -> Policy:
        """The designer policy ``name`` for ``stage``; the learned one is trained once per stage and kept."""
        if self.policy_factory is not None:
            return self.policy_factory(name, stage, seed)
        if name == "learned":
            with self._learned_lock:
                if stage not in self._learned:
                    self._learned[stage] = make_policy("learned", stage)
                return self._learned[stage]
        return make_policy(name, stage, seed=seed)

    def start_form(self, stage: str = "1", policy: str = "greedy", seed: str = "") -> str:
        stages = "".join(f"<option value='{s}'{' selected' if str(s) == stage else ''}>{s}</option>" for s in STAGES)
        policies = "".join(f"<option value='{p}'{' selected' if p == policy else ''}>{p}</option>"
                           for p in LIVE_POLICIES)
        return ("<form id='start' method='post' action='/live'>"
                f"<label for='stage'>stage</label> <select id='stage' name='stage'>{stages}</select> "
                f"<label for='policy'>designer policy</label> <select id='policy' name='policy'>{policies}</select> "
                f"<label for='seed'>seed</label> <input id='seed' name='seed' type='number' min='0' value='{esc(seed)}' "
                "placeholder='random'> <button id='start-button' type='submit'>Start episode</button></form>"
                "<p class='note'>The learned designer is trained for a stage the first time it is asked for "
                "(about 15 s), then kept.</p>")

    def live_page(self, error: str = "", status: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
        form = form or {}
        body = ("<h1>Live referee</h1><p class='note'>The designer picks the rules of a market (rule, reserve, what "
                "is revealed, fines, coalition policy) against a hidden population that adapts; each step plays "
                f"{designer.ROUNDS} rounds and an episode lasts {designer.HORIZON} steps.</p>")
        if error:
            body += f"<div class='error'>{esc(error)}</div>"
        body += self.start_form(form.get("stage", "1"), form.get("policy", "greedy"), form.get("seed", ""))
        return page("Live referee", body, status)

    def start(self, form: dict[str, str]) -> Response:
        stage_text, name, seed_text = form.get("stage", "1").strip(), form.get("policy", "").strip(), \
            form.get("seed", "").strip()
        if stage_text not in {str(s) for s in STAGES}:
            return self.live_page(f"stage must be one of {', '.join(map(str, STAGES))}, got {stage_text!r}", 422, form)
        if name not in LIVE_POLICIES:
            return self.live_page(f"policy must be one of {', '.join(LIVE_POLICIES)}, got {name!r}", 422, form)
        if seed_text and not (seed_text.isdigit() and int(seed_text) < 2**63):
            return self.live_page(f"seed must be an integer >= 0 (or blank for a random one), got {seed_text!r}",
                                  422, form)
        stage = int(stage_text)
        seed = int(seed_text) if seed_text else secrets.randbelow(2**31)
        episode = LiveEpisode.start(stage, name, self.policy(name, stage, seed), seed)
        with self.sessions_lock:
            try:
                session = self.sessions.create()
            except SessionLimitError:
                return self.live_page(f"too many live episodes: {self.sessions.max_sessions} are in use; wait for "
                                      f"idle ones to expire ({self.sessions.idle_timeout:g} s)", 503, form)
            session.env = episode
        return RedirectResponse(f"/live/{session.id}", status_code=303)

    def episode(self, session_id: str) -> tuple[str, LiveEpisode] | None:
        with self.sessions_lock:
            try:
                return session_id, self.sessions.get(session_id).env
            except UnknownIdError:
                return None

    def episode_not_found(self, session_id: str) -> HTMLResponse:
        return error_page(404, "Episode not found",
                          f"There is no live episode {session_id[:40]!r}: it never existed, or it expired after "
                          f"{self.sessions.idle_timeout:g} s idle, or the server restarted.",
                          "<p><a href='/live'>start a new episode</a></p>")

    def session_page(self, session_id: str, episode: LiveEpisode, error: str = "", status: int = 200) -> HTMLResponse:
        mechanism = episode.env.mechanism
        done = episode.done
        played = len(episode.steps)
        disabled = " disabled" if done else ""
        state = (f"<p class='note' id='episode'>stage {episode.stage}, designer <b>{esc(episode.policy_name)}</b>, "
                 f"seed {episode.seed}; step {played} of {designer.HORIZON}, {len(episode.rounds)} rounds played; "
                 f"{episode.observation['supply']} unit(s) for sale per round"
                 + ("; <b>the episode is over</b> (<a href='/live'>start a new one</a>)" if done else "") + "</p>")
        body = [f"<h1>Live referee episode</h1>{state}"]
        if error:
            body.append(f"<div class='error'>{esc(error)}</div>")
        why = "".join(f"<li>{esc(w)}</li>" for w in episode.why)
        body.append(f"<div class='columns'><div><h2>Mechanism in force</h2><div id='mechanism'>{esc(describe(mechanism))}"
                    f"</div><h2>Why</h2><div id='why'><ul>{why}</ul></div></div>"
                    f"<div><h2>Step</h2><form id='policy-step' method='post' action='/live/{session_id}/step'>"
                    f"<button id='step-policy' type='submit'{disabled}>Let the designer ({esc(episode.policy_name)}) "
                    f"choose and play a step</button></form>{self._manual_form(session_id, mechanism, disabled)}</div>"
                    "</div>")
        body.append(self._live_chart(episode.rounds))
        body.append(self._steps_table(episode.steps))
        rounds = "".join(
            f"<div class='round' data-round='{r['round']}'><span class='number'>round {r['round']}</span>"
            f"<span class='step'>step {r['step']}</span><span class='rule'>{esc(r['rule'])}</span>"
            + "".join(f"<span class='{label}'>{label} {fmt(r[key])}</span>" for key, label in LIVE_FEATURES)
            + "</div>" for r in episode.rounds)
        empty = "" if episode.rounds else "<p class='note'>No round played yet.</p>"
        body.append(f"<h2>Rounds</h2>{empty}<div id='rounds'>{rounds}</div>")
        hidden = episode.env.hidden()
        body.append(f"<details id='hidden'><summary>the hidden population (the designer never sees it)</summary>"
                    f"<p>{hidden['units']} units; agents: {esc(', '.join(hidden['types']))}</p></details>")
        return page("Live referee episode", "".join(body), status)

    @staticmethod
    def _manual_form(session_id: str, mechanism: MechanismAction, disabled: str) -> str:
        rules = "".join(f"<option value='{r}'{' selected' if r == mechanism.rule else ''}>{r}</option>" for r in RULES)
        coalitions = "".join(f"<option value='{c}'{' selected' if c == mechanism.coalition else ''}>{c}</option>"
                             for c in COALITIONS)
        flags = "".join(f"<label><input type='checkbox' id='manual-{f}' name='{f}'"
                        f"{' checked' if getattr(mechanism, f) else ''}> {f.replace('_', ' ')}</label>" for f in FLAGS)
        penalties = "".join(f"<label>{p.replace('_', ' ')} <input type='number' id='manual-{p}' name='{p}' step='any' "
                            f"value='{getattr(mechanism, p):g}'></label>" for p in PENALTIES)
        reserve = "" if mechanism.reserve is None else f"{mechanism.reserve:g}"
        return (f"<form id='manual-step' method='post' action='/live/{session_id}/manual' novalidate>"
                "<fieldset><legend>or choose the mechanism yourself</legend>"
                f"<label>rule <select id='manual-rule' name='rule'>{rules}</select></label>"
                f"<label>reserve <input type='number' id='manual-reserve' name='reserve' step='any' value='{reserve}'>"
                f"</label><br>{flags}<br>{penalties}<br>"
                f"<label>coalition <select id='manual-coalition' name='coalition'>{coalitions}</select></label> "
                f"<button id='step-manual' type='submit'{disabled}>Play a step with this mechanism</button>"
                "</fieldset></form>")

    @staticmethod
    def _steps_table(steps: list[dict[str, Any]]) -> str:
        rows = [f"<tr class='step'><td>{s['step']}</td><td class='text'>{esc(s['actor'])}</td>"
                f"<td class='text'>{esc(s['mechanism'])}</td><td>{fmt(s['reward'])}</td>"
                + "".join(f"<td>{fmt(s[c])}</td>" for c in designer.COMPONENTS) + "</tr>" for s in steps]
        return "<h2>Steps</h2>" + table("steps", ["step", "chosen by", "mechanism", "reward", *designer.COMPONENTS],
                                        rows, "No step played yet.")

    @staticmethod
    def _live_chart(rounds: list[dict[str, Any]]) -> str:
        """An inline SVG of welfare, fairness and participation per round (no script, no image request)."""
        if not rounds:
            return ""
        width, height, pad = 640, 150, 24
        total = designer.HORIZON * designer.ROUNDS
        colours = {"welfare": "#1f77b4", "fairness": "#d62728", "participation": "#2ca02c"}
        lines = []
        for key, colour in colours.items():
            points = " ".join(
                f"{pad + (width - 2 * pad) * (r['round'] - 1) / max(total - 1, 1):.1f},"
                f"{height - pad - (height - 2 * pad) * min(max(float(r[key]), 0.0), 1.0):.1f}" for r in rounds)
            lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{points}'/>")
        legend = "".join(f"<text x='{pad + 110 * i}' y='12' fill='{c}'>{k}</text>" for i, (k, c) in enumerate(colours.items()))
        axes = (f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#999'/>"
                f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#999'/>"
                f"<text x='2' y='{pad + 4}'>1</text><text x='2' y='{height - pad + 4}'>0</text>"
                f"<text x='{width - pad - 40}' y='{height - 6}'>round</text>")
        return (f"<svg id='live-chart' width='{width}' height='{height}' role='img' "
                f"aria-label='welfare, fairness and participation per round'>{axes}{''.join(lines)}{legend}</svg>")

    def step(self, session_id: str, manual: dict[str, str] | None) -> Response:
        found = self.episode(session_id)
        if found is None:
            return self.episode_not_found(session_id)
        _, episode = found
        try:
            if manual is None:
                episode.step_policy()
            else:
                episode.step_manual(manual)
        except InvalidActionError as exc:
            return self.session_page(session_id, episode, str(exc), 409)
        except ConfigError as exc:
            return self.session_page(session_id, episode, f"invalid mechanism: {exc}", 422)
        return RedirectResponse(f"/live/{session_id}", status_code=303)


# --- the app ------------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as {name: last value} (no multipart parser needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}


def build_app(runs: Path, exploits: Path, *, policies: PolicyFactory | None = None,
              max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> FastAPI:
    """The dashboard app.

    Args:
        runs: a directory of run directories (each written by ``mecharena run --out``).
        exploits: the default exploit library directory.
        policies: builds a designer policy from (name, stage, seed); default
            :func:`~mecharena.designer.policies.make_policy`, the learned one trained once per stage.
        max_sessions: live episodes kept at once.
        idle_timeout: seconds after which an untouched live episode is dropped.

    Returns:
        A FastAPI app (serve it with uvicorn, or :func:`run`).
    """
    state = Dashboard(Path(runs), Path(exploits), policies=policies, max_sessions=max_sessions,
                      idle_timeout=idle_timeout)
    app = FastAPI(title="mecharena dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = state
    app.add_middleware(BodyLimit, limit=MAX_FORM_BYTES)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        heading = {404: "Page not found", 405: "Method not allowed"}.get(exc.status_code, f"Error {exc.status_code}")
        return error_page(exc.status_code, heading, f"{request.method} {request.url.path}: {exc.detail}",
                          "<p><a href='/'>back to the runs</a></p>")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
        return error_page(422, "Invalid request", problems or "the request is invalid")

    @app.exception_handler(MechArenaError)
    async def arena_error(request: Request, exc: MechArenaError) -> HTMLResponse:
        return error_page(400, "Invalid request", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTMLResponse:
        text = str(exc)
        text = text if len(text) <= 500 else text[:500] + "..."
        return error_page(500, "Internal error", f"The dashboard could not answer {request.method} {request.url.path}: "
                                                 f"{type(exc).__name__}: {text}")

    @app.get("/", response_class=HTMLResponse)
    def runs_page(refresh: str | None = None) -> HTMLResponse:
        return state.runs_page(refresh)

    @app.get("/runs/{name}", response_class=HTMLResponse)
    def comparison(name: str, metric: str | None = None, market: str | None = None) -> HTMLResponse:
        return state.comparison_page(name, metric, market)

    @app.get("/runs/{name}/figures/{kind}.png")
    def figure(name: str, kind: str, metric: str | None = None) -> Response:
        return state.figure(name, kind, metric)

    @app.get("/exploits", response_class=HTMLResponse)
    def exploits_page(library: str | None = None) -> HTMLResponse:
        return state.exploits_page(library)

    @app.get("/exploits/{exploit_id}", response_class=HTMLResponse)
    def exploit_page(exploit_id: str, library: str | None = None, market: str | None = None) -> HTMLResponse:
        return state.exploit_page(exploit_id, library, market)

    @app.get("/live", response_class=HTMLResponse)
    def live() -> HTMLResponse:
        return state.live_page()

    @app.post("/live")
    async def start(request: Request) -> Response:
        return await run_in_threadpool(state.start, await _form(request))

    @app.get("/live/{session_id}", response_class=HTMLResponse)
    def session_page(session_id: str) -> HTMLResponse:
        found = state.episode(session_id)
        if found is None:
            return state.episode_not_found(session_id)
        return state.session_page(*found)

    @app.post("/live/{session_id}/step")
    async def step_policy(session_id: str) -> Response:
        return await run_in_threadpool(state.step, session_id, None)

    @app.post("/live/{session_id}/manual")
    async def step_manual(session_id: str, request: Request) -> Response:
        return await run_in_threadpool(state.step, session_id, await _form(request))

    return app


def run(runs: Path, exploits: Path, host: str = "127.0.0.1", port: int = 8050) -> None:
    """Serve the dashboard with uvicorn until interrupted.

    Raises:
        ConfigError: an empty host or a port outside 1..65535.
    """
    import uvicorn

    if not host:
        raise ConfigError("host must be a non-empty address, got ''")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port!r}")
    uvicorn.run(build_app(Path(runs), Path(exploits)), host=host, port=port, log_level="info")
