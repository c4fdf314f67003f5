"""The server (``mecharena serve``): the designer and the negotiation economy over the network, guarded.

One FastAPI app holds:

* the designer (:data:`~mecharena.server.worlds.DESIGNER`, served by :mod:`mecharena.server.shell`):
  OpenEnv's routes (the WebSocket ``/ws``, one environment per connection, up to ``max_sessions``
  at once: ``{"type": "reset", "data": {"seed": 0, "stage": 2}}``, ``{"type": "step", "data":
  <MechanismAction fields>}``, ``{"type": "state"}``; ``/health``, ``/metadata``, ``/schema``,
  ``/mcp`` and the stateless ``/reset`` and ``/step``, whose ``/step`` answers 409: use ``/ws`` or
  the sessions) and the session-keyed HTTP API ``/api/sessions`` for clients without WebSocket;
* the negotiation economy (:data:`~mecharena.server.worlds.NEGOTIATION`) under ``/negotiation``:
  the same routes, WebSocket ``/negotiation/ws`` (``{"type": "reset", "data": {"seed": 0,
  "task": "market_round"}}``, then ``step`` with a negotiation action) and
  ``/negotiation/api/sessions``;
* the sealed-bid arena (:data:`~mecharena.server.worlds.ARENA`, the learner in one seat against
  scripted opponents) under ``/arena``: ``{"type": "reset", "data": {"seed": 0, "arena":
  {"mechanism": "first_price", "opponents": "truthful:2"}}}``, then ``{"type": "step", "data":
  {"bid": 0.4}}``;
* the referee on the arena's loop (:data:`~mecharena.server.worlds.REFEREE`: the designer sets the rules
  of arena agents' markets, any offered mechanism, plug-ins included) under ``/referee``:
  ``{"type": "reset", "data": {"seed": 0, "settings": {"populations": ["bne:3"]}}}``, then
  ``{"type": "step", "data": {"mechanism": "first_price", "config": {"reserve_price": 0.1}}}``;
* ``POST /api/design`` ``{"policy": "greedy", "stage": 2, "observation": {...}}`` -> the
  policy's :class:`~mecharena.designer.action.MechanismAction` as JSON; any designer policy,
  ``llm:CONFIG`` included (it and ``constant:FILE`` read server paths: only with ``policy_files``).

Bad input never touches an episode: bodies are validated before the environment is called.
Answers: 400 (not JSON), 401 (no or a wrong token), 403/421 (a foreign Origin or Host on a
loopback bind), 404 (unknown session, expired ones included), 409 (stepping a finished or
never-reset episode), 413 (body over ``max_body_bytes``), 422 (a field out of range, of the
wrong type or unknown; the message names the field, the value and what is allowed), 503
(``max_sessions`` sessions in use, or a policy still being built). A WebSocket that sends
nothing for ``idle_timeout`` seconds is closed (code 1001) and its environment freed; an HTTP
session idle that long expires. WebSocket messages over ``max_body_bytes`` close the connection
(code 1009).

Environment steps run inline on the event loop, not in a thread: a step takes well under a
millisecond, the thread hop would cost about as much, and the GIL would serialise the
threads anyway. Sessions stay isolated because each owns its own environment and its own
seeded generators.
"""

import asyncio
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from mecharena.core.config import StrictModel, shown_value
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.designer.action import MechanismAction
from mecharena.server.shell import (DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, BusyError, body_of, declare_errors,
                                    parse, read_json)

