"""docs/plugins.md: its code is examples/plugins/all_pay.py, its Python session and its commands run, and
the all-pay auction it builds matches the theory."""

import doctest
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.fuzz.library import Library
from tests.conftest import within

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
PLUGIN = ROOT / "examples" / "plugins" / "all_pay.py"
runner = CliRunner()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.DOTALL | re.MULTILINE)


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_tutorial_code_is_the_example_plugin():
    """The doc's Python blocks, in order, are the plug-in file (blank lines aside): the file is what the tests run."""
    assert code_lines("\n".join(blocks("python"))) == code_lines(PLUGIN.read_text())


def test_the_tutorial_python_session_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_every_command_of_the_tutorial_runs(tmp_path, monkeypatch):
    """Each ``mecharena`` line of the doc, in order, from a copy of the repository's examples."""
    shutil.copytree(ROOT / "examples" / "plugins", tmp_path / "examples" / "plugins")
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line)[1:] for block in blocks("bash") for line in block.splitlines() if "mecharena " in line]
    names = {args[2] if args[0] == "--plugin" else args[0] for args in commands}
    assert names >= {"check", "simulate", "run", "report", "fuzz", "regress", "repair"}
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{shlex.join(args)}\n{result.output}"
    assert (tmp_path / "runs" / "all_pay" / "report.html").is_file()
    exploits = Library(tmp_path / "exploits").list()
    assert exploits and {e.mechanism for e in exploits} == {"all_pay"}  # second price closes them (exit 0 above) ...
    at_equilibrium = [e for e in exploits if e.population == "all_pay_bne:3"]
    assert [e.strategy.params["identities"] > 1 and e.gain.ci95[0] > 0.1 for e in at_equilibrium] == [True]  # false names
    still_pays = runner.invoke(app, ["--plugin", "examples/plugins/all_pay.py", "regress", "--mechanism", "all_pay"])
    assert still_pays.exit_code == 1  # ... and they still pay against all_pay itself, as the doc says


@pytest.mark.parametrize(("n", "reserve"), [(3, 0.0), (5, 0.0), (3, 0.5)])
def test_all_pay_revenue_matches_revenue_equivalence(n, reserve):
    """Expected revenue of the all-pay auction at its symmetric equilibrium, values U[0, 1]: that of the
    second-price auction with reserve v* = r^(1/n), ``2n(1 - v*^(n+1))/(n+1) - (1 - v*^n)``, so (n-1)/(n+1)
    at r = 0 (Krishna, *Auction Theory*, 2nd ed., sec. 2.5 and prop. 3.1). Efficiency is 1 without a reserve."""
    result = runner.invoke(app, ["--plugin", str(PLUGIN), "simulate", "--mechanism", "all_pay", "--population",
                                 f"all_pay_bne:{n}", "--set", f"reserve_price={reserve}", "--markets", "40000",
                                 "--rounds", "1", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    screen = reserve ** (1 / n)
    assert within(metrics["revenue"], 2 * n * (1 - screen ** (n + 1)) / (n + 1) - (1 - screen**n))
    if reserve == 0:
        assert metrics["efficiency"]["mean"] == pytest.approx(1.0)


def test_the_equilibrium_bidder_refuses_what_its_formula_does_not_cover():
    result = runner.invoke(app, ["--plugin", str(PLUGIN), "simulate", "--mechanism", "second_price", "--population",
                                 "all_pay_bne:3", "--markets", "10"])
    assert result.exit_code == 2 and "all_pay_bne supports all_pay, got second_price" in result.output
    result = runner.invoke(app, ["--plugin", str(PLUGIN), "simulate", "--mechanism", "all_pay", "--population",
                                 "all_pay_bne:3", "--values", "power:shape=2", "--markets", "10"])
    assert result.exit_code == 2 and "all_pay_bne needs values uniform on [0, 1], got power" in result.output
