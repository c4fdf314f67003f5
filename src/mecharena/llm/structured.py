"""Structured output: every LLM action is a Pydantic model.

:func:`ask` sends the request with the model's JSON schema (constrained decoding where the
provider supports it), takes the first JSON object in the answer, validates it, asks once more
with the validation error when it fails (one repair), and falls back to a given default when the
repair fails too. A model that cannot answer at all (:class:`~mecharena.llm.providers.ProviderError`:
a timeout or server error after the provider's retries, a context-length overflow) falls back
at once. :class:`Tally` counts each outcome: the invalid-output and error rates are metrics; each
fallback is also logged (logger ``mecharena.llm``, level WARNING) with the reason.
"""

import itertools
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mecharena.core.config import explain
from mecharena.llm.providers import Completion, GenerationParams, Message, Provider, ProviderError

Model = TypeVar("Model", bound=BaseModel)
LOG = logging.getLogger("mecharena.llm")


@dataclass
class Tally:
    """Outcomes of structured requests (thread-safe)."""

    valid: int = 0  # valid at the first answer
    repaired: int = 0  # valid after one repair
    fallback: int = 0  # invalid twice: the default was used
    error: int = 0  # the model failed (ProviderError): the default was used
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def requests(self) -> int:
        return self.valid + self.repaired + self.fallback + self.error

    @property
    def invalid_rate(self) -> float:
        """Share of the model's first answers that did not validate (model failures left out)."""
        answered = self.valid + self.repaired + self.fallback
        return (self.repaired + self.fallback) / answered if answered else 0.0

    @property
    def error_rate(self) -> float:
        """Share of requests the model failed to answer."""
        return self.error / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "valid": self.valid, "repaired": self.repaired,
                "fallback": self.fallback, "error": self.error, "invalid_rate": self.invalid_rate,
                "error_rate": self.error_rate}


@dataclass(frozen=True, slots=True)
class Answer:
    """A structured answer and how it was obtained."""

    value: Any  # the validated model instance (the fallback when ``outcome`` is "fallback" or "error")
    outcome: str  # valid | repaired | fallback | error
    completions: tuple[Completion, ...]
    error: str | None = None  # the last validation error, or the provider's error

    def notes(self, response: str = "response", **where: Any) -> list[dict[str, Any]]:
        """Trace rows: each completion (kind ``response``, with its tokens and latency) and, when the
        fallback was used, why (kind ``fallback`` or ``error``); ``where`` (e.g. the step) goes in each."""
        rows = [{**where, "kind": response, "text": c.text, "tokens": c.completion_tokens,
                 "latency_s": round(c.latency_s, 4)} for c in self.completions]
        if self.outcome in ("fallback", "error"):
            rows.append({**where, "kind": self.outcome, "text": self.error or ""})
        return rows


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
    """The instruction that states the answer's keys, in order, and what each allows.

    Compact rather than the raw JSON schema, which would cost a small model more tokens of prompt
    than the rest of it together (decoding itself is held to the full schema where the provider
    can).

    >>> from typing import Literal
    >>> from pydantic import Field
    >>> class Bid(BaseModel):
    ...     rule: Literal["a", "b"]
    ...     bid: float = Field(ge=0, le=2)
    ...     sit_out: bool
    >>> schema_prompt(Bid)
    'Answer with one JSON object and nothing else, with these keys in this order: rule: one of "a", "b"; bid: a number from 0 to 2; sit_out: true or false.'
    """
    schema = model.model_json_schema()
    keys = "; ".join(f"{name}: {_allowed(spec, schema)}" + (f" ({spec['description']})" if "description" in spec else "")
                     for name, spec in schema["properties"].items())
    return f"Answer with one JSON object and nothing else, with these keys in this order: {keys}."


def _allowed(spec: dict[str, Any], root: dict[str, Any]) -> str:
    """What one JSON-schema property allows, in a few words."""
    if "$ref" in spec:
        spec = root["$defs"][spec["$ref"].rsplit("/", 1)[-1]]
        return "an object with keys " + ", ".join(spec.get("properties", {}))
    if "anyOf" in spec:
        return " or ".join(_allowed(option, root) for option in spec["anyOf"])
    if "enum" in spec:
        values = spec["enum"]
        steps = {round(b - a, 9) for a, b in itertools.pairwise(values)} \
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values) else set()
        if len(values) > 4 and len(steps) == 1:
            return f"a number from {values[0]:g} to {values[-1]:g} in steps of {steps.pop():g}"
        return "one of " + ", ".join(json.dumps(v) for v in values)
    kind = spec.get("type")
    if kind == "boolean":
        return "true or false"
    if kind == "null":
        return "null"
    if kind in ("integer", "number"):
        low, high = spec.get("minimum", spec.get("exclusiveMinimum")), spec.get("maximum")
        noun = "an integer" if kind == "integer" else "a number"
        return noun + (f" from {low:g}" if low is not None else "") + (f" to {high:g}" if high is not None else "")
    if kind == "string":
        if "pattern" in spec:
            return f"a string matching {spec['pattern']}"
        return f"text of at most {spec['maxLength']} characters" if "maxLength" in spec else "text"
    if kind == "array":
        most = f" (at most {spec['maxItems']})" if "maxItems" in spec else ""
        return f"a list{most} of {_allowed(spec.get('items', {}), root)}"
    return "a value"


def ask(provider: Provider, messages: list[Message], model: type[Model], params: GenerationParams, *,
        fallback: Model, tally: Tally | None = None) -> Answer:
    """One structured request with one repair and a counted fallback (see the module docstring)."""
    tally = tally or Tally()
    constrained = params.model_copy(update={"json_schema": model.model_json_schema()})
    completions: list[Completion] = []
    error = None
    for attempt in ("valid", "repaired"):
        if completions:  # the repair: the invalid answer and why, then the schema again
            messages = [*messages, {"role": "assistant", "content": completions[-1].text},
                        {"role": "user", "content": f"That answer is invalid: {error}. {schema_prompt(model)}"}]
        try:
            completions.append(provider.complete(messages, constrained))
        except ProviderError as exc:
            return _fall_back(tally, fallback, "error", completions, str(exc))
        value, error = parse(model, completions[-1].text)
        if value is not None:
            tally.count(attempt)
            return Answer(value, attempt, tuple(completions))
    return _fall_back(tally, fallback, "fallback", completions, error)


def _fall_back(tally: Tally, fallback: Any, outcome: str, completions: list[Completion], error: str | None) -> Answer:
    tally.count(outcome)
    LOG.warning("structured output %s, using the fallback: %s", "invalid after one repair" if outcome == "fallback"
                else "unavailable (the model failed)", error)
    return Answer(fallback, outcome, tuple(completions), error)