MAX_BODY_BYTES = 1 << 20  # 1 MiB: an action or observation is a few kB
DESIGN_TIMEOUT = 10.0  # seconds /api/design waits for a policy to be built or to answer
TOKEN_VARIABLE = "MECHARENA_TOKEN"
MIN_TOKEN_LENGTH = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
FILE_POLICIES = ("constant", "learned", "llm")  # policy kinds whose argument is a path on the server

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ServeConfig(StrictModel):
    """How the server runs; validated before anything starts."""

    host: str = Field("127.0.0.1", min_length=1, description="interface to bind")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    idle_timeout: float = Field(DEFAULT_IDLE_TIMEOUT, gt=0, description="seconds before an idle session is dropped")
    max_sessions: int = Field(DEFAULT_MAX_SESSIONS, ge=1, description="WebSocket sessions and HTTP sessions, each")
    stage: int = Field(1, ge=1, le=5, description="stage of a session that names none")
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1024, description="largest request body or WebSocket message")
    policy_files: bool = Field(False, description="let /api/design read constant:FILE, learned:FILE and llm:CONFIG "
                                                  "policies from files inside policy_dir")
    policy_dir: str | None = Field(None, min_length=1, description="the one directory policy files may come from "
                                                                  "(default: the working directory)")
    design_timeout: float = Field(DESIGN_TIMEOUT, gt=0, le=3600, description="seconds /api/design waits for a "
                                                                            "policy to be built or to answer")
    token: str | None = Field(None, description="bearer token every request must carry (required off loopback)")


class ObservationIn(StrictModel):
    """An observation sent to ``/api/design``: policies read its ``vector``; other keys pass through."""

    model_config = ConfigDict(extra="allow", strict=True)

    vector: list[float] = Field(max_length=4096, description="the flat observation, (OBSERVATION_WIDTH,)")


class DesignRequest(StrictModel):
    """Body of ``POST /api/design``."""

    model_config = ConfigDict(strict=True)

    policy: str = Field(min_length=1, max_length=4096,
                        description="random, greedy, oracle, learned, or (with policy_files) constant:FILE, "
                                    "learned:FILE or llm:CONFIG, FILE inside the server's policy directory")
    stage: int = Field(1, ge=1, le=5)
    observation: dict[str, Any]


def policy_file(spec: str, root: Path | None) -> str:
    """``spec`` with the file it names (``constant:FILE``, ``learned:FILE``, ``llm:CONFIG``) resolved
    inside ``root``; other specs unchanged.

    The one check of every policy kind that reads a file: the path is resolved (``..`` and symlinks
    followed) before it is compared with ``root``, so no spelling reaches a file outside it.

    Raises:
        ConfigError: a file policy while ``root`` is None (files not allowed), or a path outside ``root``.
    """
    name, _, argument = spec.partition(":")
    if name not in FILE_POLICIES or not argument:
        return spec
    if root is None:
        raise ConfigError(f"policy {shown_value(spec)} reads a file on the server, which this server does not "
                          f"allow (start it with --policy-files); allowed: random, greedy, oracle, learned")
    try:
        path = (root / argument).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"policy: {shown_value(argument)} is not a usable path ({exc})") from None
    if not path.is_relative_to(root):
        raise ConfigError(f"policy {shown_value(spec)}: {name} files must be inside the server's policy directory "
                          f"{root}, got {shown_value(argument)}")
    return f"{name}:{path}"


# --- ASGI guards ----------------------------------------------------------------------------


