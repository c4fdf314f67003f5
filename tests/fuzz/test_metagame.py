"""The meta-game layer: empirical tables, symmetric Nash, alpha-Rank, PSRO, the CLI and its errors."""

import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from mecharena.agents.respond import TableParams, table_bids
from mecharena.cli import app
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.fuzz import metagame, metasolve

runner = CliRunner()


def two_player(matrix, se=0.0) -> metasolve.EmpiricalGame:
    """The symmetric 2-player game whose row player earns ``matrix[i, j]`` playing i against j."""
    matrix = np.asarray(matrix, float)
    k = matrix.shape[0]
    counts = metasolve.profiles(2, k)
    payoff = np.full(counts.shape, np.nan)
    for p, row in enumerate(counts):
        present = np.flatnonzero(row)
        for i in present:
            j = i if row[i] == 2 else next(x for x in present if x != i)
            payoff[p, i] = matrix[i, j]
    zero = np.zeros(len(counts))
    return metasolve.EmpiricalGame(2, counts, payoff, np.where(np.isnan(payoff), np.nan, se), zero, zero, zero, zero)


RPS = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]


# --- alpha-Rank -------------------------------------------------------------------------------------------


def test_alpharank_of_rock_paper_scissors_is_uniform():
    """Omidshafiei et al. 2019, sec. 5 (rock-paper-scissors): the cyclic response graph gives the
    uniform stationary distribution, for any alpha and population size."""
    for alpha, m in ((0.5, 2), (5.0, 10), (50.0, 50)):
        assert np.allclose(metasolve.alpharank(two_player(RPS), alpha=alpha, m=m), 1 / 3, atol=1e-9)


def test_alpharank_puts_all_mass_on_a_strictly_dominant_strategy():
    """A strictly dominant strategy (prisoner's dilemma's defection; here also beside a dominated
    third strategy) fixates against every resident and is never invaded: for large alpha the
    stationary distribution is a point mass on it (Omidshafiei et al. 2019, prop. 4 / sec. 3.2)."""
    pd = [[3, 0], [5, 1]]
    assert metasolve.alpharank(two_player(pd), alpha=100, m=20)[1] > 1 - 1e-9
    three = [[3, 0, 4], [5, 1, 6], [2, -1, 3]]  # strategy 1 strictly dominates 0 and 2
    mass = metasolve.alpharank(two_player(three), alpha=100, m=20)
    assert mass[1] > 1 - 1e-9 and metasolve.order_of(mass)[0] == 1


def test_alpharank_two_strategies_matches_the_closed_form_fixation_probabilities():
    """Two strategies whose payoffs do not depend on the opponent (A earns a, B earns b): the
    fitness difference is the constant d = a - b, so the Fermi process gives (Traulsen, Nowak and
    Pacheco 2006; Omidshafiei et al. 2019, eq. 3)

        rho(B -> A) = (1 - e^{-alpha d}) / (1 - e^{-m alpha d}),   rho(A -> B) = same with -d,

    and the two-state chain's stationary mass on A is rho(B -> A) / (rho(B -> A) + rho(A -> B))."""
    a, b, alpha, m = 1.0, 0.8, 3.0, 10
    game = two_player([[a, a], [b, b]])
    d = a - b
    into_a = (1 - math.exp(-alpha * d)) / (1 - math.exp(-m * alpha * d))
    into_b = (1 - math.exp(alpha * d)) / (1 - math.exp(m * alpha * d))
    assert metasolve.fixation(game, 1, 0, alpha=alpha, m=m) == pytest.approx(into_a, rel=1e-12)
    assert metasolve.fixation(game, 0, 1, alpha=alpha, m=m) == pytest.approx(into_b, rel=1e-12)
    assert metasolve.alpharank(game, alpha=alpha, m=m)[0] == pytest.approx(into_a / (into_a + into_b), rel=1e-9)
    # neutral drift: 1/m
    assert metasolve.fixation(two_player([[1, 1], [1, 1]]), 0, 1, alpha=alpha, m=m) == pytest.approx(1 / m)


