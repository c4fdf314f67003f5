"""The OpenEnv server shell against real uvicorn servers on loopback.

Every remote result is compared with a local :class:`DesignerEnv` run with the same seed and
actions: observations, rewards and reward components must be bit-identical (JSON carries a
float's shortest round-trip repr, so nothing is lost on the wire).
"""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytest.importorskip("openenv")
pytest.importorskip("uvicorn")

from mecharena.designer.action import RULES, MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.server.app import MAX_BODY_BYTES, build_app, uvicorn_options
from mecharena.server.shell import SessionLimitError, SessionStore


@contextmanager
def serving(app):
    """``app`` under uvicorn in a thread on a free port; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **uvicorn_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def url():
    with serving(build_app(idle_timeout=60.0, max_sessions=24)) as base:
        yield base


@pytest.fixture(scope="module")
def small_url():
    """Two sessions at most, expiring after 0.5 s idle."""
    with serving(build_app(idle_timeout=0.5, max_sessions=2)) as base:
        yield base


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def actions(seed: int, steps: int) -> list[dict]:
    """A different, valid action sequence for every seed."""
    return [{"rule": RULES[(seed + t) % len(RULES)], "reserve": ((seed * 7 + t) % 10) / 10,
             "competing_bids": (seed + t) % 2 == 0, "collusion_penalty": (t % 4) * 0.5,
             "coalition": ("allow", "penalize_confirmed")[(seed + t) % 2]} for t in range(steps)]


def local_run(seed: int, stage: int, sequence: list[dict]) -> tuple[dict, list[tuple]]:
    env = DesignerEnv(stage=stage)
    first = env.reset(seed=seed)
    return first, [env.step(MechanismAction(**a)) for a in sequence]


def assert_same(remote: dict, local: dict) -> None:
    """Every key of the local observation is in the remote one, bit for bit."""
    for key, value in local.items():
        assert remote[key] == value, f"observation[{key!r}] differs"


# --- OpenEnv's WebSocket protocol ---------------------------------------------------------------


def test_openenv_client_round_trip(url):
    from openenv.core.generic_client import GenericEnvClient

    sequence = actions(3, 4)
    first, steps = local_run(3, 2, sequence)
    with GenericEnvClient(base_url=url).sync() as client:
        result = client.reset(seed=3, stage=2)
        assert_same(result.observation, first)
        assert result.reward is None and result.done is False
        for action, (obs, reward, done, info) in zip(sequence, steps):
            result = client.step(action)
            assert_same(result.observation, obs)
            assert (result.reward, result.done, result.metadata) == (reward, done, info)
        state = client.state()
        assert state["step_count"] == len(sequence) and state["stage"] == 2


def test_sixteen_concurrent_websocket_sessions_are_isolated(url):
    """16 sessions interleave on one server; each matches its own local run exactly."""
    from openenv.core.generic_client import GenericEnvClient

    sessions, steps = 16, 8

    async def drive(seed: int) -> tuple[dict, list]:
        async with GenericEnvClient(base_url=url) as client:
            first = (await client.reset(seed=seed, stage=1 + seed % 5)).observation
            results = []
            for action in actions(seed, steps):
                results.append(await client.step(action))
                await asyncio.sleep(0)  # let the other sessions' messages in between
            return first, results

    async def drive_all():
        return await asyncio.gather(*(drive(seed) for seed in range(sessions)))

    remote = asyncio.run(drive_all())
    for seed, (first, results) in enumerate(remote):
        local_first, local_steps = local_run(seed, 1 + seed % 5, actions(seed, steps))
        assert_same(first, local_first)
        for result, (obs, reward, done, info) in zip(results, local_steps, strict=True):
            assert_same(result.observation, obs)
            assert (result.reward, result.done, result.metadata) == (reward, done, info), f"session {seed}"


def ws_exchange(url: str, messages: list[dict]) -> list[dict]:
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws", 1) + "/ws", max_size=None) as ws:
        replies = []
        for message in messages:
            ws.send(json.dumps(message))
            replies.append(json.loads(ws.recv(timeout=30)))
        return replies


@pytest.mark.parametrize("data, expected", [
    ({"reserve": 0.1, "surprise": 1}, "unknown field 'surprise'"),
    ({"reserve": 5.0}, "reserve must be a finite float in [0, 1.0]"),
    ({"rule": 3}, "rule must be one of"),
    ({"reserve": 0.1, "reserve_change": 0.1}, "not both"),
])
def test_websocket_rejects_a_bad_action_and_keeps_the_episode(url, data, expected):
    sequence = actions(5, 1)
    _, [(obs, reward, _, _)] = local_run(5, 1, sequence)
    _, error, step = ws_exchange(url, [{"type": "reset", "data": {"seed": 5}}, {"type": "step", "data": data},
                                           {"type": "step", "data": sequence[0]}])
    assert error["type"] == "error" and error["data"]["code"] == "VALIDATION_ERROR"
    assert expected in error["data"]["errors"][0]["msg"]
    assert step["type"] == "observation"
    assert_same(step["data"]["observation"], obs)
    assert step["data"]["reward"] == reward


def test_websocket_reset_errors_name_the_field(url):
    replies = ws_exchange(url, [{"type": "reset", "data": {"seed": "x"}}, {"type": "reset", "data": {"stages": 2}}])
    assert "seed must be a finite int" in replies[0]["data"]["message"]
    assert "unknown field 'stages' for ResetRequest" in replies[1]["data"]["message"]


def test_websocket_to_an_unknown_session_is_refused(url):
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws", 1) + "/ws?session_id=no-such-id") as ws:
        reply = json.loads(ws.recv(timeout=30))
    assert reply["data"]["code"] == "SESSION_ERROR" and "Unknown session_id: no-such-id" in reply["data"]["message"]


def test_websocket_message_over_the_limit_closes_the_socket(url):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    # the server may close while the client still sends
    with connect(url.replace("http", "ws", 1) + "/ws", max_size=None) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send(json.dumps({"type": "step", "data": {"pad": "x" * (3 * MAX_BODY_BYTES)}}))
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value  # message too big


def test_stateless_http_step_says_where_to_go(http):
    response = http.post("/step", json={"action": {"reserve": 0.1}})
    assert response.status_code == 409 and "/ws" in response.json()["detail"]
    assert http.post("/reset", json={"seed": 1}).status_code == 200


# --- the session-keyed HTTP API -----------------------------------------------------------------


def test_http_session_matches_a_local_run(http):
    sequence = actions(11, 3)
    first, steps = local_run(11, 3, sequence)
    created = http.post("/api/sessions", json={"stage": 3, "seed": 11})
    assert created.status_code == 201
    sid = created.json()["session_id"]
    assert created.json()["observation"] == first
    for action, (obs, reward, done, info) in zip(sequence, steps):
        body = http.post(f"/api/sessions/{sid}/step", json={"action": action}).json()
        assert body == {"observation": obs, "reward": reward, "done": done, "metadata": info}
    got = http.get(f"/api/sessions/{sid}").json()
    assert got["observation"] == steps[-1][0] and got["steps"] == len(sequence)
    again = http.post(f"/api/sessions/{sid}/reset", json={"seed": 11}).json()
    assert again["observation"] == first and again["reward"] is None
    assert http.delete(f"/api/sessions/{sid}").status_code == 204
    assert http.get(f"/api/sessions/{sid}").status_code == 404


def test_finished_episode_cannot_be_stepped(http):
    sid = http.post("/api/sessions", json={"seed": 2}).json()["session_id"]
    action = {"action": {"reserve": 0.1}}
    done, steps = False, 0
    while not done:
        body = http.post(f"/api/sessions/{sid}/step", json=action).json()
        done, steps = body["done"], steps + 1
        assert steps < 10_000
    before = http.get(f"/api/sessions/{sid}").json()
    refused = http.post(f"/api/sessions/{sid}/step", json=action)
    assert refused.status_code == 409
    assert http.get(f"/api/sessions/{sid}").json() == before
    http.delete(f"/api/sessions/{sid}")


BAD_STEPS = [
    ({"action": {"reserve": 0.1, "surprise": True}}, 422, "unknown field 'surprise'"),
    ({"action": {"reserve": 1.5}}, 422, ("action: reserve must be a finite float in [0, 1.0]", "got 1.5")),
    ({"action": {"reserve": -0.5}}, 422, ("action: reserve must be a finite float in [0, 1.0]", "got -0.5")),
    ({"action": {"reserve": "high"}}, 422, ("action: reserve must be a finite float in [0, 1.0]", "got 'high'")),
    ({"action": {"shill_penalty": [1]}}, 422, "shill_penalty must be"),
    ({"action": {"coalition": "cartel"}}, 422, "coalition must be one of 'allow'"),
    ({"action": 3}, 422, "action must be a dict, got 3"),
    ({"act": {}}, 422, "unknown field 'act' for StepRequest"),
    ([1, 2], 422, "body must be a JSON object"),
    (b"{not json", 400, "body must be JSON"),
    (b'{"action": {"pad": "' + b"x" * (3 * MAX_BODY_BYTES) + b'"}}', 413, f"at most {MAX_BODY_BYTES} bytes"),
]


@pytest.mark.parametrize("body, status, message", BAD_STEPS, ids=[
    "unknown-field", "reserve-above", "reserve-below", "wrong-type", "list-penalty", "unknown-coalition",
    "action-not-object", "unknown-top-field", "body-not-object", "not-json", "several-mb"])
def test_bad_step_is_a_clear_4xx_and_changes_nothing(http, body, status, message):
    sequence = actions(9, 2)
    _, steps = local_run(9, 1, sequence)
    sid = http.post("/api/sessions", json={"seed": 9}).json()["session_id"]
    http.post(f"/api/sessions/{sid}/step", json={"action": sequence[0]})
    before = http.get(f"/api/sessions/{sid}").json()
    if isinstance(body, bytes):
        response = http.post(f"/api/sessions/{sid}/step", content=body, headers={"content-type": "application/json"})
    else:
        response = http.post(f"/api/sessions/{sid}/step", json=body)
    assert response.status_code == status
    for part in (message,) if isinstance(message, str) else message:
        assert part in response.json()["detail"]
    assert http.get(f"/api/sessions/{sid}").json() == before
    # The rejected request did not advance the episode's generator either.
    after = http.post(f"/api/sessions/{sid}/step", json={"action": sequence[1]}).json()
    assert after["observation"] == steps[1][0] and after["reward"] == steps[1][1]
    http.delete(f"/api/sessions/{sid}")


def test_unknown_session_is_404(http):
    for method, path in [("POST", "/step"), ("POST", "/reset"), ("GET", ""), ("DELETE", "")]:
        response = http.request(method, f"/api/sessions/no-such-id{path}", json={"action": {}} if path == "/step" else None)
        assert response.status_code == 404, (method, path)
        assert "unknown session 'no-such-id'" in response.json()["detail"]


def test_bad_reset_is_422_and_changes_nothing(http):
    sid = http.post("/api/sessions", json={"seed": 4}).json()["session_id"]
    before = http.get(f"/api/sessions/{sid}").json()
    for body, message in [({"stage": 9}, ("stage must be a finite int in [1, 5]", "got 9")),
                          ({"seed": -1}, ("seed must be a finite int in [0, 9223372036854775807]", "got -1")),
                          ({"sede": 1}, ("unknown field 'sede'",))]:
        response = http.post(f"/api/sessions/{sid}/reset", json=body)
        assert response.status_code == 422
        assert all(part in response.json()["detail"] for part in message)
    assert http.get(f"/api/sessions/{sid}").json() == before
    assert http.post("/api/sessions", json={"stage": 0}).status_code == 422
    http.delete(f"/api/sessions/{sid}")


# --- /api/design --------------------------------------------------------------------------------


def test_design_returns_the_policys_mechanism(http):
    from mecharena.designer.policies import make_policy

    observation = DesignerEnv(stage=2).reset(seed=0)
    response = http.post("/api/design", json={"policy": "greedy", "stage": 2, "observation": observation})
    assert response.status_code == 200
    expected = make_policy("greedy", stage=2).act(observation)
    assert MechanismAction(**response.json()) == expected


@pytest.mark.parametrize("patch, message", [
    ({"policy": "gredy"}, "policy: "),
    ({"stage": 7}, "stage must be a finite int in [1, 5], got 7"),
    ({"policy": "constant:/etc/passwd"}, "reads a file on the server"),
    ({"policy": "llm:/etc/passwd"}, "reads a file on the server"),
    ({"observation": {"stage": 2}}, "observation: vector is required"),
    ({"observation": {"vector": [0.5] * 3}}, "observation.vector must be"),
    ({"observation": "obs"}, "observation must be a dict"),
])
def test_design_rejects_bad_requests(http, patch, message):
    body = {"policy": "greedy", "stage": 2, "observation": DesignerEnv(stage=2).reset(seed=0), **patch}
    response = http.post("/api/design", json=body)
    assert response.status_code == 422 and message in response.json()["detail"]


def test_the_negotiation_economy_is_served_under_negotiation(url):
    """The same server hosts the bargaining economy's OpenEnv sessions, matching a local env."""
    from websockets.sync.client import connect

    from mecharena.negotiation.env import NegotiationEnv

    local = NegotiationEnv("market_round")
    first = local.reset(seed=2)
    with connect(url.replace("http", "ws") + "/negotiation/ws") as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 2, "task": "market_round"}}))
        reply = json.loads(ws.recv())
        assert reply["data"]["observation"]["jobs"] == first["jobs"]
        ws.send(json.dumps({"type": "step", "data": {"kind": "wait"}}))
        reply = json.loads(ws.recv())
        assert reply["data"]["reward"] == local.step({"kind": "wait"})[1]


