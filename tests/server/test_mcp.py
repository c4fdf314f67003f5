"""The MCP shell driven by the ``mcp`` SDK's own client, over stdio and over streamable HTTP.

Each transport gets one real server process for the module: ``python -m mecharena.server.mcp
--transport stdio`` spawned by the SDK's ``stdio_client``, and ``--transport http`` on a free
loopback port reached with ``streamable_http_client``. The client session lives in an anyio
blocking portal so that the tests can call it synchronously. Results must equal what the CLI
prints with ``--json`` for the same arguments; invalid arguments must come back as tool error
results (``isError``) naming the problem, with the server still serving afterwards.
"""

import functools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")
pytest.importorskip("uvicorn")

from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from typer.testing import CliRunner

from mecharena import mechanisms
from mecharena.cli import app
from mecharena.core.errors import ConfigError
from mecharena.server.mcp import HTTP_PATH, run

SERVER = ("-m", "mecharena.server.mcp")
TOOLS = {"list_mechanisms", "simulate", "fuzz", "ring", "evaluate_designer", "exploits"}
CALL_TIMEOUT = timedelta(seconds=60)
# a shading exploit of first price in about a second (the settings of tests/fuzz/test_cli.py)
FUZZ = {"mechanism": "first_price", "population": "truthful:4", "families": ["shading"], "budget": 12,
        "markets": 200, "rounds": 3, "eval_markets": 400}


class Client:
    """A synchronous face on a ``ClientSession`` that runs in a portal's event loop."""

    def __init__(self, portal, session: ClientSession, library: Path, stderr: Path) -> None:
        self.portal, self.session, self.library, self.stderr = portal, session, library, stderr

    def tools(self) -> dict[str, Any]:
        return {t.name: t for t in self.portal.call(self.session.list_tools).tools}

    def call(self, name: str, arguments: dict[str, Any] | None = None, **options: Any) -> CallToolResult:
        return self.portal.call(functools.partial(self.session.call_tool, name, arguments,
                                                  read_timeout_seconds=CALL_TIMEOUT, **options))

    def data(self, name: str, arguments: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """A successful call's JSON; the text block must hold the same JSON as the structured content."""
        result = self.call(name, arguments, **options)
        assert not result.isError, result.content
        assert json.loads(result.content[0].text) == result.structuredContent
        return result.structuredContent


@asynccontextmanager
async def session_over(transport):
    async with transport as (read, write, *_), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(library: Path, stderr: Path, startup_timeout: float = 30.0) -> Iterator[str]:
    """``python -m mecharena.server.mcp --transport http`` on a free loopback port; yields its URL."""
    port = free_port()
    with stderr.open("w") as log:
        process = subprocess.Popen([sys.executable, *SERVER, "--transport", "http", "--port", str(port),
                                    "--library", str(library)], stdout=subprocess.DEVNULL, stderr=log,
                                   cwd=library.parent)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the MCP server did not start on port {port}:\n{stderr.read_text()}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}{HTTP_PATH}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", params=["stdio", "http"])
def client(request, tmp_path_factory) -> Iterator[Client]:
    """A session with a fresh server whose exploit library is an empty directory."""
    root = tmp_path_factory.mktemp(f"mcp-{request.param}")
    library, stderr = root / "exploits", root / "server-stderr.txt"
    library.mkdir()
    with start_blocking_portal() as portal:
        if request.param == "stdio":
            params = StdioServerParameters(command=sys.executable, args=[*SERVER, "--transport", "stdio",
                                                                         "--library", str(library)], cwd=root)
            with stderr.open("w") as log, portal.wrap_async_context_manager(
                    session_over(stdio_client(params, errlog=log))) as session:
                yield Client(portal, session, library, stderr)
        else:
            with http_server(library, stderr) as url, portal.wrap_async_context_manager(
                    session_over(streamable_http_client(url))) as session:
                yield Client(portal, session, library, stderr)


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_tool_publishes_a_typed_input_schema(client):
    tools = client.tools()
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.inputSchema["type"] == "object" and tool.inputSchema["additionalProperties"] is False
        assert tool.outputSchema["type"] == "object" and tool.description
    simulate = tools["simulate"].inputSchema
    assert simulate["required"] == ["mechanism", "population"]
    assert (simulate["properties"]["markets"]["minimum"], simulate["properties"]["markets"]["maximum"]) == (
        1, 1_000_000)
    assert simulate["properties"]["rounds"]["maximum"] == 10_000
    information = simulate["properties"]["information"]["anyOf"][0]  # the arena's InformationPolicy fields
    assert "winner_identity" in information["properties"] and information["additionalProperties"] is False
    designer = tools["evaluate_designer"].inputSchema["properties"]
    assert (designer["stage"]["minimum"], designer["stage"]["maximum"]) == (1, 5)
    assert designer["policy"]["enum"] == ["random", "greedy", "oracle", "learned"]
    assert "ctx" not in tools["fuzz"].inputSchema["properties"]


