"""The LLM designer: a designer policy that reads the observation as text and answers a MechanismAction.

The prompt is built from the flat observation vector alone (so the same policy serves batched
evaluation, ``/api/design`` and a single JSON episode): the stage and supply, the mechanism in
force, the last rounds' outcomes and the operator's proxies. Every answer goes through
:func:`mecharena.llm.structured.ask`; an answer that stays invalid after one repair, or a model
that fails (timeout, server error, context overflow), keeps the mechanism in force (counted in
:attr:`LLMDesignerPolicy.tally`).

The model answers a :class:`DesignerChoice`, the LLM-facing form of
:class:`~mecharena.designer.action.MechanismAction`: every field required, the reserve on a grid
of 0.05 and the fines on a grid of 0.5, so a constrained decoder's schema has no optional fields
and no free-form numbers (with SmolLM2-135M, the full action schema gave fewer valid answers).
"""

import json
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray
from mecharena.designer import core
from mecharena.designer.action import COALITIONS, FLAGS, MAX_PENALTY, MECHANISM_WIDTH, PENALTIES, RULES, MechanismAction
from mecharena.designer.policies import Policy, stack
from mecharena.llm.providers import GenerationParams, Provider, bounded_map
from mecharena.llm.structured import Tally, ask, parse, schema_prompt

SYSTEM = ("You are the designer of a repeated auction market. Each step you choose the rules: the clearing rule, "
          "the reserve price, what bidders are told, fines and the coalition policy. Hidden strategic bidders "
          "adapt to your rules. Your reward is welfare ratio x fairness x participation x stability, each in "
          "[0, 1]: allocate to the bidders who value the items most, keep prices near the competitive level "
          "(cartels push them down, shills and high reserves push them up), keep bidders in the market, and "
          "keep strategies settled.")
RECENT = 4  # rounds of the window shown in the prompt
RESERVES = tuple(round(0.05 * i, 2) for i in range(21))  # the reserve grid, 0..1
FINES = tuple(0.5 * i for i in range(int(MAX_PENALTY * 2) + 1))  # the fine grid, 0..3


class DesignerChoice(StrictModel):
    """The designer's answer as the model writes it (see the module docstring).

    >>> DesignerChoice(rule="vcg", reserve=0.1, reveal_reserve=True, competing_bids=False, winner_identity=False,
    ...                clearing_price=True, bid_distribution=False, shill_penalty=0.0, withdrawal_penalty=0.5,
    ...                collusion_penalty=3.0, coalition="allow").action().withdrawal_penalty
    0.5
    """

    rule: Literal[RULES] = Field(description="clearing rule")
    reserve: Literal[RESERVES] = Field(description="reserve price")
    reveal_reserve: bool
    competing_bids: bool
    winner_identity: bool
    clearing_price: bool
    bid_distribution: bool
    shill_penalty: Literal[FINES]
    withdrawal_penalty: Literal[FINES]
    collusion_penalty: Literal[FINES]
    coalition: Literal[COALITIONS]

    def action(self) -> MechanismAction:
        return MechanismAction(**self.model_dump())

    @classmethod
    def of(cls, action: MechanismAction, current_reserve: float = 0.0) -> "DesignerChoice":
        """``action`` on the grids (the nearest grid points; a reserve change is resolved first)."""
        fields = action.model_dump(exclude={"reserve", "reserve_change"})
        fields["reserve"] = min(RESERVES, key=lambda r: abs(r - action.resolved_reserve(current_reserve)))
        for p in PENALTIES:
            fields[p] = min(FINES, key=lambda f: abs(f - fields[p]))
        return cls(**fields)


def parse_choice(text: str) -> tuple[MechanismAction | None, str | None]:
    """The action in a model's answer: (action, None), or (None, why it is not a :class:`DesignerChoice`)."""
    choice, error = parse(DesignerChoice, text)
    return (None, error) if choice is None else (choice.action(), None)


def mechanism_of(vector: FloatArray) -> MechanismAction:
    """The mechanism in force, read back from an observation vector."""
    m = vector[:MECHANISM_WIDTH]
    at = len(RULES) + 1
    return MechanismAction(
        rule=RULES[int(m[:len(RULES)].argmax())], reserve=float(m[len(RULES)]),
        **{f: bool(m[at + j] > 0.5) for j, f in enumerate(FLAGS)},
        **{p: float(m[at + len(FLAGS) + j] * 3.0) for j, p in enumerate(PENALTIES)},
        coalition=COALITIONS[int(m[at + len(FLAGS) + len(PENALTIES):].argmax())])


