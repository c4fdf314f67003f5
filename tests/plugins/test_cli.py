"""A mechanism and agent defined outside the package run through every arena command, unchanged."""

import dataclasses
import json
import os

import pytest
from typer.testing import CliRunner

from mecharena import mechanisms
from mecharena.cli import app
from mecharena.runner import ResultStore, SpecError, load_spec
from tests.conftest import within
from tests.plugins.helpers import half_price, variant

runner = CliRunner()

SPEC = """\
name: half
markets: 400
rounds: 2
seeds: [0, 1]
plugins: [rules/half_price.py]
mechanisms:
  - {id: half_price, populations: [mine, mixed]}
  - {id: half_price, config: {share: 1.0}, label: full price, populations: [mine]}
populations:
  mine: "myagent(x=0.8):3"
  mixed: "myagent:2,sybil(m=2):1"
"""


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_plugin_mechanism_runs_through_check_simulate_run_fuzz_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plugin = half_price(tmp_path / "rules")
    with_plugin = ("--plugin", "rules/half_price.py")

    check = run_json(*with_plugin, "check", "half_price")
    assert check["passed"] and check["source"] == str(plugin) and check["cases"] == 10
    assert {row["check"]: row["status"] for row in check["checks"]}["efficient"] == "passed"

    # U[0, 1] values, 3 bidders bidding x v: the highest value (mean 3/4) wins and pays share * x * v.
    summary = run_json(*with_plugin, "simulate", "--mechanism", "half_price", "--population", "myagent(x=0.8):3",
                       "--markets", "20000", "--rounds", "1")
    assert within(summary["metrics"]["revenue"], 0.5 * 0.8 * 0.75)
    assert summary["versions"] == {"mechanism": {"half_price": 1}, "agents": {"myagent": 1}}

    (tmp_path / "half.yaml").write_text(SPEC)
    done = run_json("run", "half.yaml", "--out", "runs/half", "--workers", "2")
    assert done["computed"] == 6 and done["failed"] == []
    with ResultStore.open(tmp_path / "runs" / "half") as store:
        columns, rows = store.results()
    workers = {row[columns.index("worker")].rpartition(":")[2] for row in rows}
    assert str(os.getpid()) not in workers  # computed by the spawned workers, which loaded the plug-in themselves

    fuzz = run_json(*with_plugin, "fuzz", "--mechanism", "half_price", "--population", "myagent:3", "--budget", "6",
                    "--markets", "200", "--rounds", "2", "--eval-markets", "400", "--samples", "2000",
                    "--library", "exploits")
    # the budget bounds the sampled families; the discovery engine's trials come on top
    assert fuzz["target"]["mechanism"] == "half_price" and fuzz["search"]["budget"] == 6 and fuzz["evaluations"] >= 1
    assert {"shading", "sybil", "exit"} <= set(fuzz["families"]) and fuzz["exploitability"]["mean"] >= 0

    report = run_json("report", "runs/half")
    assert report["cells"] == 6 and "half_price" in (tmp_path / "runs" / "half" / "report.html").read_text()


def test_the_environment_variable_loads_plugins_for_every_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHARENA_PLUGINS", str(half_price(tmp_path)))
    names = [row["name"] for row in run_json("mechanisms")]
    assert "half_price" in names and names == sorted(names)
    assert "myagent" in [row["name"] for row in run_json("agents")]


def test_a_broken_plugin_stops_the_command_with_the_failed_check(tmp_path):
    path = variant(tmp_path, "def kernel(config, values, bids, priority, times=None):\n"
                             "    out = BASE.kernel(config, values, bids, priority)\n"
                             "    return dataclasses.replace(out, payments=out.payments * np.nan)\n\n\n"
                             "MECHANISM = dataclasses.replace(BASE, kernel=kernel)")
    result = invoke("--plugin", path, "simulate", "--mechanism", "variant", "--population", "truthful:3")
    assert result.exit_code == 2
    assert f"plugin {path}: mechanism 'variant' failed check_mechanism on 'finite'" in " ".join(result.output.split())


def test_check_command_prints_each_check_and_fails_on_a_broken_mechanism(monkeypatch):
    table = invoke("check", "second_price")
    assert table.exit_code == 0 and "check_mechanism second_price: passed" in table.output
    assert "inputs_unchanged" in table.output and "not promised" in table.output
    broken = dataclasses.replace(mechanisms.get("first_price"), properties=lambda config: frozenset({"truthful"}))
    monkeypatch.setitem(mechanisms.REGISTRY._entries, "first_price", broken)
    result = invoke("check", "first_price", "--json")
    assert result.exit_code == 1
    rows = {row["check"]: row for row in json.loads(result.stdout)["checks"]}
    assert rows["truthful"]["status"] == "failed" and "by bidding" in rows["truthful"]["detail"]
    assert rows["reference"]["status"] == "passed"
    assert invoke("check", "second_prize").exit_code == 2


def test_spec_plugins_are_relative_to_the_spec_and_errors_point_at_the_line(tmp_path, monkeypatch):
    half_price(tmp_path / "rules")
    (tmp_path / "half.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: the path is relative to the spec, not the working directory
    plan = load_spec(tmp_path / "half.yaml")
    assert plan.spec.plugins == ["rules/half_price.py"] and len(plan.cells) == 6
    (tmp_path / "bad.yaml").write_text(SPEC.replace("rules/half_price.py", "rules/missing.py"))
    with pytest.raises(SpecError, match=rf"bad.yaml:5: plugins\[0\]: plugin {tmp_path}/rules/missing.py: "
                                        "file does not exist"):
        load_spec(tmp_path / "bad.yaml")


@pytest.mark.slow
def test_ray_workers_load_the_plugins_and_give_the_local_table(tmp_path):
    pytest.importorskip("ray")
    half_price(tmp_path / "rules")
    (tmp_path / "half.yaml").write_text(SPEC)
    local = run_json("run", tmp_path / "half.yaml", "--out", tmp_path / "local", "--workers", "1")
    ray = run_json("run", tmp_path / "half.yaml", "--out", tmp_path / "ray", "--backend", "ray", "--workers", "2")
    assert ray["computed"] == local["computed"] == 6 and ray["failed"] == []
    tables = []
    for directory in ("local", "ray"):
        with ResultStore.open(tmp_path / directory) as store:
            tables.append(store.results(timings=False))
    assert tables[0] == tables[1]
