"""Compiled agent paths against the plain NumPy formulations they replaced (the references here), bit for bit:
the competing bid to beat, the dropout's update, the equilibrium shade, the cartel's act and update, and the
adaptive bidder's best bid (against its scan as written) and tallied histogram (against its dense form, through
the switch to two-byte tallies and to the dense form)."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents import _competitive, adaptive, bne, cartel, dropout
from mecharena.agents.base import Action, Draws, Feedback, Observation
from mecharena.agents.values import ValueDistribution
from mecharena.benchmarks.loop import episode
from mecharena.mechanisms.policy import InformationPolicy
from mecharena.sim import make_episode


def reference_threshold(bids, own, k):
    n = bids.shape[1]
    ranked = -np.sort(-bids, axis=1)
    kth = ranked[:, k - 1, None] if k <= n else np.zeros((bids.shape[0], 1))
    next_one = ranked[:, k, None] if k < n else np.zeros((bids.shape[0], 1))
    return np.where(own >= kth, next_one, kth)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 30])
@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_the_competing_bid_to_beat_matches_the_sorting_reference(n, k):
    rng = np.random.default_rng(n * 10 + k)
    for trial in range(20):
        bids = rng.choice([0.0, 0.3, 0.5, 0.7, -0.2, np.inf], size=(50, n))
        bids = np.where(rng.random((50, n)) < 0.5, bids, rng.random((50, n)))
        if trial == 18:
            bids[0, 0] = -0.0  # a signed zero or NaN takes the sorting path
        if trial == 19:
            bids[1, -1] = np.nan
        own = bids[:, :min(2, n)]
        assert _competitive.others_threshold(bids, own, k).tobytes() == reference_threshold(bids, own, k).tobytes()


def reference_dropout(params, state, inside, utility):
    seen = state.seen + inside
    step = np.maximum(params.memory, 1.0 / np.maximum(seen, 1))
    average = np.where(inside, (1 - step) * state.average + step * utility, state.average)
    trial = np.where(inside, np.maximum(state.trial - 1, 0), state.trial)
    leaving = inside & (trial == 0) & (average < params.outside)
    back = ~inside & (state.away <= 1)
    away = np.where(leaving, params.patience, np.where(inside, 0, np.maximum(state.away - 1, 0)))
    trial = np.where(back, params.patience, trial)
    return dropout.DropoutState(average, np.where(back, 0, seen), trial, away)


def test_the_dropout_update_matches_the_numpy_reference():
    rng = np.random.default_rng(3)
    params = dropout.DropoutParams(outside=0.05, memory=0.2, patience=3)
    shape = (400, 3)
    state = dropout.init(None, params, shape[1], Draws(0, ("init",), 0, shape[0]))
    for _ in range(30):
        inside = rng.random(shape) < 0.8
        utility = rng.normal(0.05, 0.2, shape)
        feedback = Feedback(np.zeros(shape), np.zeros(shape), np.zeros(shape), utility, inside)
        new = dropout.update(None, params, state, None, None, None, feedback, None)
        expected = reference_dropout(params, state, inside, utility)
        for name in ("average", "seen", "trial", "away"):
            got, want = getattr(new, name), getattr(expected, name)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
        state = new


@pytest.mark.parametrize("reserve", [0.0, 0.25, 0.999])
@pytest.mark.parametrize("n", [2, 5])
def test_the_fused_shade_matches_the_numpy_reference(reserve, n):
    dist = ValueDistribution()
    values = np.concatenate([np.random.default_rng(n).random((300, 3)), [[0.0, reserve, 1.0], [np.nan, -1.0, 2.0]]])
    start, entry = max(reserve, dist.low), max(reserve, bne.SMALLEST_BID)
    grid, curve = bne._curve(dist, n, 1, float(start), 1.0)
    expected = np.where(values >= start, np.maximum(np.interp(values, grid, curve), entry), values)
    assert bne.shaded_bids(dist, values, n, 1, reserve).tobytes() == expected.tobytes()


def test_the_tallied_histogram_holds_the_dense_floats():
    """Tallies through 300 rounds (past 255 units in a bin: two-byte tallies), then a censored observation:
    counts, bids and the dense update agree bit for bit with the dense form all along."""
    ep = episode(8, seed=1)
    group = ep.population.groups[0]
    context, params = ep.context.acting(group.seats), group.params
    rng = np.random.default_rng(5)
    shape = (8, 2)
    state = adaptive.init(context, params, shape[1], Draws(0, ("init",), 0, shape[0]))
    dense = state.counts
    assert state.hits is not None and state.hits.dtype == np.uint8
    edges = adaptive._edges(context, params)
    for t in range(301):
        values = rng.random(shape)
        bids = adaptive.act(context, params, state, values, None).bids
        reference = np.empty(shape)
        adaptive.dense_best_bids(dense, values, edges, context.visible_reserve, reference)
        assert bids.tobytes() == reference.tobytes()
        competing = np.full((8, 10), 2.0)  # above every bid: one bin (the top one) fills up
        competing[:, :2] = bids
        active = rng.random(shape) < 0.9
        won = rng.random(shape) < 0.5
        price = rng.random(8)
        if t < 300:
            observation = Observation(price, None, competing, None)
            exact = _competitive.others_threshold(competing, competing[:, :2], 1)
        else:  # only the price revealed: a winner's observation is censored, and the histogram turns dense
            observation = Observation(price, None, None, None)
            exact = np.where(~won, price[:, None], np.nan)
        feedback = Feedback(won.astype(float), np.zeros(shape), np.zeros(shape), np.zeros(shape), active)
        action = Action(bids=bids)
        state = adaptive.update(context, params, state, values, action, observation, feedback, None)
        own = np.where(active, bids, 0.0)
        lo, hi = np.where(won, 0.0, own), np.where(won, own, context.values.high + 1.0)
        expected = np.empty(dense.shape)
        adaptive._learn(dense, lo, hi, exact, active, edges, 1.0, expected)
        dense = expected
        assert state.counts.tobytes() == dense.tobytes()
        if t == 299:
            assert state.hits.dtype == np.uint16 and state.most > 255
    assert state.hits is None


def scanned_bids(counts, values, edges, reserve):
    """The adaptive bidder's scan as written: edges in order, stopping at the first edge above the value once
    a payoff >= 0 is found."""
    bids = np.empty(values.shape)
    for index in np.ndindex(values.shape):
        row, v = counts[index], values[index]
        total, below, best, best_payoff = row.cumsum()[-1], 0.0, 0, -np.inf
        for j, edge in enumerate(edges):
            if edge > v and best_payoff >= 0.0:
                break
            if edge >= reserve:
                payoff = (v - edge) * (below / total)
                if payoff > best_payoff:
                    best, best_payoff = j, payoff
            below += row[j] if j < row.size else 0.0
        bids[index] = min(edges[best], v) if v >= reserve else v
    return bids


@pytest.mark.parametrize("reserve", [0.0, 0.3, 0.999, 1.5])
def test_the_best_bid_follows_the_scan_with_any_counts(reserve):
    rng = np.random.default_rng(11)
    edges = np.linspace(0.0, 1.0, 17)
    counts = rng.normal(0.5, 1.0, (60, 2, 16))  # negative counts: payoffs below 0, the scan as written decides
    counts[:20] = np.abs(np.round(counts[:20], 0)) + 0.25  # ties
    values = np.concatenate([rng.random((57, 2)) * 1.2, [[0.0, reserve], [np.nan, 1.0], [0.3, 0.31]]])
    bids = np.empty(values.shape)
    adaptive.dense_best_bids(counts, values, edges, reserve, bids)
    assert bids.tobytes() == scanned_bids(counts, values, edges, reserve).tobytes()
    with pytest.raises(ZeroDivisionError):  # as the scan's first division
        adaptive.dense_best_bids(np.zeros((1, 1, 16)), np.full((1, 1), 0.5), edges, min(reserve, 1.0), bids[:1, :1])


def reference_cartel_act(context, params, state, values, draws):
    k = values.shape[1]
    turn = np.argmax(values, axis=1) if params.knockout else state.round % k
    designated = np.arange(k)[None, :] == turn[:, None]
    punishing = (state.punishing > 0)[:, None]
    tempted = ~designated & (values > params.threshold)
    if cartel.can_detect(context):
        tempted &= draws.uniform("defect", k) < params.temptation
    ring = _competitive.competitive_bids(context, values, rivals=context.n_agents - k)
    open_bids = _competitive.competitive_bids(context, values)
    honest = punishing | tempted | (k < 2)
    return np.where(honest, open_bids, np.where(designated, ring, 0.0)), ~honest, designated


def reference_cartel_update(context, params, state, action, observation):
    defected = ~action.memo & ~action.colluding & (action.bids > 0)
    detected = np.zeros(action.bids.shape[0], dtype=bool)
    if observation.winners is not None:
        detected |= (observation.winners[:, context.seats] & defected).any(axis=1)
    if observation.bids is not None:
        detected |= (defected & (observation.bids[:, context.seats] > 0)).any(axis=1)
    detected &= state.punishing == 0
    return np.where(detected, params.punish_rounds, np.maximum(state.punishing - 1, 0))


@pytest.mark.parametrize("mechanism", ["first_price", "second_price"])
@pytest.mark.parametrize("seen", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("knockout", [False, True])
def test_the_compiled_cartel_matches_the_numpy_reference(mechanism, seen, knockout):
    winners_seen, bids_seen = seen
    ep = make_episode(mechanisms.get(mechanism), {"reserve_price": 0.2}, agents.population(
        f"truthful:2,cartel(threshold=0.4,temptation=0.3,knockout={str(knockout).lower()}):3"), markets=300, seed=2,
        information=InformationPolicy(winner_identity=winners_seen, competing_bids=bids_seen))
    group = ep.population.groups[1]
    context, params = ep.context.acting(group.seats), group.params
    rng = np.random.default_rng(4)
    state = cartel.CartelState(rng.integers(0, 9, 300), rng.integers(0, 3, 300))
    for t in range(3):
        values = rng.random((300, 5))[:, group.seats]
        draws = Draws(2, ("agent", 1, t), 0, 300)
        action = cartel.act(context, params, state, values, draws)
        bids, colluding, designated = reference_cartel_act(context, params, state, values, draws)
        assert action.bids.tobytes() == bids.tobytes()
        assert np.array_equal(action.colluding, colluding) and np.array_equal(action.memo, designated)
        shown = rng.random((300, 5)) * (rng.random((300, 5)) < 0.5)
        observation = Observation(np.zeros(300), (rng.random((300, 5)) < 0.3) if winners_seen else None,
                                  shown if bids_seen else None, None)
        new = cartel.update(context, params, state, values, action, observation, None, draws)
        punishing = reference_cartel_update(context, params, state, action, observation)
        assert new.punishing.dtype == punishing.dtype and np.array_equal(new.punishing, punishing)
        assert np.array_equal(new.round, state.round + 1)
        state = new


@pytest.mark.parametrize("bins", [1, 2, 4, 7, 64, 129])
def test_the_bin_search_is_numpys(bins):
    rng = np.random.default_rng(bins)
    for edges in (np.linspace(0.0, 1.0, bins + 1), np.linspace(0.0, 3.7, bins + 1), np.sort(rng.random(bins + 1)),
                  np.repeat(np.linspace(0.0, 1.0, bins // 2 + 2), 2)[:bins + 1]):
        x = np.concatenate([rng.random(1000) * 4 - 1, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                            [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -1e308]])
        assert [adaptive._right(edges, v) for v in x] == np.searchsorted(edges, x, side="right").tolist()
