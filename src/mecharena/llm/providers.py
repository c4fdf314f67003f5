"""LLM providers behind one small interface: ``complete(messages, params) -> Completion``.

* :class:`OpenAICompatibleProvider`: any server speaking OpenAI's chat-completions API (vLLM,
  llama.cpp's server, Ollama, hosted APIs, and ``mecharena llm serve``), through the ``openai``
  client: base URL, key and model from arguments or ``MECHARENA_LLM_BASE_URL``,
  ``MECHARENA_LLM_API_KEY`` (or ``OPENAI_API_KEY``) and ``MECHARENA_LLM_MODEL``; a timeout and
  retries with exponential backoff (the client's own).
* :class:`TransformersProvider`: a local ``transformers`` model, a folder or a GGUF file in it.
* :class:`CachedProvider`: answers a request it has seen from disk, keyed by (model, messages,
  parameters, seed), so a rerun is reproducible and free.

:func:`complete_many` runs requests through a bounded thread pool; :class:`Meter` adds up tokens
and latency. ``openai``, ``torch`` and ``transformers`` are imported only when a provider that
needs them is built (the ``llm`` extra).
"""

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError, MechArenaError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
MAX_CONCURRENCY = 64


class ProviderError(MechArenaError):
    """The model could not answer (unreachable server, timeout after retries, bad response)."""


class ContextLengthError(ProviderError):
    """The prompt does not fit the model's context window."""


class GenerationParams(StrictModel):
    """How to sample one completion; part of the cache key."""

    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy")
    max_tokens: int = Field(256, ge=1, le=8192, description="completion length at most")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    seed: int = Field(0, ge=0, description="sampling seed (servers that support it)")
    json_schema: dict[str, Any] | None = Field(None, description="constrain the answer to this JSON schema")


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool = False


class Provider(Protocol):
    model: str

    def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion: ...


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Chat messages as plain dicts, or :class:`ConfigError` naming the bad entry."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(f"messages[{i}] must be {{'role': one of {', '.join(ROLES)}, 'content': str}}, "
                              f"got {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    if not out:
        raise ConfigError("messages must hold at least one message")
    return out


@dataclass
class Meter:
    """Totals over the completions it has seen (thread-safe)."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, completion: Completion) -> Completion:
        with self.lock:
            self.requests += 1
            self.cached += completion.cached
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens
            self.latency_s += completion.latency_s
        return completion

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "cached": self.cached, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_s": round(self.latency_s, 6)}


class OpenAICompatibleProvider:
    """Chat completions from an OpenAI-compatible server."""

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 60.0, retries: int = 2) -> None:
        from openai import OpenAI

        self.model = model or os.environ.get("MECHARENA_LLM_MODEL") or ""
        base_url = base_url or os.environ.get("MECHARENA_LLM_BASE_URL")
        if not self.model or not base_url:
            raise ConfigError("an OpenAI-compatible provider needs a model and a base URL (arguments, or "
                              "MECHARENA_LLM_MODEL and MECHARENA_LLM_BASE_URL)")
        if timeout_s <= 0 or not 0 <= retries <= 10:
            raise ConfigError(f"timeout_s must be > 0 and retries in [0, 10], got {timeout_s}, {retries}")
        key = api_key or os.environ.get("MECHARENA_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=retries)

    def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        import openai

        messages = check_messages(messages)
        start = time.perf_counter()
        try:
            schema = {} if params.json_schema is None else {"response_format": {
                "type": "json_schema", "json_schema": {"name": "answer", "schema": params.json_schema}}}
            reply = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=params.temperature, max_tokens=params.max_tokens,
                top_p=params.top_p, seed=params.seed, **schema)
        except openai.APIStatusError as exc:
            overflow = "context_length_exceeded" in str(exc.body or "") or "context" in exc.message.lower()
            raise (ContextLengthError if overflow and exc.status_code == 400 else ProviderError)(
                f"{self.model}: the server answered {exc.status_code}: {exc.message}") from None
        except openai.APIError as exc:  # connection errors and timeouts, after the client's retries
            raise ProviderError(f"{self.model}: {type(exc).__name__}: {exc}") from None
        usage = reply.usage
        return Completion(reply.choices[0].message.content or "", reply.model or self.model,
                          usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                          time.perf_counter() - start)


def load_pretrained(path: str | Path, gguf_file: str | None = None, *, tokenizer: Any = None,
                    model: Any = None) -> tuple[Any, Any]:
    """(tokenizer, model) of the local folder ``path`` (``gguf_file``: a GGUF file in it, dequantised);
    one given is kept.

    Raises:
        ConfigError: the folder or the GGUF file does not exist, or they do not load (one line saying why).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).is_dir():  # never a hub id: no hub is reached
        raise ConfigError(f"model folder {path} does not exist")
    if gguf_file and not (Path(path) / gguf_file).is_file():
        raise ConfigError(f"GGUF file {gguf_file} is not in {path}")
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return (tokenizer or AutoTokenizer.from_pretrained(path, **extra),
                model or AutoModelForCausalLM.from_pretrained(path, **extra))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load a model from {path}{f' ({gguf_file})' if gguf_file else ''}: {why}") from None


