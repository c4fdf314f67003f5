"""An OpenAI-compatible chat-completions endpoint over any provider (``mecharena llm serve``).

``POST /v1/chat/completions`` and ``GET /v1/models``, enough of OpenAI's API for the ``openai``
client and for tools that speak it: ``model``, ``messages``, ``temperature``, ``max_tokens`` (or
``max_completion_tokens``), ``top_p``, ``seed``, ``response_format`` (text, json_object, or
json_schema: decoding is constrained to the schema); ``n`` must be 1 and ``stream`` false. Errors use
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the status code: 400 for
a request the server cannot honour (code ``context_length_exceeded`` for a prompt longer than the
model's context, as OpenAI answers), 404 for another model, 413 for an oversized body, 422 for a
field out of range (the message names it), 502 when the model fails.

:func:`serve` runs it under uvicorn and stops promptly on SIGTERM or SIGINT: a generation runs in
a worker thread that cannot be interrupted, so after :data:`STOP_GRACE_S` seconds the process
exits even if one is still going.
"""

import os
import threading
import time
import uuid
from typing import Any

from pydantic import Field, ValidationError

from mecharena.core.config import StrictModel, explain
from mecharena.core.errors import MechArenaError
from mecharena.llm.providers import ContextLengthError, GenerationParams, Provider

MAX_BODY_BYTES = 1 << 20


class ChatRequest(StrictModel):
    """The supported subset of a chat-completions request."""

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, ge=0)
    n: int = Field(1, ge=1, le=1, description="one completion per request")
    stream: bool = Field(False, description="streaming is not supported")
    response_format: dict[str, Any] | None = Field(None, description="text, json_object or json_schema")

    def json_schema(self) -> dict[str, Any] | None:
        """The schema the answer must follow, from ``response_format``.

        Raises:
            ValueError: an unknown response format type or a json_schema without a schema.
        """
        kind = (self.response_format or {}).get("type", "text")
        if kind == "text":
            return None
        if kind == "json_object":
            return {"type": "object"}
        schema = (self.response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        if not isinstance(schema, dict):
            raise ValueError("response_format must be {'type': 'text'}, {'type': 'json_object'} or "  # noqa: TRY004
                             "{'type': 'json_schema', 'json_schema': {'schema': {...}}}")
        return schema


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
           code: str | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def build_app(provider: Provider, *, max_body_bytes: int = MAX_BODY_BYTES) -> Any:
    """The FastAPI app serving ``provider`` as model ``provider.model``."""
    from fastapi import FastAPI, Request
    from starlette.concurrency import run_in_threadpool

    from mecharena.server.app import BodyLimit

    app = FastAPI(title="mecharena LLM", version="1.0.0")
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": provider.model, "object": "model", "owned_by": "mecharena"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, f"the body must be a JSON object, got {type(body).__name__}")
        try:
            req = ChatRequest(**body)
        except ValidationError as exc:
            return _error(422, explain(ChatRequest, exc), param=str(exc.errors()[0]["loc"][0]))
        if req.stream:
            return _error(400, "stream must be false: streaming is not supported", param="stream")
        if req.model != provider.model:
            return _error(404, f"model {req.model!r} is not served here; available: {provider.model!r}",
                          "not_found_error", "model")
        try:
            schema = req.json_schema()
        except ValueError as exc:
            return _error(400, str(exc), param="response_format")
        params = GenerationParams.build(temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                                        max_tokens=req.max_completion_tokens or req.max_tokens or 256,
                                        json_schema=schema)
        try:
            completion = await run_in_threadpool(provider.complete, req.messages, params)
        except ContextLengthError as exc:  # OpenAI's answer to an over-long prompt
            return _error(400, str(exc), param="messages", code="context_length_exceeded")
        except MechArenaError as exc:
            status = 422 if "messages" in str(exc) else 502
            return _error(status, str(exc), "invalid_request_error" if status == 422 else "api_error")
        finish = "length" if completion.completion_tokens >= params.max_tokens else "stop"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": provider.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        }

    return app


#: Seconds a stop signal waits for requests in progress before the process exits anyway.
STOP_GRACE_S = 2.0


def stopping_server(config: Any, *, grace_s: float = STOP_GRACE_S, exit_now: Any = os._exit) -> Any:
    """A uvicorn server whose stop signal is obeyed within ``grace_s`` seconds.

    Uvicorn's own handler waits for every request in progress, and the worker thread of a
    generation cannot be cancelled, so a SIGTERM during a long generation would wait for it (and
    the interpreter joins the thread at exit). Here the signal also starts a timer that ends the
    process (status 128 + signal) if it is still alive after the grace period.

    Args:
        config: a ``uvicorn.Config``.
        grace_s: seconds to let requests in progress finish.
        exit_now: called with the exit status when the grace period is over (``os._exit``).
    """
    import uvicorn

    class PromptServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            timer = threading.Timer(grace_s, exit_now, args=(128 + int(sig),))
            timer.daemon = True  # a clean stop before the deadline does not wait for it
            timer.start()

    return PromptServer(config)


def serve(provider: Provider, host: str, port: int, *, grace_s: float = STOP_GRACE_S) -> None:
    """Serve ``provider`` at ``http://HOST:PORT/v1`` until a stop signal (see :func:`stopping_server`)."""
    import uvicorn

    stopping_server(uvicorn.Config(build_app(provider), host=host, port=port, log_level="warning"),
                    grace_s=grace_s).run()