def test_list_mechanisms_is_the_cli_json(client):
    rows = client.data("list_mechanisms")["mechanisms"]
    assert [r["name"] for r in rows] == list(mechanisms.REGISTRY) and "second_price" in mechanisms.REGISTRY
    assert rows == cli_json("mechanisms")


def test_simulate_second_price_truthful_is_efficient(client):
    """Second price with truthful bidders and no reserve allocates to the highest value: efficiency 1
    in every market (Vickrey 1961)."""
    data = client.data("simulate", {"mechanism": "second_price", "population": "truthful:5", "markets": 2000,
                                    "rounds": 2, "seed": 3})
    assert data["metrics"]["efficiency"]["mean"] == 1.0 and data["metrics"]["efficiency"]["ci95"] == [1.0, 1.0]
    assert data == cli_json("simulate", "--mechanism", "second_price", "--population", "truthful:5", "--markets",
                            "2000", "--rounds", "2", "--seed", "3")


def test_simulate_takes_every_cli_option(client):
    arguments = {"mechanism": "first_price", "population": "cartel:3,truthful:3", "config": {"reserve_price": 0.2},
                 "markets": 300, "rounds": 4, "seed": 7, "values": "power:shape=2",
                 "information": {"winner_identity": True}, "enforcement": {"audit_probability": 0.2,
                                                                           "collusion_penalty": 1}}
    data = client.data("simulate", arguments)
    assert data["information"]["winner_identity"] is True and data["enforcement"]["collusion_penalty"] == 1.0
    assert data == cli_json("simulate", "--mechanism", "first_price", "--population", "cartel:3,truthful:3",
                            "--set", "reserve_price=0.2", "--markets", "300", "--rounds", "4", "--seed", "7",
                            "--values", "power:shape=2", "--info", "winner_identity=true", "--enforce",
                            "audit_probability=0.2", "--enforce", "collusion_penalty=1")


def test_fuzz_stores_an_exploit_that_exploits_lists_and_shows(client):
    assert client.data("exploits") == {"library": str(client.library), "exploits": []}
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, _message: str | None) -> None:
        progress.append(done)

    found = client.data("fuzz", FUZZ | {"store": True}, progress_callback=on_progress)
    assert found["exploit"] is True and found["best"]["family"] == "shading"
    low, high = found["exploitability"]["ci95"]
    assert 0 < low <= found["exploitability"]["mean"] <= high
    assert progress and progress[-1] == found["evaluations"] and progress == sorted(progress)
    report = found["report"]
    assert report == {"id": report["id"], "library": str(client.library)}

    listed = client.data("exploits")["exploits"]
    assert [r["id"] for r in listed] == [report["id"]] and listed[0]["strategy"]["family"] == "shading"
    shown = client.data("exploits", {"exploit": report["id"][:5]})["exploit"]
    assert shown == listed[0]
    missing = client.call("exploits", {"exploit": "zz"})
    assert missing.isError and "unknown exploit id 'zz'" in missing.content[0].text


def test_ring_is_the_cli_json_and_stores_its_report(client):
    """A knockout-style ring of 3 among bne:4 in second price pays: stored with its certificate, the same JSON
    as ``mecharena ring --json`` with the same settings."""
    arguments = {"mechanism": "second_price", "population": "bne:4", "deviators": 3, "rounds": 3, "phases": 1,
                 "generations": 3, "defection_generations": 2, "markets": 60, "eval_markets": 200,
                 "features": ["bias", "value", "lead"], "store": True}
    found = client.data("ring", arguments)
    assert found["exploit"] is True and found["report"]["library"] == str(client.library)
    stored = client.data("exploits", {"exploit": found["report"]["id"]})["exploit"]
    assert stored["search"]["ring"]["defection_gain"] == found["defection_gain"]
    assert found == cli_json("ring", "--mechanism", "second_price", "--population", "bne:4", "--deviators", "3",
                             "--rounds", "3", "--phases", "1", "--generations", "3", "--defection-generations", "2",
                             "--markets", "60", "--eval-markets", "200", "--features", "bias,value,lead",
                             "--library", str(client.library))
    too_big = client.call("ring", {"mechanism": "first_price", "population": "bne:4", "phases": 50, "markets": 10_000})
    assert too_big.isError and "ring: about" in too_big.content[0].text
    assert "over the limit of 10,000,000" in too_big.content[0].text