class BodyLimit:
    """ASGI middleware: HTTP bodies over ``limit`` bytes get 413 before the app reads them.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is read up to
    the limit, then refused. Accepted bodies are replayed to the app unchanged.
    """

    def __init__(self, app: Callable, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _reply(send, 400, f"Content-Length must be an integer, got {value[:40]!r}")
                if declared > self.limit:
                    return await _reply(send, 413, self._message(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _reply(send, 413, self._message(size, at_least=True))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        got = f"{'more than ' if at_least else ''}{size} bytes"
        return f"request body must be at most {self.limit} bytes, got {got}"


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class IdleWebSocketTimeout:
    """ASGI middleware: a WebSocket that sends nothing for ``timeout`` seconds is closed.

    The app sees a client disconnect (code 1001, going away) and frees the session, exactly
    as if the client had left; the client gets a close frame.
    """

    def __init__(self, app: Callable, timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        timeout = self.timeout
        expired = False

        async def timed_receive() -> Message:
            nonlocal expired
            if expired:
                return {"type": "websocket.disconnect", "code": 1001}
            try:
                async with asyncio.timeout(timeout):
                    return await receive()
            except TimeoutError:
                expired = True
                return {"type": "websocket.disconnect", "code": 1001}

        async def closing_send(message: Message) -> None:
            if expired and message["type"] == "websocket.close":
                message = {**message, "code": 1001, "reason": f"idle for {timeout:g} s"}
            await send(message)

        await self.app(scope, timed_receive, closing_send)


class RequestGuard:
    """ASGI middleware: Host and Origin checks (DNS rebinding, cross-origin pages) and a bearer token.

    The Host and Origin rules are the MCP server's (:func:`mecharena.server.mcp.transport_security`,
    checked by the MCP SDK's own validator): on a loopback bind a request must name a loopback host
    and come from no origin or a loopback one (421 and 403 otherwise). With a ``token`` every
    request, WebSocket handshakes included, must send ``Authorization: Bearer TOKEN`` (401). A
    refused WebSocket is closed before it is accepted (code 1008, policy violation).
    """

    def __init__(self, app: Callable, host: str = "127.0.0.1", token: str | None = None):
        from mcp.server.transport_security import TransportSecurityMiddleware

        from mecharena.server.mcp import transport_security

        self.app = app
        settings = transport_security(host)
        self.checker = None if settings is None else TransportSecurityMiddleware(settings)
        self.expected = None if token is None else f"Bearer {token}".encode()

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) for a request to refuse, or None."""
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        if self.checker is not None:
            host, origin = headers.get("host"), headers.get("origin")
            if not self.checker._validate_host(host):
                return 421, (f"Host header must name this loopback server (127.0.0.1, localhost or [::1] with a "
                             f"port), got {shown_value(host)}")
            if not self.checker._validate_origin(origin):
                return 403, (f"Origin header must be absent or a loopback origin (http://127.0.0.1:PORT, "
                             f"http://localhost:PORT), got {shown_value(origin)}: cross-origin pages may not call "
                             f"this server")
        if self.expected is not None and not hmac.compare_digest(
                headers.get("authorization", "").encode(errors="replace"), self.expected):
            return 401, "missing or wrong bearer token: send the header Authorization: Bearer TOKEN"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008, "reason": refused[1][:120]})
        return await _reply(send, *refused)


class WebSocketFrames:
    """ASGI middleware: a WebSocket frame that is not a JSON object gets an error frame, and the
    session goes on.

    OpenEnv's socket loop ends the session (close code 1000) on a binary frame, on JSON that is not
    an object, or on JSON too deeply nested to parse; here such a frame never reaches it. The client
    gets ``{"type": "error", "data": {"message": ..., "code": "INVALID_JSON"}}`` instead.
    """

    def __init__(self, app: Callable):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)

        async def checked_receive() -> Message:
            while True:
                message = await receive()
                problem = frame_problem(message) if message["type"] == "websocket.receive" else None
                if problem is None:
                    return message
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "data": {"message": problem, "code": "INVALID_JSON"}})})

        await self.app(scope, checked_receive, send)


def frame_problem(message: Message) -> str | None:
    """Why a received WebSocket frame is not a JSON object message, or None when it is one.

    >>> frame_problem({"type": "websocket.receive", "text": "[1]"})
    'a message must be a JSON object such as {"type": "state"}, got a list'
    """
    text = message.get("text")
    if text is None:
        return 'a message must be a text frame holding a JSON object such as {"type": "state"}, got a binary frame'
    try:
        data = json.loads(text)
    except RecursionError:
        return "a message must be a JSON object, got JSON nested too deeply to read"
    except ValueError as exc:
        return f"a message must be a JSON object, got text that is not JSON ({shown_value(str(exc), 120)})"
    if not isinstance(data, dict):
        return f'a message must be a JSON object such as {{"type": "state"}}, got a {type(data).__name__}'
    return None


# --- the app --------------------------------------------------------------------------------


def _warm_up(stage: int) -> None:
    from mecharena.designer.env import DesignerEnv

    env = DesignerEnv(stage=stage)
    env.reset(seed=0)
    env.step(MechanismAction())


def build_app(idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_sessions: int = DEFAULT_MAX_SESSIONS, *, stage: int = 1,
              max_body_bytes: int = MAX_BODY_BYTES, policy_files: bool = False, policy_dir: str | None = None,
              design_timeout: float = DESIGN_TIMEOUT, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The FastAPI app: the designer's OpenEnv routes and ``/api/sessions`` (:func:`~mecharena.server.worlds.designer_app`),
    ``/api/design``, and the negotiation economy under ``/negotiation``.

    Args:
        idle_timeout: seconds without a message after which a WebSocket is closed and an HTTP
            session expires.
        max_sessions: concurrent WebSocket sessions allowed, and HTTP sessions allowed.
        stage: curriculum stage of a session whose reset names none.
        max_body_bytes: largest HTTP body (413 above) and WebSocket message (closed with 1009 by
            :func:`run_server`).
        policy_files: allow ``constant:FILE``, ``learned:FILE`` and ``llm:CONFIG`` in ``/api/design``,
            their files inside ``policy_dir`` only.
        policy_dir: the directory policy files may come from (default: the working directory).
        design_timeout: seconds ``/api/design`` waits for a policy to be built (``learned`` trains
            first, ~15 s, and goes on training after a 503) or to answer.
        host: the interface the server is bound to; a loopback host turns on the Host and Origin
            checks (:class:`RequestGuard`).
        token: a bearer token every request must send (``Authorization: Bearer TOKEN``).

    Raises:
        ConfigError: an argument out of range.
    """
    from fastapi import Request

    from mecharena.server.worlds import arena_app, designer_app, negotiation_app, referee_app

    config = parse(ServeConfig, {"idle_timeout": idle_timeout, "max_sessions": max_sessions, "stage": stage,
                                 "max_body_bytes": max_body_bytes, "policy_files": policy_files,
                                 "policy_dir": policy_dir, "design_timeout": design_timeout, "host": host,
                                 "token": token})
    policy_root = Path(config.policy_dir or os.getcwd()).resolve() if config.policy_files else None
    # openenv's own reaper frees idle HTTP-MCP sessions; idle sockets are closed by IdleWebSocketTimeout.
    app = designer_app(config.max_sessions, config.idle_timeout, stage=config.stage)
    # The negotiation economy on the same server: its own OpenEnv routes and sessions under /negotiation
    # (WebSocket /negotiation/ws; reset may name the task).
    negotiation = negotiation_app("single_trade", max_sessions=config.max_sessions, idle_timeout=config.idle_timeout)
    arena = arena_app(config.max_sessions, config.idle_timeout)  # the sealed-bid arena, one seat, under /arena
    referee = referee_app(config.max_sessions, config.idle_timeout)  # the referee on the arena's loop, /referee
    policies: dict[tuple[str, int], asyncio.Future] = {}  # (name, stage) -> the policy, built once
    tasks: list[asyncio.Task] = []

    async def start() -> None:
        # Load (or compile) the kernels before the first client, whose step would otherwise stall
        # every other session on the event loop. A mounted app gets no startup event: its reaper starts here.
        await asyncio.to_thread(_warm_up, config.stage)
        tasks.extend(asyncio.create_task(served.state.sessions.reap())
                     for served in (app, negotiation, arena, referee))

    async def stop() -> None:
        for task in tasks:
            task.cancel()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)

    @app.post("/api/design", tags=["Design"], summary="A designer policy's mechanism for an observation",
              description='Body: `{"policy": "greedy", "stage": 2, "observation": {...}}`; answers the '
                          'MechanismAction as JSON. 503 when the policy is not ready within the time limit '
                          '(`learned` trains first): retry.', openapi_extra=body_of(DesignRequest, required=True))
    async def design(request: Request) -> dict[str, Any]:
        from mecharena.llm.designer import make_designer_policy  # a shell: every designer policy, LLMs included

        fields = parse(DesignRequest, await read_json(request))
        parse(ObservationIn, fields.observation, where="observation")
        spec = policy_file(fields.policy, policy_root)
        key = (spec, fields.stage)
        if key not in policies:
            # In a thread: ``learned`` without a model file trains one first (seconds), a local LLM loads.
            # One build per (policy, stage): a client that gives up waiting leaves it running for the next.
            policies[key] = asyncio.ensure_future(asyncio.to_thread(make_designer_policy, spec, stage=fields.stage))
        try:
            policy = await asyncio.wait_for(asyncio.shield(policies[key]), config.design_timeout)
        except TimeoutError:
            raise BusyError(f"policy {shown_value(fields.policy)} for stage {fields.stage} is still being built "
                            f"(over {config.design_timeout:g} s so far); retry in a few seconds") from None
        except Exception as exc:
            policies.pop(key, None)
            if isinstance(exc, UnknownIdError):
                raise ConfigError(f"policy: {exc}") from None
            raise
        try:  # an LLM answers in seconds; a stuck one must not hold the request forever
            action = await asyncio.wait_for(asyncio.to_thread(policy.act, fields.observation), config.design_timeout)
        except TimeoutError:
            raise BusyError(f"policy {shown_value(fields.policy)} did not answer within {config.design_timeout:g} s; "
                            f"retry later") from None
        return action.model_dump(mode="json")

    for path, mounted in (("/negotiation", negotiation), ("/arena", arena), ("/referee", referee)):
        declare_errors(mounted)
        app.mount(path, mounted)
    declare_errors(app)
    app.add_middleware(WebSocketFrames)
    app.add_middleware(IdleWebSocketTimeout, timeout=config.idle_timeout)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestGuard, host=config.host, token=config.token)  # outermost: refused before any work
    return app


def serve_token(host: str, token: str | None) -> str | None:
    """The bearer token of a server bound to ``host``: ``token``, else ``$MECHARENA_TOKEN``, else none.

    Raises:
        ConfigError: a token shorter than 16 characters, or none on a host that is not loopback
            (any machine that reaches it could drive the server).
    """
    token = token if token is not None else (os.environ.get(TOKEN_VARIABLE) or None)
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token):
        raise ConfigError(f"token must be at least {MIN_TOKEN_LENGTH} printable characters without spaces, "
                          f"got {len(token)} characters")
    if token is None and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"host {shown_value(host)} is not a loopback address, so the server needs a bearer token: "
                          f"pass --token TOKEN or set {TOKEN_VARIABLE} (clients send Authorization: Bearer TOKEN), "
                          f"or bind 127.0.0.1")
    return token


