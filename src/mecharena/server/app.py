"""The OpenEnv server shell: :class:`~mecharena.designer.env.DesignerEnv` over the network.

One FastAPI app (``mecharena serve``) holds three APIs:

* OpenEnv's, built by ``openenv``'s ``create_app``: the WebSocket ``/ws`` (one environment per
  connection, up to ``max_sessions`` at once; messages ``{"type": "reset", "data": {"seed": 0,
  "stage": 2}}``, ``{"type": "step", "data": <MechanismAction fields>}``, ``{"type": "state"}``),
  plus ``/health``, ``/metadata``, ``/schema``, ``/mcp`` and the stateless ``/reset`` and
  ``/step`` (each call builds a fresh environment, so ``/step`` answers 409: use ``/ws`` or
  the session API).
* A session-keyed HTTP API for clients without WebSocket::

      POST   /api/sessions              {"stage": 2, "seed": 0}  -> 201 {"session_id", "observation", ...}
      POST   /api/sessions/{id}/reset   {"seed": 1, "stage": 3}  -> {"observation", "reward", "done", "metadata"}
      POST   /api/sessions/{id}/step    {"action": {...}}        -> {"observation", "reward", "done", "metadata"}
      GET    /api/sessions/{id}                                  -> the last result and the session's clock
      DELETE /api/sessions/{id}                                  -> 204
      GET    /api/sessions                                       -> {"active", "max_sessions", "idle_timeout"}

* The negotiation economy (:mod:`mecharena.negotiation.server`) under ``/negotiation``: its own
  OpenEnv routes, WebSocket ``/negotiation/ws`` (``{"type": "reset", "data": {"seed": 0, "task":
  "market_round"}}``, then ``step`` with a negotiation action).
* ``POST /api/design`` ``{"policy": "greedy", "stage": 2, "observation": {...}}`` -> the
  policy's :class:`~mecharena.designer.action.MechanismAction` as JSON; any designer policy,
  ``llm:CONFIG`` included (it and ``constant:FILE`` read server paths: only with ``policy_files``).

Bad input never touches an episode: bodies are validated before the environment is called.
Answers: 400 (not JSON), 404 (unknown session, expired ones included), 409 (stepping a
finished or never-reset episode), 413 (body over ``max_body_bytes``), 422 (a field out of
range, of the wrong type or unknown; the message names the field, the value and what is
allowed), 503 (``max_sessions`` sessions in use). A WebSocket that sends nothing for
``idle_timeout`` seconds is closed (code 1001) and its environment freed; an HTTP session idle
that long expires. WebSocket messages over ``max_body_bytes`` close the connection (code 1009).

Environment steps run inline on the event loop, not in a thread: a step takes well under a
millisecond, the thread hop would cost about as much, and the GIL would serialise the
threads anyway. Sessions stay isolated because each owns its own ``DesignerEnv`` and its own
seeded generator.

``openenv`` (which imports gradio, ~3 s) is imported only inside :func:`build_app` and the
adapter types, never when this module is imported.
"""

import asyncio
import hmac
import json
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from mecharena import __version__
from mecharena.core.config import Seed, StrictModel, explain, shown_value
from mecharena.core.errors import ConfigError, InvalidActionError, MechArenaError, UnknownIdError
from mecharena.designer.action import MechanismAction

ENV_NAME = "mecharena-designer"
DEFAULT_IDLE_TIMEOUT = 300.0  # seconds
DEFAULT_MAX_SESSIONS = 64
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


class ResetRequest(StrictModel):
    """Body of a reset (``POST /api/sessions`` and ``.../reset``, the WebSocket ``reset`` message)."""

    model_config = ConfigDict(strict=True)

    seed: Seed | None = Field(None, description="seed of the episode, in [0, 2^63 - 1]; none: fresh entropy")
    stage: int | None = Field(None, ge=1, le=5, description="curriculum stage; none: keep the current one")
    population: Seed | None = Field(None, description="population seed to play, in [0, 2^40) (2^40 and up are the "
                                                      "held-out benchmark's); none: drawn from seed")