class TransformersProvider:
    """A local ``transformers`` causal LM (``gguf_file``: a GGUF file inside ``path``).

    Generation is seeded (``torch.manual_seed(params.seed)`` under a lock), so the same request gives
    the same text; one model serves one request at a time.
    """

    def __init__(self, path: str | Path, gguf_file: str | None = None, *, model: Any = None,
                 tokenizer: Any = None, name: str | None = None, threads: int | None = None,
                 context: int | None = None) -> None:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        if model is None or tokenizer is None:
            tokenizer, model = load_pretrained(path, gguf_file, tokenizer=tokenizer, model=model)
        self.tokenizer, self.model_ = tokenizer, model
        self.model_.eval()
        self.model = name or Path(gguf_file or path).name
        self.context = context or int(getattr(self.model_.config, "max_position_embeddings", None) or 1 << 30)
        self.lock = threading.Lock()
        self.generators: dict[str, Any] = {}  # outlines logits processors by JSON schema

    def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Generate; with ``params.json_schema`` the tokens are constrained to the schema (outlines'
        logits processor: the answer is always JSON of that shape, though numeric bounds and
        cross-field rules are left to validation)."""
        import torch

        messages = check_messages(messages)
        start = time.perf_counter()
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        prompt = ids["input_ids"].shape[1]
        room = self.context - prompt
        if room < 1:
            raise ContextLengthError(f"{self.model}: the prompt has {prompt} tokens; the context holds {self.context} "
                                     f"(prompt plus answer)")
        sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p} \
            if params.temperature > 0 else {"do_sample": False}
        with self.lock, torch.no_grad():  # the constraint's processor is shared per schema: reset it under the lock
            if params.json_schema is not None:
                sampling["logits_processor"] = [self._constraint(params.json_schema)]
            torch.manual_seed(params.seed)
            out = self.model_.generate(**ids, max_new_tokens=min(params.max_tokens, room),  # an answer cut at the
                                       # context's end is truncated, like a server's finish_reason "length"
                                       pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                       **sampling)
        new = out[0, prompt:]
        return Completion(self.tokenizer.decode(new, skip_special_tokens=True), self.model, int(prompt),
                          int(new.shape[0]), time.perf_counter() - start)

    def _constraint(self, schema: dict[str, Any]) -> Any:
        """A fresh outlines logits processor for ``schema`` (its compiled index is cached per schema)."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self.generators:
            self.generators[key] = schema_processor(self.model_, self.tokenizer, schema)
        processor = self.generators[key]
        processor.reset()  # the processor tracks each sequence's place in the schema
        return processor


def schema_processor(model: Any, tokenizer: Any, schema: dict[str, Any]) -> Any:
    """outlines' logits processor holding a transformers model's tokens to JSON of ``schema``; call its
    ``reset()`` before each ``generate``. No free whitespace: every token of the answer is then content
    (and small models otherwise drift into runs of spaces)."""
    import outlines
    from outlines.types import JsonSchema

    return outlines.Generator(outlines.from_transformers(model, tokenizer),
                              JsonSchema(schema, whitespace_pattern="")).logits_processor


class CachedProvider:
    """``provider`` with an on-disk answer cache (one JSON line per answer in ``path``)."""

    def __init__(self, provider: Provider, path: str | Path) -> None:
        self.provider, self.path = provider, Path(path)
        self.model = provider.model
        self.lock = threading.Lock()
        self.answers: dict[str, dict[str, Any]] = {}
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                self.answers[entry["key"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                if number < len(lines):  # only a torn last line (a crash mid-write) is forgiven
                    raise ConfigError(f"LLM cache {self.path} line {number} is corrupt") from None

    @staticmethod
    def key(model: str, messages: Sequence[Message], params: GenerationParams) -> str:
        text = json.dumps([model, check_messages(messages), params.model_dump()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        key = self.key(self.model, messages, params)
        with self.lock:
            hit = self.answers.get(key)
        if hit is not None:
            return Completion(hit["text"], hit["model"], hit["prompt_tokens"], hit["completion_tokens"], 0.0, True)
        completion = self.provider.complete(messages, params)
        entry = {"key": key, "text": completion.text, "model": completion.model,
                 "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
        with self.lock:
            self.answers[key] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:  # append-only: a crash loses at most the answer being written
                f.write(json.dumps(entry) + "\n")
        return completion


def bounded_map(function: Callable[[Any], Any], items: Sequence[Any], concurrency: int) -> list[Any]:
    """``[function(x) for x in items]`` with at most ``concurrency`` calls in flight, results in order."""
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be in [1, {MAX_CONCURRENCY}], got {concurrency}")
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(function, items))


def complete_many(provider: Provider, requests: Sequence[tuple[Sequence[Message], GenerationParams]], *,
                  concurrency: int = 4, meter: Meter | None = None,
                  on_done: Callable[[int], None] | None = None) -> list[Completion]:
    """Every request through ``provider`` with at most ``concurrency`` in flight, answers in order."""
    meter = meter or Meter()

    def one(index: int) -> Completion:
        messages, params = requests[index]
        completion = meter.add(provider.complete(messages, params))
        if on_done is not None:
            on_done(index)
        return completion

    return bounded_map(one, range(len(requests)), concurrency)
