"""An LLM lab in the negotiation economy: each step one structured action, chosen by a model.

The prompt is the one the SFT data uses (:func:`mecharena.negotiation.sft.prompt`: the rules and the
action kinds, then the observation as JSON), so a model fine-tuned on ``negotiate sft-data`` plays
here unchanged. The model answers a :class:`NegotiationChoice`, the LLM-facing form of a
negotiation action: ``kind`` first, then every field required, flat (a constrained decoder held to
the typed actions' union of optional fields may answer ``{}``, or fields in any order). The choice
converts to the typed action of its kind; fields that kind does not take are ignored. An answer
that stays invalid after one repair, or a model that fails, waits (``{"kind": "wait"}``), counted
in :attr:`LLMNegotiator.tally`. Every decision's prompt, answers and action are kept in
:attr:`LLMNegotiator.notes`.
"""

import json
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.llm.config import shared_provider
from mecharena.llm.providers import GenerationParams, Provider
from mecharena.llm.structured import Tally, ask, parse
from mecharena.negotiation.action import KINDS, WAIT, Action, parse_action

MAX_ID = 999  # block, offer, coalition, lab and job ids in a choice
MAX_LIST = 4
DIGITS = {"maxDigits": 3}  # outlines bounds an integer's digits (not its value): ids stay short

class NegotiationChoice(StrictModel):
    """One action, flat. ``target`` is the lab (offer, pitch, message), the offer (counter, accept,
    reject), the block (reserve, release, allocate) or the coalition (commit, leave) the kind acts
    on; ``job`` is -1 for none; ``give`` lists blocks given (offer, counter), committed (commit) or
    the members of a new coalition, which share its credit equally (form_coalition); ``payment``
    is the offer's payment or the funds committed.

    >>> NegotiationChoice(kind="accept", target=3, job=-1, give=[], want=[], payment="0", text="").action()
    AcceptAction(kind='accept', offer=3, job=None)
    """

    kind: Literal[KINDS]
    target: int = Field(ge=-1, le=MAX_ID, json_schema_extra=DIGITS)
    job: int = Field(ge=-1, le=MAX_ID, json_schema_extra=DIGITS)
    give: list[Annotated[int, Field(json_schema_extra=DIGITS)]] = Field(max_length=MAX_LIST)
    want: list[Annotated[int, Field(json_schema_extra=DIGITS)]] = Field(max_length=MAX_LIST)
    # A decimal string: outlines bounds a string's pattern, not a number's length.
    payment: str = Field(pattern=r"^-?[0-9]{1,3}(\.[0-9]{1,2})?$", description="money, e.g. 5 or -2.5")
    text: str = Field(max_length=120)

    @model_validator(mode="after")
    def _ids(self) -> "NegotiationChoice":
        if any(not 0 <= i <= MAX_ID for i in (*self.give, *self.want)):
            raise ValueError(f"give and want must list ids in [0, {MAX_ID}], got {self.give} and {self.want}")
        return self

    @classmethod
    def of(cls, action: Action) -> "NegotiationChoice":
        """The choice that converts back to ``action`` (claims are dropped; a new coalition's shares become
        equal, as :meth:`action` makes them; a payment is kept to the choice's two decimals, at most 999.99).

        >>> NegotiationChoice.of(parse_action({"kind": "reserve", "block": 2, "job": 0})).action()
        ReserveAction(kind='reserve', block=2, job=0)
        """
        a = action.model_dump()
        target = next((a[f] for f in ("to", "offer", "block", "coalition") if a.get(f) is not None), -1)
        give = a.get("give", a.get("blocks", a.get("members", [])))
        money = min(max(float(a.get("payment", a.get("funds", 0.0))), -999.99), 999.99)
        return cls(kind=action.kind, target=target, job=-1 if a.get("job") is None else a["job"], give=give[:MAX_LIST],
                   want=a.get("want", [])[:MAX_LIST], payment=f"{money:.2f}".rstrip("0").rstrip("."),
                   text=a.get("text", "")[:120])

    def action(self) -> Action:
        """The typed action (:func:`mecharena.negotiation.action.parse_action` validates it)."""
        job = None if self.job < 0 else self.job
        lab = None if self.target < 0 else self.target
        money = float(self.payment)
        fields: dict[str, Any] = {
            "offer": {"to": self.target, "give": self.give, "want": self.want, "payment": money, "job": job},
            "counter": {"offer": self.target, "give": self.give, "want": self.want, "payment": money, "job": job},
            "accept": {"offer": self.target, "job": job},
            "reject": {"offer": self.target},
            "pitch": {"to": lab, "text": self.text},
            "reserve": {"block": self.target, "job": job},
            "release": {"block": self.target},
            "form_coalition": {"job": self.job, "members": self.give,
                               "shares": [1.0 / (len(self.give) + 1)] * len(self.give)},
            "commit": {"coalition": self.target, "blocks": self.give, "funds": max(money, 0.0)},
            "leave": {"coalition": self.target},
            "allocate": {"block": self.target, "job": self.job},
            "message": {"to": lab, "text": self.text},
        }.get(self.kind, {})
        return parse_action({"kind": self.kind, **fields})