def test_alpharank_with_two_individuals_is_a_logistic_of_the_payoff_difference():
    """m = 2, n = 2: the lone mutant meets the lone resident, so by hand
    rho(s -> t) = 1 / (1 + exp(-alpha (M[t, s] - M[s, t])))."""
    matrix = np.array([[1.0, 0.2], [0.7, 0.4]])
    alpha = 2.0
    rho = 1 / (1 + math.exp(-alpha * (matrix[1, 0] - matrix[0, 1])))
    assert metasolve.fixation(two_player(matrix), 0, 1, alpha=alpha, m=2) == pytest.approx(rho, rel=1e-12)


def test_noisy_alpharank_reports_how_stable_the_ranking_is():
    """Rowland et al. 2019: a ranking whose payoff gaps are far larger than their noise never changes
    under resampling; one whose gaps are within the noise does."""
    clear = metasolve.noisy_alpharank(two_player([[1, 0], [2, 1]], se=0.01), alpha=10, m=10, resamples=30, seed=0)
    assert clear.stable == 1.0 and clear.top[1] == 1.0 and clear.lo[1] > 0.99
    close = metasolve.noisy_alpharank(two_player([[1, 1], [1.001, 1.001]], se=0.05), alpha=10, m=10,
                                      resamples=60, seed=0)
    assert 0.1 < close.top[1] < 0.9 and close.stable < 0.9
    assert close.lo[1] < close.mass[1] < close.hi[1]


def test_sensitivity_names_the_profiles_that_move_the_ranking():
    """Only profiles with noise can move the ranking; a profile measured exactly scores 0."""
    game = two_player([[1, 1], [1.001, 1.001]], se=0.05)
    se = game.se.copy()
    se[0] = 0.0  # profile (2, 0) measured exactly
    score = metasolve.sensitivity(game.__class__(2, game.counts, game.payoff, se, *([np.zeros(3)] * 4)),
                                  alpha=10, m=10, resamples=8, seed=0)
    assert score[0] == 0 and score[1] > 0 and score[2] > 0


# --- Nash of the empirical game ---------------------------------------------------------------------------


def test_payoff_against_a_mixture_matches_enumerating_the_rivals():
    """u_i(sigma) in a 3-player game equals the average over every ordered draw of the two rivals."""
    counts = metasolve.profiles(3, 3)
    payoff = np.where(counts > 0, (counts * np.array([1.0, 2.0, 3.0])) ** 0.5 + counts[:, ::-1], np.nan)
    zero = np.zeros(len(counts))
    game = metasolve.EmpiricalGame(3, counts, payoff, np.zeros_like(payoff), zero, zero, zero, zero)
    sigma = np.array([0.2, 0.5, 0.3])
    for i in range(3):
        brute = 0.0
        for r1, r2 in itertools.product(range(3), repeat=2):
            c = np.bincount([i, r1, r2], minlength=3)
            brute += sigma[r1] * sigma[r2] * payoff[game.index[tuple(c)], i]
        assert game.payoffs(sigma)[i] == pytest.approx(brute, rel=1e-12)


def test_nash_finds_every_equilibrium_of_a_coordination_game():
    """Coordination game [[2, 0], [0, 1]]: two pure equilibria and the mixed one (1/3, 2/3), at
    which both strategies earn 2/3 (solve 2p = 1 - p)."""
    found = metasolve.nash(two_player([[2, 0], [0, 1]]), tol=1e-6)
    sigmas = sorted(round(float(e.sigma[0]), 3) for e in found)
    assert sigmas == [0.0, 0.333, 1.0]
    assert all(e.regret <= 1e-6 for e in found)


def test_nash_of_rock_paper_scissors_and_hawk_dove_are_mixed():
    """RPS: the unique equilibrium is uniform (reached through the time average, the dynamics
    cycle). Hawk-dove [[0, 3], [1, 2]]: the unique symmetric equilibrium plays hawk with 1/2."""
    (rps,) = metasolve.nash(two_player(RPS), tol=1e-3)
    assert np.allclose(rps.sigma, 1 / 3, atol=0.01)
    (hd,) = metasolve.nash(two_player([[0, 3], [1, 2]]), tol=1e-4)
    assert hd.sigma[0] == pytest.approx(0.5, abs=0.01)


# --- tables, store, analysis ------------------------------------------------------------------------------


