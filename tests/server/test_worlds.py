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


# --- a third world: one seat of the sealed-bid arena ----------------------------------------------------------


@pytest.fixture(scope="module")
def arena():
    from mecharena.server.worlds import arena_app

    with TestClient(arena_app()) as c:
        yield c


FIRST_PRICE = {"mechanism": "first_price", "n_agents": 3, "rounds": 4, "opponents": "truthful:2",
               "information": {"competing_bids": True}}


def test_an_arena_session_plays_the_parallel_env_of_the_same_seed(arena):
    from mecharena.sim.parallel import ArenaConfig, ArenaParallelEnv

    local = ArenaParallelEnv(ArenaConfig(**FIRST_PRICE))
    first, _ = local.reset(seed=7)
    with arena.websocket_connect("/ws") as ws:
        reply = _send(ws, "reset", {"seed": 7, "arena": FIRST_PRICE})
        assert reply["data"]["observation"]["vector"] == first["bidder_0"].astype(float).tolist()
        value = reply["data"]["observation"]["value"]
        for t in range(4):
            reply = _send(ws, "step", {"bid": value / 2})
            obs, rewards, _, truncations, _ = local.step({"bidder_0": [value / 2, 1.0]})
            data = reply["data"]
            assert data["reward"] == rewards["bidder_0"] and data["done"] == truncations["bidder_0"] == (t == 3)
            assert data["observation"]["vector"] == obs["bidder_0"].astype(float).tolist()
            assert data["observation"]["bids"] == obs["bidder_0"][11:14].astype(float).tolist()
            assert min(data["observation"]["bids"]) >= 0  # revealed: the truthful opponents bid their values
            value = data["observation"]["value"]
        over = _send(ws, "step", {"bid": 0.1})
        assert over["type"] == "error" and "the episode is over" in over["data"]["message"]
        state = _send(ws, "state")["data"]
        assert state["seed"] == 7 and state["mechanism"] == "first_price" and state["step_count"] == 4


@pytest.mark.parametrize(("body", "message"), [
    ({"arena": {"n_agents": 3, "opponents": "truthful:1"}}, "arena.opponents must script every seat but bidder_0"),
    ({"arena": {"mechanism": "nope", "opponents": "truthful:2"}}, "arena: unknown mechanism 'nope'"),
    ({"arena": {"opponents": "nobody:2"}}, "arena: unknown"),
    ({"arena": {"rounds": 0}}, "arena.rounds"),
    ({"seed": "3"}, "seed must be "),
])
def test_a_refused_arena_reset_is_422_and_keeps_the_episode(arena, body, message):
    refuse_a_reset(arena, {"seed": 1}, {"bid": 0.2}, body, message)


def refuse_a_reset(client, start: dict, action: dict, body: dict, message: str) -> None:
    """A session started with ``start`` and one ``action`` refuses the reset ``body`` (422 naming ``message``) and
    is the same session after it."""
    sid = client.post("/api/sessions", json=start).json()["session_id"]
    client.post(f"/api/sessions/{sid}/step", json={"action": action})
    before = client.get(f"/api/sessions/{sid}").json()
    refused = client.post(f"/api/sessions/{sid}/reset", json=body)
    assert refused.status_code == 422 and message in refused.json()["detail"], refused.text
    assert client.get(f"/api/sessions/{sid}").json() == before
    client.delete(f"/api/sessions/{sid}")


@pytest.mark.parametrize(("action", "message"), [
    ({"bid": -1}, "action: bid must be "),
    ({"bid": "0.3"}, "action: bid must be "),
    ({"bid": 0.3, "colour": 1}, "unknown field 'colour'"),
])
def test_bad_arena_bids_are_422_over_http_and_errors_over_the_socket(arena, action, message):
    sid = arena.post("/api/sessions", json={"seed": 1}).json()["session_id"]
    response = arena.post(f"/api/sessions/{sid}/step", json={"action": action})
    assert response.status_code == 422 and message in response.json()["detail"]
    with arena.websocket_connect("/ws") as ws:
        _send(ws, "reset", {"seed": 1})
        reply = _send(ws, "step", action)
        assert reply["type"] == "error"
        assert _send(ws, "step", {"bid": 0.3})["data"]["observation"]["round"] == 1  # the session goes on
    arena.delete(f"/api/sessions/{sid}")


# --- a fourth world: the referee on the arena's loop -----------------------------------------------------------

REFEREE_SETTINGS = {"populations": ["truthful:2,adaptive:2"], "mechanisms": ["first_price", "pay_as_bid"],
                    "markets": 16, "rounds": 2, "scored": 1, "horizon": 3}


@pytest.fixture(scope="module")
def referee():
    from mecharena.server.worlds import referee_app

    with TestClient(referee_app()) as c:
        yield c


def test_a_referee_session_plays_the_core_step_for_step(referee):
    from mecharena.designer import arena

    params = arena.make_params(REFEREE_SETTINGS)
    state = arena.reset(params, 5)
    plan = [{"mechanism": "first_price", "config": {"reserve_price": 0.2}, "information": {"competing_bids": True}},
            {"mechanism": "pay_as_bid", "enforcement": {"collusion_penalty": 2.0, "audit_probability": 0.5}},
            {"mechanism": "pay_as_bid", "enforcement": {"collusion_penalty": 2.0, "audit_probability": 0.5}}]
    with referee.websocket_connect("/ws") as ws:
        reply = _send(ws, "reset", {"seed": 5, "settings": REFEREE_SETTINGS})
        assert reply["data"]["observation"]["vector"] == arena.observation(params, state).tolist()
        for t, rules in enumerate(plan):
            data = _send(ws, "step", rules)["data"]
            state, result = arena.step(params, state, arena.parse_rules(params, rules))
            assert data["reward"] == result.reward and data["done"] == (t == 2)
            assert data["observation"]["vector"] == arena.observation(params, state).tolist()
            assert data["observation"]["metadata"] == result.components
        over = _send(ws, "step", plan[0])
        assert over["type"] == "error" and "the episode is over" in over["data"]["message"]


@pytest.mark.parametrize(("body", "message"), [
    ({"settings": {"mechanisms": ["nope"]}}, "settings: unknown mechanism 'nope'"),
    ({"settings": {"mechanisms": ["second_price"], "populations": ["adaptive:3"]}}, "cannot play mechanism"),
    ({"settings": {"markets": 0}}, "settings.markets"),
])
def test_a_refused_referee_reset_is_422_and_keeps_the_episode(referee, body, message):
    refuse_a_reset(referee, {"seed": 1, "settings": REFEREE_SETTINGS}, {"mechanism": "first_price"}, body, message)


@pytest.mark.parametrize(("action", "message"), [
    ({"mechanism": "vcg"}, "mechanism must be one of first_price, pay_as_bid, got 'vcg'"),
    ({"mechanism": "first_price", "config": {"reserve_price": -1}}, "config of first_price: reserve_price"),
    ({"enforcement": {"audit_probability": 2}}, "audit_probability"),
])
def test_bad_rules_are_422_and_change_nothing(referee, action, message):
    sid = referee.post("/api/sessions", json={"seed": 1, "settings": REFEREE_SETTINGS}).json()["session_id"]
    before = referee.get(f"/api/sessions/{sid}").json()
    response = referee.post(f"/api/sessions/{sid}/step", json={"action": action})
    assert response.status_code == 422 and message in response.json()["detail"], response.text
    assert referee.get(f"/api/sessions/{sid}").json() == before
    referee.delete(f"/api/sessions/{sid}")
