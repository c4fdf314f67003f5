"""Learning agents against theory (seeded; distances are reported in the assertion messages)."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.metrics.harness import Cell, evaluate
from mecharena.sim import InformationPolicy, make_episode, play

N = 4


def distances(population: str, information: InformationPolicy, rounds: int, markets: int = 300) -> list[float]:
    """Mean |bid - BNE bid| per round in first price (Riley and Samuelson 1981)."""
    episode = make_episode(mechanisms.get("first_price"), {}, agents.population(population), markets=markets, seed=0,
                           information=information)
    out = []
    for record in play(episode, rounds):
        out.append(float(np.abs(record.bids - shaded_bids(ValueDistribution(), record.values, N, 1, 0.0)).mean()))
    return out


@pytest.mark.slow
def test_adaptive_shaders_approach_the_bne_and_prices_help_them_calibrate():
    """Fictitious play in first price approaches the symmetric BNE b(v) = v (n-1)/n; the more the
    market reveals, the closer they get (competing bids < clearing price < nothing)."""
    revealed = {
        "bids": InformationPolicy(competing_bids=True),
        "price": InformationPolicy(clearing_price=True),
        "nothing": InformationPolicy(clearing_price=False),
    }
    final = {}
    for name, info in revealed.items():
        d = distances(f"adaptive(bins=100):{N}", info, rounds=200)
        final[name] = np.mean(d[-20:])
        assert final[name] < 0.6 * d[0], (name, d[0], final[name])
    assert final["bids"] < 0.04, final
    assert final["bids"] < final["price"] < final["nothing"], final


@pytest.mark.slow
def test_hedge_learners_approach_the_bne_shading_factor():
    """Hedge over multipliers with full feedback: the average bid/value ratio approaches the
    BNE factor (n-1)/n = 0.75 (Feng, Guruganesh, Liaw, Mehta and Sethi 2021 show mean-based
    learners converge to the BNE in first price with uniform values)."""
    episode = make_episode(mechanisms.get("first_price"), {}, agents.population(f"hedge(eta=5):{N}"), markets=400,
                           seed=1, information=InformationPolicy(competing_bids=True))
    ratios = [r.bids.sum() / r.values.sum() for r in play(episode, 300)]
    late = float(np.mean(ratios[-30:]))
    assert abs(late - 0.75) < 0.08, late
    assert abs(late - 0.75) < 0.5 * abs(ratios[0] - 0.75), (ratios[0], late)


def test_exp3_learns_from_its_own_payoffs_only():
    """EXP3 moves its multipliers off the uniform start with bandit feedback under any policy."""
    episode = make_episode(mechanisms.get("first_price"), {}, agents.population("exp3(eta=1):3"), markets=300,
                           seed=2, information=InformationPolicy(clearing_price=False))
    ratios = [r.bids.sum() / r.values.sum() for r in play(episode, 120)]
    assert np.mean(ratios[-20:]) > np.mean(ratios[:5]) + 0.04, (ratios[:5], ratios[-20:])


@pytest.mark.slow
def test_zic_traders_reach_high_efficiency_in_the_cda():
    """Gode and Sunder (1993), *JPE* 101: 119-137: zero-intelligence traders constrained not to
    trade at a loss reach allocative efficiency of about 97-99% in a double auction. Our markets
    draw fresh random unit values every period; with repeated orders efficiency is >= 95%, far
    above one-shot random orders."""
    many = evaluate(Cell(mechanism="cda", config={"buyers": 10, "orders": 64}, population="zic:20", markets=500,
                         rounds=2))["metrics"]["efficiency"]
    once = evaluate(Cell(mechanism="cda", config={"buyers": 10, "orders": 1}, population="zic:20", markets=500,
                         rounds=2))["metrics"]["efficiency"]
    assert many["ci95"][0] > 0.95, many
    assert once["mean"] < 0.6 < many["mean"]


def test_zic_orders_never_lose_money():
    episode = make_episode(mechanisms.get("cda"), {"buyers": 3, "orders": 4}, agents.population("zic:6"), markets=200,
                           seed=3)
    record = next(play(episode, 1))
    assert (record.bids[:, :3] <= record.values[:, :3, None] + 1e-12).all()
    assert (record.bids[:, 3:] >= record.values[:, 3:, None] - 1e-12).all()
    assert (record.outcome.utility >= -1e-12).all()


def test_exp3_learns_in_a_plug_in_mechanism_it_knows_nothing_about(isolated_registries):
    """In the all-pay auction every bidder pays its bid, win or lose. Against two rivals who bid their whole
    values, a bid of m x v mostly loses and is paid, so less is better: EXP3, with nothing but its realized
    utility, leaves its uniform start for lower multipliers and loses less."""
    from pathlib import Path

    from mecharena import plugins

    plugins.load(str(Path(__file__).resolve().parents[2] / "examples" / "plugins" / "all_pay.py"), check=False)
    episode = make_episode(mechanisms.get("all_pay"), {}, agents.population("exp3(eta=5):1,truthful:2"),
                           markets=300, seed=4)
    records = list(play(episode, 150))
    ratios = [r.bids[:, 0].sum() / r.values[:, 0].sum() for r in records]
    utility = [r.utility[:, 0].mean() for r in records]
    assert np.mean(ratios[-20:]) < np.mean(ratios[:10]) - 0.1, (ratios[:10], ratios[-20:])
    assert np.mean(utility[-20:]) > np.mean(utility[:10]) + 0.02, (utility[:10], utility[-20:])
