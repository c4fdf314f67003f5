"""The fuzzing benchmark and the CLI-facing repair / rank commands."""

import io
import json

import pytest
from rich.console import Console

from mecharena.benchmarks.fuzz import closed_form_gain, run
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.cli.repair import parse_mechanism, rank_command, repair_command


def test_benchmark_returns_the_documented_keys():
    result = run(agents=4, markets=50, rounds=3, eval_markets=100, budgets=(2, 4), score_repeats=2,
                 default_run=False)
    assert {"benchmark", "mechanism", "population", "agents", "scorer_evaluations_per_s", "scorer_market_rounds_per_s",
            "closed_form_gain", "budget_curve", "default_fuzz_seconds", "default_fuzz_exploitability",
            "default_fuzz_relative_half_width", "targets", "meets_targets"} <= set(result)
    assert result["scorer_evaluations_per_s"] > 0
    assert [row["budget"] for row in result["budget_curve"]] == [2, 4]
    assert {"fresh_gain", "ci95", "share_of_closed_form", "evaluations"} <= set(result["budget_curve"][0])
    assert result["default_fuzz_seconds"] is None and result["meets_targets"] is None
    assert set(result["cpu_seconds"]) == {"scorer"} and len(result["cpu_trials"]["scorer"]) == 2
    assert {"seconds", "cpu_seconds"} <= set(result["budget_curve"][0])
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    json.dumps(result)


def test_default_run_is_judged_on_cpu_seconds_with_wall_beside(monkeypatch):
    """The default fuzz run (shrunk here) is timed ``repeats`` times; its target reads the CPU median."""
    import mecharena.benchmarks.fuzz as bench

    real = bench.fuzz

    def small(target, **kw):
        return real(target, **({"budget": 3, "markets": 30, "rounds": 2, "eval_markets": 60, "min_trials": 2} | kw))

    monkeypatch.setattr(bench, "fuzz", small)
    result = run(agents=3, markets=30, rounds=2, eval_markets=60, budgets=(2,), score_repeats=1, repeats=3)
    assert set(result["wall_seconds"]) == set(result["cpu_seconds"]) == {"scorer", "default_fuzz"}
    assert len(result["wall_trials"]["default_fuzz"]) == 3 and result["repeats"] == 3
    assert result["default_fuzz_seconds"] == result["wall_seconds"]["default_fuzz"]
    assert result["default_fuzz_cpu_seconds"] == result["cpu_seconds"]["default_fuzz"]
    assert result["targets_from"] == "cpu seconds"
    assert result["meets_targets"] == (result["default_fuzz_cpu_seconds"] < bench.TARGET_DEFAULT_SECONDS)
    monkeypatch.setattr(bench, "TARGET_DEFAULT_SECONDS", 0.0)
    assert run(agents=3, markets=30, rounds=2, eval_markets=60, budgets=(2,), score_repeats=1)["meets_targets"] is False


def test_closed_form_best_response_gain():
    """One bidder against n-1 truthful ones (U[0,1]): best response b = (n-1)v/n, gain (n-1)^(n-1)/n^n/(n+1)."""
    assert closed_form_gain(2) == pytest.approx(1 / 12)
    assert closed_form_gain(10) == pytest.approx(387420489 / 1e10 / 11)


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


def test_repair_command_prints_json_and_tables():
    console, buf = _console()
    kw = {"budget": 2, "inner_budget": 4, "markets": 100, "rounds": 4, "eval_markets": 200, "revenue_floor": 0.7}
    assert repair_command("first_price", {}, "truthful:4", as_json=True, console=console, **kw) == 0
    data = json.loads(buf.getvalue())
    assert {"original", "candidates", "pareto", "recommended", "thresholds"} <= set(data)
    console, buf = _console()
    done = []  # the progress callback: the original design, then each proposal
    assert repair_command("first_price", {}, "truthful:4", console=console, on_candidate=lambda _c, n: done.append(n),
                          **kw) == 0
    assert "Repair: first_price vs truthful:4" in buf.getvalue() and done == [1, 2, 3]


def test_rank_command_prints_json_and_tables():
    console, buf = _console()
    specs = ["first_price", "second_price:reserve_price=0.5"]
    assert rank_command(specs, "truthful:4", "revenue", 2, markets=100, rounds=2, as_json=True, console=console) == 0
    data = json.loads(buf.getvalue())
    assert [e["label"] for e in data["ranking"]] == specs and data["seeds"] == [0, 1]
    console, buf = _console()
    assert rank_command(specs, "truthful:4", "revenue", [3, 4], markets=100, rounds=2, console=console) == 0
    assert "Ranking by revenue" in buf.getvalue()


def test_parse_mechanism_spec():
    assert parse_mechanism("second_price:reserve_price=0.5;entry_fee=0.1") == (
        "second_price", {"reserve_price": 0.5, "entry_fee": 0.1})
    assert parse_mechanism("first_price") == ("first_price", {})


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: rank_command(["first_price"], "truthful:4"), ConfigError, r"at least 2 mechanisms to compare, got 1"),
    (lambda: rank_command(["first_price", "first_price"], "truthful:4"), ConfigError, r"mechanisms must be distinct"),
    (lambda: rank_command(["first_price", "second_price"], "truthful:4", "profit"), ConfigError,
     r"metric must be one of .*got 'profit'"),
    (lambda: rank_command(["first_price", "second_price"], "truthful:4", seeds=1), ConfigError,
     r"seeds must be an integer in \[2, 10000\].*got 1"),
    (lambda: rank_command(["first_price", "second_price:reserve_price=-1"], "truthful:4"), ConfigError,
     r"reserve_price must be a finite float >= 0, got -1"),
    (lambda: rank_command(["first_price", "second_price:reserve_price"], "truthful:4"), ConfigError,
     r"expected key=value, got 'reserve_price'"),
    (lambda: rank_command(["first_price", "second_prize"], "truthful:4"), UnknownIdError, r"did you mean 'second_price'"),
    (lambda: repair_command("first_price", {}, "truthful:4", welfare_floor=2.0), ConfigError,
     r"welfare_floor must be a finite float in \[0, 1\], got 2.0"),
    (lambda: repair_command("first_price", {}, "truthful:4", budget=0), ConfigError, r"budget must be a finite int in \[1, 2000\]"),
    (lambda: repair_command("first_price", {}, "truthful:4", families=[]), ConfigError,
     r"families must name at least one deviation family"),
    (lambda: repair_command("first_price", {}, "truthful:4", enforcement={"audit_probability": 2}), ConfigError,
     r"audit_probability must be a finite float in \[0, 1\], got 2"),
])
def test_bad_command_inputs_are_pinned(call, error, message):
    with pytest.raises(error, match=message):
        call()
