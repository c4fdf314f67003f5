"""The repeated prisoner's dilemma with observation noise (mechanisms/prisoners_dilemma.py) and tit-for-tat.

Sources: Axelrod 1984 (payoffs 5, 3, 1, 0; tit-for-tat); Molander 1985 (tit-for-tat under noise earns
(R + S + T + P) / 4 in the long run; the best generosity); Nowak and Sigmund 1992 (generous tit-for-tat).
The reference for every number is the exact Markov chain of one pair's moves, built here.
"""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.agents.long_horizon import LongHorizonParams, plan
from mecharena.agents.policy import format_weights, start_weights
from mecharena.agents.tit_for_tat import best_generosity
from mecharena.core.errors import ConfigError
from mecharena.fuzz.policy_search import policy_search
from mecharena.mechanisms.prisoners_dilemma import DilemmaConfig
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

T, R, P, S = 5.0, 3.0, 1.0, 0.0
PAYOFF = np.array([2 * R, S + T, T + S, 2 * P]) / 2  # mean payoff of the pair in CC, CD, DC, DD


def chain(noise: float, generosity: float) -> np.ndarray:
    """(4, 4) transitions of a pair of (generous) tit-for-tat players over (own, partner) moves CC, CD, DC, DD:
    each cooperates after seeing cooperation, with probability g after seeing defection, and sees its partner's
    move flipped with probability noise; the two players' next moves are independent given this round's."""
    def cooperates(partner_cooperated: bool) -> float:
        seen_c = 1 - noise if partner_cooperated else noise
        return seen_c + (1 - seen_c) * generosity

    states = [(True, True), (True, False), (False, True), (False, False)]
    m = np.zeros((4, 4))
    for i, (a, b) in enumerate(states):
        p1, p2 = cooperates(b), cooperates(a)
        for j, (a2, b2) in enumerate(states):
            m[i, j] = (p1 if a2 else 1 - p1) * (p2 if b2 else 1 - p2)
    return m


def expected_payoffs(noise: float, generosity: float, rounds: int) -> np.ndarray:
    """(rounds,) the pair's mean payoff per round from mutual cooperation in round 0."""
    m, dist, out = chain(noise, generosity), np.array([1.0, 0, 0, 0]), []
    for _ in range(rounds):
        out.append(dist @ PAYOFF)
        dist = dist @ m
    return np.array(out)