class StepRequest(StrictModel):
    """Body of ``POST /api/sessions/{id}/step``."""

    model_config = ConfigDict(strict=True)

    action: dict[str, Any] = Field(description="the MechanismAction fields")


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


class ErrorResponse(StrictModel):
    """Every 4xx answer: ``detail`` names the field, the value and what is allowed."""

    detail: str | list[dict[str, Any]] = Field(description="the message, or one entry per invalid field")


class BusyError(MechArenaError):
    """The server cannot answer within its time limit now (a policy still being built); retry later."""


def parse(model: type[StrictModel], data: Any, where: str = "body") -> Any:
    """Validate JSON ``data`` into ``model``.

    Raises:
        ConfigError: ``data`` is not an object, or a field is unknown, missing, of the wrong type
            or out of range (one clause per field, prefixed with ``where``).

    >>> parse(ResetRequest, {"seed": 3}).seed
    3
    >>> parse(ResetRequest, {"stage": 9})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mecharena.core.errors.ConfigError: stage must be a finite int in [1, 5]..., got 9
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a JSON object with fields {', '.join(model.model_fields)}, "
                          f"got {type(data).__name__} {shown_value(data)}")
    try:
        # Strict: the network sends JSON, so "0.3", true and 1.0 are not the numbers, flags or integers
        # the fields ask for.
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        text = explain(model, exc)
        raise ConfigError(text if where == "body" else f"{where}: {text}") from None


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


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as text (JSON has no NaN), for error details."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without their inputs (which may be huge or NaN): location, message, type."""
    return [{"loc": _json_safe(list(e.get("loc", ()))), "msg": _clip(str(e.get("msg", "")), 400),
             "type": str(e.get("type", ""))} for e in errors]


def add_error_handlers(app: Any) -> None:
    """The arena's errors as 4xx JSON answers on ``app`` (and on every app mounted in the server).

    ConfigError 422, UnknownIdError 404, InvalidActionError 409, SessionLimitError and BusyError 503;
    FastAPI's request validation errors and HTTP errors keep their status with a detail that is
    always valid JSON (no NaN, no echoed inputs).
    """
    from fastapi import HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    def status(code: int) -> Callable:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)
        return handler

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _errors(exc.errors())}, status_code=422)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        detail = _errors(detail) if isinstance(detail, list) else _clip(str(detail), 2000)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    for error, code in ((ConfigError, 422), (UnknownIdError, 404), (InvalidActionError, 409),
                        (SessionLimitError, 503), (BusyError, 503)):
        app.add_exception_handler(error, status(code))
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)


ERROR_STATUSES = {400: "not JSON", 401: "no or a wrong bearer token", 403: "an Origin this server does not serve",
                  404: "unknown session or route", 409: "no episode, or it is finished", 413: "body too large",
                  421: "a Host this server does not serve", 422: "a field out of range, of the wrong type or unknown",
                  503: "all sessions in use, or a policy still being built"}


def declare_errors(app: Any) -> None:
    """Declare the 4xx answers (:class:`ErrorResponse`) of every route in ``app``'s OpenAPI schema."""
    from fastapi.routing import APIRoute

    schema = ErrorResponse.model_json_schema()
    for route in app.routes:
        if isinstance(route, APIRoute):
            route.responses = {**route.responses, **{
                code: {"description": text, "content": {"application/json": {"schema": schema}}}
                for code, text in ERROR_STATUSES.items()}}
            route.response_fields.pop("422", None)
            route.response_fields.pop(422, None)
    app.openapi_schema = None


# --- HTTP sessions --------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    """One HTTP session: its environment and its last result (what ``GET`` returns)."""

    id: str
    env: Any  # DesignerEnv
    created_at: float  # wall clock, seconds since the epoch
    last_active: float  # monotonic clock
    observation: dict[str, Any] = field(default_factory=dict)
    reward: float | None = None
    done: bool = False
    info: dict[str, float] = field(default_factory=dict)
    steps: int = 0


