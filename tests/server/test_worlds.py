"""The negotiation world through the generic shell and FastAPI's TestClient: WebSocket and HTTP sessions, bad
actions as errors."""

import json

import pytest

pytest.importorskip("openenv")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from mecharena.negotiation.env import NegotiationEnv
from mecharena.server.worlds import negotiation_app, negotiation_environment


@pytest.fixture(scope="module")
def client():
    with TestClient(negotiation_app("market_round")) as c:
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


def test_the_negotiation_environment_is_an_openenv_environment():
    from openenv.core.env_server.interfaces import Environment

    cls = negotiation_environment()
    assert issubclass(cls, Environment)
    env = cls(task="single_trade")
    observation = env.reset(seed=0)
    assert observation.t == 0 and observation.task == "single_trade"


# --- the same shell's HTTP sessions, for a world other than the designer ------------------------------------


def test_http_sessions_play_the_negotiation_economy_like_the_local_env(client):
    local = NegotiationEnv("coalition_market")
    first = local.reset(seed=5)
    created = client.post("/api/sessions", json={"seed": 5, "task": "coalition_market"})
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    assert created.json()["observation"] == json.loads(json.dumps(first))
    for action in ({"kind": "wait"}, {"kind": "pitch", "text": "job 0"}, {"kind": "wait"}):
        body = client.post(f"/api/sessions/{sid}/step", json={"action": action}).json()
        obs, reward, done, _ = local.step(action)
        assert body["reward"] == reward and body["done"] == done
        assert body["observation"] == json.loads(json.dumps(obs))
    got = client.get(f"/api/sessions/{sid}").json()
    assert got["steps"] == 3 and got["observation"]["t"] == 3
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    assert client.get(f"/api/sessions/{sid}").status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    ({"task": "nope"}, "task: unknown task 'nope'"),
    ({"judge": "false"}, "judge must be a bool"),
    ({"opponents": ["nobody"]}, "opponents must name 3 archetypes"),
    ({"opponents": ["nobody"] * 3}, "opponents: "),
    ({"seed": -1}, "seed must be "),
    ({"colour": 1}, "unknown field 'colour'"),
])
def test_a_refused_http_reset_keeps_the_episode(client, body, message):
    sid = client.post("/api/sessions", json={"seed": 2}).json()["session_id"]
    client.post(f"/api/sessions/{sid}/step", json={"action": {"kind": "wait"}})
    before = client.get(f"/api/sessions/{sid}").json()
    refused = client.post(f"/api/sessions/{sid}/reset", json=body)
    assert refused.status_code == 422 and message in refused.json()["detail"]
    assert client.get(f"/api/sessions/{sid}").json() == before
    after = client.post(f"/api/sessions/{sid}/step", json={"action": {"kind": "wait"}}).json()
    assert after["observation"]["t"] == 2  # the episode goes on
    client.delete(f"/api/sessions/{sid}")


def test_bad_http_actions_are_4xx_and_change_nothing(client):
    sid = client.post("/api/sessions", json={"seed": 1}).json()["session_id"]
    before = client.get(f"/api/sessions/{sid}").json()
    bad = client.post(f"/api/sessions/{sid}/step", json={"action": {"kind": "bribe"}})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("kind must be one of offer, counter")
    impossible = client.post(f"/api/sessions/{sid}/step", json={"action": {"kind": "reserve", "block": 999}})
    assert impossible.status_code == 409 and impossible.json()["detail"].startswith("block must name a block in [0, ")
    assert client.get(f"/api/sessions/{sid}").json() == before
    client.delete(f"/api/sessions/{sid}")