# --- limits and timeouts ------------------------------------------------------------------------


def test_session_limit_is_503_and_idle_sessions_expire(small_url):
    with httpx.Client(base_url=small_url, timeout=30) as http:
        ids = [http.post("/api/sessions", json={"seed": s}).json()["session_id"] for s in range(2)]
        full = http.post("/api/sessions", json={})
        assert full.status_code == 503 and "2 of 2 sessions in use" in full.json()["detail"]
        time.sleep(0.8)
        assert http.get(f"/api/sessions/{ids[0]}").status_code == 404
        assert http.post("/api/sessions", json={}).status_code == 201  # the expired slots are free again


def test_idle_websocket_is_closed(small_url):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(small_url.replace("http", "ws", 1) + "/ws") as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        assert json.loads(ws.recv(timeout=30))["type"] == "observation"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1001 and "idle" in closed.value.rcvd.reason


def test_websocket_capacity_is_reported(small_url):
    from openenv.core.generic_client import GenericEnvClient

    async def three():
        clients = [GenericEnvClient(base_url=small_url) for _ in range(3)]
        try:
            for client in clients[:2]:
                await client.connect()
                await client.reset(seed=0)
            await clients[2].connect()
            with pytest.raises(RuntimeError, match="CAPACITY_REACHED"):
                await clients[2].reset(seed=0)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(three())