def test_fuzz_finds_no_exploit_of_a_truthful_second_price_auction(client):
    """Truthful bidding is weakly dominant in second price (Vickrey 1961): shading never pays."""
    found = client.data("fuzz", FUZZ | {"mechanism": "second_price", "store": True})
    assert found["exploit"] is False and found["report"] is None
    assert found["exploitability"]["ci95"][0] <= 1e-3


def test_evaluate_designer_greedy_on_stage_one(client):
    data = client.data("evaluate_designer", {"policy": "greedy", "stage": 1, "episodes": 1})
    assert data["policy"] == "greedy" and data["stage"] == 1 and len(data["per_population"]) == 20
    assert data["reward"]["mean"] == pytest.approx(1.0, abs=0.02)


SIMULATE = {"mechanism": "second_price", "population": "truthful:3", "markets": 10, "rounds": 1}
INVALID = [
    ("simulate", SIMULATE | {"bogus": 1}, "unknown field 'bogus' for simulate; allowed: mechanism, population"),
    ("simulate", SIMULATE | {"markets": 0}, r"markets must be a finite int in [1, 1000000], got 0"),
    ("simulate", SIMULATE | {"rounds": 10_001}, r"rounds must be a finite int in [1, 10000], got 10001"),
    ("simulate", SIMULATE | {"markets": "ten"}, "markets must be a finite int in [1, 1000000], got 'ten'"),
    ("simulate", SIMULATE | {"rounds": 1.5}, "rounds must be a finite int in [1, 10000], got 1.5"),
    ("simulate", SIMULATE | {"seed": -1}, "seed must be a finite int in [0, 9223372036854775807], got -1"),
    ("simulate", {"population": "truthful:3"}, "mechanism is required"),
    ("simulate", SIMULATE | {"mechanism": "secnd_price"}, "unknown mechanism 'secnd_price'; did you mean 'second_pr"),
    ("simulate", SIMULATE | {"config": {"reserve_price": -5}}, "reserve_price must be a finite float >= 0, got -5"),
    ("simulate", SIMULATE | {"information": {"winner": True}}, "unknown field 'winner' for InformationPolicy"),
    ("simulate", SIMULATE | {"enforcement": {"audit_probability": 2}}, "audit_probability must be a finite float in"),
    ("simulate", SIMULATE | {"population": "truthfull:3"}, "unknown agent 'truthfull'; did you mean 'truthful'"),
    ("fuzz", FUZZ | {"families": ["shade"]}, "unknown deviation family 'shade'"),
    ("fuzz", FUZZ | {"budget": 0}, "budget must be a finite int in [1, 2000], got 0"),
    ("fuzz", FUZZ | {"information": {"winner": True}}, "unknown field 'winner' for InformationPolicy"),
    ("fuzz", FUZZ | {"enforcement": {"audit_probability": 3}}, "audit_probability must be a finite float in [0, 1]"),
    ("fuzz", FUZZ | {"deviators": 9}, "deviators must be in [1, 4]"),
    ("evaluate_designer", {"stage": 9}, "stage must be a finite int in [1, 5], got 9"),
    ("evaluate_designer", {"stage": "1"}, "stage must be a finite int in [1, 5], got '1'"),
    ("evaluate_designer", {"policy": "constant:/etc/passwd"}, "policy must be one of 'random', 'greedy', 'oracle'"),
    ("exploits", {"exploit": 5}, "exploit must be a str (or null), got 5"),
    ("no_such_tool", {}, "Unknown tool: no_such_tool"),
]


@pytest.mark.parametrize(("tool", "arguments", "message"), INVALID, ids=[f"{t}-{m[:30]}" for t, _, m in INVALID])
def test_invalid_arguments_get_an_error_result_and_the_server_keeps_serving(client, tool, arguments, message):
    result = client.call(tool, arguments)
    assert result.isError and result.structuredContent is None
    text = result.content[0].text
    assert message in text and "Traceback" not in text
    assert client.data("simulate", SIMULATE)["markets"] == 10


def test_the_server_logged_no_traceback(client):
    client.data("list_mechanisms")
    assert "Traceback" not in client.stderr.read_text()


def test_run_checks_its_transport_and_port():
    with pytest.raises(ConfigError, match="transport must be one of 'stdio', 'http', got 'websocket'"):
        run("websocket")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"port must be an integer in \[1, 65535\], got 0"):
        run("http", port=0)


def test_server_reports_mecharenas_version_not_the_sdks():
    """``initialize`` answers with serverInfo.version: the arena's, whatever the mcp SDK's is."""
    import mecharena
    from mecharena.server.mcp import build_server

    options = build_server()._mcp_server.create_initialization_options()
    assert (options.server_name, options.server_version) == ("mecharena", mecharena.__version__)
