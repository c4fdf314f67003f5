"""Planted flaws in multi-unit auctions (examples/plugins/planted/multi_unit): the case loads and passes the
checker, its exact exploitability oracle agrees with closed forms, with a brute-force search over bid
vectors and with Monte Carlo play through the case's own kernel, and the discovery engine, told nothing
about the flaw, finds what the oracle says.

Exploitability (the case's docstring): one deviator, the first bidder; the other n - 1 bid their marginal
values truthfully (population ``truthful:n``); each bidder's two marginal values are the order statistics of
two i.i.d. U[0, 1] draws; one round; the mean gain per round of the deviator's best bid vector
``b_1 >= b_2`` over truthful bidding.
"""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mecharena import mechanisms, plugins
from mecharena.mechanisms import clear
from mecharena.mechanisms.checker import check_mechanism

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "examples" / "plugins" / "planted" / "multi_unit" / "volume_vickrey.py"
CONFIG = {"units": 2, "demand": 2, "volume_discount": 1.0}  # the case (the config's defaults)
PLAIN = {"units": 2, "demand": 2, "volume_discount": 0.0}  # the multi-unit Vickrey auction
N = 2  # the deviator and one truthful rival


def case():
    """The case's module, loaded as a plug-in without re-running the checker (the registry is restored
    after each test by the conftest fixture)."""
    plugin = plugins.load(str(CASE), check=False)
    return sys.modules[plugin.module]


def marginal_values(rng, *shape):
    """(*shape, 2) marginal values: the two order statistics of two U[0, 1] draws, highest first."""
    return -np.sort(-rng.random((*shape, 2)), axis=-1)


def utility(module, config, values, bids, rivals, priority):
    """The deviator's utility (seat 0), cleared by the case's kernel through ``mecharena.mechanisms.clear``.

    Args:
        values: (M, 2) the deviator's marginal values.
        bids: (M, 2) its marginal bids.
        rivals: (M, n - 1, 2) the rivals' marginal values, which they bid.
        priority: (M, n) tie-breaking priorities.
    """
    all_values = np.concatenate([values[:, None, :], rivals], axis=1)
    all_bids = all_values.copy()
    all_bids[:, 0, :] = bids
    return clear(module.MECHANISM, config, all_values, all_bids, priority).utility[:, 0]


def gain(module, config, values, bids, n, rng):
    """(M,) the deviator's gain over truthful bidding, in M markets with fresh rivals (common to both plays)."""
    rivals, priority = marginal_values(rng, values.shape[0], n - 1), rng.random((values.shape[0], n))
    return (utility(module, config, values, bids, rivals, priority)
            - utility(module, config, values, values, rivals, priority))


def test_the_case_loads_and_passes_the_checker():
    plugin = plugins.load(str(CASE))  # refused unless check_mechanism passes
    mechanism = mechanisms.get("volume_vickrey")
    assert plugin.mechanisms == (mechanism,)
    assert check_mechanism(mechanism) >= 10
    assert mechanism.market_spec(mechanism.config(), 3).units_per_agent == 2  # (B, N, 2) marginal bids
    assert mechanism.config().model_dump() == {**CONFIG, "reserve_price": 0.0}
    assert "truthful" in mechanism.properties(mechanism.config(PLAIN))
    assert "truthful" not in mechanism.properties(mechanism.config())
    assert case().PLAIN == PLAIN
    tree = ast.parse(CASE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"typing", "numpy", "pydantic", "mecharena"}


@pytest.mark.parametrize("config", [{"units": 2, "demand": 2}, {"units": 3, "demand": 2, "reserve_price": 0.3},
                                    {"units": 4, "demand": 3}])
def test_without_the_flaw_the_rule_is_the_built_in_vickrey_auction(config):
    """volume_discount = 0 clears every market exactly as the built-in ``vcg`` does (allocation, payments)."""
    module = case()
    rng = np.random.default_rng(3)
    k = config["demand"]
    values = -np.sort(-rng.random((5_000, 4, k)), axis=2)
    bids = -np.sort(-rng.random((5_000, 4, k)), axis=2)
    priority = rng.random((5_000, 4))
    plain = clear(module.MECHANISM, {**config, "volume_discount": 0.0}, values, bids, priority)
    vickrey = clear(mechanisms.get("vcg"), config, values, bids, priority)
    np.testing.assert_array_equal(plain.allocation, vickrey.allocation)
    np.testing.assert_allclose(plain.payments, vickrey.payments, atol=1e-12)
    flawed = clear(module.MECHANISM, {**config, "volume_discount": 1.0}, values, bids, priority)
    assert (flawed.payments <= plain.payments + 1e-12).all()
    assert (flawed.payments < plain.payments - 1e-9).any()  # winners of several units pay less


