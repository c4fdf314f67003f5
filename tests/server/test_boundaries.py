"""Every boundary of ``mecharena serve`` answers bad input with a 4xx naming the field, never a 500.

Real uvicorn servers on loopback (``serving`` from ``test_app``); the WebSocket client is the
``websockets`` package's. Each test sends what a careless or hostile client would.
"""

import asyncio
import json
import os
import time

import httpx
import pytest

pytest.importorskip("openenv")
pytest.importorskip("uvicorn")

from websockets.sync.client import connect

from mecharena.core.errors import ConfigError
from mecharena.server.app import build_app, policy_file, serve_token
from mecharena.server.mcp import MAX_WORK, build_server
from tests.server.test_app import serving

HUGE = b'{"seed": ' + b"9" * 5000 + b"}"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    policies = tmp_path_factory.mktemp("policies")
    (policies / "inside.json").write_text("{}")
    with serving(build_app(idle_timeout=60.0, max_sessions=8, policy_files=True, policy_dir=str(policies),
                           design_timeout=0.5)) as base:
        yield base


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def ws_url(url: str, path: str = "/ws") -> str:
    return url.replace("http://", "ws://") + path


# ---- 5. out-of-range integers, huge integers, NaN, the mounted negotiation app -------------------------------


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/sessions", {"seed": 2**63}, "seed"),
    ("/api/sessions", {"population": 2**64}, "population"),
    ("/reset", {"seed": 2**63}, "seed"),
    ("/reset", {"seed": 10**200}, "seed"),
    ("/negotiation/reset", {"seed": 2**63}, "seed"),
])
def test_seeds_beyond_64_bits_are_422_naming_the_field(http, path, body, field):
    response = http.post(path, json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{field} must be ") and "Python int" not in detail
    assert len(detail) < 200  # never the whole integer


@pytest.mark.parametrize("path", ["/api/sessions", "/reset", "/negotiation/reset", "/api/design"])
def test_a_5000_digit_integer_in_a_body_is_a_4xx(http, path):
    response = http.post(path, content=HUGE, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    assert "9999999999" not in response.text


def test_nan_in_a_stateless_step_is_422_with_valid_json(http):
    response = http.post("/step", content=b'{"action": {"reserve": NaN}}', headers=JSON)
    assert response.status_code == 422
    assert "reserve must be a finite float" in json.dumps(response.json())


def test_negotiation_app_answers_4xx(http):
    response = http.post("/negotiation/reset", json={"task": "nope"})
    assert response.status_code == 422 and response.json()["detail"].startswith("task: unknown task 'nope'")
    for action in ({"kind": "wait"}, {"kind": "reserve", "block": 2}):
        response = http.post("/negotiation/step", json={"action": action})
        assert response.status_code == 409 and "no episode" in response.json()["detail"]


# ---- 6. a refused negotiation reset leaves the running episode alone; judge is a strict bool -----------------


@pytest.mark.parametrize("data", [{"seed": 2**64}, {"opponents": ["nobody"]}, {"task": "nope"},
                                  {"judge": "false"}, {"judge": 1}, {"opponents": 5}])
def test_a_refused_negotiation_reset_keeps_the_episode(url, data):
    with connect(ws_url(url, "/negotiation/ws")) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 3, "task": "market_round"}}))
        assert json.loads(ws.recv())["type"] == "observation"
        ws.send(json.dumps({"type": "step", "data": {"kind": "wait"}}))
        assert json.loads(ws.recv())["type"] == "observation"
        ws.send(json.dumps({"type": "state"}))
        before = json.loads(ws.recv())["data"]
        ws.send(json.dumps({"type": "reset", "data": data}))
        error = json.loads(ws.recv())
        assert error["type"] == "error" and next(iter(data)) in error["data"]["message"]
        ws.send(json.dumps({"type": "state"}))
        assert json.loads(ws.recv())["data"] == before
        ws.send(json.dumps({"type": "step", "data": {"kind": "wait"}}))  # the episode still plays
        assert json.loads(ws.recv())["type"] == "observation"


