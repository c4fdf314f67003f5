"""One network shell for every world: the OpenEnv environment and the HTTP session API, generic over a
:class:`World`.

A world (the designer, the negotiation economy: :mod:`mecharena.server.worlds`) is an environment with
``reset(...) -> observation`` and ``step(action) -> (observation, reward, done, info)``. Its :class:`World`
says what differs from one world to the next: its typed models, how a reset starts an episode, what its
state shows. This module does the rest, once:

* :func:`openenv_types` builds the world's OpenEnv ``Action``, ``Observation``, ``State`` and
  ``Environment`` (one environment per WebSocket session);
* :class:`SessionStore` keeps HTTP sessions, bounded in number and in idle time;
* :func:`openenv_app` serves both: OpenEnv's ``create_app`` (WebSocket ``/ws``, ``/health``,
  ``/schema``, the stateless ``/reset`` and ``/step``) plus a session-keyed HTTP API for clients
  without WebSocket::

      POST   /api/sessions              {reset fields}    -> 201 {"session_id", "observation", ...}
      POST   /api/sessions/{id}/reset   {reset fields}    -> {"observation", "reward", "done", "metadata"}
      POST   /api/sessions/{id}/step    {"action": {...}} -> {"observation", "reward", "done", "metadata"}
      GET    /api/sessions/{id}                           -> the last result and the session's clock
      DELETE /api/sessions/{id}                           -> 204
      GET    /api/sessions                                -> {"active", "max_sessions", "idle_timeout"}

A reset is validated whole and its episode built aside before it replaces the running one, so a refused
reset leaves that episode and its state as they were; a bad action raises before the episode changes.
Errors answer as JSON with a detail naming the field, the value and what is allowed
(:func:`add_error_handlers`): 400 not JSON, 404 unknown session, 409 no episode or a finished one, 422 a
bad field, 503 every session in use.

``openenv`` (which imports gradio, ~3 s) is imported only inside :func:`openenv_types` and
:func:`openenv_app`, never when this module is imported.
"""

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import Field, ValidationError

from mecharena import __version__
from mecharena.core.config import StrictModel, explain, shown_value
from mecharena.core.errors import ConfigError, InvalidActionError, MechArenaError, UnknownIdError

DEFAULT_IDLE_TIMEOUT = 300.0  # seconds
DEFAULT_MAX_SESSIONS = 64


@dataclass(frozen=True)
class World:
    """What the shells need to know of one world's environment.

    Attributes:
        name: OpenEnv's ``env_name`` and the metadata's name.
        title: the served app's title.
        description: what the environment is (OpenEnv metadata).
        reset_model: a reset's fields besides ``episode_id``; a field left None keeps the session's
            current value or takes its default.
        models: ``(Action, Observation, State) -> (action, observation, state)``: the world's subclasses
            of OpenEnv's three types, built when openenv is first imported; the action has ``typed()``,
            the environment's own action.
        start: ``(env or None, request, defaults) -> (env, observation)``: a new episode, built aside
            (``env`` is the session's current one); ``request`` and ``defaults`` are ``reset_model``s.
        state: ``(env or None, defaults) -> fields``: the world's fields of the OpenEnv state.
        parse: a raw action (a JSON object) -> the environment's action; raises ConfigError naming the field.
        metadata: a step's ``info`` -> the observation's JSON ``metadata``.
    """

    name: str
    title: str
    description: str
    reset_model: type[StrictModel]
    models: Callable[[type, type, type], tuple[type, type, type]]
    start: Callable[[Any, Any, Any], tuple[Any, dict[str, Any]]]
    state: Callable[[Any, Any], dict[str, Any]]
    parse: Callable[[Any], Any]
    metadata: Callable[[dict[str, Any]], dict[str, Any]] = dict


