"""Failure reports, the exploit library and exact replay of an exploit's trace ledgers."""

import io
import json
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from mecharena.core.errors import MechArenaError, UnknownIdError
from mecharena.fuzz import fuzz
from mecharena.cli.fuzz import exploits_list, exploits_replay, exploits_show
from mecharena.fuzz.library import Library, LibraryError
from mecharena.fuzz.report import FailureReport, build_report, exploit_id, ledger_gain
from mecharena.fuzz.score import Scorer
from mecharena.ledger import LedgerError, read_meta
from mecharena.metrics.harness import Cell

from ..ledger.helpers import reseal

TARGET = Cell(mechanism="first_price", population="truthful:4")


@pytest.fixture(scope="module")
def result():
    return fuzz(TARGET, families=["shading"], budget=12, markets=200, rounds=3, eval_markets=400)


@pytest.fixture(scope="module")
def library(result, tmp_path_factory):
    directory = tmp_path_factory.mktemp("exploits")
    report = build_report(result, directory)
    lib = Library(directory, create=True)
    assert lib.add(report)
    return lib


@pytest.fixture(scope="module")
def report(library):
    (only,) = library.list()
    return only


def test_report_fields(result, report, library):
    best, fresh = result.best, result.fresh
    assert report.id == exploit_id(TARGET, best.deviation) and len(report.id) == 12
    assert (report.mechanism, report.mechanism_version, report.population) == ("first_price", 1, "truthful:4")
    assert report.config == {"reserve_price": 0.0, "reserve_visibility": "public", "entry_fee": 0.0}
    assert "first-price sealed bid" in report.affected_rule and "reserve_price=0.0" in report.affected_rule
    assert report.agents_involved.deviators == 1 and report.agents_involved.seats == [0]
    assert report.agents_involved.agent == best.deviation.agent_spec == report.strategy.agent
    assert report.agents_involved.population.startswith(best.deviation.agent_spec + ":1,truthful:3")
    assert report.strategy.family == "shading" and report.strategy.params == dict(best.deviation.params)
    assert report.deviation() == best.deviation
    assert (report.gain.mean, report.gain.ci95, report.frequency) == (fresh.mean, (fresh.lo, fresh.hi), fresh.frequency)
    assert report.gain.ci95[0] > 0  # shading pays in a first-price auction against truthful bidders
    assert report.severity.relative == pytest.approx(fresh.mean / fresh.welfare)
    assert report.severity.label in ("medium", "high") and "low < 0.02" in report.severity.rule
    assert "second price" in report.mitigation
    assert report.regression.command.startswith("mecharena regress --library ")
    assert "--mechanism first_price --set reserve_price=0.0" in report.regression.command
    assert "upper 95% bound is <= 0.001" in report.regression.rule
    for name in ("baseline", "deviated"):
        meta = read_meta(library.directory / getattr(report.trace, name))
        assert (meta.mode, meta.status, meta.markets, meta.seed) == ("full", "closed", 200, report.trace.seed)
        assert meta.rounds_recorded == report.trace.rounds == 3
    assert report.trace.baseline == f"traces/{report.id}/baseline"


def test_recorded_gain_is_the_scorers_gain_on_the_trace_seed(report, library):
    """The gain from the ledger events equals the engine's common-random-number score bit for bit."""
    gain = Scorer(TARGET).score(report.deviation(), seed=report.trace.seed, markets=200, rounds=3)
    assert gain.mean == report.trace.recorded_gain
    assert report.trace.recorded_gain > 0


def test_build_report_is_deterministic_and_add_idempotent(result, report, library):
    again = build_report(result, library.directory)  # reuses the identical traces
    assert again == report
    assert not library.add(again)
    assert library.ids() == [report.id]
    assert library.query("SELECT count(*) FROM exploits") == [(1,)]


def test_json_and_duckdb_hold_the_same_report(report, library):
    on_disk = FailureReport.model_validate_json((library.directory / f"{report.id}.json").read_text())
    ((text, family, mean, recorded),) = library.query(
        "SELECT report, family, gain_mean, recorded_gain FROM exploits WHERE id = ?", [report.id])
    assert FailureReport.model_validate_json(text) == on_disk == report
    assert (family, mean, recorded) == ("shading", report.gain.mean, report.trace.recorded_gain)


def test_replay_reproduces_the_gain_exactly(report, library):
    out = library.replay(report.id[:5])
    assert out["baseline"]["ok"] and out["deviated"]["ok"]
    assert out["replayed_gain"] == out["recorded_gain"] == report.trace.recorded_gain
    assert out["exact"] and out["ok"]
    assert exploits_replay(str(library.directory), report.id, as_json=False, console=Console(file=io.StringIO())) == 0


def test_replay_names_which_gain_is_which_and_on_how_many_markets(report, library):
    """The trace's gain (a smaller sample) and the reported fresh gain differ by sampling: replay says which is
    which, with each sample's size, in JSON and in text."""
    out = library.replay(report.id)
    assert out["trace"] == {"markets": report.trace.markets, "rounds": report.trace.rounds, "seed": report.trace.seed}
    assert out["reported_gain"] == {"mean": report.gain.mean, "ci95": list(report.gain.ci95),
                                    "markets": report.gain.markets, "rounds": report.gain.rounds,
                                    "seed": report.gain.seed}
    assert out["trace"]["markets"] != out["reported_gain"]["markets"]
    console = Console(file=io.StringIO(), width=400)
    exploits_replay(str(library.directory), report.id, as_json=False, console=console)
    text = " ".join(console.file.getvalue().split())
    assert f"trace gain ({report.trace.markets} markets x {report.trace.rounds} rounds" in text
    assert f"reported gain (fuzz, exploits list and show) {report.gain.mean:+.4f}" in text
    assert f"({report.gain.markets} markets x {report.gain.rounds} rounds, seed {report.gain.seed}, fresh" in text


