"""One definition of fuzz's, repair's and the ring search's settings: the CLI, the MCP tool and the Python API agree with
:mod:`mecharena.core.settings` on every default and bound (the named exceptions aside)."""

import asyncio
import functools
import json
import re

import pytest
import typer.main
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.core.errors import ConfigError
from mecharena.core.settings import CLI_SAMPLES, MCP_BUDGET, MCP_RING, FuzzSettings, RepairSettings, RingSettings
from mecharena.fuzz.repair import repair
from mecharena.fuzz.ring_policy import ring_policy_search
from mecharena.fuzz.search import fuzz
from mecharena.metrics.harness import Cell

TARGET = Cell(mechanism="first_price", population="truthful:3")


def bounds(model, name: str) -> tuple[float | None, float | None]:
    schema = model.model_json_schema()["properties"][name]
    options = schema.get("anyOf", [schema])
    low = [o["minimum"] for o in options if "minimum" in o]
    high = [o["maximum"] for o in options if "maximum" in o]
    return (low[0] if low else None), (high[0] if high else None)


def bounded(model) -> list[str]:
    return [name for name in model.model_fields if bounds(model, name) != (None, None)]


def cli_defaults(command: str) -> dict:
    params = typer.main.get_command(app).commands[command].params
    return {p.name: p.default for p in params}


def test_cli_defaults_are_the_models():
    for command, model, exceptions in (("fuzz", FuzzSettings, {"samples": CLI_SAMPLES}), ("repair", RepairSettings, {}),
                                       ("ring", RingSettings, {})):
        defaults = cli_defaults(command)
        for name, field in model.model_fields.items():
            if name in ("families", "features") or (command, name) in (("ring", "population"), ("ring", "penalty")):
                continue  # a comma-separated string on the command line; the ring's search shape: Python only
            assert defaults[name] == exceptions.get(name, field.default), (command, name)


def test_mcp_publishes_the_models_bounds_and_defaults():
    from mecharena.server.mcp import build_server

    tools = {t.name: t for t in asyncio.run(build_server().list_tools())}
    published = tools["fuzz"].inputSchema["properties"]
    names = [n for n in bounded(FuzzSettings) if n in published]
    assert set(names) == {"deviators", "budget", "restarts", "markets", "rounds", "eval_markets", "threshold"}
    for name in names:
        assert (published[name].get("minimum"), published[name].get("maximum")) == bounds(FuzzSettings, name), name
        expected = MCP_BUDGET if name == "budget" else FuzzSettings.model_fields[name].default
        assert published[name]["default"] == expected, name
    assert published["sampler"]["enum"] == ["tpe", "cmaes"]
    ring = tools["ring"].inputSchema["properties"]
    names = [n for n in bounded(RingSettings) if n in ring and n != "population"]  # there: the agents' spec
    assert set(names) == {"deviators", "phases", "generations", "defection_generations", "markets", "eval_markets"}
    for name in names:
        assert (ring[name].get("minimum"), ring[name].get("maximum")) == bounds(RingSettings, name), name
        assert ring[name]["default"] == MCP_RING.get(name, RingSettings.model_fields[name].default), name


@pytest.mark.parametrize("model, name", [(FuzzSettings, n) for n in bounded(FuzzSettings)]
                         + [(RepairSettings, n) for n in bounded(RepairSettings)]
                         + [(RingSettings, n) for n in bounded(RingSettings) if n not in ("population", "penalty")])
def test_python_and_cli_refuse_the_same_out_of_range_settings(model, name):
    low, high = bounds(model, name)
    bad = high + 1 if high is not None else low - 1
    if isinstance(model.model_fields[name].default, int) or name == "samples":
        bad = int(bad)
    message = f"{name} must be {model.allowed(name)}, got {bad}"
    search, command = {FuzzSettings: (fuzz, "fuzz"), RepairSettings: (repair, "repair"),
                       RingSettings: (functools.partial(ring_policy_search, seed=0), "ring")}[model]
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        search(TARGET, **{name: bad})
    result = CliRunner().invoke(app, [command, "--mechanism", "first_price", "--population", "truthful:3",
                                      f"--{name.replace('_', '-')}", str(bad), "--json"])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_the_settings_document_themselves():
    schema = FuzzSettings.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values()), json.dumps(schema)
    assert all(field.description for field in RepairSettings.model_fields.values())
    assert all(field.description for field in RingSettings.model_fields.values())