def parse(model: type[StrictModel], data: Any, where: str = "body") -> Any:
    """Validate JSON ``data`` into ``model``.

    Raises:
        ConfigError: ``data`` is not an object, or a field is unknown, missing, of the wrong type
            or out of range (one clause per field, prefixed with ``where``).

    >>> from mecharena.server.worlds import ResetRequest
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


def action_parser(model: type[StrictModel]) -> Callable[[Any], Any]:
    """A :class:`World`'s ``parse`` for actions of ``model``: an instance as it is, a JSON object validated
    strictly (a ConfigError names the field as ``action: ...``)."""
    def parse_action(data: Any) -> Any:
        return data if isinstance(data, model) else parse(model, data, where="action")
    return parse_action


# --- the OpenEnv environment ------------------------------------------------------------------


@cache
def openenv_types(world: World) -> Any:
    """The OpenEnv types of ``world`` (imports openenv on first call).

    Returns:
        A namespace with ``Action``, ``Observation`` and ``State`` (the world's models) and
        ``Environment``, the :class:`openenv.core.env_server.interfaces.Environment` adapter: one
        session's environment, built on its first reset; its constructor's keyword arguments are
        the defaults of a reset that leaves a field out.
    """
    from types import SimpleNamespace

    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State

    action_model, observation_model, state_model = world.models(Action, Observation, State)

    class WorldEnvironment(Environment[action_model, observation_model, state_model]):
        SUPPORTS_CONCURRENT_SESSIONS = True  # no shared mutable state: one env and its generators each

        def __init__(self, **defaults: Any):
            super().__init__()
            self._defaults = parse(world.reset_model, defaults, where="defaults")
            self._env: Any = None
            self._episode_id: str | None = None
            self._steps = 0
            self._done = False

        def reset(self, seed: int | None = None, episode_id: str | None = None, **fields: Any):
            """Start an episode; nothing changes unless the whole reset is valid.

            Raises:
                ConfigError: an unknown field, or one of the wrong type or out of range.
            """
            if episode_id is not None and not (isinstance(episode_id, str) and 0 < len(episode_id) <= 255):
                raise ConfigError(f"episode_id must be a string of 1 to 255 characters, got {shown_value(episode_id)}")
            request = parse(world.reset_model, {"seed": seed, **fields})
            self._env, observation = world.start(self._env, request, self._defaults)
            self._episode_id = episode_id or uuid.uuid4().hex
            self._steps, self._done = 0, False
            return observation_model.model_construct(**observation, reward=None, done=False, metadata={})

        def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any):
            """One step of the episode.

            Raises:
                ConfigError: a malformed action. InvalidActionError: impossible now, or no episode.
            """
            if self._env is None:
                raise InvalidActionError("no episode: send a reset first (OpenEnv's HTTP /step is stateless; "
                                         "use the /ws WebSocket or /api/sessions)")
            typed = action.typed() if isinstance(action, action_model) else world.parse(action)
            observation, reward, done, info = self._env.step(typed)
            self._steps += 1
            self._done = bool(done)
            return observation_model.model_construct(**observation, reward=float(reward), done=self._done,
                                                     metadata=world.metadata(info))

        # Inline on the event loop: openenv runs a sync step() in a per-session thread, which costs
        # as much as a step itself; the GIL would serialise the threads anyway.
        async def reset_async(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any):
            return self.reset(seed=seed, episode_id=episode_id, **kwargs)

        async def step_async(self, action: Any, timeout_s: float | None = None, **kwargs: Any):
            return self.step(action, timeout_s=timeout_s, **kwargs)

        @property
        def state(self) -> Any:
            return state_model(episode_id=self._episode_id, step_count=self._steps, done=self._done,
                               **world.state(self._env, self._defaults))

        def get_metadata(self) -> EnvironmentMetadata:
            return EnvironmentMetadata(name=world.name, version=__version__, author="mecharena",
                                       description=world.description)

        def close(self) -> None:
            self._env = None

    return SimpleNamespace(Action=action_model, Observation=observation_model, State=state_model,
                           Environment=WorldEnvironment)


# --- HTTP sessions ------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    """One HTTP session: its environment (None until the first reset) and its last result."""

    id: str
    created_at: float  # wall clock, seconds since the epoch
    last_active: float  # monotonic clock
    env: Any = None
    observation: dict[str, Any] = field(default_factory=dict)
    reward: float | None = None
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    steps: int = 0


class SessionLimitError(MechArenaError):
    """All ``max_sessions`` slots are in use."""


class SessionStore:
    """HTTP sessions keyed by an unguessable id, bounded in number and in idle time.

    Expiry is checked on every access (so an expired id is a 404 at once) and swept
    periodically by :meth:`reap` (so abandoned sessions free their memory).

    >>> store = SessionStore(max_sessions=1, idle_timeout=60)
    >>> sid = store.create().id
    >>> store.create()
    Traceback (most recent call last):
    ...
    mecharena.server.shell.SessionLimitError: session limit reached: 1 of 1 sessions in use; \
delete one (DELETE /api/sessions/{id}) or wait for idle ones to expire after 60 s
    """

    def __init__(self, max_sessions: int, idle_timeout: float, clock: Callable[[], float] = time.monotonic):
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        self.sweep()
        return len(self._sessions)

    def create(self) -> Session:
        """A new session without an episode.

        Raises:
            SessionLimitError: ``max_sessions`` live sessions exist.
        """
        if len(self) >= self.max_sessions:
            raise SessionLimitError(
                f"session limit reached: {len(self._sessions)} of {self.max_sessions} sessions in use; "
                f"delete one (DELETE /api/sessions/{{id}}) or wait for idle ones to expire after "
                f"{self.idle_timeout:g} s")
        session = Session(id=uuid.uuid4().hex, created_at=time.time(), last_active=self.clock())
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


class StepRequest(StrictModel):
    """Body of ``POST /api/sessions/{id}/step``."""

    action: dict[str, Any] = Field(description="the action's fields (see /schema)")


# --- the app ------------------------------------------------------------------------------------


def openenv_app(world: World, max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                **defaults: Any) -> Any:
    """A FastAPI app serving ``world``: OpenEnv's routes plus ``/api/sessions``, its errors as 4xx JSON.

    Args:
        world: the world to serve.
        max_sessions: concurrent WebSocket sessions allowed, and HTTP sessions allowed.
        idle_timeout: seconds after which an idle HTTP session expires (and OpenEnv frees an idle
            HTTP-MCP session); ``app.state.sessions.reap()`` sweeps them (start it as a task).
        **defaults: the reset fields of a session that names none (``stage``, ``task``, ...).

    Raises:
        ConfigError: a default of the wrong type or out of range, or ``max_sessions`` < 1.
    """
    import functools

    from fastapi import Request, Response
    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.types import ConcurrencyConfig

    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ConfigError(f"max_sessions must be an integer >= 1, got {shown_value(max_sessions)}")
    base = parse(world.reset_model, defaults, where="defaults")
    types = openenv_types(world)
    app = create_app(functools.partial(types.Environment, **defaults), types.Action, types.Observation,
                     env_name=world.name, state_cls=types.State,
                     concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions,
                                                          session_timeout=idle_timeout))
    app.title = world.title
    # app.version stays openenv's "1.0.0": `openenv validate` reads it as the OpenEnv HTTP API version.
    store = SessionStore(max_sessions, idle_timeout)
    app.state.sessions = store
    add_error_handlers(app)

    def result(session: Session) -> dict[str, Any]:
        return {"observation": session.observation, "reward": session.reward, "done": session.done,
                "metadata": session.info}

    def reset(session: Session, request: Any) -> dict[str, Any]:
        session.env, session.observation = world.start(session.env, request, base)
        session.reward, session.done, session.info, session.steps = None, False, {}, 0
        return result(session)

    described = "; ".join(f"`{name}`: {spec.description}" for name, spec in world.reset_model.model_fields.items())

    @app.get("/api/sessions", tags=["Sessions"], summary="Session capacity")
    async def sessions_status() -> dict[str, Any]:
        return {"active": len(store), "max_sessions": store.max_sessions, "idle_timeout": store.idle_timeout}

    @app.post("/api/sessions", status_code=201, tags=["Sessions"], summary="Create a session and reset it",
              description=f"Body (optional), every field optional: {described}. 503 when all sessions are in use.",
              openapi_extra=body_of(world.reset_model))
    async def create_session(request: Request) -> dict[str, Any]:
        request_fields = parse(world.reset_model, await read_json(request))
        session = store.create()
        try:
            return {"session_id": session.id, **reset(session, request_fields)}
        except BaseException:
            store.delete(session.id)
            raise

    @app.post("/api/sessions/{session_id}/reset", tags=["Sessions"], summary="Start a new episode",
              description=f"Body (optional), every field optional: {described}.",
              openapi_extra=body_of(world.reset_model))
    async def reset_session(session_id: str, request: Request) -> dict[str, Any]:
        session = store.get(session_id)
        return reset(session, parse(world.reset_model, await read_json(request)))

    @app.post("/api/sessions/{session_id}/step", tags=["Sessions"], summary="One step",
              description='Body: `{"action": {fields}}` (see `/schema`). 409 once the episode is done.',
              openapi_extra=body_of(StepRequest, required=True))
    async def step_session(session_id: str, request: Request) -> dict[str, Any]:
        session = store.get(session_id)
        action = world.parse(parse(StepRequest, await read_json(request)).action)
        if session.env is None:
            raise InvalidActionError(f"session {session_id} has no episode: POST /api/sessions/{session_id}/reset")
        observation, reward, done, info = session.env.step(action)
        session.observation, session.reward, session.done = observation, float(reward), bool(done)
        session.info, session.steps = world.metadata(info), session.steps + 1
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

    return app


async def read_json(request: Any) -> Any:
    """The JSON body of ``request`` (an empty body is ``{}``).

    Raises:
        HTTPException: 400, the body is not JSON (or nested too deeply to read).
    """
    from fastapi import HTTPException

    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except RecursionError:
        raise HTTPException(400, "body must be JSON nested at most a few hundred levels deep") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of over 4,300 digits
        raise HTTPException(400, f"body must be JSON: {clip(str(exc), 200)}") from None


def body_of(model: type[StrictModel], required: bool = False) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its JSON body itself (``openapi_extra``)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": model.model_json_schema()}}}}


# --- errors -------------------------------------------------------------------------------------


class ErrorResponse(StrictModel):
    """Every 4xx answer: ``detail`` names the field, the value and what is allowed."""

    detail: str | list[dict[str, Any]] = Field(description="the message, or one entry per invalid field")


class BusyError(MechArenaError):
    """The server cannot answer within its time limit now (a policy still being built); retry later."""


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as text (JSON has no NaN), for error details."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (ending in "...")."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without their inputs (which may be huge or NaN): location, message, type."""
    return [{"loc": _json_safe(list(e.get("loc", ()))), "msg": clip(str(e.get("msg", "")), 400),
             "type": str(e.get("type", ""))} for e in errors]


def add_error_handlers(app: Any) -> None:
    """The arena's errors as 4xx JSON answers on ``app``.

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
        detail = _errors(detail) if isinstance(detail, list) else clip(str(detail), 2000)
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
