"""Planted flaws in two-sided markets (examples/plugins/planted/two_sided): each case loads and passes the
checker, its exact exploitability oracle agrees with closed forms and with Monte Carlo play through the
case's own kernel, and the discovery engine, told only which side deviates, finds what the oracle says.

Exploitability (each case's docstring): one deviator, the first seller; every other buyer and seller
reports truthfully (population ``truthful:n``, the config deciding which seats sell); values and costs
i.i.d. U[0, 1]; one round; the mean gain per round of the seller's best ask over its truthful ask.
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
CASEBOOK = ROOT / "examples" / "plugins" / "planted" / "two_sided"
CASE = CASEBOOK / "cheapest_first.py"
SIZES = (4, 5, 6)
PLAIN = {"seller_queue": "arrival"}  # sellers served in arrival order: a fixed-price double auction
# int_0^(1/2) (1/2 - c) (P(L >= 1)/2 + P(L >= 2)/4) dc with L ~ Binomial(n - 3, c): the docstring's table.
CLOSED_FORM = {4: 1 / 96, 5: 5 / 256, 6: 7 / 256}


def case():
    """The case's module, loaded as a plug-in without re-running the checker (the registry is restored
    after each test by the conftest fixture)."""
    plugin = plugins.load(str(CASE), check=False)
    return sys.modules[plugin.module]


def seller_utility(module, config, costs, asks, others, priority):
    """The first seller's utility, cleared by the case's kernel (through ``mecharena.mechanisms.clear``).

    Args:
        costs: (M,) the first seller's costs.
        asks: (M,) its asks (NaN: abstain, an ask above any price).
        others: (M, n - 1) the other agents' values and costs (buyers first), which they report.
        priority: (M, n) tie-breaking priorities.
    """
    nb = module.MECHANISM.config(config).buyers
    values = np.column_stack([others[:, :nb], costs, others[:, nb:]])
    bids = values.copy()
    bids[:, nb] = np.nan_to_num(asks, nan=4.0)
    return clear(module.MECHANISM, config, values, bids, priority).utility[:, nb]


def seller_gain(module, config, costs, asks, n, rng):
    """(M,) the first seller's gain over asking its cost, in M markets with fresh rivals common to both plays."""
    others, priority = rng.random((costs.size, n - 1)), rng.random((costs.size, n))
    return (seller_utility(module, config, costs, asks, others, priority)
            - seller_utility(module, config, costs, costs, others, priority))


def test_the_case_loads_and_passes_the_checker():
    plugin = plugins.load(str(CASE))  # refused unless check_mechanism passes
    mechanism = mechanisms.get("cheapest_first")
    assert plugin.mechanisms == (mechanism,)
    assert check_mechanism(mechanism) >= 10
    spec = mechanism.market_spec(mechanism.config(), 5)
    assert spec.sellers.tolist() == [False, False, True, True, True]  # seat 2 is the first seller
    assert "truthful" in mechanism.properties(mechanism.config(PLAIN))
    assert "truthful" not in mechanism.properties(mechanism.config())
    tree = ast.parse(CASE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"math", "typing", "numpy", "pydantic", "mecharena"}


@pytest.mark.parametrize("n", SIZES)
def test_the_oracle_matches_the_closed_form_and_the_plain_rule(n):
    """The flaw is worth its closed form; in arrival order (a fixed-price double auction, where saying yes
    exactly when the cost is below the price is dominant: Hagerty and Rogerson 1987) the oracle gives 0."""
    module = case()
    assert module.true_exploitability(n) == pytest.approx(CLOSED_FORM[n], abs=1e-12)
    assert module.true_exploitability(n, PLAIN) == pytest.approx(0.0, abs=1e-12)
    assert module.true_exploitability(n, {**PLAIN, "price": 0.7, "buyers": 1}) == pytest.approx(0.0, abs=1e-12)


def test_the_oracle_at_another_price():
    """p = 0.6, n = 5: K ~ Binomial(2, 0.4) gives ``P(1 <= K <= L) = 0.96 c - 0.32 c^2``, and
    ``int_0^0.6 (0.6 - c)(0.96 c - 0.32 c^2) dc = 0.031104``."""
    assert case().true_exploitability(5, {"price": 0.6}) == pytest.approx(0.031104, abs=1e-12)


def test_the_best_response_asks_nothing_below_the_price_and_abstains_above():
    module = case()
    costs = np.array([0.0, 0.1, 0.3, 0.49, 0.51, 0.8, 1.0])
    best = module.best_response(costs, 5)
    assert best[:4].tolist() == [0.0] * 4 and np.isnan(best[4:]).all()