def prompt(vector: FloatArray) -> list[dict[str, str]]:
    """Chat messages describing one observation vector (OBSERVATION_WIDTH,)."""
    window = vector[MECHANISM_WIDTH: core.PROXY_COLUMN].reshape(core.WINDOW, len(core.FEATURES))
    context = vector[core.PROXY_COLUMN + len(core.PROXIES):]
    stage = int(np.argmax(context[:5])) + 1
    supply = round(float(context[5]) * 3)
    step = round(float(context[6]) * core.HORIZON)
    proxies = dict(zip(core.PROXIES, vector[core.PROXY_COLUMN: core.PROXY_COLUMN + len(core.PROXIES)], strict=True))
    recorded = window[-RECENT:] if step else window[:0]
    rounds = [[round(float(x), 2) for x in row] for row in recorded]  # a table: names once, not per round
    user = (f"Stage {stage}, step {step} of {core.HORIZON}; {supply} unit(s) for sale each round.\n"
            f"Mechanism in force: {mechanism_of(vector).model_dump_json(exclude_none=True)}\n"
            f"Last rounds (oldest first), one row each, columns {', '.join(core.FEATURES)}: "
            f"{json.dumps(rounds, separators=(',', ':')) if rounds else 'none yet'}\n"
            f"Market signals: {json.dumps({k: round(float(v), 2) for k, v in proxies.items()}, separators=(',', ':'))}\n"
            f"Choose the mechanism for the next step. {schema_prompt(DesignerChoice)}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class LLMDesignerPolicy(Policy):
    """Asks ``provider`` for each observation (at most ``concurrency`` requests in flight)."""

    name = "llm"

    def __init__(self, provider: Provider, params: GenerationParams | None = None, *, concurrency: int = 4) -> None:
        self.provider, self.concurrency = provider, concurrency
        self.params = params or GenerationParams(max_tokens=192)
        self.tally = Tally()
        self.prompts: list[list[dict[str, str]]] = []  # the last batch's prompts
        self.answers: list[Any] = []  # ... and answers (with their completions), for traces
        self.on_decision: Callable[[], None] | None = None  # called after each answer (progress)

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        self.prompts = [prompt(v) for v in vectors]

        def one(row: int) -> Any:
            answer = ask(self.provider, self.prompts[row], DesignerChoice, self.params,
                         fallback=mechanism_of(vectors[row]), tally=self.tally)
            if self.on_decision is not None:
                self.on_decision()
            return answer

        self.answers = bounded_map(one, range(vectors.shape[0]), self.concurrency)
        return stack([a.value.action() if isinstance(a.value, DesignerChoice) else a.value for a in self.answers])

    def notes(self) -> list[dict[str, Any]]:
        """The last batch's prompts, answers, fallbacks and chosen mechanisms (kinds as in
        :mod:`mecharena.llm.agent`: prompt, response, fallback, error, action)."""
        rows = []
        for row, (messages, answer) in enumerate(zip(self.prompts, self.answers, strict=True)):
            rows.append({"row": row, "kind": "prompt", "text": json.dumps(messages)})
            rows += answer.notes(row=row)
            chosen = answer.value.action() if isinstance(answer.value, DesignerChoice) else answer.value
            rows.append({"row": row, "kind": "action", "text": chosen.model_dump_json(exclude_none=True)})
        return rows

    def explain(self, observation: dict[str, Any]) -> list[str]:
        return [(f"asks {self.provider.model}: the prompt describes the mechanism in force, the last {RECENT} "
                 f"rounds and the market signals; invalid answers so far: {self.tally.invalid_rate:.0%}")]


def make_designer_policy(spec: str, stage: int = 1, *, seed: int = 0) -> Policy:
    """:func:`mecharena.designer.policies.make_policy`, plus ``llm:CONFIG`` (a provider config file)."""
    from mecharena.designer.policies import make_policy

    if not spec.startswith("llm:"):
        return make_policy(spec, stage, seed=seed)
    from mecharena.llm.config import shared_provider

    config, provider = shared_provider(spec.removeprefix("llm:"))
    return LLMDesignerPolicy(provider, config.params(), concurrency=config.concurrency)


__all__ = ["DesignerChoice", "LLMDesignerPolicy", "make_designer_policy", "mechanism_of", "parse_choice", "prompt"]
