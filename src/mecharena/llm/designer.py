"""The LLM designer: a designer policy that reads the observation as text and answers a MechanismAction.

The prompt is built from the flat observation vector alone (so the same policy serves batched
evaluation, ``/api/design`` and a single JSON episode): the stage and supply, the mechanism in
force, the last rounds' outcomes and the operator's proxies. Every answer goes through
:func:`mecharena.llm.structured.ask`; an answer that stays invalid after one repair keeps the
mechanism in force (counted in :attr:`LLMDesignerPolicy.tally`).
"""

import json
from typing import Any

import numpy as np

from mecharena.core.types import FloatArray
from mecharena.designer import core
from mecharena.designer.action import COALITIONS, FLAGS, MECHANISM_WIDTH, PENALTIES, RULES, MechanismAction
from mecharena.designer.policies import Policy, stack
from mecharena.llm.providers import GenerationParams, Provider, bounded_map
from mecharena.llm.structured import Tally, ask, schema_prompt

SYSTEM = ("You are the designer of a repeated auction market. Each step you choose the rules: the clearing rule, "
          "the reserve price, what bidders are told, fines and the coalition policy. Hidden strategic bidders "
          "adapt to your rules. Your reward is welfare ratio x fairness x participation x stability, each in "
          "[0, 1]: allocate to the bidders who value the items most, keep prices near the competitive level "
          "(cartels push them down, shills and high reserves push them up), keep bidders in the market, and "
          "keep strategies settled.")
RECENT = 4  # rounds of the window shown in the prompt


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
    rounds = [{f: round(float(x), 3) for f, x in zip(core.FEATURES, row, strict=True)} for row in recorded]
    user = (f"Stage {stage}, step {step} of {core.HORIZON}; {supply} unit(s) for sale each round.\n"
            f"Mechanism in force: {mechanism_of(vector).model_dump_json(exclude_none=True)}\n"
            f"Last rounds (oldest first): {json.dumps(rounds) if rounds else 'none yet'}\n"
            f"Market signals: {json.dumps({k: round(float(v), 3) for k, v in proxies.items()})}\n"
            f"Choose the mechanism for the next step. {schema_prompt(MechanismAction)}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class LLMDesignerPolicy(Policy):
    """Asks ``provider`` for each observation (at most ``concurrency`` requests in flight)."""

    name = "llm"

    def __init__(self, provider: Provider, params: GenerationParams | None = None, *, concurrency: int = 4) -> None:
        self.provider, self.concurrency = provider, concurrency
        self.params = params or GenerationParams(max_tokens=192)
        self.tally = Tally()
        self.answers: list[Any] = []  # the last batch's answers (with their completions), for the ledger

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        def one(row: int) -> Any:
            return ask(self.provider, prompt(vectors[row]), MechanismAction, self.params,
                       fallback=mechanism_of(vectors[row]), tally=self.tally)

        self.answers = bounded_map(one, range(vectors.shape[0]), self.concurrency)
        return stack([a.value for a in self.answers])

    def explain(self, observation: dict[str, Any]) -> list[str]:
        return [(f"asks {self.provider.model}: the prompt describes the mechanism in force, the last {RECENT} "
                 f"rounds and the market signals; invalid answers so far: {self.tally.invalid_rate:.0%}")]


def make_designer_policy(spec: str, stage: int = 1, *, seed: int = 0) -> Policy:
    """:func:`mecharena.designer.policies.make_policy`, plus ``llm:CONFIG`` (a provider config file)."""
    from mecharena.designer.policies import make_policy

    if not spec.startswith("llm:"):
        return make_policy(spec, stage, seed=seed)
    from mecharena.llm.config import build_provider, load_config

    config = load_config(spec.removeprefix("llm:"))
    return LLMDesignerPolicy(build_provider(config), config.params(), concurrency=config.concurrency)


__all__ = ["LLMDesignerPolicy", "make_designer_policy", "mechanism_of", "prompt"]
