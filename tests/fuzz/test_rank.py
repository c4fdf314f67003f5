"""Ranking with common random numbers: paired intervals, separation and the sample-size formula."""

import math

import pytest

from mecharena.core.errors import ConfigError
from mecharena.fuzz.rank import compare, paired, rank, seeds_needed, t_quantile
from mecharena.metrics.harness import Cell

FIRST = Cell(mechanism="first_price", population="truthful:4", markets=200, rounds=4)
SECOND = Cell(mechanism="second_price", population="truthful:4", markets=200, rounds=4)


def test_truthful_first_price_out_earns_second_price():
    """With truthful bids first price collects E[max] = n/(n+1) and second price E[2nd] = (n-1)/(n+1).

    Order statistics of n i.i.d. U[0, 1] values (Krishna, *Auction Theory*, 2nd ed., ch. 2): at n = 4,
    0.8 vs 0.6, a difference of 0.2 (first price is not incentive compatible, so this is no equilibrium).
    """
    result = compare(FIRST, SECOND, "revenue", [0, 1, 2])
    assert result["separated"] and result["higher"] == "a"
    lo, hi = result["difference"]["ci95"]
    assert 0 < lo < 0.2 < hi or abs(result["difference"]["mean"] - 0.2) < 0.02
    assert result["a"]["n"] == 3 and len(result["b"]["per_seed"]) == 3


def test_rank_orders_and_compares_every_pair():
    cells = {"second": SECOND, "first": FIRST, "second_r05": SECOND.model_copy(update={"config": {"reserve_price": 0.5}})}
    ranking = rank(cells, "revenue", [0, 1])
    assert ranking[0]["label"] == "first"
    assert [e["place"] for e in ranking] == [1, 2, 3]
    assert all(set(e["versus"]) == set(cells) - {e["label"]} for e in ranking)
    means = [e["mean"] for e in ranking]
    assert means == sorted(means, reverse=True)
    assert rank(cells, "revenue", [0, 1], descending=False)[0]["label"] != "first"


def test_paired_interval_uses_student_t():
    d = paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = t_quantile(0.975, 2) * 1.0 / math.sqrt(3)
    assert d["difference"]["ci95"] == pytest.approx([2 - half, 2 + half])
    assert t_quantile(0.975, 2) == pytest.approx(4.302652729749464, rel=1e-9)  # t table, 2 d.f.
    assert not d["separated"] and d["higher"] is None  # 2 +- 2.48: three seeds cannot tell
    tight = paired([2.0, 2.1, 1.9], [0.0, 0.0, 0.0])
    assert tight["separated"] and tight["higher"] == "a"


def test_seeds_needed_matches_the_formula():
    """n = ((z_{0.975} + z_{0.8}) sd / delta)^2 (Chow, Shao & Wang, sec. 3.1): 1.95996 + 0.84162."""
    assert seeds_needed(1.0, 0.5) == 32  # (2.80158 * 2)^2 = 31.40
    assert seeds_needed(1.0, 1.0) == 8  # 7.85
    assert seeds_needed(2.0, -0.5) == 126  # 125.6; the sign of delta does not matter
    assert seeds_needed(1.0, 0.5, confidence=0.9, power=0.9) == 35  # ((1.64485 + 1.28155) * 2)^2 = 34.26
    assert seeds_needed(0.0, 0.1) == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda: seeds_needed(-1.0, 0.5), r"sd must be >= 0, got -1.0"),
    (lambda: seeds_needed(1.0, 0.0), r"delta must be non-zero"),
    (lambda: seeds_needed(1.0, 0.5, confidence=1.0), r"confidence must be in \(0, 1\), got 1.0"),
    (lambda: seeds_needed(1.0, 0.5, power=0.0), r"power must be in \(0, 1\), got 0.0"),
    (lambda: compare(FIRST, SECOND, "revenue", [0]), r"seeds must hold at least 2 seeds"),
    (lambda: compare(FIRST, SECOND, "revenue", [1, 1]), r"seeds must be distinct"),
    (lambda: compare(FIRST, SECOND, "profit", [0, 1]), r"metric must be one of .*got 'profit'"),
    (lambda: rank({"only": FIRST}, "revenue", [0, 1]), r"rank needs at least 2 mechanisms to compare, got 1"),
])
def test_bad_inputs_are_pinned(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
