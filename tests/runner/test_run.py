"""Running specs: determinism across workers and backends, resuming, and surviving kill -9."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.runner import ResultStore, load_spec, run_plan
from tests.runner.specs import SMALL, SMALL_CELLS, write

runner = CliRunner()

# 3 mechanisms x 2 populations x 5 seeds = 30 cells of ~0.1 s each
KILL = """\
name: kill
markets: 6000
rounds: 6
seeds: [0, 1, 2, 3, 4]
mechanisms: [{id: second_price}, {id: first_price}, {id: uniform_price, config: {units: 2}}]
populations: ["truthful:5", "bne:5"]
"""
KILL_CELLS = 30


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def table(directory) -> tuple[list[str], list[tuple]]:
    with ResultStore.open(directory) as store:
        return store.results(timings=False)


def run_json(*args: str) -> dict:
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_results_identical_for_one_and_two_workers(tmp_path):
    spec = write(tmp_path)
    one = run_json(spec, "--out", tmp_path / "one", "--workers", "1")
    two = run_json(spec, "--out", tmp_path / "two", "--workers", "2")
    assert one["computed"] == two["computed"] == SMALL_CELLS and one["failed"] == two["failed"] == []
    columns, rows = table(tmp_path / "one")
    assert (columns, rows) == table(tmp_path / "two")
    assert len(rows) == SMALL_CELLS
    assert columns[:7] == ["position", "key", "mechanism", "population", "information", "enforcement", "seed"]
    assert [r[0] for r in rows] == list(range(SMALL_CELLS))
    metrics = json.loads(rows[0][columns.index("metrics")])
    assert {"revenue", "efficiency", "ic_regret"} <= set(metrics)
    assert len(json.loads(rows[0][columns.index("curves")])["revenue"]) == 4


def test_rerun_computes_nothing_and_changes_nothing(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "out"
    first = run_json(spec, "--out", out, "--workers", "1")
    with ResultStore.open(out) as store:
        before = store.results(timings=True)
    again = run_json(spec, "--out", out, "--workers", "1")
    assert first["computed"] == SMALL_CELLS
    assert again["computed"] == 0 and again["skipped"] == SMALL_CELLS
    with ResultStore.open(out) as store:
        assert store.results(timings=True) == before  # timings too: nothing was rewritten


def test_spec_change_recomputes_only_changed_cells(tmp_path):
    out = tmp_path / "out"
    run_json(write(tmp_path), "--out", out, "--workers", "1")
    changed = write(tmp_path, SMALL.replace("reserve_price: 0.3", "reserve_price: 0.4").replace("label: fp", "label: F"))
    summary = run_json(changed, "--out", out, "--workers", "1")
    assert summary["computed"] == 8 and summary["skipped"] == SMALL_CELLS - 8
    columns, rows = table(out)
    assert len(rows) == SMALL_CELLS  # the results show the latest spec only
    assert {r[columns.index("mechanism")] for r in rows} == {"sp", "F", "mcafee"}
    assert {json.loads(r[columns.index("config")]).get("reserve_price") for r in rows if r[2] == "sp"} == {0.4}
    with ResultStore.open(out) as store:
        assert len(store.stored_versions()) == SMALL_CELLS + 8  # earlier cells stay cached


def test_a_new_agent_or_mechanism_version_recomputes(tmp_path):
    spec = write(tmp_path)
    out = tmp_path / "out"
    run_json(spec, "--out", out, "--workers", "1")
    con = duckdb.connect(str(out / "results.duckdb"))
    key = con.execute("SELECT key FROM plan WHERE position = 0").fetchone()[0]
    con.execute("UPDATE cells SET versions = ? WHERE key = ?",
                ['{"agents": {"truthful": 0}, "mechanism": {"second_price": 1}}', key])
    con.close()
    summary = run_json(spec, "--out", out, "--workers", "1")
    assert summary["computed"] == 1


def test_a_failing_cell_is_reported_not_stored_and_retried(tmp_path, monkeypatch):
    from mecharena.runner import backends

    spec = write(tmp_path)
    out = tmp_path / "out"
    evaluate = backends.evaluate

    def flaky(cell, on_round=None):
        if cell.mechanism == "mcafee" and cell.seed == 1:
            raise RuntimeError("boom")
        return evaluate(cell)

    monkeypatch.setattr(backends, "evaluate", flaky)
    result = invoke("run", spec, "--out", out, "--workers", "1", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["computed"] == SMALL_CELLS - 2
    assert [(f["mechanism"], f["seed"], f["error"]) for f in summary["failed"]] == [
        ("mcafee", 1, "RuntimeError: boom")] * 2
    monkeypatch.setattr(backends, "evaluate", evaluate)
    assert run_json(spec, "--out", out, "--workers", "1")["computed"] == 2


def test_human_output_and_log_lines(tmp_path):
    result = invoke("run", write(tmp_path), "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"small: {SMALL_CELLS} cells ({SMALL_CELLS} distinct): {SMALL_CELLS} computed, 0 already stored" \
        in result.stdout
    assert f"[{SMALL_CELLS}/{SMALL_CELLS}] " in result.stderr  # one line per cell when stderr is not a terminal


@pytest.mark.parametrize(("args", "message"), [
    (("--backend", "spark"), "backend must be one of local, ray, got 'spark'"),
    (("--workers", "0"), "workers must be >= 1, got 0"),
    (("--address", "ray://x:10001"), "address is only used by the ray backend"),
])
def test_bad_backend_options(tmp_path, args, message):
    result = invoke("run", write(tmp_path), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_ray_backend_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the optional dependency were absent
    result = invoke("run", write(tmp_path), "--out", tmp_path / "out", "--backend", "ray")
    assert result.exit_code == 2
    assert "backend 'ray' needs the optional dependency ray" in result.output
    assert "pip install 'mecharena[ray]'" in result.output


def test_ray_backend_gives_the_same_table(tmp_path):
    pytest.importorskip("ray")
    spec = write(tmp_path)
    run_plan(load_spec(spec), tmp_path / "local", workers=1)
    summary = run_json(spec, "--out", tmp_path / "ray", "--backend", "ray", "--workers", "2")
    assert summary["backend"] == "ray" and summary["computed"] == SMALL_CELLS
    assert table(tmp_path / "ray") == table(tmp_path / "local")


def test_kill_9_loses_no_committed_cell(tmp_path):
    """SIGKILL the runner once a few cells are committed; a rerun completes the table, which then
    equals an uninterrupted run's."""
    spec = write(tmp_path, KILL)
    interrupted = tmp_path / "interrupted"
    command = [sys.executable, "-m", "mecharena.cli", "run", str(spec), "--out", str(interrupted), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    committed, deadline = 0, time.monotonic() + 60
    try:
        while committed < 3:  # a line is printed after each cell's commit
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            committed += line.startswith("[")
        os.kill(process.pid, signal.SIGKILL)  # the runner only: its workers must notice and exit
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    with ResultStore.open(interrupted) as store:
        stored = len(store.stored_versions())
    assert 3 <= stored < KILL_CELLS
    summary = run_json(spec, "--out", interrupted, "--workers", "2")
    assert summary["skipped"] == stored and summary["computed"] == KILL_CELLS - stored
    run_plan(load_spec(spec), tmp_path / "uninterrupted", workers=2)
    columns, rows = table(interrupted)
    assert len(rows) == KILL_CELLS
    assert (columns, rows) == table(tmp_path / "uninterrupted")