def small(**fields):
    base = {"mechanism": "first_price", "strategies": ["truthful", "bne"], "players": 3, "markets": 300,
            "resamples": 10}
    return metagame.settings(**{**base, **fields})


def test_profile_table_resumes_and_does_not_depend_on_order(tmp_path):
    """Each profile is stored as it finishes; a rerun computes only what is missing (a line cut by an
    interruption counts as missing) and gives the identical table; seeds come from the profile's
    contents, so a larger strategy set reuses every profile it shares."""
    s = small()
    first = metagame.Store(tmp_path)
    game = metagame.evaluate(s, s.strategies, first)
    assert first.computed == 4
    lines = (tmp_path / metagame.STORE).read_text().splitlines()
    (tmp_path / metagame.STORE).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    again = metagame.Store(tmp_path)
    resumed = metagame.evaluate(s, s.strategies, again)
    assert again.computed == 1
    assert np.array_equal(resumed.payoff, game.payoff, equal_nan=True) and np.array_equal(resumed.welfare, game.welfare)
    reordered = metagame.evaluate(s, ["bne", "truthful"], again)
    assert again.computed == 1 and np.array_equal(reordered.payoff[::-1, ::-1], game.payoff, equal_nan=True)
    bigger = metagame.evaluate(s, ["truthful", "bne", "curve(scale=0.8)"], again)
    assert again.computed == 1 + 6  # 10 profiles, 4 already known
    for counts, payoff in zip(game.counts, game.payoff, strict=True):  # the known profiles, reused as stored
        row = next(i for i, c in enumerate(bigger.counts) if list(c) == [*counts, 0])
        assert np.array_equal(bigger.payoff[row, :2], payoff, equal_nan=True)


@pytest.mark.slow
def test_profile_table_is_identical_whatever_the_number_of_workers(tmp_path):
    one = metagame.evaluate(small(workers=1), ["truthful", "bne"], metagame.Store(None))
    two = metagame.evaluate(small(workers=2), ["truthful", "bne"], metagame.Store(tmp_path))
    assert np.array_equal(one.payoff, two.payoff, equal_nan=True) and np.array_equal(one.se, two.se, equal_nan=True)
    assert np.array_equal(one.revenue, two.revenue)


def test_first_price_table_matches_the_bayes_nash_utility_and_the_worst_equilibrium_is_reported():
    """First price, 3 bidders, U[0,1] (Krishna, Auction Theory, sec. 2.3): at the BNE every bidder
    earns 1/(n(n+1)) = 1/12 per round and welfare is E[max value] = n/(n+1) = 0.75; everyone
    truthful earns 0 and is not an equilibrium. The intended profile is ``bne``."""
    s = small(markets=2000)
    result = metagame.run(s)
    everyone_bne = next(r for r in result["table"] if r["profile"] == {"bne": 3})
    u = everyone_bne["utility"]["bne"]
    assert abs(u["mean"] - 1 / 12) < 3 * u["se"] + 1e-3
    assert result["intended"]["strategy"] == "bne" and result["intended"]["regret"] < 2e-3
    assert result["intended"]["welfare"]["ci95"][0] < 0.75 < result["intended"]["welfare"]["ci95"][1]
    assert [e["sigma"] for e in result["equilibria"]] == [{"bne": 1.0}]
    ratio = result["worst_welfare"]["ratio_to_intended"]
    assert ratio["mean"] == 1.0 and ratio["ci95"] == [1.0, 1.0]
    assert result["alpharank"]["order"][0] == "bne"


def test_intended_strategy_is_truthful_where_it_is_dominant():
    s = small(mechanism="second_price", strategies=["curve(scale=0.8)", "truthful"])
    assert metagame.intended_strategy(s, s.strategies) == "truthful"
    assert metagame.intended_strategy(small(strategies=["truthful"]), ["truthful"]) is None