class LLMNegotiator:
    """A negotiation policy (``act(obs, rng)``) backed by ``provider``."""

    name = "llm"

    def __init__(self, provider: Provider, params: GenerationParams | None = None) -> None:
        self.provider = provider
        self.params = params or GenerationParams(max_tokens=160)
        self.tally = Tally()
        self.notes: list[dict[str, Any]] = []

    def act(self, obs: dict[str, Any], rng: np.random.Generator) -> Action:
        messages = prompt(obs)
        seed = int(rng.integers(2**31))  # the seat's own generator: a seeded episode asks the same questions
        answer = ask(self.provider, messages, NegotiationChoice, self.params.model_copy(update={"seed": seed}),
                     fallback=WAIT, tally=self.tally)
        step = obs["t"]
        self.notes.append({"step": step, "kind": "prompt", "text": json.dumps(messages)})
        self.notes += answer.notes(step=step)
        action, error = (answer.value, None) if answer.outcome in ("fallback", "error") else _convert(answer.value)
        if error is not None:  # a valid choice whose fields make no action of its kind
            self.notes.append({"step": step, "kind": "fallback", "text": error})
        self.notes.append({"step": step, "kind": "action", "text": action.model_dump_json()})
        return action


def _convert(choice: NegotiationChoice) -> tuple[Action, str | None]:
    """The typed action, or a wait and why (a choice whose fields do not make an action of its kind)."""
    try:
        return choice.action(), None
    except ConfigError as exc:
        return WAIT, f"{choice.kind}: {exc}"


def choice_action(text: str) -> tuple[Any, bool]:
    """The typed action in a model's answer and whether it is one; an answer that is not (not a
    :class:`NegotiationChoice`, or fields that make no action of its kind) comes back as a malformed
    action, ``{"kind": "invalid"}``, which a non-strict env plays as its invalid-action fine."""
    choice, _ = parse(NegotiationChoice, text)
    action, error = (None, "") if choice is None else _convert(choice)
    return (action, True) if action is not None and error is None else ({"kind": "invalid"}, False)


def prompt(obs: dict[str, Any]) -> list[dict[str, str]]:
    """The SFT prompt, with the choice's flat form explained."""
    from mecharena.negotiation.sft import prompt as sft_prompt

    system, user = sft_prompt(obs)
    return [{"role": "system", "content": system["content"] + " " + (NegotiationChoice.__doc__ or "").split(">>>")[0]},
            user]


def make_negotiation_policy(spec: str) -> Any:
    """:func:`mecharena.negotiation.policies.make_policy`, plus ``llm:CONFIG`` (a provider config file)."""
    from mecharena.negotiation.policies import make_policy

    if not spec.startswith("llm:"):
        return make_policy(spec)
    config, provider = shared_provider(spec.removeprefix("llm:"))
    return LLMNegotiator(provider, config.params())


__all__ = ["LLMNegotiator", "NegotiationChoice", "choice_action", "make_negotiation_policy", "prompt"]
