import dataclasses

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.metrics import mean_ci, ratio_ci
from mecharena.sim import simulate


def go(**kw):
    args = {"markets": 300, "rounds": 3, "seed": 7} | kw
    return simulate(mechanisms.get("first_price"), {"reserve_price": 0.2}, agents.population("bne:4"), **args)


def test_same_seed_gives_bit_identical_traces_and_other_seeds_differ():
    a, b = go(), go()
    for field in dataclasses.fields(a):
        assert np.array_equal(getattr(a, field.name), getattr(b, field.name))
    assert not np.array_equal(a.revenue, go(seed=8).revenue)


def test_results_do_not_depend_on_how_markets_are_split():
    whole = go(markets=300)
    blocks = [go(markets=100, start=s) for s in (0, 100, 200)]
    assert np.array_equal(whole.revenue, np.concatenate([b.revenue for b in blocks], axis=1))
    assert np.array_equal(whole.welfare, np.concatenate([b.welfare for b in blocks], axis=1))


def test_multi_unit_demand_values_are_sorted_and_used():
    trace = simulate(mechanisms.get("vcg"), {"units": 3, "demand": 2}, agents.population("truthful:4"),
                     markets=200, rounds=2, seed=0)
    np.testing.assert_allclose(trace.welfare, trace.max_welfare)


def test_bad_run_sizes():
    with pytest.raises(ConfigError, match=r"^markets must be in \[1, 10000000\], got 0$"):
        go(markets=0)
    with pytest.raises(ConfigError, match=r"^rounds must be in \[1, 1000000\], got -1$"):
        go(rounds=-1)


def test_intervals_cover_known_means():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=(5, 4000))
    m = mean_ci(x)
    assert m["ci95"][0] < 2.0 < m["ci95"][1]
    half = (m["ci95"][1] - m["ci95"][0]) / 2
    assert half == pytest.approx(1.96 * x.mean(axis=0).std(ddof=1) / np.sqrt(4000), rel=1e-3)
    num = rng.random((3, 5000))
    den = num + rng.random((3, 5000))
    r = ratio_ci(num, den)
    assert r["mean"] == pytest.approx(num.sum() / den.sum())
    assert r["ci95"][0] < 0.5 < r["ci95"][1]  # E[num]/E[den] = 0.5 / 1.0


def test_single_market_uses_rounds_as_units():
    x = np.arange(10.0).reshape(10, 1)
    m = mean_ci(x)
    assert m["mean"] == 4.5 and m["ci95"][0] < 4.5 < m["ci95"][1]


@pytest.mark.parametrize("spec", ["sybil(m=3):1,truthful:3", "truthful:1,sybil(m=4):1,truthful:2"])
def test_false_names_move_nobody_elses_draws(spec):
    """Common random numbers keyed by identity: a population with false names and the same agents
    without them give every own seat the same values and tie-breaking priorities, market by market
    (a deviation that adds seats is compared on the same markets)."""
    from mecharena.metrics.harness import Cell
    from mecharena.sim.loop import initial_state, play_round

    def first_round(population):
        episode = Cell(mechanism="second_price", population=population, markets=64, rounds=1, seed=3).episode()
        _, record = play_round(episode, initial_state(episode))
        return episode.owner, record

    _, plain = first_round("truthful:4")
    owner, split = first_round(spec)
    own = owner == np.arange(owner.size)
    assert own.sum() == 4 and not own.all()
    assert np.array_equal(split.values[:, own], plain.values)
    assert np.array_equal(split.priority[:, own], plain.priority)
    assert np.array_equal(split.values, split.values[:, owner])  # false names carry their owner's value


def test_streamed_trace_gives_the_same_metrics_bit_for_bit():
    """Without per-round rows the trace keeps each market's mean over rounds (memory O(B), not O(T B)),
    and the headline metrics, which average rounds within a market first, are the same bit for bit."""
    from mecharena.metrics.summary import summarize
    from mecharena.sim.loop import make_episode
    from mecharena.sim.simulate import trace

    episode = make_episode(mechanisms.get("first_price"), {"reserve_price": 0.2}, agents.population("hedge:3,bne:2"),
                           markets=300, seed=5)
    full, streamed = trace(episode, 7), trace(episode, 7, per_round=False)
    assert full.revenue.shape == (7, 300) and streamed.revenue.shape == (1, 300)
    assert summarize(streamed) == summarize(full)