class SessionLimitError(MechArenaError):
    """All ``max_sessions`` slots are in use."""


class SessionStore:
    """HTTP sessions keyed by an unguessable id, bounded in number and in idle time.

    Expiry is checked on every access (so an expired id is a 404 at once) and swept
    periodically by :meth:`reap` (so abandoned sessions free their memory).

    >>> store = SessionStore(lambda stage: object(), max_sessions=1, idle_timeout=60)
    >>> sid = store.create(1).id
    >>> store.create(1)
    Traceback (most recent call last):
    ...
    mecharena.server.app.SessionLimitError: session limit reached: 1 of 1 sessions in use; \
delete one (DELETE /api/sessions/{id}) or wait for idle ones to expire after 60 s
    """

    def __init__(self, make_env: Callable[[int], Any], max_sessions: int, idle_timeout: float,
                 clock: Callable[[], float] = time.monotonic):
        self.make_env = make_env
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        self.sweep()
        return len(self._sessions)

    def create(self, stage: int) -> Session:
        """A new session with a ``DesignerEnv(stage)``; not reset yet.

        Raises:
            SessionLimitError: ``max_sessions`` live sessions exist.
        """
        if len(self) >= self.max_sessions:
            raise SessionLimitError(
                f"session limit reached: {len(self._sessions)} of {self.max_sessions} sessions in use; "
                f"delete one (DELETE /api/sessions/{{id}}) or wait for idle ones to expire after "
                f"{self.idle_timeout:g} s")
        session = Session(id=uuid.uuid4().hex, env=self.make_env(stage), created_at=time.time(),
                          last_active=self.clock())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        """The live session ``session_id``, its idle clock restarted.

        Raises:
            UnknownIdError: no such session, or it expired.
        """
        session = self._sessions.get(session_id)
        now = self.clock()
        if session is not None and now - session.last_active > self.idle_timeout:
            del self._sessions[session_id]
            session = None
        if session is None:
            raise UnknownIdError(
                f"unknown session {shown_value(session_id)}: never created, deleted, or expired after "
                f"{self.idle_timeout:g} s idle; create one with POST /api/sessions")
        session.last_active = now
        return session

    def delete(self, session_id: str) -> None:
        """Drop ``session_id``.

        Raises:
            UnknownIdError: no such live session.
        """
        self.get(session_id)
        del self._sessions[session_id]

    def sweep(self) -> int:
        """Drop every expired session; return how many."""
        now = self.clock()
        stale = [sid for sid, s in self._sessions.items() if now - s.last_active > self.idle_timeout]
        for sid in stale:
            del self._sessions[sid]
        return len(stale)

    async def reap(self) -> None:
        """Sweep forever, a few times per timeout (run as a background task)."""
        while True:
            await asyncio.sleep(min(max(self.idle_timeout / 4, 0.05), 60.0))
            self.sweep()


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


# --- the OpenEnv adapter --------------------------------------------------------------------


def _make_env(stage: int) -> Any:
    from mecharena.designer.env import DesignerEnv

    return DesignerEnv(stage=stage)


def _warm_up(stage: int) -> None:
    env = _make_env(stage)
    env.reset(seed=0)
    env.step(MechanismAction())


