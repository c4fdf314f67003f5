"""Structured output: every LLM action is a Pydantic model.

:func:`ask` sends the request with the model's JSON schema (constrained decoding where the
provider supports it), takes the first JSON object in the answer, validates it, asks once more
with the validation error when it fails (one repair), and falls back to a given default when the
repair fails too. :class:`Tally` counts each outcome: the invalid-output rate is a metric.
"""

import json
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mecharena.core.config import explain
from mecharena.llm.providers import Completion, GenerationParams, Message, Provider

Model = TypeVar("Model", bound=BaseModel)


@dataclass
class Tally:
    """Outcomes of structured requests (thread-safe)."""

    valid: int = 0  # valid at the first answer
    repaired: int = 0  # valid after one repair
    fallback: int = 0  # invalid twice: the default was used
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def requests(self) -> int:
        return self.valid + self.repaired + self.fallback

    @property
    def invalid_rate(self) -> float:
        """Share of first answers that did not validate."""
        return (self.repaired + self.fallback) / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "valid": self.valid, "repaired": self.repaired,
                "fallback": self.fallback, "invalid_rate": self.invalid_rate}


@dataclass(frozen=True, slots=True)
class Answer:
    """A structured answer and how it was obtained."""

    value: Any  # the validated model instance (the fallback when ``outcome`` is "fallback")
    outcome: str  # valid | repaired | fallback
    completions: tuple[Completion, ...]
    error: str | None = None  # the last validation error


def first_json_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text`` (models often wrap JSON in prose or code fences)."""
    start = text.find("{")
    while start >= 0:
        try:
            _, end = json.JSONDecoder().raw_decode(text[start:])
            return text[start:start + end]
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    return None


def parse(model: type[Model], text: str) -> tuple[Model | None, str | None]:
    """(instance, None) if ``text`` holds a JSON object valid for ``model``, else (None, why)."""
    found = first_json_object(text)
    if found is None:
        return None, "the answer holds no JSON object"
    try:
        return model.model_validate_json(found), None
    except ValidationError as exc:
        return None, explain(model, exc) if hasattr(model, "allowed") else str(exc)


def schema_prompt(model: type[BaseModel]) -> str:
    """The instruction that states the answer's JSON schema."""
    return ("Answer with one JSON object and nothing else. It must follow this JSON schema:\n"
            + json.dumps(model.model_json_schema(), separators=(",", ":")))


def ask(provider: Provider, messages: list[Message], model: type[Model], params: GenerationParams, *,
        fallback: Model, tally: Tally | None = None) -> Answer:
    """One structured request with one repair and a counted fallback (see the module docstring)."""
    tally = tally or Tally()
    constrained = params.model_copy(update={"json_schema": model.model_json_schema()})
    first = provider.complete(messages, constrained)
    value, error = parse(model, first.text)
    if value is not None:
        tally.count("valid")
        return Answer(value, "valid", (first,))
    repair = [*messages, {"role": "assistant", "content": first.text},
              {"role": "user", "content": f"That answer is invalid: {error}. {schema_prompt(model)}"}]
    second = provider.complete(repair, constrained)
    value, error = parse(model, second.text)
    if value is not None:
        tally.count("repaired")
        return Answer(value, "repaired", (first, second))
    tally.count("fallback")
    return Answer(fallback, "fallback", (first, second), error)
