"""Structured output: parse, one repair with the validation error, a counted fallback."""

import json
import logging

import pytest

from mecharena.designer.action import RULES, MechanismAction
from mecharena.llm.providers import Completion, GenerationParams, ProviderError
from mecharena.llm.structured import Tally, ask, first_json_object, parse

DEFAULT = MechanismAction()


class Scripted:
    """Answers from a list, recording what it was asked (the repair loop under test, not a model)."""

    model = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers, self.asked = list(answers), []

    def complete(self, messages, params):
        self.asked.append((messages, params))
        return Completion(self.answers.pop(0), self.model, 1, 1, 0.0)


def test_first_json_object_skips_prose_and_broken_braces():
    assert first_json_object('Sure! ```json\n{"rule": "vcg"}\n``` done') == '{"rule": "vcg"}'
    assert first_json_object('{oops {"a": {"b": 1}} tail') == '{"a": {"b": 1}}'
    assert first_json_object("no json here") is None


def test_parse_names_the_invalid_field():
    value, error = parse(MechanismAction, '{"rule": "vcg", "reserve": 0.2}')
    assert value == MechanismAction(rule="vcg", reserve=0.2) and error is None
    value, error = parse(MechanismAction, '{"rule": "english"}')
    assert value is None and error.startswith("rule must be one of 'first_price'")


def test_valid_repaired_and_fallback_are_counted():
    tally = Tally()
    valid = ask(Scripted('{"rule": "vcg"}'), [{"role": "user", "content": "pick"}], MechanismAction,
                GenerationParams(), fallback=DEFAULT, tally=tally)
    assert valid.outcome == "valid" and valid.value.rule == "vcg"
    provider = Scripted('{"rule": "english"}', 'Fixed: {"rule": "pay_as_bid"}')
    repaired = ask(provider, [{"role": "user", "content": "pick"}], MechanismAction, GenerationParams(),
                   fallback=DEFAULT, tally=tally)
    assert repaired.outcome == "repaired" and repaired.value.rule == "pay_as_bid"
    repair_messages, params = provider.asked[1]
    assert "That answer is invalid: rule must be one of" in repair_messages[-1]["content"]
    assert repair_messages[-2] == {"role": "assistant", "content": '{"rule": "english"}'}
    assert params.json_schema == MechanismAction.model_json_schema()  # constrained decoding is requested
    failed = ask(Scripted("nothing", '{"reserve": 9}'), [{"role": "user", "content": "pick"}], MechanismAction,
                 GenerationParams(), fallback=DEFAULT, tally=tally)
    assert failed.outcome == "fallback" and failed.value is DEFAULT and "reserve must be" in failed.error
    assert tally.as_dict() == {"requests": 3, "valid": 1, "repaired": 1, "fallback": 1, "error": 0,
                               "invalid_rate": pytest.approx(2 / 3), "error_rate": 0.0}


class Failing:
    model = "failing"

    def complete(self, messages, params):
        raise ProviderError("failing: the server answered 500: boom")


def test_a_model_that_fails_falls_back_at_once_counted_and_logged(caplog):
    tally = Tally()
    with caplog.at_level(logging.WARNING, logger="mecharena.llm"):
        answer = ask(Failing(), [{"role": "user", "content": "pick"}], MechanismAction, GenerationParams(),
                     fallback=DEFAULT, tally=tally)
    assert answer.outcome == "error" and answer.value is DEFAULT and answer.completions == ()
    assert "answered 500" in answer.error and "unavailable (the model failed)" in caplog.text
    assert tally.as_dict()["error"] == 1 and tally.error_rate == 1.0 and tally.invalid_rate == 0.0


def test_llm_designer_reads_the_observation_and_falls_back_to_the_mechanism_in_force():
    import numpy as np

    from mecharena.designer.env import DesignerEnv
    from mecharena.llm.designer import DesignerChoice, LLMDesignerPolicy, mechanism_of, prompt

    env = DesignerEnv(stage=4)
    env.reset(seed=3)
    env.step({"rule": "pay_as_bid", "reserve": 0.15, "winner_identity": True, "collusion_penalty": 1.5,
              "coalition": "penalize_confirmed"})
    vector = env.vector()
    assert mechanism_of(vector) == env.mechanism  # the vector round-trips the mechanism in force
    messages = prompt(vector)
    assert "Stage 4, step 1 of 25" in messages[1]["content"] and '"rule":"pay_as_bid"' in messages[1]["content"]
    vcg = DesignerChoice.of(MechanismAction(rule="vcg", competing_bids=True)).model_dump_json()
    assert '"reserve":0.0' in vcg and '"collusion_penalty":0.0' in vcg  # every field, on the grids
    policy = LLMDesignerPolicy(Scripted(vcg, '{"rule": "vcg"}', "still junk", "junk", "junk"), concurrency=1)
    chosen = policy.decide(np.stack([vector, vector]))
    assert [RULES[r] for r in chosen.rule] == ["vcg", "pay_as_bid"]  # the second answer fell back
    assert policy.tally.as_dict()["fallback"] == 1 and policy.tally.valid == 1
    assert policy.act(env.observation()).rule == env.mechanism.rule  # the script is spent: "junk" falls back


def test_designer_choice_snaps_to_its_grids_and_rejects_values_off_them():
    from mecharena.llm.designer import DesignerChoice, parse_choice

    choice = DesignerChoice.of(MechanismAction(rule="pay_as_bid", reserve_change=0.12, shill_penalty=1.3), 0.5)
    assert (choice.reserve, choice.shill_penalty) == (0.6, 1.5)  # 0.5 + 0.12 -> 0.6; 1.3 -> 1.5
    assert parse_choice(choice.model_dump_json()) == (choice.action(), None)
    off = choice.model_dump() | {"reserve": 0.13}
    action, error = parse_choice(json.dumps(off))
    assert action is None and error.startswith("reserve must be one of 0.0, 0.05")
    action, error = parse_choice('{"rule": "vcg"}')  # the choice requires every field
    assert action is None and "reserve" in error


def test_an_llm_designer_eval_on_a_stratified_subset_reports_every_decision():
    """designer eval --populations K: K of the 20 populations, and a progress tick per model decision."""
    from rich.console import Console

    from mecharena.cli.designer import designer_eval
    from mecharena.designer import core
    from mecharena.designer.evaluate import stratified
    from mecharena.llm.designer import DesignerChoice, LLMDesignerPolicy

    vcg = DesignerChoice.of(MechanismAction(rule="vcg")).model_dump_json()
    policy = LLMDesignerPolicy(Scripted(*[vcg] * (3 * core.HORIZON)), concurrency=2)
    totals, ticks = [], []

    def progress(total):
        totals.append(total)
        return lambda: ticks.append(1)

    console = Console(record=True, width=200)
    assert designer_eval("llm:any", 4, 1, 0, 3, True, console, factory=lambda *_, **__: policy, progress=progress) == 0
    result = json.loads(console.export_text())
    assert result["populations"] == stratified(4, 3) and result["structured_output"]["valid"] == 3 * core.HORIZON
    assert totals == [3 * core.HORIZON] and len(ticks) == 3 * core.HORIZON