@cache
def openenv_types() -> Any:
    """The OpenEnv types of the designer environment (imports openenv on first call).

    Returns:
        A namespace with ``DesignAction`` (the :class:`MechanismAction` fields plus OpenEnv's
        ``metadata``), ``DesignObservation`` (the env's observation keys plus ``reward``,
        ``done`` and ``metadata``: the reward components), ``DesignState`` and
        ``DesignerEnvironment`` (the :class:`openenv.core.env_server.Environment` adapter).
    """
    from types import SimpleNamespace

    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
    from pydantic import model_validator
    from pydantic_core import PydanticCustomError

    class DesignAction(Action, MechanismAction):
        """A :class:`MechanismAction` as OpenEnv's typed action (``metadata`` is ignored)."""

        model_config = ConfigDict(strict=True)  # JSON from the network: no "0.3" for 0.3, no true for 1.0

        @model_validator(mode="wrap")
        @classmethod
        def _explained(cls, data: Any, handler: Callable) -> Any:
            # One error whose message names field, value and range, with nothing in it that
            # cannot be JSON-encoded (openenv sends ``errors()`` back over the socket).
            try:
                return handler(data)
            except ValidationError as exc:
                raise PydanticCustomError("invalid_action", explain(MechanismAction, exc).replace("{", "{{")
                                          .replace("}", "}}")) from None

        def mechanism(self) -> MechanismAction:
            fields = MechanismAction.model_fields
            return MechanismAction.model_construct(**{name: getattr(self, name) for name in fields})

    class DesignObservation(Observation):
        """What the designer sees; ``metadata`` holds the step's reward components."""

        model_config = ConfigDict(extra="allow")  # the env's observation may grow keys

        stage: int = Field(1, description="curriculum stage")
        step: int = Field(0, description="steps taken in this episode")
        horizon: int = Field(0, description="steps in an episode")
        supply: int = Field(0, description="units for sale in each round")
        mechanism: dict[str, Any] = Field(default_factory=dict, description="the MechanismAction in force")
        window: dict[str, Any] = Field(default_factory=dict,
                                       description='recent rounds: {"features": names, "rounds": oldest first}')
        proxies: dict[str, float] = Field(default_factory=dict, description="what a market operator can measure")
        vector: list[float] = Field(default_factory=list, description="all of it, flat: (OBSERVATION_WIDTH,)")

    class DesignState(State):
        """Episode bookkeeping (``/state``, the WebSocket ``state`` message)."""

        stage: int = Field(1, description="curriculum stage")
        done: bool = Field(False, description="the episode reached its horizon")

    class DesignerEnvironment(Environment[DesignAction, DesignObservation, DesignState]):
        """One WebSocket session's :class:`DesignerEnv`, created on first reset."""

        SUPPORTS_CONCURRENT_SESSIONS = True  # no shared mutable state: one env and one rng each

        def __init__(self, stage: int = 1):
            super().__init__()
            self._stage = stage
            self._env: Any = None
            self._episode_id: str | None = None
            self._steps = 0
            self._done = False

        def reset(self, seed: int | None = None, episode_id: str | None = None, stage: int | None = None,
                  **kwargs: Any) -> DesignObservation:
            """Start an episode.

            Raises:
                ConfigError: an unknown field, or ``seed``/``stage`` of the wrong type or out of range.
            """
            request = parse(ResetRequest, {"seed": seed, "stage": stage, **kwargs})
            if self._env is None:
                self._env = _make_env(request.stage or self._stage)
            observation = self._env.reset(seed=request.seed, stage=request.stage, population=request.population)
            self._stage = observation.get("stage", request.stage or self._stage)
            self._episode_id = episode_id or uuid.uuid4().hex
            self._steps, self._done = 0, False
            return DesignObservation.model_construct(**observation, reward=None, done=False, metadata={})

        def step(self, action: DesignAction, timeout_s: float | None = None, **kwargs: Any) -> DesignObservation:
            """One designer step.

            Raises:
                InvalidActionError: the episode was never reset, or it is finished.
            """
            if self._env is None:
                raise InvalidActionError("no episode: send a reset first (OpenEnv's HTTP /step is stateless; "
                                         "use the /ws WebSocket or /api/sessions)")
            mechanism = action.mechanism() if isinstance(action, DesignAction) else action
            observation, reward, done, info = self._env.step(mechanism)
            self._steps += 1
            self._done = bool(done)
            return DesignObservation.model_construct(**observation, reward=float(reward), done=self._done,
                                                     metadata={k: float(v) for k, v in info.items()})

        # Inline on the event loop: openenv runs a sync step() in a per-session thread, which
        # costs as much as the step itself (see the module docstring).
        async def reset_async(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any):
            return self.reset(seed=seed, episode_id=episode_id, **kwargs)

        async def step_async(self, action: DesignAction, timeout_s: float | None = None, **kwargs: Any):
            return self.step(action, timeout_s=timeout_s, **kwargs)

        @property
        def state(self) -> DesignState:
            return DesignState(episode_id=self._episode_id, step_count=self._steps, stage=self._stage,
                               done=self._done)

        def get_metadata(self) -> EnvironmentMetadata:
            return EnvironmentMetadata(
                name=ENV_NAME, version=__version__, author="mecharena",
                description="Mechanism designer: choose auction rules, reserve, information and penalties "
                            "each step; markets of strategic agents respond; the reward scores the outcome.")

        def close(self) -> None:
            self._env = None

    return SimpleNamespace(DesignAction=DesignAction, DesignObservation=DesignObservation, DesignState=DesignState,
                           DesignerEnvironment=DesignerEnvironment)