@pytest.mark.parametrize("n", SIZES)
def test_the_oracle_agrees_with_monte_carlo_through_the_kernel(n):
    """200,000 markets: the first seller plays the oracle's best response, everyone else truthfully; the mean
    gain over truthful asking matches ``true_exploitability(n)`` within 3 standard errors."""
    module = case()
    rng = np.random.default_rng(31337 + n)
    costs = rng.random(200_000)
    sample = seller_gain(module, None, costs, module.best_response(costs, n), n, rng)
    error = sample.std() / np.sqrt(sample.size)
    assert abs(sample.mean() - module.true_exploitability(n)) < 3 * error
    assert sample.mean() > 0.01


def test_without_the_flaw_no_ask_gains_through_the_kernel():
    """In arrival order the planted exploit (ask 0 below the price) and the plain oracle's best response
    earn exactly what truthful asking earns, market by market."""
    module = case()
    rng = np.random.default_rng(5)
    costs = rng.random(50_000)
    flawed = module.best_response(costs, 5)
    assert (seller_gain(module, PLAIN, costs, flawed, 5, rng) == 0).all()
    assert (seller_gain(module, PLAIN, costs, module.best_response(costs, 5, PLAIN), 5, rng) == 0).all()


def test_no_ask_beats_the_oracles_best_response():
    """At a few costs no ask on a grid does better than the oracle's best response: exactly, by the oracle's
    own utility on a fine grid, and within 3 standard errors through the kernel on a coarse one (common
    random numbers)."""
    module = case()
    n, costs, markets = 5, np.array([0.05, 0.3, 0.45, 0.6, 0.95]), 10_000
    fine = np.linspace(0.0, 4.0, 8001)
    coarse = np.r_[np.linspace(0.0, 1.5, 31), 2.0, 3.0, 4.0]
    best = module.best_response(costs, n)
    rng = np.random.default_rng(11)
    for c, a in zip(costs, best, strict=True):
        top = 0.0 if np.isnan(a) else float(module.expected_utility(c, a, n))
        assert module.expected_utility(c, fine, n).max() <= top + 1e-12, c
        others, priority = rng.random((markets, n - 1)), rng.random((markets, n))
        each = coarse.size
        trial = seller_utility(module, None, np.full(markets * each, c), np.repeat(coarse, markets),
                               np.tile(others, (each, 1)), np.tile(priority, (each, 1)))
        reference = seller_utility(module, None, np.full(markets, c), np.full(markets, a), others, priority)
        diff = trial.reshape(each, markets) - reference
        error = diff.std(axis=1) / np.sqrt(markets)
        assert (diff.mean(axis=1) <= 3 * error + 1e-12).all(), (c, coarse[int(np.argmax(diff.mean(axis=1)))])


def test_the_documented_numbers_are_the_oracles():
    module = case()
    rows = re.findall(r"^([456]) {2,}(\d) {2,}([0-9.]+) ", module.__doc__, flags=re.MULTILINE)
    assert [int(n) for n, _, _ in rows] == list(SIZES)
    for n, sellers, gain in rows:
        assert int(sellers) == int(n) - module.MECHANISM.config().buyers
        assert float(gain) == pytest.approx(module.true_exploitability(int(n)), abs=1e-6)


def _engine(config: dict, n: int = 5):
    """The discovery engine's best response for the first seller, and its gain on fresh markets."""
    from mecharena.fuzz.discover import best_response
    from mecharena.fuzz.score import Scorer
    from mecharena.metrics.harness import Cell

    plugins.load(str(CASE))
    cell = Cell(mechanism="cheapest_first", config=config, population=f"truthful:{n}", rounds=1)
    found = best_response(cell, seed=1, samples=20_000, role="seller")
    return found, Scorer(cell).score(found.deviation, seed=99, markets=20_000, rounds=1)


@pytest.mark.slow
def test_the_engine_finds_the_planted_flaw():
    """The engine, as ``mecharena bench discovery`` runs it (a buyer's and a seller's search, the better kept),
    earns >= 90% of the true exploitability on fresh markets as the first seller, its 95% interval consistent
    with it: below the price it asks 0, which sells at any price."""
    from mecharena.benchmarks.discovery import planted_case

    true = case().true_exploitability(5)
    row = planted_case(CASE, case().MARKET_SIZE, samples=20_000, eval_markets=20_000, seed=1)
    assert row["role"] == "seller" and row["true"] == true
    assert row["ratio"] >= 0.9 and row["ci95"][0] - 0.002 <= true <= row["ci95"][1] + 0.002, row
    assert row["description"].startswith("asks 0 (sells at any price) for values up to 0.4"), row["description"]


@pytest.mark.slow
def test_the_engine_finds_nothing_without_the_flaw():
    """In arrival order (true exploitability 0) the engine's strategy gains nothing on fresh markets."""
    found, fresh = _engine(PLAIN)
    assert fresh.mean <= 0.002 and fresh.lo - 0.002 <= 0.0 <= fresh.hi + 0.002, (found.description, fresh.mean)
