"""Regression checks of library exploits against mechanism variants."""

import io
import json

import pytest
from rich.console import Console

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.fuzz import fuzz
from mecharena.cli.fuzz import regress_command
from mecharena.fuzz.library import Library
from mecharena.fuzz.regress import regress
from mecharena.fuzz.report import build_report
from mecharena.metrics.harness import Cell

THRESHOLD = 1e-3


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    directory = tmp_path_factory.mktemp("exploits")
    result = fuzz(Cell(mechanism="first_price", population="truthful:4"), families=["shading"], budget=12,
                  markets=200, rounds=3, eval_markets=400)
    lib = Library(directory, create=True)
    lib.add(build_report(result, directory))
    return lib


def test_shading_still_pays_on_first_price(library):
    (row,) = regress(library, "first_price", {}, seed=1, markets=2000, threshold=THRESHOLD)
    assert row["status"] == "still_pays" and row["still_pays"] and not row["closed"]
    assert row["gain"]["ci95"][0] > THRESHOLD
    assert row["gain"]["rounds"] == 3 and row["gain"]["markets"] == 2000


def test_second_price_closes_shading(library):
    """Truthful bidding is weakly dominant in a second-price auction (Vickrey 1961): shading gains nothing."""
    (row,) = regress(library, "second_price", {}, seed=1, markets=2000, threshold=THRESHOLD)
    assert row["status"] == "closed" and row["closed"] and not row["still_pays"]
    assert row["gain"]["ci95"][1] <= THRESHOLD and row["gain"]["mean"] <= 0


def test_regress_is_deterministic(library):
    first = regress(library, "first_price", {"reserve_price": 0.1}, seed=3, markets=200, rounds=2)
    assert first == regress(library, "first_price", {"reserve_price": 0.1}, seed=3, markets=200, rounds=2)
    assert first[0]["threshold"] == THRESHOLD  # the report's own threshold by default


def test_skips(library):
    (row,) = regress(library, "second_price", {}, markets=50, only="vcg")
    assert row["status"] == "skipped" and row["reason"] == "found on first_price, not vcg"
    (row,) = regress(library, "mcafee", {}, markets=50)
    assert row["status"] == "skipped" and not row["still_pays"]
    assert row["reason"].startswith("cannot be played on this variant: shading applies to one-sided markets")


def test_bad_variant_is_an_error(library):
    with pytest.raises(UnknownIdError, match="unknown mechanism 'first_prize'"):
        regress(library, "first_prize", {})
    with pytest.raises(ConfigError, match="reserve_price"):
        regress(library, "first_price", {"reserve_price": -1})
    with pytest.raises(ConfigError, match="markets >= 2"):
        regress(library, "first_price", {}, markets=1)


def test_regress_command_exit_codes(library):
    out = io.StringIO()
    code = regress_command(str(library.directory), "first_price", {}, seed=1, markets=2000, threshold=THRESHOLD,
                           as_json=True, console=Console(file=out))
    assert code == 1 and json.loads(out.getvalue())["still_pay"] == 1
    out = io.StringIO()
    code = regress_command(str(library.directory), "second_price", {}, seed=1, markets=2000, threshold=THRESHOLD,
                           console=Console(file=out, width=200))
    assert code == 0 and "no exploit still pays" in out.getvalue() and "closed" in out.getvalue()
