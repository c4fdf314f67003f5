"""A planted flaw in a two-sided matching market (examples/plugins/planted/matching): deferred acceptance where a
proposer declaring at most two receivers acceptable moves up one place in every receiver's ranking. The case loads
and passes the checker, its plain config is the built-in deferred acceptance, its exact oracle (every profile of
rankings) agrees with Monte Carlo play through the case's kernel, and the ranking search finds what the oracle says.

Exploitability (the case's docstring): population ``truthful:6`` with 3 proposers and 3 receivers; utilities for
the other side i.i.d. U[0, 1]; one round; one deviator, the first proposer (or the first receiver), playing any
reordering and truncation of its true ranking as a function of that ranking; its mean gain per round over the
truthful report.
"""

import ast
import sys
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mecharena import mechanisms, plugins
from mecharena.agents.rank_report import orders, report
from mecharena.fuzz import fuzz
from mecharena.mechanisms import clear
from mecharena.mechanisms.checker import check_mechanism
from mecharena.metrics.harness import Cell

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "examples" / "plugins" / "planted" / "matching" / "committed_priority.py"
NAME = "committed_priority"
PLAIN = {"commit_list": 0}  # no proposer is ever committed: plain proposer-proposing deferred acceptance
TRUE_PROPOSER = Fraction(7, 96)  # truncate to the top two: 17/24 against 61/96 truthfully
TRUE_RECEIVER = Fraction(1, 64)  # a receiver's truncation to its top two, as under plain deferred acceptance


def case():
    """The case's module, loaded as a plug-in without re-running the checker (the registry is restored after each
    test by the conftest fixture)."""
    plugin = plugins.load(str(CASE), check=False)
    return sys.modules[plugin.module]


@cache
def oracle(seat: int, commit_list: int) -> tuple[Fraction, tuple, dict]:
    """(exploitability, best report per ranking, each report's expected utility) of the deviator at ``seat``, once
    per session (each table enumerates 6^6 profiles of rankings times 24 reports)."""
    module, config = case(), {"commit_list": commit_list}
    return (module.exploitability(seat, config), tuple(module.best_reports(seat, config)),
            module.expected_utility(seat, config))


def markets(rng, count: int):
    """(values, priority) of ``count`` random 3-by-3 markets: utilities for the other side i.i.d. U[0, 1]."""
    return rng.random((count, 6, 3)), rng.random((count, 6))


def random_reports(rng, values):
    """Truthful reports with some entries zeroed (unacceptable), some proposers' lists cut to one or two, and a few
    reported utilities tied: reports of every kind the rule sorts."""
    bids = values.copy()
    bids[rng.random(bids.shape) < 0.15] = 0.0
    ties = rng.random(bids.shape[:2]) < 0.1
    bids[ties, 1] = bids[ties, 0]
    short = rng.random((len(values), 3)) < 0.4
    cut = np.argsort(-values[:, :3], axis=2)[:, :, 2]  # each proposer's last choice
    bids[np.nonzero(short)[0], np.nonzero(short)[1], cut[short]] = 0.0
    return bids


def play(module, config, values, priority, seat, order_keep):
    """(M,) the utility of the deviator at ``seat`` reporting, for each market, the (order, keep) of its ranking
    (``order_keep``: one pair per ranking in ``orders(3)``, or a single pair), everyone else truthful, cleared by
    the case's kernel; the report is built by the ranking search's own agent (``rank_report.report``)."""
    bids = values.copy()
    ranking = np.argsort(-values[:, seat], axis=1, kind="stable")
    which = np.array([orders(3).index(tuple(r)) for r in ranking.tolist()])
    pairs = [order_keep] * 6 if isinstance(order_keep[0], int) else list(order_keep)
    for index, (order, keep) in enumerate(pairs):
        rows = which == index
        bids[rows, seat] = report(values[rows, seat], 3, order, keep)
    return clear(module.MECHANISM, config, values, bids, priority).utility[:, seat]


def gain(module, config, values, priority, seat, order_keep):
    """(M,) what the deviator at ``seat`` gains by ``order_keep`` over its truthful report (see :func:`play`)."""
    return play(module, config, values, priority, seat, order_keep) - play(module, config, values, priority, seat, (0, 3))


