"""Compiled agent kernels against the plain NumPy formulations they replaced (the references here), bit for
bit: the adaptive bidder's act and update (and the pairwise sum against ``ndarray.sum``), the no-regret
learners' weights, draws and counterfactual payoffs, and the equilibrium bid function's interpolation."""

import numpy as np
import pytest

from mecharena.agents import _multiplier, adaptive, bne
from mecharena.agents._sums import pairwise_sum


def reference_bids(counts, values, edges, reserve):
    below = np.concatenate([np.zeros(counts.shape[:2] + (1,)), np.cumsum(counts, axis=2)], axis=2)
    payoff = (values[:, :, None] - edges[None, None, :]) * (below / below[:, :, -1:])
    payoff = np.where(edges[None, None, :] >= reserve, payoff, -np.inf)
    best = edges[np.argmax(payoff, axis=2)]
    return np.where(values >= reserve, np.minimum(best, values), values)


def reference_counts(counts, lo, hi, exact, active, edges, keep):
    bins = counts.shape[2]
    known = np.isfinite(exact)
    centers = (edges[:-1] + edges[1:]) / 2
    point = np.zeros_like(counts)
    index = np.clip(np.searchsorted(edges, np.where(known, exact, 0.0), side="right") - 1, 0, bins - 1)
    np.put_along_axis(point, index[:, :, None], 1.0, axis=2)
    inside = (centers[None, None, :] >= lo[:, :, None]) & (centers[None, None, :] < hi[:, :, None])
    inside |= ~inside.any(axis=2, keepdims=True) & (np.arange(bins) == np.clip(
        np.searchsorted(edges, lo, side="right") - 1, 0, bins - 1)[:, :, None])
    spread = counts * inside
    spread = spread / spread.sum(axis=2, keepdims=True)
    return counts * keep + np.where(known[:, :, None], point, spread) * active[:, :, None]


@pytest.mark.parametrize("bins", [4, 7, 64, 129, 300])
@pytest.mark.parametrize("reserve", [0.0, 0.35, 1.5])
def test_compiled_act_and_update_match_the_numpy_reference(bins, reserve):
    rng = np.random.default_rng(bins)
    shape = (200, 3)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = rng.random(shape + (bins,)) ** 3 + 1e-3
    counts[:20] = np.round(counts[:20], 1) + 1.0  # ties for the best price
    values = rng.random(shape)
    bids = np.empty(shape)
    adaptive.dense_best_bids(counts, values, edges, reserve, bids)
    assert np.array_equal(bids, reference_bids(counts, values, edges, reserve))
    own = rng.random(shape)
    won = rng.random(shape) < 0.4
    lo, hi = np.where(won, 0.0, own), np.where(won, own, 2.0)
    lo[:5] = hi[:5] = 0.5 / bins  # an empty interval: the bin of lo takes the unit
    exact = np.where(rng.random(shape) < 0.3, rng.random(shape) * 1.2, np.nan)
    active = rng.random(shape) < 0.9
    for keep in (1.0, 0.9):
        out = np.empty(counts.shape)
        adaptive._learn(counts, lo, hi, exact, active, edges, keep, out)
        assert np.array_equal(out, reference_counts(counts, lo, hi, exact, active, edges, keep))


def test_the_pairwise_sum_adds_up_as_numpy_does():
    rng = np.random.default_rng(0)
    for n in [*range(1, 300), 511, 512, 1000, 4096]:
        a = rng.random(n) * 10.0 ** rng.uniform(-8, 8, n)  # magnitudes far apart: the order shows
        assert 0.0 + pairwise_sum(a, 0, n) == a.sum(), n


def reference_payoffs(multipliers, values, competing, reserve, first_price):
    bid = multipliers[None, None, :] * values[:, :, None]
    y = competing[:, :, None]
    wins = (bid > y) & (bid >= reserve) & (bid > 0)
    price = bid if first_price else np.maximum(y, reserve)
    return np.where(wins, values[:, :, None] - price, 0.0)


@pytest.mark.parametrize("first_price", [True, False])
@pytest.mark.parametrize("reserve", [0.0, 0.3])
def test_compiled_counterfactual_credit_matches_the_numpy_reference(first_price, reserve):
    rng = np.random.default_rng(7)
    multipliers = np.linspace(0.05, 1.0, 20)
    values = rng.random((300, 4))
    competing = np.where(rng.random((300, 4)) < 0.2, 0.0, rng.random((300, 4)))
    competing[:10] = multipliers[5] * values[:10]  # ties lose
    known = rng.random((300, 4)) < 0.7
    scores = rng.normal(0, 1, (300, 4, 20))
    out = np.empty((300, 4, 20))
    _multiplier._credit(multipliers, scores, values, competing, known, reserve, first_price, out)
    gains = reference_payoffs(multipliers, values, np.where(known, competing, 0.0), reserve, first_price)
    assert np.array_equal(out, scores + np.where(known[:, :, None], gains, 0.0))


@pytest.mark.parametrize("points", [1, 2, 3, 4097])
def test_the_even_grid_interpolation_is_numpys_bit_for_bit(points):
    rng = np.random.default_rng(points)
    xp = np.linspace(0.15, 1.0, points)
    fp = np.sqrt(xp) * 0.7 - xp**3
    if points > 3:
        fp[10:12] = np.inf  # where NumPy falls back to interpolating from the right end
    edges = np.concatenate([xp, np.nextafter(xp, 2), np.nextafter(xp, -2), [np.nan, np.inf, -np.inf, 0, 1, 2]])
    x = np.concatenate([rng.uniform(-0.2, 1.2, 200_000), edges])
    x = x[: x.size // 2 * 2].reshape(-1, 2)  # any shape
    assert np.array_equal(bne.interp_even(x, xp, fp), np.interp(x, xp, fp), equal_nan=True)


def reference_policy(eta, arms, scores, gamma):
    z = eta * (scores - scores.max(axis=2, keepdims=True))
    p = np.exp(z)
    p /= p.sum(axis=2, keepdims=True)
    return (1.0 - gamma) * p + gamma / arms


@pytest.mark.parametrize("arms", [2, 7, 20, 200])
@pytest.mark.parametrize("gamma", [0.0, 0.07])
def test_compiled_weights_and_draws_match_the_numpy_reference(arms, gamma):
    rng = np.random.default_rng(arms)
    params = _multiplier.MultiplierParams(arms=arms, eta=3.7)
    scores = rng.normal(0, 5, (400, 3, arms)) * rng.uniform(0, 1, (400, 3, 1))
    scores[:5] = 0.0  # uniform weights: every cumulative sum lands on the grid of 1/A
    p = _multiplier.policy(params, scores, gamma)
    expected = reference_policy(params.eta, arms, scores, gamma)
    assert np.array_equal(p, expected)
    u = rng.random((400, 3))
    u[:5] = np.cumsum(expected[:5], axis=2)[:, :, arms // 2]  # draws exactly on a cumulative sum
    arm, chosen = np.empty(u.shape, np.int64), np.empty(u.shape)
    _multiplier._draw(p, u, arm, chosen)
    expected_arm = np.minimum((np.cumsum(expected, axis=2) < u[:, :, None]).sum(axis=2), arms - 1)
    assert np.array_equal(arm, expected_arm)
    assert np.array_equal(chosen, np.take_along_axis(expected, expected_arm[:, :, None], axis=2)[:, :, 0])
