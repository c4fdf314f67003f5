"""Exploitability against theory, the failure-mode casebook, and bad input."""

import pytest

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.fuzz import fuzz
from mecharena.fuzz.casebook import CASES, run_case
from mecharena.metrics.harness import Cell


def best_response_gain(n: int) -> float:
    """A single bidder facing n - 1 truthful opponents with U[0,1] values in a first-price auction
    maximises (v - b) b^(n-1): b* = v (n-1)/n, earning v^n (n-1)^(n-1) / n^n; truthful bidding earns 0.
    So the expected gain per round is E[v^n] (n-1)^(n-1)/n^n = (n-1)^(n-1) / (n^n (n+1))
    (the first-order condition of Krishna, *Auction Theory*, 2nd ed., sec. 2.3, with truthful rivals)."""
    return (n - 1) ** (n - 1) / (n**n * (n + 1))


@pytest.mark.parametrize("n", [3, 5])
def test_first_price_exploitability_matches_the_best_response_gain(n):
    result = fuzz(Cell(mechanism="first_price", population=f"truthful:{n}"), families=["shading"], budget=40,
                  seed=1, eval_markets=4000)
    gain = result.fresh
    theory = best_response_gain(n)
    # No deviation can beat the best response (up to noise), and the search gets within 10% of it.
    assert gain.lo <= theory + 1e-12, (gain, theory)
    assert gain.mean >= 0.9 * theory, (gain, theory)
    assert result.exploitability["mean"] == gain.mean


@pytest.mark.parametrize(("mechanism", "config", "samples"), [("second_price", {}, None), ("vcg", {"units": 2}, 1000),
                                                               ("second_price", {"reserve_price": 0.3}, None)])
def test_no_false_alarm_where_truthful_bidding_is_dominant(mechanism, config, samples):
    """Vickrey (1961); Clarke (1971); Groves (1973): against truthful opponents no unilateral deviation
    pays, so every family's best fresh gain must have an upper 95% bound at (or near) zero. (With two units
    the best response searches bid vectors, each clearing VCG once per bidder besides: it fits on fewer
    market-rounds, which makes a false alarm likelier, not rarer.)"""
    result = fuzz(Cell(mechanism=mechanism, config=config, population="truthful:5"), budget=60, seed=2,
                  samples=samples)
    assert result.exploitability["mean"] == 0.0
    assert result.fresh.hi <= 1e-3, result.as_dict()["fresh_gain"]


def test_a_knockout_ring_profits_in_second_price():
    """Graham and Marshall (1987): a ring whose highest-valued member bids alone lowers the price
    it pays whenever two members hold the top values; a profitable coalition deviation exists."""
    result = fuzz(Cell(mechanism="second_price", population="truthful:4"), families=["rotation"], deviators=2,
                  budget=30, seed=3)
    assert result.fresh.lo > 0.002
    assert dict(result.best.deviation.params)["knockout"] is True


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.family for c in CASES])
def test_casebook_every_failure_mode_is_found_and_closed(case):
    vulnerable = run_case(case, "vulnerable", budget=30, seed=0)
    closed = run_case(case, "closed", budget=30, seed=0)
    assert vulnerable["exploitability"]["ci95"][0] > 0, vulnerable
    assert closed["exploitability"]["mean"] == 0.0, closed


def test_search_is_deterministic():
    def run():
        return fuzz(Cell(mechanism="first_price", population="truthful:3"), families=["shading"], budget=10,
                    seed=4, markets=100, rounds=3, eval_markets=200).as_dict()

    assert run() == run()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"families": []}, ConfigError, r"^families must name at least one deviation family"),
    ({"budget": 0}, ConfigError, r"^budget must be a finite int in \[1, 2000\], got 0$"),
    ({"deviators": 5}, ConfigError, r"deviators must be in \[1, 4\] \(the agents of 'truthful:4'\), got 5"),
    ({"deviators": 0}, ConfigError, r"deviators must be a finite int in \[1, 64\], got 0"),
    ({"families": ["shadow"]}, UnknownIdError, r"unknown deviation family 'shadow'; did you mean 'shading'"),
    ({"families": ["rotation"]}, ConfigError, r"no deviation family applies .* a coalition family needs --deviators >= 2"),
    ({"sampler": "grid"}, ConfigError, r"^sampler must be one of 'tpe', 'cmaes', got 'grid'$"),
])
def test_bad_fuzz_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        fuzz(Cell(mechanism="first_price", population="truthful:4"), **kwargs)


def test_cmaes_sampler_also_finds_the_shading_gain():
    result = fuzz(Cell(mechanism="first_price", population="truthful:4"), families=["shading"], budget=30,
                  sampler="cmaes", seed=5)
    assert result.fresh.lo > 0.5 * best_response_gain(4)