def run_server(host: str = "127.0.0.1", port: int = 8000, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
               max_sessions: int = DEFAULT_MAX_SESSIONS, *, stage: int = 1, policy_files: bool = False,
               token: str | None = None, log_level: str = "warning") -> None:
    """Serve :func:`build_app` with uvicorn until interrupted (``mecharena serve``).

    Raises:
        ConfigError: an argument out of range, or a non-loopback ``host`` without a token (see
            :func:`serve_token`), checked before anything binds.
    """
    import uvicorn

    config = parse(ServeConfig, {"host": host, "port": port, "idle_timeout": idle_timeout,
                                 "max_sessions": max_sessions, "stage": stage, "policy_files": policy_files,
                                 "token": serve_token(host, token)})
    app = build_app(config.idle_timeout, config.max_sessions, stage=config.stage, max_body_bytes=config.max_body_bytes,
                    policy_files=config.policy_files, host=config.host, token=config.token)
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, **uvicorn_options(config.max_body_bytes))


def uvicorn_options(max_body_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The uvicorn settings of :func:`run_server` (tests reuse them for in-thread servers).

    Per-message deflate is off: clients offer it by default (OpenEnv's included), and compressing
    a few-kB observation costs both ends more than sending it whole, even off loopback.
    """
    return {"ws_max_size": max_body_bytes, "ws_per_message_deflate": False}


@contextmanager
def spawn_server(idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_sessions: int = DEFAULT_MAX_SESSIONS, *,
                 stage: int = 1, startup_timeout: float = 60.0) -> Iterator[str]:
    """Run :func:`run_server` in a subprocess on a free loopback port; yield its base URL.

    The server has a process (and a GIL) of its own, as in production. It is terminated on exit.

    Raises:
        RuntimeError: the server did not answer ``/health`` within ``startup_timeout`` seconds
            (the message carries its stderr).
    """
    import socket
    import subprocess
    import sys
    import tempfile

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (f"from mecharena.server.app import run_server; "
            f"run_server('127.0.0.1', {port}, {idle_timeout!r}, {max_sessions!r}, stage={stage!r})")
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"mecharena server on port {port} did not start: "
                                       f"{log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def __getattr__(name: str) -> Any:
    # ``uvicorn mecharena.server.app:app``, built on first access only.
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
