"""Benchmarks at tiny sizes: the JSON they report and that compared paths do the same work (never timings)."""

import json

import numpy as np
import pytest

from mecharena.benchmarks import engine, ledger, timing
from mecharena.mechanisms import clear, get

TIMING_KEYS = {"benchmark", "repeats", "statistic", "load_before", "load_after"}


def test_interleaved_runs_paths_in_turn_and_reports_medians():
    calls: list[str] = []
    times = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three interleaved ones
    for t in times.values():
        assert len(t["wall_trials"]) == len(t["cpu_trials"]) == 3
        assert t["wall_s"] == sorted(t["wall_trials"])[1] and t["cpu_s"] == sorted(t["cpu_trials"])[1]
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        timing.interleaved({"a": lambda: None}, repeats=0)


@pytest.mark.parametrize("reserve", [0.0, 0.1, 0.6])
def test_bare_kernel_does_the_engines_work(reserve):
    """Same winner, tie-breaks, price and payments as the engine, abstentions and ties included."""
    rng = np.random.default_rng(3)
    bids = rng.random((400, 6))
    bids[:40] = 0.5  # all tied: priority decides
    bids[40:80] = rng.random((40, 6)) * 0.1  # mostly below the reserve
    bids[80:100, :3] = 0.0  # abstentions
    priority = rng.random((400, 6))
    mechanism = get("second_price")
    out = clear(mechanism, mechanism.config({"reserve_price": reserve}), bids, bids, priority)
    allocation, payments = engine.bare_clear(bids, priority, reserve)
    assert np.array_equal(allocation, out.allocation) and np.array_equal(payments, out.payments)


@pytest.mark.parametrize(("buyers", "sellers"), [(10, 10), (3, 7), (7, 3), (40, 40), (1, 1)])
def test_bare_double_auction_does_the_engines_work(buyers, sellers):
    """McAfee: the bare NumPy kernel gives every output of the engine's Outcome, bit for bit (with one pair
    on each side McAfee never trades: the reduced trade is the only one)."""
    rng = np.random.default_rng(buyers * 100 + sellers)
    values = rng.random((500, buyers + sellers))
    mechanism = get("mcafee")
    out = clear(mechanism, mechanism.config({"buyers": buyers}), values, values, rng.random(values.shape))
    bare = engine.bare_mcafee(values, values, buyers)
    assert (bare["allocation"].any(axis=1).mean() > 0.5) == (min(buyers, sellers) > 1)
    for name, array in bare.items():
        assert np.array_equal(getattr(out, name), array), name


def test_engine_benchmark_json():
    result = engine.run(markets=300, agents=4, repeats=2, reference_markets=20)
    assert TIMING_KEYS | {"wall_seconds", "cpu_seconds", "markets_per_cpu_s", "engine_over_bare"} <= set(result)
    assert set(result["wall_seconds"]) == set(result["cpu_seconds"]) == {"engine", "protocol", "bare", "scalar"}
    assert result["repeats"] == 2 and result["ratios_from"] == "cpu seconds"
    double = result["double_auction"]
    assert double["mechanism"] == "mcafee" and set(double["cpu_seconds"]) == {"engine", "bare"}
    assert result["double_auction_engine_over_bare"] == double["engine_over_bare"] > 0
    json.dumps(result)


def test_ledger_benchmark_json_judges_by_cpu_time():
    result = ledger.run(markets=16, rounds=2, repeats=1)
    assert TIMING_KEYS | {"wall_seconds", "cpu_seconds", "wall_ratios", "meets", "replay_ok"} <= set(result)
    assert result["replay_ok"] and result["ratios_from"] == "cpu seconds"
    cpu = result["cpu_seconds"]
    assert result["full_over_none"] == pytest.approx(max(cpu["full"], 1e-9) / max(cpu["none"], 1e-9))
    json.dumps(result)


def test_serve_benchmark_reports_a_server_that_does_not_come_up():
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["bench", "serve", "--steps", "1", "--sessions", "1", "--startup-timeout", "0.001"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the server did not answer /health within startup_timeout=0.001 s" in " ".join(result.output.split())
    bad = CliRunner().invoke(app, ["bench", "serve", "--startup-timeout", "0"])
    assert bad.exit_code == 2 and "startup-timeout must be in (0, 3600] seconds, got 0.0" in bad.output


@pytest.mark.parametrize("scenario", ["auction", "reputation"])
def test_loop_benchmark_json(scenario):
    from mecharena.benchmarks import loop

    result = loop.run(markets=16, rounds=2, repeats=2, scenario=scenario)
    assert TIMING_KEYS | {"seconds", "cpu_seconds", "wall_trials", "market_rounds_per_s"} <= set(result)
    assert len(result["wall_trials"]) == 2 and result["scenario"] == scenario


def test_loop_benchmark_refuses_an_unknown_scenario():
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["bench", "loop", "--scenario", "nope"])
    assert result.exit_code == 2 and "scenario must be one of auction, reputation, got 'nope'" in result.output