# ---- 7. strict request models ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    ({"action": {"reserve": "0.3"}}, "action: reserve must be a finite float in [0, 1.0] (or null), got '0.3'"),
    ({"action": {"reserve": True}}, "action: reserve must be a finite float in [0, 1.0] (or null), got True"),
    ({"action": {"competing_bids": 1}}, "action: competing_bids must be a bool, got 1"),
])
def test_step_fields_are_strict(http, body, message):
    sid = http.post("/api/sessions", json={"seed": 1}).json()["session_id"]
    response = http.post(f"/api/sessions/{sid}/step", json=body)
    assert response.status_code == 422 and response.json()["detail"] == message
    http.delete(f"/api/sessions/{sid}")


@pytest.mark.parametrize("body", [{"seed": False}, {"seed": 1.0}, {"seed": "1"}, {"stage": True}])
def test_reset_fields_are_strict(http, body):
    response = http.post("/api/sessions", json=body)
    assert response.status_code == 422 and response.json()["detail"].startswith(next(iter(body)))


def test_websocket_actions_are_strict(url):
    with connect(ws_url(url)) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        ws.recv()
        ws.send(json.dumps({"type": "step", "data": {"reserve": "0.3"}}))
        assert json.loads(ws.recv())["type"] == "error"


# ---- 4. policy files only inside the policy directory, for every kind ----------------------------------------


@pytest.mark.parametrize("policy", ["learned:/etc/hostname", "constant:/etc/hostname", "llm:/etc/hostname",
                                    "learned:../../../../etc/hostname"])
def test_design_never_reads_outside_the_policy_directory(http, policy):
    response = http.post("/api/design", json={"policy": policy, "observation": {"vector": [0.0]}})
    assert response.status_code == 422
    assert "must be inside the server's policy directory" in response.json()["detail"]


def test_policy_file_resolves_symlinks_and_dot_dot(tmp_path):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (root / "link").symlink_to("/etc")
    (root / "ok.json").write_text("{}")
    assert policy_file("constant:ok.json", root) == f"constant:{root / 'ok.json'}"
    assert policy_file("greedy", root) == "greedy" and policy_file("learned", root) == "learned"
    for spec in ("constant:link/hostname", "learned:sub/../../x", f"llm:{tmp_path}/x"):
        with pytest.raises(ConfigError, match="must be inside the server's policy directory"):
            policy_file(spec, root)
    with pytest.raises(ConfigError, match="reads a file on the server, which this server does not allow"):
        policy_file("learned:model.npz", None)


# ---- 8. Host / Origin checks and the bearer token --------------------------------------------------------------


def test_foreign_host_and_origin_are_refused(http, url):
    assert http.get("/health").status_code == 200
    response = http.get("/health", headers={"host": "attacker.example:80"})
    assert response.status_code == 421 and "Host header" in response.json()["detail"]
    response = http.post("/api/sessions", json={}, headers={"origin": "http://attacker.example"})
    assert response.status_code == 403 and "Origin header" in response.json()["detail"]
    assert http.get("/api/sessions").json()["active"] == 0  # nothing was created
    with pytest.raises(Exception, match="403"), connect(ws_url(url), origin="http://attacker.example"):
        pass


