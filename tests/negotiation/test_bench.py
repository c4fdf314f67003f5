from mecharena.benchmarks.negotiation import run


def test_benchmark_reports_every_task():
    result = run(episodes=1)
    assert set(result["tasks"]) == {"single_trade", "market_round", "coalition_market"}
    assert all(v > 0 for rates in result["tasks"].values() for v in rates.values())