def assert_timed(result: dict, paths: set[str], repeats: int) -> None:
    """Wall and CPU medians for every path, each over ``repeats`` trials, and the load around the run."""
    assert TIMING_KEYS | {"wall_seconds", "cpu_seconds", "wall_trials", "cpu_trials"} <= set(result)
    assert result["repeats"] == repeats and result["statistic"] == "median of interleaved repetitions"
    for key in ("wall_seconds", "cpu_seconds", "wall_trials", "cpu_trials"):
        assert set(result[key]) == paths
    for path in paths:
        assert len(result["wall_trials"][path]) == len(result["cpu_trials"][path]) == repeats
        assert result["cpu_seconds"][path] == sorted(result["cpu_trials"][path])[(repeats - 1) // 2]
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    json.dumps(result)


def test_designer_benchmark_reports_medians_cpu_and_load():
    from mecharena.benchmarks import designer

    result = designer.run(episodes=8, steps=2, single_steps=10, repeats=3, arena_steps=3)
    assert_timed(result, {"vector", "json", "gym", "arena"}, 3)
    assert set(result["steps_per_cpu_s"]) == {"vector", "json", "gym", "arena"}
    assert result["vector_env_steps_per_s"] == pytest.approx(8 * 2 / result["wall_seconds"]["vector"])
    assert result["arena_referee_market_rounds_per_s"] == pytest.approx(
        3 / result["wall_seconds"]["arena"] * 64 * 6)  # the default settings: 64 markets, 6 rounds a step
    assert result["steps_per_cpu_s"]["json"] == pytest.approx(10 / max(result["cpu_seconds"]["json"], 1e-9))


def test_arena_benchmark_reports_medians_cpu_and_load():
    from mecharena.benchmarks import arena_parallel

    result = arena_parallel.run(steps=10, repeats=1)
    assert_timed(result, {"plain", "talk"}, 1)
    assert result["plain_steps_per_s"] == pytest.approx(10 / result["wall_seconds"]["plain"])
    assert result["talk_agent_steps_per_s"] == pytest.approx(2 * result["talk_steps_per_s"])
    assert set(result["steps_per_cpu_s"]) == {"plain", "talk"}


def test_bench_table_shows_load_and_times_as_numbers():
    """The human-readable table: the load before -> after on one row, medians per path, no Python lists."""
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["bench", "arena", "--steps", "5", "--repeats", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "load (1, 5, 15 min)" in result.output and " -> " in result.output
    assert "cpu_seconds.talk" in result.output and "wall_seconds.plain" in result.output
    assert "[" not in result.output and "{" not in result.output and "load_before" not in result.output
    rows = dict(timing.rows({"benchmark": "x", "load_before": [1.0, 0.5, 0.25], "load_after": [2.0, 0.75, 0.25],
                             "wall_trials": {"a": [0.1, 0.2]}, "curve": [{"budget": 5, "gain": 0.00123456, "best": {"scale": 0.9}}]}))
    assert rows == {"load (1, 5, 15 min)": "1 0.5 0.25 -> 2 0.75 0.25",
                    "curve[0]": "budget=5, gain=0.001235, best=(scale=0.9)"}
    bad = CliRunner().invoke(app, ["bench", "designer", "--repeats", "0"])
    assert bad.exit_code == 2 and "repeats must be >= 1, got 0" in bad.output


@pytest.mark.parametrize(("args", "message"), [
    (["--scale", "0"], "scale must be in (0, 10], got 0"),
    (["--task", "designer:3"], "no benchmark settings for task 'designer:3'; allowed: designer:2, "
                               "negotiation:single_trade"),
    (["--sampling", "greedy"], "sampling must be one of ['constrained', 'free'], got 'greedy'"),
    (["--threads", "0"], "threads"),
])
def test_llm_train_benchmark_refuses_bad_input_before_training(tmp_path, args, message):
    from typer.testing import CliRunner

    from mecharena.cli import app

    result = CliRunner().invoke(app, ["bench", "llm-train", "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "b").exists()
