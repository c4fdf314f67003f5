"""A planted flaw that exists only across rounds (examples/plugins/planted/rounds/loyalty_discount.py): its exact
exploitability by backward induction, checked by playing the induction's strategy, and found by the
repeated-game policy search, which was told nothing about it; the one-shot engine rightly finds nothing."""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mecharena import agents, mechanisms, plugins
from mecharena.agents.base import AgentType
from mecharena.fuzz.discover import best_response
from mecharena.fuzz.policy_search import policy_search
from mecharena.fuzz.score import Scorer
from mecharena.mechanisms.checker import check_mechanism
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import mean_ci
from mecharena.sim.loop import play

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "planted" / "rounds" / "loyalty_discount.py"
N, ROUNDS, DISCOUNT = 4, 6, 0.3


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """The plug-in and the test's agent are forgotten after each test."""


@pytest.fixture
def case():
    return sys.modules[plugins.load(str(PLUGIN)).module]


def cell(discount=DISCOUNT, population=f"truthful:{N}", rounds=ROUNDS, markets=300):
    return Cell(mechanism="loyalty_discount", config={"discount": discount}, population=population, rounds=rounds,
                markets=markets)


def test_the_case_passes_the_checker_and_one_round_is_vickrey(case):
    assert check_mechanism(mechanisms.get("loyalty_discount")) > 0  # promises truthfulness: round 0 is Vickrey
    assert case.true_exploitability(N, 1, DISCOUNT) == 0.0
    assert case.true_exploitability(N, ROUNDS, 0.0) == 0.0
    assert case.true_exploitability(N, ROUNDS, DISCOUNT) == pytest.approx(0.012074, abs=1e-6)


@dataclass(frozen=True)
class _Seen:
    round: int
    streak: np.ndarray


def test_playing_the_induction_strategy_earns_the_true_exploitability(case):
    """The backward-induction strategy, played through the loop (it reads its streak from the mechanism's
    state in its feedback), gains over truthful bidding what true_exploitability says, within the 95% CI."""
    def init(context, params, seats, draws):
        return _Seen(0, np.zeros((draws.markets, seats)))

    def act(context, params, state, values, draws):
        return case.best_response_bids(values, state.streak, state.round, N, ROUNDS, DISCOUNT)

    def update(context, params, state, values, action, observation, feedback, draws):
        return _Seen(state.round + 1, feedback.state["streak"])

    agents.REGISTRY.register("induction", AgentType(name="induction", version=1, summary="test", act=act, init=init,
                                                    update=update), "test")
    markets = 40_000
    deviating = cell(population=f"induction:1,truthful:{N - 1}", markets=markets).episode()
    honest = cell(markets=markets).episode()
    gain = sum(d.utility[:, 0] - h.utility[:, 0] for d, h in zip(play(deviating, ROUNDS), play(honest, ROUNDS),
                                                                  strict=True)) / ROUNDS
    found = mean_ci(gain[None, :])  # one observation per market
    lo, hi = found["ci95"]
    assert lo <= case.true_exploitability(N, ROUNDS, DISCOUNT) <= hi, found


def test_the_policy_search_finds_the_flaw_it_was_not_told_about(case):
    true = case.true_exploitability(N, ROUNDS, DISCOUNT)
    found = policy_search(cell(), seed=1, markets=300)
    assert found.fresh.mean >= 0.85 * true and found.fresh.lo <= true, (found.fresh, true)
    clean = policy_search(cell(discount=0.0), seed=1, markets=300)
    assert clean.fresh.mean <= 0.1 * true, clean.fresh  # the same rule without the discount: nothing to find


def test_a_one_shot_search_sees_only_round_zero_where_there_is_nothing(case):
    target = cell(rounds=1)
    found = best_response(target, seed=2, samples=4000)
    fresh = Scorer(target).score(found.deviation, seed=3, markets=4000, rounds=1)
    assert fresh.hi <= 0.1 * case.true_exploitability(N, ROUNDS, DISCOUNT), fresh