def test_the_case_loads_and_passes_the_checker():
    plugin = plugins.load(str(CASE))  # refused unless check_mechanism passes
    mechanism = mechanisms.get(NAME)
    assert plugin.mechanisms == (mechanism,)
    assert check_mechanism(mechanism) >= 10
    spec = mechanism.market_spec(mechanism.config(), 6)
    assert spec.partners == 3 and mechanism.config().proposers == 3
    tree = ast.parse(CASE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"itertools", "fractions", "functools", "typing", "numpy", "pydantic", "mecharena"}


@pytest.mark.parametrize("proposers, n", [(3, 6), (2, 5), (3, 5), (1, 4)])
def test_the_plain_rule_is_deferred_acceptance(proposers, n):
    """PLAIN gives exactly the built-in deferred acceptance's outcome market by market, on truthful and on
    truncated, tied and partly unacceptable reports; the flawed rule differs on some of the latter where three
    receivers let a short list stand out (with two receivers every list is short, so every proposer is committed
    and the ranking is unchanged)."""
    module = case()
    rng = np.random.default_rng(7 + n + proposers)
    m = max(proposers, n - proposers)
    values, priority = rng.random((20_000, n, m)), rng.random((20_000, n))
    builtin = mechanisms.get("deferred_acceptance")
    for bids in (values, random_reports(rng, values) if m == 3 else values * (rng.random(values.shape) > 0.3)):
        theirs = clear(builtin, {"proposers": proposers}, values, bids, priority)
        ours = clear(module.MECHANISM, {**PLAIN, "proposers": proposers}, values, bids, priority)
        np.testing.assert_array_equal(ours.utility, theirs.utility)
        np.testing.assert_array_equal(ours.allocation, theirs.allocation)
    flawed = clear(module.MECHANISM, {"proposers": proposers}, values, bids, priority)
    differs = (flawed.utility != theirs.utility).any(axis=1).mean()
    # the bonus matters only where a short list can stand among longer ones, and two proposers compete
    assert differs > 0.01 if n - proposers == 3 and proposers > 1 else differs == 0.0, differs


def test_a_committed_proposer_moves_up_one_place():
    """Proposers 0 and 1 both propose to receiver 0 first, which ranks proposers 2 > 1 > 0. Truthful, 1 wins it
    and 0 ends with receiver 1 (utility 0.5); listing only its top two, proposer 0 passes 1 (one place up) and
    wins receiver 0 (0.9). The same cut gains nothing under PLAIN."""
    module = case()
    values = np.array([[[0.9, 0.5, 0.1], [0.8, 0.2, 0.6], [0.3, 0.7, 0.4],
                        [0.2, 0.5, 0.9], [0.6, 0.3, 0.4], [0.5, 0.4, 0.3]]])
    priority = np.zeros((1, 6))
    truthful = clear(module.MECHANISM, None, values, values, priority)
    cut = values.copy()
    cut[0, 0, 2] = 0.0  # proposer 0 lists receivers 0 and 1 only: committed
    committed = clear(module.MECHANISM, None, values, cut, priority)
    plain = clear(module.MECHANISM, PLAIN, values, cut, priority)
    assert truthful.utility[0, 0] == 0.5 and committed.utility[0, 0] == 0.9
    assert committed.allocation[0].tolist() == [1.0] * 6  # everyone still matched: 1 with receiver 2, 2 with 1
    assert plain.utility[0, 0] == 0.5


def test_the_oracles_reports_are_the_ranking_searchs():
    """The oracle's (order, keep) names the same report as the engine's rank_report agent."""
    module = case()
    values = np.random.default_rng(3).random((200, 3))
    ranking = np.argsort(-values, axis=1, kind="stable")
    for order, keep in module.reports(3):
        ours, theirs = module.report_bids(ranking, 3, order, keep), report(values, 3, order, keep)
        np.testing.assert_array_equal(np.argsort(-ours, kind="stable")[:, :keep],
                                      np.argsort(-theirs, kind="stable")[:, :keep])
        np.testing.assert_array_equal(ours > 0, theirs > 0)


def test_the_exact_oracle():
    """The first proposer's true exploitability is 7/96: truncation to its top two, best at every ranking, earns
    17/24 against 61/96 truthfully."""
    gain, best, utility = oracle(0, 2)
    assert gain == TRUE_PROPOSER and best == ((0, 2),) * 6
    assert utility[(0, 3)] == Fraction(61, 96) and utility[(0, 2)] == Fraction(17, 24)
    assert utility[(0, 1)] == Fraction(31, 48) and utility[(0, 0)] == 0
    assert gain == max(utility.values()) - utility[(0, 3)]  # the same report is best at every ranking
    assert case().true_exploitability(6) == pytest.approx(7 / 96, abs=1e-15)


