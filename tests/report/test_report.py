"""Reports: HTML and PNGs from a small run, pooling across seeds, and clear errors on bad input."""

import html
import json
import math
import re

import duckdb
import pytest
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.report import build_report, load_results
from mecharena.report.data import pool
from mecharena.runner import ResultsError, load_spec, parse_spec, run_plan
from mecharena.runner.store import ResultStore
from tests.runner.specs import SMALL, SMALL_CELLS, write

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    run_plan(load_spec(write(base)), base / "run", workers=1)
    return base / "run"


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def built(run_dir):
    """The report of the small run (built once: drawing is the slow part)."""
    result = invoke("report", run_dir, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_report_writes_self_contained_html_and_pngs(run_dir, built):
    assert built["report"] == str(run_dir / "report.html")
    assert (built["cells"], built["planned"]) == (SMALL_CELLS, SMALL_CELLS)
    assert sorted(built["figures"]) == sorted(str(p) for p in run_dir.glob("*.png"))
    page = (run_dir / "report.html").read_text()
    for name in ("summary.png", "metric_efficiency.png", "heatmap_revenue.png", "curve_revenue.png", "curve_price.png",
                 "curve_efficiency.png", "collusion.png", "dropout.png", "robustness.png"):
        assert (run_dir / name).read_bytes().startswith(PNG), name
        assert f'href="{name}"' in page
    assert page.count('src="data:image/png;base64,') == len(built["figures"])
    headings = re.findall(r"<h2[^>]*>([^<]+)</h2>", page)
    assert headings[:2] == ["Findings", "Overview"]
    assert {"Heatmaps", "Learning curves", "Collusion and dropout dynamics", "Robustness", "Worst failures",
            "Information policies"} <= set(headings)
    assert "revenue under each information policy" in page and "transparency paradox" in page
    assert "lowest efficiency (efficiency)" in page and "<td>mcafee</td>" in page
    assert f"{SMALL_CELLS} finished of {SMALL_CELLS} planned" in page


def test_a_metric_that_is_the_same_in_every_cell_gets_a_note_not_a_figure(run_dir, built):
    """Truthful and equilibrium bidders never lose money or collude: the small run's negative_payoff_rate and
    collusion_gain are 0 up to rounding in every cell, so the report draws neither (a bar chart of them showed
    noise on a 1e-17 axis, a heatmap one solid colour) and says why; the metrics that differ keep their figures."""
    results = load_results(run_dir)
    assert results.flat("negative_payoff_rate") == "0 in every cell"
    assert results.flat("collusion_gain") == "0 in every cell"
    assert results.flat("efficiency") is None and results.flat("revenue") is None
    page = (run_dir / "report.html").read_text()
    note = re.search(r"<p class='note' id='left-out'>(.*?)</p>", page).group(1)
    assert "negative_payoff_rate (0 in every cell)" in note and "collusion_gain (0 in every cell)" in note
    for name in ("metric_negative_payoff_rate.png", "metric_collusion_gain.png", "heatmap_negative_payoff_rate.png"):
        assert not (run_dir / name).exists() and name not in page
    assert (run_dir / "metric_gini.png").exists() and (run_dir / "heatmap_efficiency.png").exists()


def test_load_results_labels_and_pooling(run_dir):
    results = load_results(run_dir)
    assert len(results.rows) == SMALL_CELLS
    assert results.mechanisms == ("sp", "fp", "mcafee")
    assert results.populations == ("truthful", "bne")
    assert results.rules == ("sealed", "open") and results.seeds == (0, 1)
    assert results.versions["mechanism"] == {"second_price": 1, "first_price": 1, "mcafee": 1}
    row = results.rows[0]
    assert row.curves["revenue"].shape == (4,)
    assert math.isfinite(row.metric("efficiency"))


def test_pool_means_seeds_and_combines_intervals():
    estimate = pool([(1.0, 0.0, 2.0), (3.0, 2.0, 4.0), (math.nan, math.nan, math.nan)])
    assert estimate.mean == 2.0
    assert estimate.half == pytest.approx(math.sqrt(2) / 2)


def test_partial_run_is_reported_with_a_warning(tmp_path):
    plan = parse_spec(SMALL)
    with ResultStore.create(tmp_path) as store:
        store.set_plan(plan)
    run_plan(parse_spec(SMALL.replace("seeds: [0, 1]", "seeds: [0]")), tmp_path, workers=1)
    with ResultStore.create(tmp_path) as store:
        store.set_plan(plan)  # the full plan again, half of it computed
    result = invoke("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'report.html'} (18 figures, 10 of 20 cells)" in result.stdout
    assert "Only 10 of 20 planned cells are finished" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("case", ["missing dir", "no database", "corrupt", "not ours", "no cells", "a file"])
def test_bad_inputs_give_clear_errors(tmp_path, case):
    target = tmp_path / "run"
    if case != "missing dir":
        target.mkdir()
    if case == "corrupt":
        (target / "results.duckdb").write_bytes(b"not a database at all" * 500)
    elif case == "not ours":
        con = duckdb.connect(str(target / "results.duckdb"))
        con.execute("CREATE TABLE t (x INTEGER)")
        con.close()
    elif case == "no cells":
        with ResultStore.create(target) as store:
            store.set_plan(parse_spec(SMALL))
    elif case == "a file":
        target.rmdir()
        target.write_text("x")
    expected = {
        "missing dir": f"run directory {target} does not exist",
        "no database": f"{target} has no results.duckdb; run `mecharena run SPEC.yaml --out {target}` first",
        "corrupt": f"{target / 'results.duckdb'} is not a readable DuckDB database",
        "not ours": f"{target / 'results.duckdb'} is not a mecharena results database (missing tables: meta, cells, "
                    "metrics, plan)",
        "no cells": f"{target / 'results.duckdb'} has no finished cells yet (20 planned)",
        "a file": f"{target} is not a directory",
    }[case]
    with pytest.raises(ResultsError) as info:
        build_report(target)
    assert str(info.value).startswith(expected)
    result = invoke("report", target)
    assert result.exit_code == 2
    assert expected in result.output.replace("\n", "")


def test_the_findings_answer_first_with_intervals_and_evidence(run_dir):
    """On the small run (tests/runner/specs.py): first price is efficient against both populations, mcafee's
    trade reduction is its own inefficiency (no information variant changes it), and each finding links to
    a section of the page."""
    from mecharena.report.findings import findings

    found = findings(load_results(run_dir))
    texts = [f.text for f in found]
    assert any(t.startswith("Against truthful, fp holds up best: efficiency 1.000") for t in texts), texts
    lowest = next(f for f in found if f.text.startswith("The lowest efficiency"))
    assert "mcafee against truthful" in lowest.text and "it is the mechanism's own" in lowest.text
    assert re.search(r"efficiency 0\.\d{3} ± 0\.\d+", lowest.text)
    page = (run_dir / "report.html").read_text()
    for f in found:
        assert f"id='{f.evidence}'" in page and html.escape(f.text) in page


def test_a_run_of_one_cell_says_there_is_nothing_to_compare(tmp_path):
    from mecharena.report.findings import findings

    one = SMALL.replace("seeds: [0, 1]", "seeds: [0]").split("mechanisms:")[0] + (
        "mechanisms:\n  - {id: second_price, label: sp}\npopulations:\n  truthful: \"truthful:4\"\n")
    run_plan(parse_spec(one), tmp_path / "one", workers=1)
    found = findings(load_results(tmp_path / "one"))
    assert [f.kind for f in found] == ["scope"] and "nothing to compare" in found[0].text
    build_report(tmp_path / "one")
    assert "nothing to compare" in (tmp_path / "one" / "report.html").read_text()



def test_exploits_of_the_library_against_the_runs_cells_join_the_findings(run_dir, tmp_path):
    """A library holding an exploit against first price with truthful:4 (a cell of the run) and one against
    a population the run does not have: only the first is a finding, with its figure, table and id."""
    from mecharena.fuzz import fuzz
    from mecharena.fuzz.library import Library
    from mecharena.fuzz.report import build_report as failure_report
    from mecharena.metrics.harness import Cell

    library = Library(tmp_path / "exploits", create=True)
    for population in ("truthful:4", "truthful:3"):
        found = fuzz(Cell(mechanism="first_price", population=population), families=["shading"], budget=6,
                     markets=200, rounds=3, eval_markets=400)
        assert library.add(failure_report(found, library.directory))
    ours = next(e for e in library.list() if e.population == "truthful:4")
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run_dir, copy)
    result = invoke("report", copy, "--exploits", library.directory, "--json")
    assert result.exit_code == 0, result.output
    page = (copy / "report.html").read_text()
    items = re.findall(r'<li data-kind="exploit">([^<]+)<a href="#exploits">', page)
    assert len(items) == 1 and ours.id in items[0] and "1 shading deviator against fp with truthful" in items[0]
    assert f"gain {ours.gain.mean:.3g} per agent and round" in html.unescape(items[0])
    assert "id='exploits'" in page and (copy / "exploits.png").read_bytes().startswith(PNG)
    assert page.count(f"<td>{ours.id}</td>") == 1 and "truthful:3" not in page.split("id='exploits'")[1]
    missing = invoke("report", copy, "--exploits", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "exploit library" in missing.output and "does not exist" in missing.output


DYNAMIC = """\
name: dynamic
markets: 50
rounds: 6
seeds: [0]
mechanisms:
  - {id: first_price, label: fp}
populations:
  leavers: "dropout(patience=5,outside=0.05):2,truthful:2"
  ring: "cartel(punish_rounds=3):2,truthful:2"
information:
  open: {competing_bids: true, winner_identity: true}
"""


def test_the_dynamics_section_says_why_curves_dip_and_recover(run_dir, built, tmp_path):
    """Where the run's agents have a rhythm (dropout trials and stays outside, a ring's punishment after a
    detected defection), the report states it with the population's own parameters; a run without them says
    nothing of the kind."""
    run_plan(parse_spec(DYNAMIC), tmp_path / "run", workers=1)
    build_report(tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    causes = re.findall(r"<p class='note cause'>(.*?)</p>", page)
    assert len(causes) == 2, causes
    assert "Dropout agents (leavers) stay in the market for a trial of 5 rounds" in causes[0]
    assert "outside option (0.05)" in causes[0] and "in steps of 5 rounds" in causes[0]
    assert "Cartel members (ring) answer a defection they detect with 3 rounds of competitive bidding" in causes[1]
    assert "note cause" not in (run_dir / "report.html").read_text()