def test_a_token_is_required_when_set():
    token = "s3cret-token-0123456789"
    with serving(build_app(max_sessions=2, token=token)) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/health").status_code == 401
        assert http.get("/health", headers={"authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert http.get("/health", headers={"authorization": f"Bearer {token}"}).status_code == 200
        with pytest.raises(Exception, match="403"), connect(ws_url(base)):
            pass
        with connect(ws_url(base), additional_headers={"authorization": f"Bearer {token}"}) as ws:
            ws.send(json.dumps({"type": "state"}))
            assert json.loads(ws.recv())["type"] == "state"


def test_non_loopback_bind_needs_a_token(monkeypatch):
    monkeypatch.delenv("MECHARENA_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"^host '0.0.0.0' is not a loopback address, so the server needs a bearer "
                                          r"token: pass --token TOKEN or set MECHARENA_TOKEN"):
        serve_token("0.0.0.0", None)
    with pytest.raises(ConfigError, match="token must be at least 16"):
        serve_token("0.0.0.0", "short")
    assert serve_token("127.0.0.1", None) is None
    monkeypatch.setenv("MECHARENA_TOKEN", "from-the-environment-123")
    assert serve_token("0.0.0.0", None) == "from-the-environment-123"


def test_serve_refuses_to_start_off_loopback_without_a_token(monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from mecharena.cli import app

    def serve(*args, **kwargs):  # a regression fails here instead of serving on 0.0.0.0 until killed
        raise AssertionError("the server would have started off loopback without a token")

    monkeypatch.setattr(uvicorn, "run", serve)
    env = {k: v for k, v in os.environ.items() if k != "MECHARENA_TOKEN"}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"], env=env)
    assert result.exit_code != 0 and "needs a bearer token" in result.output and "Traceback" not in result.output


# ---- 9. bounded work per request -------------------------------------------------------------------------------


def test_design_answers_503_while_a_policy_is_still_being_built(http, monkeypatch):
    import mecharena.llm.designer as designer

    def slow(spec, stage=1, *, seed=0):
        time.sleep(1.5)
        raise ConfigError("never built")

    monkeypatch.setattr(designer, "make_designer_policy", slow)
    started = time.monotonic()
    response = http.post("/api/design", json={"policy": "learned", "stage": 4,
                                              "observation": {"vector": [0.0]}})
    assert response.status_code == 503 and "still being built" in response.json()["detail"]
    assert time.monotonic() - started < 1.4  # the client got its answer at the time limit


def test_mcp_refuses_work_over_the_limit():
    server = build_server()
    for name, arguments in [
        ("fuzz", {"mechanism": "first_price", "population": "truthful:3", "budget": 2000, "markets": 100_000,
                  "restarts": 16}),
        ("simulate", {"mechanism": "second_price", "population": "truthful:3", "markets": 1_000_000,
                      "rounds": 10_000}),
        ("evaluate_designer", {"policy": "oracle", "stage": 5, "episodes": 48}),  # ~48 s at 1 s an episode
    ]:
        with pytest.raises(Exception, match=f"over the limit of {MAX_WORK:,} per call"):
            asyncio.run(server.call_tool(name, arguments))
    with pytest.raises(Exception, match=r"episodes x populations x steps x arms = 48 x 20 x 25 x 436 .*lower episodes"):
        asyncio.run(server.call_tool("evaluate_designer", {"policy": "oracle", "episodes": 48}))


def test_mcp_refuses_value_distributions_that_read_server_files():
    server = build_server()
    for name, extra in [("simulate", {"markets": 10, "rounds": 1}), ("fuzz", {"budget": 1})]:
        with pytest.raises(Exception, match=r"values 'empirical:path=/etc/hostname' reads a file on the server"):
            asyncio.run(server.call_tool(name, {"mechanism": "second_price", "population": "truthful:3",
                                                "values": "empirical:path=/etc/hostname", **extra}))


def test_mcp_seeds_are_bounded():
    with pytest.raises(Exception, match=r"seed must be a finite int in \[0, 9223372036854775807\]"):
        asyncio.run(build_server().call_tool("simulate", {"mechanism": "second_price", "population": "truthful:3",
                                                          "markets": 10, "rounds": 1, "seed": 2**64}))


def test_mcp_rejects_foreign_hosts_with_the_same_rules():
    from mecharena.server.mcp import transport_security

    assert build_server(host="127.0.0.1").settings.transport_security == transport_security("127.0.0.1")
    assert transport_security("0.0.0.0") is None


# ---- 10. bad WebSocket frames get an error frame and the session goes on ---------------------------------------


@pytest.mark.parametrize("path", ["/ws", "/negotiation/ws"])
def test_bad_frames_get_an_error_frame_and_the_session_survives(url, path):
    with connect(ws_url(url, path), max_size=None) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 2}}))
        assert json.loads(ws.recv())["type"] == "observation"
        for frame, words in [("[1, 2]", "got a list"), ('"text"', "got a str"), (b"\x00\x01", "binary frame"),
                             ("[" * 5000 + "]" * 5000, "nested too deeply"), ("{nope", "not JSON")]:
            ws.send(frame)
            answer = json.loads(ws.recv())
            assert answer["type"] == "error" and words in answer["data"]["message"]
        ws.send(json.dumps({"type": "state"}))
        assert json.loads(ws.recv())["data"]["episode_id"] is not None  # same session, same episode


# ---- 11. held-out populations are refused on the server's (training) resets -----------------------------------


def test_server_refuses_held_out_populations(http, url):
    response = http.post("/api/sessions", json={"population": 2**40})
    assert response.status_code == 422 and "held-out benchmark" in response.json()["detail"]
    assert http.post("/reset", json={"population": 2**40 + 1}).status_code == 422
    with connect(ws_url(url)) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"population": 2**40}}))
        assert "held-out benchmark" in json.loads(ws.recv())["data"]["message"]