def test_the_oracle_matches_its_closed_forms():
    """n = 2, d = 1: the three regions of the docstring add up to 7/180; where the constraint b_1 >= b_2 does
    not bind the gain is ``v_2^(M+1)/(M+1) ((M/(M-d))^M - (1+d))``; without the flaw the oracle gives 0
    (truthful bidding is weakly dominant in the Vickrey auction: Vickrey 1961; Krishna, *Auction Theory*,
    2nd ed., ch. 12) and its best response is truthful."""
    module = case()
    assert module.true_exploitability(N) == pytest.approx(7 / 180, abs=1e-10)
    assert module.true_exploitability(N, pieces=256) == pytest.approx(7 / 180, abs=1e-12)
    for n in (2, 3, 4):
        assert module.true_exploitability(n, PLAIN) == pytest.approx(0.0, abs=1e-12)
        m, d = 2 * (n - 1), 1.0
        v2 = np.linspace(0.0, (m - d) / m * 0.9, 7)
        values = np.column_stack([np.full_like(v2, 0.9), v2])
        best = module.best_response(values, n)
        assert best[:, 0] == pytest.approx(0.9) and best[:, 1] == pytest.approx(m * v2 / (m - d))
        closed = v2 ** (m + 1) / (m + 1) * ((m / (m - d)) ** m - (1 + d))
        got = module.expected_utility(values, best, n) - module.expected_utility(values, values, n)
        assert got == pytest.approx(closed, abs=1e-14)
        plain = np.array([[0.9, 0.1], [0.6, 0.55], [0.3, 0.3], [1.0, 0.99]])
        assert module.best_response(plain, n, PLAIN) == pytest.approx(plain, abs=1e-12)


def test_the_oracle_agrees_with_a_brute_force_search_over_bid_vectors():
    """Every bid vector ``b_1 >= b_2`` on a 0.005 grid, the best kept for each value pair of a midpoint grid
    (density 2 on v_1 > v_2, 1 on the diagonal cells' midpoints): the integrated gain is within 1e-5 of
    the oracle's, and no grid vector beats the oracle's best response anywhere."""
    module = case()
    g = 120
    mid = (np.arange(g) + 0.5) / g
    v1, v2 = (x.ravel() for x in np.meshgrid(mid, mid, indexing="ij"))
    weight = np.where(v1 > v2, 2.0, np.where(v1 == v2, 1.0, 0.0)) / g**2
    values = np.column_stack([v1, v2])[weight > 0]
    weight = weight[weight > 0]
    grid = np.linspace(0.0, 1.0, 201)
    b1, b2 = np.meshgrid(grid, grid, indexing="ij")
    vectors = np.column_stack([b1[b1 >= b2], b2[b1 >= b2]])
    searched = np.full(len(values), -np.inf)
    for start in range(0, len(vectors), 500):
        chunk = module.expected_utility(values[:, None, :], vectors[None, start:start + 500, :], N)
        searched = np.maximum(searched, chunk.max(axis=1))
    oracle = module.expected_utility(values, module.best_response(values, N), N)
    truthful = module.expected_utility(values, values, N)
    assert (searched <= oracle + 1e-12).all()
    assert weight @ (searched - truthful) == pytest.approx(module.true_exploitability(N), abs=1e-5)
    assert weight @ (oracle - truthful) == pytest.approx(module.true_exploitability(N), abs=1e-5)


@pytest.mark.parametrize("n", [2, 3])
def test_the_oracle_agrees_with_monte_carlo_through_the_kernel(n):
    """200,000 markets: the deviator plays the oracle's best response, the others truthfully; the mean gain
    over truthful bidding matches ``true_exploitability(n)`` within 3 standard errors, and so does the
    truthful bidder's utility the oracle's ``expected_utility`` (0.433 at n = 2: the docstring)."""
    module = case()
    rng = np.random.default_rng(4242 + n)
    values = marginal_values(rng, 200_000)
    sample = gain(module, None, values, module.best_response(values, n), n, rng)
    error = sample.std() / np.sqrt(sample.size)
    assert abs(sample.mean() - module.true_exploitability(n)) < 3 * error
    if n == N:
        assert sample.mean() > 0.035
        rivals, priority = marginal_values(rng, values.shape[0], n - 1), rng.random((values.shape[0], n))
        truthful = utility(module, None, values, values, rivals, priority)
        exact = module.expected_utility(values, values, n)
        assert abs(truthful.mean() - exact.mean()) < 3 * truthful.std() / np.sqrt(truthful.size)
        assert truthful.mean() == pytest.approx(0.433, abs=0.003)


