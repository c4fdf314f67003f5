"""Planted flaws that exist only across rounds (examples/plugins/planted/rounds/): a loyalty discount (its exact
exploitability by backward induction, checked by playing the induction's strategy) and an unchecked refund claim
open once a seat is registered (exact by a closed form). The repeated-game policy search, told nothing about
either, finds each and says what it does; the one-shot engine rightly finds nothing."""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mecharena import agents, mechanisms, plugins
from mecharena.agents.base import AgentType
from mecharena.fuzz.discover import best_response
from mecharena.agents.policy import feature_names, start_weights
from mecharena.benchmarks.discovery import casebook, planted_rounds_case
from mecharena.fuzz.policy_search import policy_deviation, policy_search
from mecharena.fuzz.score import Scorer, replace_cell
from mecharena.mechanisms.checker import check_mechanism
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import mean_ci
from mecharena.sim.loop import play

CASES = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "planted" / "rounds"
PLUGIN = CASES / "loyalty_discount.py"
N, ROUNDS, DISCOUNT = 4, 6, 0.3
# each case: its flawed setting, and what a description of the exploit must say (the flaw, in the play's words)
FLAWS = {"loyalty_discount": ("discount", r"if streak = 1: (\(if in the last round: )?bids 1\.[2-5]\dx value"),
         "buyer_protection": ("refund", r"bids 1\.[3-5]\dx value.*; claim = 1")}


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


@pytest.mark.parametrize("name", sorted(FLAWS))
def test_the_policy_search_finds_the_flaw_it_was_not_told_about_and_names_it(name):
    case = sys.modules[plugins.load(str(CASES / f"{name}.py")).module]
    setting, said = FLAWS[name]
    true = case.true_exploitability(N, ROUNDS, DISCOUNT)
    assert true > 0.01
    flawed = Cell(mechanism=name, config={setting: DISCOUNT}, population=f"truthful:{N}", rounds=ROUNDS, markets=300)
    found = policy_search(flawed, seed=1, markets=300)
    assert found.fresh.mean >= 0.9 * true and found.fresh.lo <= true <= found.fresh.hi, (found.fresh, true)
    assert re.search(said, found.description), found.description
    clean = policy_search(replace_cell(flawed, config={setting: 0.0}), seed=1, markets=300)
    assert clean.fresh.mean <= 0.1 * true, clean.fresh  # the same rule without the flaw: nothing to find


def test_buyer_protection_closed_form_and_a_hand_played_exploit():
    """0.06 per round for n = 4, T = 6 (module docstring); the exploit played by hand (claim always, bid v / 0.7
    once registered) earns it within its 95% interval, and one round alone has nothing to exploit."""
    case = sys.modules[plugins.load(str(CASES / "buyer_protection.py")).module]
    phi = 0.7
    assert case.true_exploitability(4, 6) == pytest.approx(5 / 6 * (phi**2 / 20 + (1 - phi**2) / 2
                                                                     - 0.75 * phi * (1 - phi) - 1 / 20), abs=1e-9)
    assert case.true_exploitability(4, 6) == pytest.approx(0.06, abs=1e-9)
    assert case.true_exploitability(4, 1) == 0.0 == case.true_exploitability(4, 6, refund=0.0)
    target = Cell(mechanism="buyer_protection", population="truthful:4", rounds=6)
    layout_size = start_weights(mechanisms.get("buyer_protection")).size // 4  # features per map
    w = np.zeros(4 * layout_size)
    w[0] = w[2 * layout_size] = w[3 * layout_size] = 1.0  # multiplier 1, always in, claim 1
    w[layout_size - 2] = 1 / phi - 1  # the multiplier grows by 1/phi - 1 once registered (the feature before final)
    assert feature_names(mechanisms.get("buyer_protection"))[-2:] == ("own_registered", "final")
    gain = Scorer(target).score(policy_deviation(w), seed=3, markets=20_000, rounds=6)
    assert gain.lo <= 0.06 <= gain.hi, gain


def test_a_one_shot_search_sees_only_round_zero_where_there_is_nothing(case):
    target = cell(rounds=1)
    found = best_response(target, seed=2, samples=4000)
    fresh = Scorer(target).score(found.deviation, seed=3, markets=4000, rounds=1)
    assert fresh.hi <= 0.1 * case.true_exploitability(N, ROUNDS, DISCOUNT), fresh


def test_the_discovery_benchmark_scores_every_case_across_rounds_against_its_oracle():
    assert sorted(p.stem for p in casebook("rounds")) == sorted(FLAWS)
    row = planted_rounds_case(CASES / "buyer_protection.py", N, eval_markets=2000, rounds=ROUNDS)
    assert row["true"] == pytest.approx(0.06) and row["ratio"] >= 0.9 and "claim = 1" in row["description"], row
