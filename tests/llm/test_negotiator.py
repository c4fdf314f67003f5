"""An LLM lab in the negotiation economy: structured actions, fallbacks, the CLI."""

import json

import numpy as np
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.llm.negotiator import LLMNegotiator
from mecharena.negotiation.action import FormCoalitionAction, OfferAction, WaitAction
from tests.llm.test_structured import Scripted


def choice(kind: str, **fields) -> str:
    return json.dumps({"kind": kind, "target": -1, "job": -1, "give": [], "want": [], "payment": "0", "text": "",
                       **fields})


def test_choices_become_typed_actions_and_invalid_ones_wait():
    offer = choice("offer", target=1, want=[2], payment="3.5", job=0)
    coalition = choice("form_coalition", job=2, give=[1, 2])
    policy = LLMNegotiator(Scripted(offer, coalition, choice("accept"), '{"kind": "teleport"}', "not an action"))
    obs = {"lab": 0, "t": 4}
    act = [policy.act(obs, np.random.default_rng(0)) for _ in range(3)]
    assert act[0] == OfferAction(to=1, give=[], want=[2], payment=3.5, job=0)
    assert act[1] == FormCoalitionAction(job=2, members=[1, 2], shares=[1 / 3, 1 / 3])  # equal shares, owner too
    assert isinstance(act[2], WaitAction)  # accept needs an offer id: the typed action refuses -1
    assert isinstance(policy.act(obs, np.random.default_rng(0)), WaitAction)  # invalid twice: it waits
    assert (policy.tally.valid, policy.tally.fallback) == (3, 1)
    kinds = [n["kind"] for n in policy.notes]
    assert kinds == ["prompt", "response", "action"] * 2 + ["prompt", "response", "fallback", "action"] \
        + ["prompt", "response", "response", "fallback", "action"]
    assert "accept: offer must be" in policy.notes[8]["text"]


def test_an_llm_lab_plays_a_whole_episode(tiny_model_dir, tmp_path):
    """A local model (random weights, constrained to the action union) plays every step of an episode
    through ``negotiate play --policy llm:CONFIG``; its answers and the episode's transcript are written."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"backend": "transformers", "path": str(tiny_model_dir), "model": "tiny",
                                  "max_tokens": 400}))
    result = CliRunner().invoke(app, ["negotiate", "play", "--task", "single_trade", "--policy", f"llm:{config}",
                                      "--seed", "1", "--transcript", str(tmp_path / "ep.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    tally = summary["structured_output"]
    assert tally["requests"] == summary["steps"] and tally["error"] == 0
    assert tally["valid"] + tally["repaired"] > 0  # the model's own actions, not only the fallback
    traces = [json.loads(line) for line in (tmp_path / "ep.traces.jsonl").read_text().splitlines()]
    assert sum(n["kind"] == "action" for n in traces) == summary["steps"]