def test_without_the_flaw_the_planted_exploit_loses_through_the_kernel():
    """In the Vickrey auction the flawed best response earns less than truthful bidding (by what the oracle
    says, within 3 standard errors), and the plain oracle's best response is truthful bidding itself."""
    module = case()
    rng = np.random.default_rng(17)
    values = marginal_values(rng, 200_000)
    flawed = module.best_response(values, N)
    sample = gain(module, PLAIN, values, flawed, N, rng)
    exact = module.expected_utility(values, flawed, N, PLAIN) - module.expected_utility(values, values, N, PLAIN)
    error = sample.std() / np.sqrt(sample.size)
    assert exact.mean() < -0.01 and sample.mean() < 0
    assert abs(sample.mean() - exact.mean()) < 3 * error
    assert (gain(module, PLAIN, values, module.best_response(values, N, PLAIN), N, rng) == 0).all()


def test_no_bid_vector_beats_the_oracles_best_response_through_the_kernel():
    """At a few value pairs no bid vector on a coarse grid (bids up to 1.5) earns more than the oracle's best
    response through the kernel, within 3 standard errors (common random numbers)."""
    module = case()
    pairs = np.array([[0.9, 0.2], [0.8, 0.35], [0.6, 0.45], [0.45, 0.2], [0.95, 0.7]])
    coarse = np.r_[np.linspace(0.0, 1.0, 11), 1.5]
    b1, b2 = np.meshgrid(coarse, coarse, indexing="ij")
    vectors = np.column_stack([b1[b1 >= b2], b2[b1 >= b2]])
    each, markets = len(vectors), 4_000
    rng = np.random.default_rng(23)
    for v, b in zip(pairs, module.best_response(pairs, N), strict=True):
        rivals, priority = marginal_values(rng, markets, N - 1), rng.random((markets, N))
        trial = utility(module, None, np.tile(v, (markets * each, 1)), np.repeat(vectors, markets, axis=0),
                        np.tile(rivals, (each, 1, 1)), np.tile(priority, (each, 1)))
        reference = utility(module, None, np.tile(v, (markets, 1)), np.tile(b, (markets, 1)), rivals, priority)
        diff = trial.reshape(each, markets) - reference
        error = diff.std(axis=1) / np.sqrt(markets)
        assert (diff.mean(axis=1) <= 3 * error + 1e-12).all(), (v, vectors[int(np.argmax(diff.mean(axis=1)))])


def test_the_documented_numbers_are_the_oracles():
    module = case()
    rows = re.findall(r"^([234]) {2,}([0-9.]+) {2,}([0-9.]+)$", module.__doc__, flags=re.MULTILINE)
    assert [int(n) for n, _, _ in rows] == [2, 3, 4]
    for n, full, half in rows:
        assert float(full) == pytest.approx(module.true_exploitability(int(n)), abs=1e-6)
        assert float(half) == pytest.approx(module.true_exploitability(int(n), {"volume_discount": 0.5}), abs=1e-6)


def _engine(config: dict):
    """The discovery engine's best bid vector for the first bidder, and its gain on fresh markets."""
    from mecharena.fuzz.discover import best_response
    from mecharena.fuzz.score import Scorer
    from mecharena.metrics.harness import Cell

    plugins.load(str(CASE))
    cell = Cell(mechanism="volume_vickrey", config=config, population=f"truthful:{N}", rounds=1)
    found = best_response(cell, seed=1, samples=20_000)
    return found, Scorer(cell).score(found.deviation, seed=99, markets=20_000, rounds=1)


@pytest.mark.slow
def test_the_engine_finds_the_planted_flaw():
    """The engine, told nothing about the flaw, earns >= 90% of the true exploitability (7/180) on fresh
    markets, and its 95% interval is consistent with it (no strategy can beat the optimum)."""
    true = case().true_exploitability(N)
    found, fresh = _engine(CONFIG)
    assert fresh.mean >= 0.9 * true, (found.description, fresh.mean, fresh.lo, fresh.hi)
    assert fresh.lo <= true <= fresh.hi + 0.002, (found.description, fresh.mean, fresh.lo, fresh.hi)


@pytest.mark.slow
def test_the_engine_finds_nothing_without_the_flaw():
    """In the Vickrey auction (true exploitability 0) the engine's strategy gains nothing on fresh markets."""
    found, fresh = _engine(PLAIN)
    assert fresh.mean <= 0.002 and fresh.lo - 0.002 <= 0.0 <= fresh.hi + 0.002, (found.description, fresh.mean)