def test_tampered_ledger_fails_replay(report, library, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(library.directory, copy)
    part = copy / report.trace.deviated / "events" / "part-000000000.parquet"
    table = pq.read_table(part)
    utility = table.column("utility")
    bumped = pc.if_else(pc.equal(table.column("seat"), 0), pc.add(utility, 0.25), utility)
    pq.write_table(table.set_column(table.column_names.index("utility"), "utility", bumped), part)
    with pytest.raises(LedgerError, match=r"events/part-000000000.parquet was changed after it was written"):
        Library(copy).replay(report.id)
    reseal(copy / report.trace.deviated)  # as if recorded so: replay compares the values
    out = Library(copy).replay(report.id)
    assert out["baseline"]["ok"] and not out["deviated"]["ok"]
    assert out["deviated"]["mismatch_count"] == 200  # every market of round 0, the deviator's seat
    assert not out["exact"] and not out["ok"]
    assert out["replayed_gain"] == pytest.approx(out["recorded_gain"] + 0.25 / 3)
    assert exploits_replay(str(copy), report.id, as_json=True, console=Console(file=io.StringIO())) == 1


def test_ledger_gain_needs_matching_ledgers(report, library):
    base = library.directory / report.trace.baseline
    assert ledger_gain(base, base, 1) == 0.0
    with pytest.raises(MechArenaError, match="does not exist"):
        ledger_gain(base, library.directory / "nowhere", 1)


def test_unknown_and_ambiguous_ids(report, library, tmp_path):
    with pytest.raises(UnknownIdError, match=r"unknown exploit id 'zzz' in .*Known: " + report.id):
        library.get("zzz")
    near = report.id[:-1] + ("0" if report.id[-1] != "0" else "1")
    with pytest.raises(UnknownIdError, match=f"did you mean '{report.id}'"):
        library.get(near)
    with pytest.raises(LibraryError, match="exploit id must be a non-empty id or id prefix, got ''"):
        library.get("")
    forged = Library(tmp_path / "forged", create=True)
    for fake in ("abc123000000", "abc456000000"):
        forged.add(report.model_copy(update={"id": fake}))
    with pytest.raises(LibraryError, match=r"exploit id prefix 'abc' is ambiguous: it matches 2 exploits "
                                           r"\('abc123000000', 'abc456000000'\); give more characters"):
        forged.get("abc")
    assert forged.get("abc4").id == "abc456000000"
    with pytest.raises(LibraryError, match=r"exploit library '.*missing' does not exist"):
        Library(tmp_path / "missing")
    with pytest.raises(LibraryError, match="does not exist"):
        exploits_list(str(tmp_path / "missing"), as_json=True)


def test_corrupt_report_is_a_clear_error(report, tmp_path):
    lib = Library(tmp_path / "lib", create=True)
    (lib.directory / "deadbeef0000.json").write_text(json.dumps({"id": "deadbeef0000"}))
    with pytest.raises(LibraryError, match=r"deadbeef0000.json' is not a valid failure report"):
        lib.get("dead")


def test_commands_print(report, library):
    out = io.StringIO()
    assert exploits_list(str(library.directory), as_json=False, console=Console(file=out, width=200)) == 0
    assert report.id in out.getvalue() and "shading" in out.getvalue()
    out = io.StringIO()
    assert exploits_list(str(library.directory), as_json=True, console=Console(file=out)) == 0
    assert [r["id"] for r in json.loads(out.getvalue())] == [report.id]
    out = io.StringIO()
    assert exploits_show(str(library.directory), report.id[:6], as_json=True, console=Console(file=out)) == 0
    assert FailureReport.model_validate(json.loads(out.getvalue())) == report
    out = io.StringIO()
    assert exploits_show(str(library.directory), report.id, as_json=False, console=Console(file=out, width=200)) == 0
    assert "mecharena regress" in out.getvalue() and "mitigation" in out.getvalue()


def test_a_seller_deviation_is_reported_replayed_and_regressed_as_a_seller(tmp_path):
    """In a two-sided market the engine's best deviation may be a seller's (k = 0: the price is the
    ask); its report keeps the buyers in place (``after``), names the seller's seat, and its trace gain
    equals the scorer's on the same markets bit for bit."""
    from mecharena.fuzz.regress import regress

    result = fuzz(Cell(mechanism="k_double", config={"buyers": 2, "k": 0.0}, population="truthful:4"),
                  families=["best_response"], budget=1, markets=200, rounds=1, eval_markets=400, samples=1000)
    assert result.best.deviation.after == 2 and result.fresh.lo > 0
    report = build_report(result, tmp_path, trace_markets=50)
    involved = report.agents_involved
    assert (involved.after, involved.seats) == (2, [2]) and involved.population.startswith("truthful:2,best_response(")
    library = Library(tmp_path, create=True)
    library.add(report)
    assert library.replay(report.id)["ok"]
    trace = report.trace
    cell = report.target(seed=trace.seed, markets=trace.markets, rounds=trace.rounds)
    assert trace.recorded_gain == Scorer(cell).score(report.deviation(), seed=trace.seed, markets=trace.markets,
                                                     rounds=trace.rounds).mean
    (row,) = regress(library, "k_double", {"buyers": 2, "k": 0.0}, markets=2000)
    assert row["still_pays"], row