def test_a_run_that_would_not_fit_in_memory_stops_before_it_starts(monkeypatch):
    """The estimate (320 bytes per market and seat, 96 per market and round of a per-round trace) is checked
    against the memory available; the error names the sizes and what to lower, and nothing was played."""
    from typer.testing import CliRunner

    from mecharena.cli import app
    from mecharena.core import memory
    from mecharena.sim.loop import make_episode
    from mecharena.sim.simulate import trace, trace_bytes

    assert trace_bytes(10**6, 4, 200, per_round=True) == 10**6 * 4 * 320 + 10**6 * 200 * 96
    monkeypatch.setattr(memory, "available", lambda: 50 * 2**20)  # 50 MiB
    played = []
    with pytest.raises(ConfigError, match=r"^simulating a per-round trace of markets=100000 x rounds=10 with 4 agents "
                                          r"needs about 0\.2 GiB but 0\.0 GiB are available; lower --markets or "
                                          r"--rounds"):
        trace(make_episode(mechanisms.get("second_price"), None, agents.population("truthful:4", 0), markets=100_000,
                           seed=0), 10, on_round=played.append)
    assert played == []
    result = CliRunner().invoke(app, ["simulate", "--mechanism", "second_price", "--population", "truthful:4",
                                      "--markets", "100000", "--rounds", "2"])
    assert result.exit_code == 2 and "needs about 0.1 GiB but 0.0 GiB are available; lower --markets" in result.output
    small = trace(make_episode(mechanisms.get("second_price"), None, agents.population("truthful:4", 0), markets=1000,
                               seed=0), 2)
    assert small.revenue.shape == (2, 1000)


def test_the_memory_estimate_counts_what_learners_keep(monkeypatch):
    """An adaptive bidder keeps a 64-bin histogram per seat (2 x 64 x 8 bytes a market for two of them),
    counted STATE_FACTOR times with its temporaries: a budget that holds truthful bidders refuses learners."""
    from mecharena.core import memory
    from mecharena.sim.loop import make_episode
    from mecharena.sim.simulate import LOOP_BYTES_PER_SEAT, STATE_FACTOR, state_bytes, trace, trace_bytes

    def episode(population):
        return make_episode(mechanisms.get("first_price"), None, agents.population(population, 0), markets=100_000,
                            seed=0)

    learners, plain = episode("adaptive:2,truthful:2"), episode("truthful:4")
    assert state_bytes(plain) == 4  # who took part last round: a bool per seat
    assert state_bytes(learners) == 2 * 64 * 8 + 4
    assert trace_bytes(100_000, 4, 1, False, state_bytes(learners)) == 100_000 * (
        4 * LOOP_BYTES_PER_SEAT + STATE_FACTOR * (2 * 64 * 8 + 4))
    monkeypatch.setattr(memory, "available", lambda: 300 * 2**20)  # 300 MiB: 0.13 GiB fits, 0.5 GiB does not
    assert trace(plain, 1, per_round=False).revenue.shape == (1, 100_000)
    with pytest.raises(ConfigError, match=r"^simulating markets=100000 with 4 agents needs about 0\.5 GiB but 0\.3 "
                                          r"GiB are available; lower --markets$"):
        trace(learners, 1, per_round=False)


def test_a_seller_that_sits_out_trades_nothing_and_replays(tmp_path):
    """A seat that sits out offers nothing. For a seller that is an ask no buyer meets, not an ask of 0 (which
    would sell at any price): the call market clears as if it were absent, its action is not invalid, and the
    recorded ledger replays exactly."""
    from mecharena.agents.policy import TRUTHFUL, format_weights
    from mecharena.ledger import record_episode, replay
    from mecharena.metrics.harness import Cell
    from mecharena.sim.loop import make_episode, play

    never = TRUTHFUL.copy()
    never[20] = -1.0  # entry score -1: it never enters
    mechanism = mechanisms.get("k_double")
    population = f"truthful:2,policy(w={format_weights(never)}):1,truthful:1"  # seat 2 is the first seller
    (record,) = play(make_episode(mechanism, {"buyers": 2}, agents.population(population), markets=2000, seed=4), 1)
    assert not record.active[:, 2].any() and (record.bids[:, 2] == 0).all()
    assert (record.outcome.allocation[:, 2] == 0).all() and record.outcome.valid.all()
    alone = mechanisms.clear(mechanism, {"buyers": 2}, record.values[:, [0, 1, 3]], record.bids[:, [0, 1, 3]],
                             record.priority[:, [0, 1, 3]])
    np.testing.assert_array_equal(record.outcome.allocation[:, [0, 1, 3]], alone.allocation)
    np.testing.assert_array_equal(record.outcome.revenue, alone.revenue)
    cell = Cell(mechanism="k_double", config={"buyers": 2}, population=population, markets=50, rounds=2)
    record_episode(cell, tmp_path / "ledger", mode="full", background=False)
    assert replay(tmp_path / "ledger").ok
