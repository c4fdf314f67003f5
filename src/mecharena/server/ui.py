"""The web dashboard (``mecharena ui``): a FastAPI shell over the runner, report, fuzz and designer layers.

No economics lives here: the pages show what :mod:`mecharena.report` computes from a run directory,
what :mod:`mecharena.fuzz.library` stores and replays, and what :class:`~mecharena.designer.env.DesignerEnv`
plays. This module builds the app and its routes; each page family is a module of
:mod:`mecharena.server.dashboard` (``runs``, ``exploits``, ``live``) that gathers a page's data and renders its
Jinja2 template (``mecharena/server/dashboard/templates``, autoescaped: every value shown is escaped). Figures
are rendered on the server (matplotlib's Agg canvas, the report's own figure functions) and served as PNG; the
CSS and a tiny optional script ship in ``mecharena/server/static``. Every page works without JavaScript (plain
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

import urllib.parse
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.server.app import BodyLimit
from mecharena.server.dashboard.exploits import ExploitPages
from mecharena.server.dashboard.live import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, LivePages, PolicyFactory
from mecharena.server.dashboard.render import error_page, fmt
from mecharena.server.dashboard.runs import BACK, RunPages

__all__ = ["STATIC", "build_app", "fmt", "run"]

STATIC = Path(__file__).with_name("static")
MAX_FORM_BYTES = 64 * 1024


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
    runs_pages, exploit_pages = RunPages(Path(runs)), ExploitPages(Path(exploits))
    live = LivePages(policies, max_sessions=max_sessions, idle_timeout=idle_timeout)
    app = FastAPI(title="mecharena dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=MAX_FORM_BYTES)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        heading = {404: "Page not found", 405: "Method not allowed"}.get(exc.status_code, f"Error {exc.status_code}")
        return error_page(exc.status_code, heading, f"{request.method} {request.url.path}: {exc.detail}", BACK)

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
        return runs_pages.runs_page(refresh)

    @app.get("/runs/{name}", response_class=HTMLResponse)
    def comparison(name: str, metric: str | None = None, market: str | None = None) -> HTMLResponse:
        return runs_pages.comparison_page(name, metric, market)

    @app.get("/runs/{name}/figures/{kind}.png")
    def figure(name: str, kind: str, metric: str | None = None) -> Response:
        return runs_pages.figure(name, kind, metric)

    @app.get("/exploits", response_class=HTMLResponse)
    def exploits_page(library: str | None = None) -> HTMLResponse:
        return exploit_pages.exploits_page(library)

    @app.get("/exploits/{exploit_id}", response_class=HTMLResponse)
    def exploit_page(exploit_id: str, library: str | None = None, market: str | None = None) -> HTMLResponse:
        return exploit_pages.exploit_page(exploit_id, library, market)

    @app.get("/live", response_class=HTMLResponse)
    def live_page() -> HTMLResponse:
        return live.live_page()

    @app.post("/live")
    async def start(request: Request) -> Response:
        return await run_in_threadpool(live.start, await _form(request))

    @app.get("/live/{session_id}", response_class=HTMLResponse)
    def session_page(session_id: str) -> HTMLResponse:
        return live.session_page(session_id)

    @app.post("/live/{session_id}/step")
    async def step_policy(session_id: str) -> Response:
        return await run_in_threadpool(live.step, session_id, None)

    @app.post("/live/{session_id}/manual")
    async def step_manual(session_id: str, request: Request) -> Response:
        return await run_in_threadpool(live.step, session_id, await _form(request))

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