def test_session_store_expiry_and_limit():
    now = [0.0]
    store = SessionStore(max_sessions=2, idle_timeout=10, clock=lambda: now[0])
    a, b = store.create().id, store.create().id
    with pytest.raises(SessionLimitError, match="2 of 2"):
        store.create()
    now[0] = 8.0
    store.get(a)  # touching restarts the idle clock
    now[0] = 15.0
    assert len(store) == 1 and store.get(a)
    with pytest.raises(KeyError, match="unknown session"):
        store.get(b)


# --- OpenEnv conformance ------------------------------------------------------------------------


def test_openenv_validate_url_passes(url):
    cli = Path(sys.executable).with_name("openenv")
    if not cli.exists():
        pytest.skip("the openenv CLI is not installed next to this interpreter")
    done = subprocess.run([str(cli), "validate", "--url", url, "--json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["standard_profile"] == "openenv-http/1.x"


def runtime_plan() -> dict:
    """A runtime plan for ``openenv validate .`` (the JSON it reads from ``validation.execution.probe_path``):
    a reset to stage 3 with a fixed episode id, then a whole 25-step episode, so ``done`` turns true within the
    plan. The actions cycle every rule, coalition policy, reserve form, information flag and penalty."""
    return {"plan_schema_version": "1",
            "reset": {"episode_id": "openenv-validate-0", "seed": 0, "options": {"stage": 3}},
            "actions": [{"rule": RULES[t % len(RULES)],
                         "coalition": ("allow", "restrict", "penalize_suspected", "penalize_confirmed")[t % 4],
                         **({"reserve": (t % 10) / 10}, {"reserve_change": (-0.1, 0.1)[t % 2]}, {})[t % 3],
                         **({"competing_bids": True, "winner_identity": True, "bid_distribution": True} if t % 2
                            else {}),
                         **({"shill_penalty": 1.0, "withdrawal_penalty": 0.5, "collusion_penalty": 3.0}
                            if t % 5 == 4 else {})} for t in range(25)]}


def test_openenv_runtime_graders_pass(url, tmp_path):
    """openenv's own runtime collector and graders, as ``openenv validate .`` runs them once a provider has
    started the server: rewards inside openenv.yaml's declared range, observations that match ``/schema``, and
    state that keeps the reset's episode id and counts the steps.

    ``openenv validate .`` itself cannot run them here: openenv's one runtime provider builds the Dockerfile
    and runs the image under Docker, so this test replays the same plan against a loopback server instead.
    """
    collector = pytest.importorskip("openenv.validation.runtime.collector",
                                    reason="this openenv build has no runtime collector")
    from openenv.validation import CheckStatus, RewardDeclaration, Subject
    from openenv.validation.graders.runtime.basic import (ObservationSchemaGrader, RewardWellFormedGrader,
                                                         StateContractGrader)
    from openenv.validation.parsers.openenv_yaml import OpenEnvYamlParser
    from openenv.validation.runtime.contracts import RuntimePlan

    root = Path(__file__).resolve().parents[2]
    manifest = OpenEnvYamlParser().parse(root)
    plan = RuntimePlan.model_validate(runtime_plan())  # the sidecar's own schema and size limits
    evidence = collector.collect_runtime_evidence(url, plan, episode_timeout_s=manifest.resources.episode_timeout_s)
    assert evidence.failure_reason is None, evidence.failure_reason
    steps = [json.loads(e.response_json)["data"] for e in evidence.exchanges if e.operation == "step"]
    assert len(steps) == 25 and steps[-1]["done"] is True and not any(s["done"] for s in steps[:-1])

    def grade(manifest) -> dict:
        subject = Subject(root=root, manifest=manifest, image_ref=None, running=None, outputs_dir=tmp_path,
                          runtime_evidence=evidence)
        return {g.check_id: g.run(subject) for g in (RewardWellFormedGrader(), ObservationSchemaGrader(),
                                                     StateContractGrader())}

    results = grade(manifest)
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(results, CheckStatus.PASS), results
    # The graders look at the evidence: a range that the plan's rewards leave fails (not vacuously passing).
    narrow = manifest.model_copy(update={"reward": RewardDeclaration(range=(0.0, 0.1), floor_margin=0.1)})
    assert grade(narrow)["runtime.reward_well_formed"].status is CheckStatus.FAIL


def test_importing_the_server_does_not_import_openenv():
    code = ("import sys, mecharena.server.app, mecharena.benchmarks.serve; "
            "assert not {'openenv', 'gradio', 'fastapi'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_arena_is_served_under_arena(http):
    created = http.post("/arena/api/sessions", json={"seed": 4, "arena": {"mechanism": "first_price", "rounds": 2,
                                                                          "n_agents": 2, "opponents": "truthful:1"}})
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    step = http.post(f"/arena/api/sessions/{sid}/step", json={"action": {"bid": 0.0, "enter": False}}).json()
    assert step["reward"] == 0.0 and step["observation"]["round"] == 1  # sat out: nothing won, nothing paid
    assert http.delete(f"/arena/api/sessions/{sid}").status_code == 204