# --- PSRO -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_psro_on_first_price_reaches_the_bayes_nash_equilibrium():
    """First price, n = 3, U[0,1], PSRO from truthful: the best response to truthful rivals and the
    BNE are both b(v) = (n-1)/n v (Krishna, Auction Theory, sec. 2.3), so PSRO adds it, finds no
    further gain, and its meta-Nash payoff is the BNE utility 1/(n(n+1)) = 1/12."""
    s = metagame.settings(mechanism="first_price", players=3, markets=3000, br_markets=16000, iterations=3,
                          epsilon=2e-3, resamples=0)
    strategies, history = metagame.psro(s, metagame.Store(None))
    assert len(strategies) == 2 and [h["added"] for h in history] == [True, False]
    game = metagame.evaluate(s, strategies, metagame.Store(None))
    sigma = metasolve.nash(game, tol=2e-3)[0].sigma
    assert sigma[1] > 0.9
    assert float(sigma @ game.payoffs(sigma)) == pytest.approx(1 / 12, abs=4e-3)
    found = metagame.parse_spec(strategies[1])
    values = np.linspace(0.05, 1.0, 20)
    bids, _ = table_bids(TableParams(**found), values)
    assert np.abs(bids - 2 / 3 * values).max() < 0.05


def test_psro_on_second_price_stops_at_once():
    """Second price: truthful bidding is weakly dominant (Vickrey 1961), so the best response to
    truthful rivals gains nothing and PSRO stops at its first iteration."""
    s = metagame.settings(mechanism="second_price", players=3, markets=1000, br_markets=3000, iterations=3,
                          resamples=0)
    strategies, history = metagame.psro(s, metagame.Store(None))
    assert strategies == ["truthful"] and len(history) == 1 and not history[0]["added"]
    assert history[0]["gain"]["mean"] < s.epsilon


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "error", "match"), [
    ({"mechanism": "frist_price"}, UnknownIdError, "unknown mechanism 'frist_price'; did you mean 'first_price'"),
    ({"strategies": ["truthfull"]}, UnknownIdError, "unknown agent 'truthfull'"),
    ({"strategies": []}, ConfigError, "strategies must name at least 1"),
    ({"strategies": ["truthful:2"]}, ConfigError, "a strategy must be one agent spec"),
    ({"strategies": ["truthful", "truthful"]}, ConfigError, "strategies must be distinct"),
    ({"players": 1}, ConfigError, "players must be an integer >= 2"),
    ({"epsilon": math.nan}, ConfigError, "epsilon must be a finite number, got nan"),
    ({"epsilon": math.inf}, ConfigError, "epsilon must be a finite number, got inf"),
    ({"seed": -1}, ConfigError, r"seed must be an integer in \[0, 2\^63 - 1\], got -1"),
    ({"seed": 10**5000}, ConfigError, "seed must be an integer in .*, got an integer of 5001 digits"),
    ({"population_size": 2}, ConfigError, r"population_size must be in \[3, 1000\]"),
    ({"intended": "bne"}, ConfigError, "intended must be one of the strategies"),
])
def test_bad_settings_name_the_field(fields, error, match):
    base = {"mechanism": "first_price", "strategies": ["truthful"], "players": 3}
    with pytest.raises(error, match=match):
        metagame.settings(**{**base, **fields})


@pytest.mark.parametrize(("args", "match"), [
    (["--mechanism", "nope"], "unknown mechanism 'nope'"),
    (["--mechanism", "first_price", "--strategies", "truthful,zzz"], "unknown agent 'zzz'"),
    (["--mechanism", "first_price", "--players", "1"], "players must be an integer >= 2"),
    (["--mechanism", "first_price", "--epsilon", "nan"], "epsilon must be a finite number"),
    (["--mechanism", "first_price", "--epsilon", "inf"], "epsilon must be a finite number"),
    (["--mechanism", "first_price", "--seed", str(2**63)], "seed must be an integer in"),
    (["--mechanism", "first_price", "--strategies", " , "], "strategies must name at least 1"),
])
def test_cli_bad_input_is_one_error_line(args, match):
    result = runner.invoke(app, ["metagame", *args, "--json"])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1 and match in text, text


def test_cli_prints_findings_first_and_json_for_programs(tmp_path):
    args = ["metagame", "--mechanism", "second_price", "--strategies", "truthful,curve(scale=0.8)", "--markets", "300",
            "--resamples", "5", "--out", str(tmp_path)]
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["intended"]["strategy"] == "truthful" and data["profiles"]["computed"] == 4
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "alpha-Rank top" in lines[2] and "truthful" in lines[2]
    assert "worst equilibrium welfare" in shown.stdout and "0 of 4 (the rest reused" in shown.stdout
