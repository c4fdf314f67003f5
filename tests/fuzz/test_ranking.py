"""Reports in a matching market: the discovery engine enumerates every reordering and truncation of a proposer's and
a receiver's true ranking (Roth 1982; Dubins and Freedman 1981: proposers cannot gain under deferred acceptance,
receivers can, by truncating their lists)."""

import dataclasses
import math
import re

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.core.errors import ConfigError
from mecharena.fuzz import fuzz
from mecharena.fuzz.discover import report_strategies
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

MATCHING = Cell(mechanism="deferred_acceptance", config={"proposers": 3}, population="truthful:6", rounds=1)


def test_each_agents_utilities_for_the_other_side_are_its_own_draws():
    """Utilities for partners are not marginal values: each agent ranks the other side in any of the 3! orders
    about equally often (sorted draws gave everyone the same order, seat order, and made every market
    assortative)."""
    values = next(iter(play(MATCHING.model_copy(update={"markets": 6000}).episode(), 1))).values  # (B, 6, 3)
    ranks = np.argsort(-values, axis=2)
    share = np.array([(ranks == np.array(order)).all(axis=2).mean() for order in
                      ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))])
    np.testing.assert_allclose(share, 1 / 6, atol=0.01)


def test_the_true_report_is_the_truthful_agent_and_the_space_is_enumerated():
    same = MATCHING.model_copy(update={"markets": 200, "population": "rank_report(order=0,keep=3):1,truthful:5"})
    ours, theirs = (next(iter(play(c.episode(), 1))) for c in (same, MATCHING.model_copy(update={"markets": 200})))
    np.testing.assert_array_equal(ours.utility, theirs.utility)
    strategies = report_strategies(MATCHING, limit=1000, seed=0)
    assert len(strategies) == 2 * math.factorial(3) * 4 and {d.after for d in strategies} == {0, 3}
    few = report_strategies(MATCHING, limit=10, seed=0)  # sampled, the two truthful reports kept
    assert len(few) == 10 and {(d.after, dict(d.params)["order"], dict(d.params)["keep"]) for d in few} >= {
        (0, 0, 3), (3, 0, 3)}


def test_the_engine_finds_no_proposer_gain_and_a_receivers_truncation():
    """Every one of a proposer's 24 reports gains nothing in any market; a receiver's best report truncates its
    list, with a fresh gain whose interval is above 0, and the result says so."""
    result = fuzz(MATCHING, families=["ranking"], budget=60, markets=2000, rounds=1, eval_markets=20000, seed=0)
    proposer = [t for t in result.trials if t.deviation.after == 0]
    assert len(proposer) == 24 and max(t.gain.hi for t in proposer) <= 1e-12
    assert max(t.gain.frequency for t in proposer) == 0.0  # not one market where a proposer gained
    best = dict(result.best.deviation.params)
    assert result.best.deviation.after == 3 and best["order"] == 0 and 0 < best["keep"] < 3, best
    assert result.fresh.lo > 0, result.fresh
    assert "a receiver reports its true ranking of the 3 proposers truncated to its top" in result.description


def test_a_plug_in_matching_rule_is_searched_like_the_built_in(isolated_registries):
    """The same rule registered under another name (a plug-in's matching market: partner utilities and a
    proposers field) gets the same 48 reports scored, and the same receiver's truncation found."""
    plugin = dataclasses.replace(mechanisms.get("deferred_acceptance"), name="my_matching")
    mechanisms.REGISTRY.register("my_matching", plugin, "test")
    kwargs = {"families": ["ranking"], "budget": 60, "markets": 500, "rounds": 1, "eval_markets": 500, "seed": 0}
    ours = fuzz(MATCHING.model_copy(update={"mechanism": "my_matching"}), **kwargs)
    theirs = fuzz(MATCHING, **kwargs)
    assert [t.gain.mean for t in ours.trials] == [t.gain.mean for t in theirs.trials] and len(ours.trials) == 48
    assert ours.best.deviation == theirs.best.deviation and ours.best.deviation.after == 3


@pytest.mark.parametrize("spec, mechanism, message", [
    ("rank_report:1,truthful:3", "first_price",
     "rank_report needs a matching market (utilities for each member of the other side and a proposers field), "
     "got first_price"),
    ("rank_report(order=6):1,truthful:5", "deferred_acceptance",
     "rank_report: order must be in [0, 5] (the orders of 3 members on the other side), got 6"),
    ("rank_report(keep=9):1,truthful:5", "deferred_acceptance", "rank_report: keep must be a finite int in [0, 5], got 9"),
])
def test_bad_reports_are_refused_in_one_line(spec, mechanism, message):
    cell = Cell(mechanism=mechanism, population=spec, markets=2)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        list(play(cell.episode(), 1))
