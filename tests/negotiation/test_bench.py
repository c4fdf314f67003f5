import json

from mecharena.benchmarks.negotiation import run


def test_benchmark_reports_every_task_with_medians_cpu_and_load():
    result = run(episodes=1, repeats=2)
    assert set(result["tasks"]) == {"single_trade", "market_round", "coalition_market"}
    assert result["repeats"] == 2 and result["statistic"] == "median of interleaved repetitions"
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    paths = {"expert", "core", "parallel"}
    for row in result["tasks"].values():
        assert all(row[f"{path}_steps_per_s"] > 0 for path in paths)
        for key in ("steps", "steps_per_cpu_s", "wall_seconds", "cpu_seconds", "wall_trials", "cpu_trials"):
            assert set(row[key]) == paths
        assert all(len(row["cpu_trials"][path]) == 2 for path in paths)
        assert row["core_steps_per_s"] == row["steps"]["core"] / row["wall_seconds"]["core"]
    json.dumps(result)