# --- the app --------------------------------------------------------------------------------


def build_app(idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_sessions: int = DEFAULT_MAX_SESSIONS, *, stage: int = 1,
              max_body_bytes: int = MAX_BODY_BYTES, policy_files: bool = False, policy_dir: str | None = None,
              design_timeout: float = DESIGN_TIMEOUT, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The FastAPI app: OpenEnv's routes (``create_app``) plus ``/api/sessions`` and ``/api/design``.

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
    import functools

    from fastapi import HTTPException, Request, Response
    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.types import ConcurrencyConfig

    config = parse(ServeConfig, {"idle_timeout": idle_timeout, "max_sessions": max_sessions, "stage": stage,
                                 "max_body_bytes": max_body_bytes, "policy_files": policy_files,
                                 "policy_dir": policy_dir, "design_timeout": design_timeout, "host": host,
                                 "token": token})
    policy_root = Path(config.policy_dir or os.getcwd()).resolve() if config.policy_files else None
    types = openenv_types()
    app = create_app(
        functools.partial(types.DesignerEnvironment, stage=config.stage), types.DesignAction, types.DesignObservation,
        env_name=ENV_NAME, state_cls=types.DesignState,
        # openenv's own reaper frees idle HTTP-MCP sessions; idle sockets are closed by IdleWebSocketTimeout.
        concurrency_config=ConcurrencyConfig(max_concurrent_envs=config.max_sessions,
                                             session_timeout=config.idle_timeout))
    app.title = "mecharena designer (OpenEnv)"
    # app.version stays openenv's "1.0.0": `openenv validate` reads it as the OpenEnv HTTP API version.
    store = SessionStore(_make_env, config.max_sessions, config.idle_timeout)
    policies: dict[tuple[str, int], asyncio.Future] = {}  # (name, stage) -> the policy, built once
    app.state.sessions = store

    add_error_handlers(app)

    async def body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except RecursionError:
            raise HTTPException(400, "body must be JSON nested at most a few hundred levels deep") from None
        except ValueError as exc:  # not JSON, not UTF-8, or an integer of over 4,300 digits
            raise HTTPException(400, f"body must be JSON: {_clip(str(exc), 200)}") from None

    def body_of(model: type[StrictModel], required: bool = False) -> dict[str, Any]:
        # The routes read their body themselves (for the arena's messages); the schema still says what it is.
        return {"requestBody": {"required": required, "content": {"application/json": {
            "schema": model.model_json_schema()}}}}

    def result(session: Session) -> dict[str, Any]:
        return {"observation": session.observation, "reward": session.reward, "done": session.done,
                "metadata": session.info}

    def reset(session: Session, request: ResetRequest) -> dict[str, Any]:
        session.observation = session.env.reset(seed=request.seed, stage=request.stage, population=request.population)
        session.reward, session.done, session.info, session.steps = None, False, {}, 0
        return result(session)

    reaper: list[asyncio.Task] = []

    async def start() -> None:
        # Load (or compile) the kernels before the first client, whose step would otherwise stall
        # every other session on the event loop.
        await asyncio.to_thread(_warm_up, config.stage)
        reaper.append(asyncio.create_task(store.reap()))

    async def stop() -> None:
        for task in reaper:
            task.cancel()

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)

    @app.get("/api/sessions", tags=["Sessions"], summary="Session capacity")
    async def sessions_status() -> dict[str, Any]:
        return {"active": len(store), "max_sessions": store.max_sessions, "idle_timeout": store.idle_timeout}

    @app.post("/api/sessions", status_code=201, tags=["Sessions"], summary="Create a session and reset it",
              description='Body (optional): `{"stage": 1..5, "seed": int >= 0}`. 503 when all sessions are in use.',
              openapi_extra=body_of(ResetRequest))
    async def create_session(request: Request) -> dict[str, Any]:
        fields = parse(ResetRequest, await body(request))
        session = store.create(fields.stage or config.stage)
        try:
            return {"session_id": session.id, **reset(session, fields)}
        except BaseException:
            store.delete(session.id)
            raise

    @app.post("/api/sessions/{session_id}/reset", tags=["Sessions"], summary="Start a new episode",
              description='Body (optional): `{"seed": int >= 0, "stage": 1..5}`.', openapi_extra=body_of(ResetRequest))
    async def reset_session(session_id: str, request: Request) -> dict[str, Any]:
        session = store.get(session_id)
        return reset(session, parse(ResetRequest, await body(request)))

    @app.post("/api/sessions/{session_id}/step", tags=["Sessions"], summary="One designer step",
              description='Body: `{"action": {MechanismAction fields}}` (see `/schema`). 409 once the episode is done.',
              openapi_extra=body_of(StepRequest, required=True))
    async def step_session(session_id: str, request: Request) -> dict[str, Any]:
        session = store.get(session_id)
        action = parse(MechanismAction, parse(StepRequest, await body(request)).action, where="action")
        if not session.observation:
            raise InvalidActionError(f"session {session_id} has no episode: POST /api/sessions/{session_id}/reset")
        observation, reward, done, info = session.env.step(action)
        session.observation, session.reward, session.done = observation, float(reward), bool(done)
        session.info, session.steps = {k: float(v) for k, v in info.items()}, session.steps + 1
        return result(session)

    @app.get("/api/sessions/{session_id}", tags=["Sessions"], summary="The session's last result")
    async def get_session(session_id: str) -> dict[str, Any]:
        session = store.get(session_id)
        return {"session_id": session.id, **result(session), "steps": session.steps,
                "created_at": session.created_at, "expires_in": store.idle_timeout}

    @app.delete("/api/sessions/{session_id}", status_code=204, tags=["Sessions"], summary="End a session")
    async def delete_session(session_id: str) -> Response:
        store.delete(session_id)
        return Response(status_code=204)

    @app.post("/api/design", tags=["Design"], summary="A designer policy's mechanism for an observation",
              description='Body: `{"policy": "greedy", "stage": 2, "observation": {...}}`; answers the '
                          'MechanismAction as JSON. 503 when the policy is not ready within the time limit '
                          '(`learned` trains first): retry.', openapi_extra=body_of(DesignRequest, required=True))
    async def design(request: Request) -> dict[str, Any]:
        from mecharena.llm.designer import make_designer_policy  # a shell: every designer policy, LLMs included

        fields = parse(DesignRequest, await body(request))
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

    from mecharena.negotiation.server import build_app as negotiation_app

    # The negotiation economy on the same server: its own OpenEnv routes under /negotiation
    # (WebSocket /negotiation/ws; reset may name the task).
    negotiation = negotiation_app("single_trade", max_sessions=config.max_sessions)
    add_error_handlers(negotiation)
    declare_errors(negotiation)
    app.mount("/negotiation", negotiation)
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
    # ``uvicorn mecharena.server.app:app`` and the OpenEnv types, built on first access only.
    if name == "app":
        return build_app()
    if name in ("DesignAction", "DesignObservation", "DesignState", "DesignerEnvironment"):
        return getattr(openenv_types(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