def test_the_exact_oracle_without_the_flaw():
    """Under PLAIN the first proposer's true exploitability is exactly 0 (proposers cannot gain under
    proposer-proposing deferred acceptance: Dubins and Freedman 1981, Roth 1982), its truthful utility the same
    61/96, and truncation to the top two costs it."""
    gain, best, utility = oracle(0, 0)
    assert gain == 0 and best == ((0, 3),) * 6 and utility[(0, 3)] == Fraction(61, 96)
    assert max(utility.values()) == utility[(0, 3)] and utility[(0, 2)] < utility[(0, 3)]


@pytest.mark.slow
def test_the_exact_oracle_for_a_receiver():
    """A receiver's gain is its truncation under plain deferred acceptance, 1/64 with or without the flaw (no
    truthful proposer is committed)."""
    for commit_list in (2, 0):
        gain, best, _ = oracle(3, commit_list)
        assert gain == TRUE_RECEIVER and best == ((0, 2),) * 6


def test_the_oracle_agrees_with_monte_carlo_through_the_kernel():
    """100,000 markets: the first proposer plays the oracle's best report for its ranking (built by the ranking
    search's agent), everyone else truthfully; the mean gain over the truthful report matches 7/96 within 3
    standard errors. Without the flaw the same report never gains, in any market."""
    module = case()
    rng = np.random.default_rng(2024)
    values, priority = markets(rng, 100_000)
    _, best, _ = oracle(0, 2)
    sample = gain(module, None, values, priority, 0, best)
    error = sample.std() / np.sqrt(sample.size)
    assert abs(sample.mean() - float(TRUE_PROPOSER)) < 3 * error, (sample.mean(), error)
    plain = gain(module, PLAIN, values, priority, 0, best)
    assert plain.max() <= 0.0 and plain.mean() < -0.01


@pytest.mark.slow
def test_the_receivers_oracle_agrees_with_monte_carlo():
    module = case()
    rng = np.random.default_rng(77)
    values, priority = markets(rng, 100_000)
    _, best, _ = oracle(3, 2)
    sample = gain(module, None, values, priority, 3, best)
    error = sample.std() / np.sqrt(sample.size)
    assert abs(sample.mean() - float(TRUE_RECEIVER)) < 3 * error, (sample.mean(), error)


def _search(config: dict):
    plugins.load(str(CASE))
    cell = Cell(mechanism=NAME, config={"proposers": 3, **config}, population="truthful:6", rounds=1)
    return fuzz(cell, families=["ranking"], budget=60, markets=2000, rounds=1, eval_markets=20000, seed=0)


def test_the_engine_finds_the_planted_flaw():
    """The ranking search, told nothing of the bonus, scores all 48 reports of the first proposer and the first
    receiver; its best is the proposer's truncation to its top two, whose fresh gain is >= 90% of 7/96 with a 95%
    interval consistent with it."""
    result = _search({})
    true = float(TRUE_PROPOSER)
    assert len(result.trials) == 48
    assert result.best.deviation.after == 0 and dict(result.best.deviation.params) == {"order": 0, "keep": 2}
    assert result.fresh.mean >= 0.9 * true and result.fresh.lo - 0.002 <= true <= result.fresh.hi + 0.002, (
        result.fresh)
    assert result.description == ("a proposer reports its true ranking of the 3 receivers truncated to its top 2 "
                                  "(the rest unacceptable)"), result.description


def test_the_engine_finds_no_proposer_gain_without_the_flaw():
    """Under PLAIN not one of the first proposer's 24 reports gains in any market; the best found is a receiver's
    truncation, worth 1/64."""
    result = _search(PLAIN)
    proposer = [t for t in result.trials if t.deviation.after == 0]
    assert len(proposer) == 24 and max(t.gain.hi for t in proposer) <= 1e-12
    assert max(t.gain.frequency for t in proposer) == 0.0
    assert result.best.deviation.after == 3
    assert result.fresh.lo - 0.002 <= float(TRUE_RECEIVER) <= result.fresh.hi + 0.002, result.fresh