def stationary(noise: float, generosity: float) -> float:
    m = chain(noise, generosity)
    w, v = np.linalg.eig(m.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return float(pi / pi.sum() @ PAYOFF)


def _simulate(noise: float, population: str, rounds: int, markets: int = 3000, seed: int = 0) -> np.ndarray:
    """(rounds, markets) mean payoff per seat."""
    cell = Cell(mechanism="prisoners_dilemma", config={"noise": noise}, population=population, markets=markets,
                seed=seed)
    return np.stack([r.utility.mean(axis=1) for r in play(cell.episode(), rounds)])


@pytest.mark.parametrize("noise", [0.05, 0.2])
def test_two_tit_for_tat_players_earn_the_average_of_the_four_payoffs_in_the_long_run(noise):
    """Molander 1985: the pair's chain is doubly stochastic, so its four outcomes are equally likely in the long
    run whatever the noise: (R + S + T + P) / 4 = 2.25. The simulation follows the exact chain round by round."""
    assert stationary(noise, 0.0) == pytest.approx((R + S + T + P) / 4)
    rounds = 80
    sim = _simulate(noise, "tit_for_tat:2", rounds)
    exact = expected_payoffs(noise, 0.0, rounds)
    per_market = sim.mean(axis=0)
    se = per_market.std(ddof=1) / np.sqrt(per_market.size)
    assert abs(per_market.mean() - exact.mean()) < 4 * se
    assert sim[0].mean() == R  # round 0: both cooperate
    if noise == 0.2:  # mixed within a few rounds
        assert abs(sim[-20:].mean() - 2.25) < 0.05


def test_generous_tit_for_tat_restores_cooperation_at_molanders_generosity():
    """With Axelrod's payoffs the best generosity is 1/3; against noise 0.05 the generous pair earns what its
    exact chain says, far more than the plain pair in the long run."""
    g = best_generosity(DilemmaConfig())
    assert g == pytest.approx(1 / 3)
    rounds = 60
    generous = _simulate(0.05, f"tit_for_tat(generosity={g}):2", rounds).mean(axis=0)
    exact = expected_payoffs(0.05, g, rounds).mean()
    assert abs(generous.mean() - exact) < 4 * generous.std(ddof=1) / np.sqrt(generous.size)
    assert stationary(0.05, g) > stationary(0.05, 0.0) + 0.5  # 2.91 against 2.25


def test_a_defector_against_tit_for_tat_gains_once_then_meets_punishment():
    """Without noise, a seat that always defects (bid 0) takes T once and P ever after from its tit-for-tat
    partner; the partner takes S once and P after."""
    weights = start_weights(mechanisms.get("prisoners_dilemma"))
    weights[0] = 0.0  # bid 0 x truthful: defect every round
    cell = Cell(mechanism="prisoners_dilemma", population=f"policy(w={format_weights(weights)}):1,tit_for_tat:1",
                markets=50)
    records = list(play(cell.episode(), 5))
    utility = np.stack([r.utility for r in records])  # (rounds, B, 2)
    np.testing.assert_array_equal(utility[0], [[T, S]] * 50)
    np.testing.assert_array_equal(utility[1:], P)


def test_bad_payoffs_and_an_odd_market_are_refused_naming_the_rule():
    with pytest.raises(ValueError, match="temptation > reward > punishment > sucker"):
        DilemmaConfig(temptation=2.0)
    with pytest.raises(ValueError, match=r"2 reward > temptation \+ sucker"):
        DilemmaConfig(temptation=7.0)
    cell = Cell(mechanism="prisoners_dilemma", population="tit_for_tat:3", markets=4)
    with pytest.raises(ConfigError, match="the number of agents must be even, got 3"):
        list(play(cell.episode(), 1))
    cell = Cell(mechanism="first_price", population="tit_for_tat:2", markets=4)
    with pytest.raises(ConfigError, match="tit_for_tat reciprocates a partner's moves; it supports prisoners_dilemma, "
                                          "got first_price"):
        list(play(cell.episode(), 1))


def test_the_policy_search_discovers_forgiveness_and_the_end_game_against_tit_for_tat_under_noise():
    """No strategy named: against a tit-for-tat partner and noise 0.05, the policy search (which sees the move it
    saw) learns to cooperate even after seeing a defection, which ends the echo of retaliation, and to defect in
    the last round, which nothing can punish. Unconditional cooperation earns R (1 - noise) + S noise a round
    after the first, 0.233 per round more than tit-for-tat does in its seat over 20 rounds (the exact chain);
    backward induction against tit-for-tat (long_horizon's Bellman value) earns 0.331 more. The search reaches
    at least 90% of the induction's gain, and its interval holds no more than the induction's value."""
    noise, rounds = 0.05, 20
    cell = Cell(mechanism="prisoners_dilemma", config={"noise": noise}, population="tit_for_tat:2", rounds=rounds)
    found = policy_search(cell, seed=0, generations=25, markets=200, eval_markets=2000)
    honest = expected_payoffs(noise, 0.0, rounds).mean()
    forgiving = (R + (rounds - 1) * (R * (1 - noise) + S * noise)) / rounds - honest
    assert forgiving == pytest.approx(0.2331, abs=1e-4)
    _, value = plan(DilemmaConfig(noise=noise), LongHorizonParams(horizon=rounds))
    induction = value[0, 1] / rounds - honest
    assert induction == pytest.approx(0.331, abs=1e-3)
    assert found.fresh.mean >= 0.9 * induction and found.fresh.lo <= induction, (found.fresh, induction)
    assert "if in the last round: " in found.description, found.description  # it names the end game
    play_cell = cell.model_copy(update={"population": f"{found.deviation.agent_spec}:1,tit_for_tat:1", "markets": 2000})
    records = list(play(play_cell.episode(), rounds))
    after_defection = np.concatenate([after.events["cooperated"][:, 0][before.next_state["seen"][:, 0] == 0]
                                      for before, after in zip(records, records[1:], strict=False)])
    assert after_defection.size > 500 and after_defection.mean() > 0.9  # it forgives what it saw
    assert records[-1].events["cooperated"][:, 0].mean() < 0.1  # and defects when no round is left to punish it


def _seat0(noise: float, spec: str, rounds: int = 20, markets: int = 3000) -> np.ndarray:
    """(rounds, markets) seat 0's payoff playing ``spec`` against tit-for-tat."""
    cell = Cell(mechanism="prisoners_dilemma", config={"noise": noise}, population=f"{spec}:1,tit_for_tat:1",
                markets=markets)
    return np.stack([r.utility[:, 0] for r in play(cell.episode(), rounds)])


def test_the_long_horizon_player_defects_in_the_last_round_only_and_earns_its_plans_value():
    """Backward induction against tit-for-tat (Kreps et al. 1982 for the finite game's end effect): without noise
    it cooperates for 19 rounds and defects in the 20th (T - R = 2 more than tit-for-tat earns in its seat); under
    noise 0.05 it earns its plan's value (the Bellman recursion, checked by simulation), more than unconditional
    cooperation's exact 2.8575 a round; short-sighted (discount 0.2) it defects at once."""
    clean = _seat0(0.0, "long_horizon(horizon=20)", markets=20)
    np.testing.assert_array_equal(clean[:19], R)
    np.testing.assert_array_equal(clean[19], T)
    noisy = _seat0(0.05, "long_horizon(horizon=20)").mean(axis=0)
    _, value = plan(DilemmaConfig(noise=0.05), LongHorizonParams(horizon=20))
    assert abs(noisy.mean() - value[0, 1] / 20) < 4 * noisy.std(ddof=1) / np.sqrt(noisy.size)
    assert value[0, 1] / 20 > (R + 19 * (R * 0.95 + S * 0.05)) / 20 + 0.05
    myopic = _seat0(0.0, "long_horizon(discount=0.2,horizon=20)", markets=20)
    np.testing.assert_array_equal(myopic[0], T)
    np.testing.assert_array_equal(myopic[1:], P)


@pytest.mark.parametrize(("spec", "message"), [
    ("tit_for_tat(generosity=2):2", "tit_for_tat: generosity must be a finite float in [0, 1], got 2"),
    ("long_horizon(horizon=0):1,tit_for_tat:1", "long_horizon: horizon must be a finite int in [1, 100000], got 0"),
    ("long_horizon(discount=0):1,tit_for_tat:1", "long_horizon: discount must be a finite float in (0, 1], got 0"),
])
def test_bad_agent_parameters_are_refused_naming_the_field(spec, message):
    cell = Cell(mechanism="prisoners_dilemma", population=spec, markets=2)
    with pytest.raises(ConfigError) as caught:
        list(play(cell.episode(), 1))
    assert str(caught.value) == message
