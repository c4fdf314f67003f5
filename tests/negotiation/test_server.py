"""The OpenEnv shell through FastAPI's TestClient: WebSocket sessions, bad actions as errors."""

import json

import pytest

pytest.importorskip("openenv")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from mecharena.negotiation.env import NegotiationEnv
from mecharena.negotiation.server import build_app, environment_class


@pytest.fixture(scope="module")
def client():
    with TestClient(build_app("market_round")) as c:
        yield c


def _send(ws, kind, data=None):
    ws.send_text(json.dumps({"type": kind, **({"data": data} if data is not None else {})}))
    return json.loads(ws.receive_text())


def test_a_websocket_session_matches_the_local_env(client):
    local = NegotiationEnv("market_round")
    first = local.reset(seed=3)
    actions = [{"kind": "wait"}, {"kind": "pitch", "text": "hi"}, {"kind": "wait"}]
    with client.websocket_connect("/ws") as ws:
        reply = _send(ws, "reset", {"seed": 3})
        assert reply["type"] == "observation" and reply["data"]["observation"]["jobs"] == first["jobs"]
        for action in actions:
            reply = _send(ws, "step", action)
            obs, reward, _, _ = local.step(action)
            assert reply["data"]["reward"] == reward and reply["data"]["observation"]["t"] == obs["t"]
            assert reply["data"]["observation"]["budget"] == obs["budget"]
        state = _send(ws, "state")
        assert state["data"]["seed"] == 3 and state["data"]["step_count"] == 3 and state["data"]["task"] == "market_round"


def test_bad_actions_come_back_as_errors_and_the_session_goes_on(client):
    with client.websocket_connect("/ws") as ws:
        _send(ws, "reset", {"seed": 1})
        reply = _send(ws, "step", {"kind": "reserve", "block": 999})
        assert reply["type"] == "error" and reply["data"]["message"].startswith("block must name a block in [0, ")
        reply = _send(ws, "step", {"kind": "message", "to": 1, "text": "x" * 600})
        assert "text must be a str of at most 500 characters" in reply["data"]["message"]
        reply = _send(ws, "step", {"kind": "bribe"})
        assert reply["data"]["message"].startswith("kind must be one of offer, counter")
        reply = _send(ws, "step", {"kind": "wait"})
        assert reply["type"] == "observation" and reply["data"]["observation"]["t"] == 1


def test_reset_can_pick_the_task_and_judge(client):
    with client.websocket_connect("/ws") as ws:
        reply = _send(ws, "reset", {"seed": 0, "task": "coalition_market", "judge": True})
        assert reply["data"]["observation"]["task"] == "coalition_market"
        reply = _send(ws, "step", {"kind": "pitch", "text": "job 0", "claims": []})
        judged = reply["data"]["metadata"]["judge"]
        assert len(judged) >= 1 and judged[0]["truth"] == 0.5 and judged[0]["specificity"] == 0.0


def test_environment_class_is_an_openenv_environment():
    from openenv.core.env_server.interfaces import Environment

    cls = environment_class()
    assert issubclass(cls, Environment)
    env = cls(task="single_trade")
    observation = env.reset(seed=0)
    assert observation.t == 0 and observation.task == "single_trade"
