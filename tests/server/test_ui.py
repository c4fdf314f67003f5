"""The dashboard (``mecharena.server.ui``) through FastAPI's TestClient, on real data.

The run directory and the exploit library come from the real commands (``mecharena run`` and
``mecharena fuzz``, see ``conftest.py``); the partial, waiting and locked runs below are made with
the runner's own store. Every page of the contract and every error case is checked, and no answer
may carry a traceback.
"""

import re
import shutil
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mecharena import agents
from mecharena.core.errors import ConfigError
from mecharena.designer import core as designer
from mecharena.designer.action import FLAGS
from mecharena.designer.policies import LearnedPolicy, make_policy, train_learned
from mecharena.fuzz.library import Library
from mecharena.fuzz.report import FailureReport
from mecharena.report.data import group, load_results, pooled
from mecharena.report.tables import number
from mecharena.runner import ResultStore, load_spec
from mecharena.server.ui import STATIC, build_app, fmt, run
from tests.runner.specs import SMALL, SMALL_CELLS
from tests.server.conftest import CORRUPT_RUN, EMPTY_RUN, SMALL_RUN

NAV = ('<a id="nav-runs" href="/">', '<a id="nav-exploits" href="/exploits">', '<a id="nav-live" href="/live">')


def small_policies(name: str, stage: int, seed: int):
    """The app's policies, with a learned designer trained on a small budget (the default takes ~15 s)."""
    if name == "learned":
        return LearnedPolicy(train_learned(stage, populations=64, rounds=1))
    return make_policy(name, stage, seed=seed)


def rows(text: str, cls: str) -> list[str]:
    return re.findall(rf"<tr class='{cls}'.*?</tr>", text, flags=re.DOTALL)


def cells(row: str, cls: str) -> list[str]:
    return [unescape(c) for c in re.findall(rf"<td class='{cls}'[^>]*>(.*?)</td>", row, flags=re.DOTALL)]


def divs(text: str, element_id: str) -> str:
    """The inner HTML of ``<div id=element_id>`` up to its first closing tag (for flat divs)."""
    found = re.search(rf"<div id='{element_id}'>(.*?)</div>", text, flags=re.DOTALL)
    assert found, f"no div#{element_id}"
    return unescape(found.group(1))


def errors(text: str) -> list[str]:
    return [unescape(e) for e in re.findall(r"<div class='error'[^>]*>(.*?)</div>", text, flags=re.DOTALL)]


def clean(response) -> None:
    """An HTML page with the navigation bar and no traceback."""
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text and 'File "' not in response.text
    for anchor in NAV:
        assert anchor in response.text


@pytest.fixture(scope="module")
def library(exploit_library) -> Path:
    return exploit_library[0]


@pytest.fixture(scope="module")
def report(exploit_library) -> FailureReport:
    return Library(exploit_library[0]).get(exploit_library[1]["id"])


@pytest.fixture(scope="module")
def client(runs_dir, library) -> TestClient:
    return TestClient(build_app(runs_dir, library, policies=small_policies), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def extra_runs(runs_dir, tmp_path_factory) -> Path:
    """``partial``: the small run's 20 cells of a 30-cell plan; ``waiting``: a 20-cell plan, nothing run."""
    root = tmp_path_factory.mktemp("ui-extra")
    bigger = root / "bigger.yaml"
    bigger.write_text(SMALL.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    small = root / "small.yaml"
    small.write_text(SMALL)
    (root / "runs" / "partial").mkdir(parents=True)
    shutil.copyfile(runs_dir / SMALL_RUN / "results.duckdb", root / "runs" / "partial" / "results.duckdb")
    with ResultStore.create(root / "runs" / "partial") as store:
        store.set_plan(load_spec(bigger))
    with ResultStore.create(root / "runs" / "waiting") as store:
        store.set_plan(load_spec(small))
    return root / "runs"


# --- runs --------------------------------------------------------------------------------------


def test_runs_page_lists_every_run_with_status_and_progress(client):
    response = client.get("/")
    assert response.status_code == 200
    clean(response)
    assert "<table id='runs'>" in response.text
    listed = {}
    for row in rows(response.text, "run"):
        name = re.search(r"<a class='run-link' href='/runs/([^']+)'>", row).group(1)
        listed[name] = (re.search(r"<td class='status [a-z]+'>(\w+)</td>", row).group(1), cells(row, "progress")[0])
    assert listed == {SMALL_RUN: ("complete", f"{SMALL_CELLS}/{SMALL_CELLS}"), EMPTY_RUN: ("empty", "0/0"),
                      CORRUPT_RUN: ("corrupt", "?/?")}


def test_runs_page_partial_waiting_and_locked_runs(extra_runs):
    client = TestClient(build_app(extra_runs, Path("nowhere")), raise_server_exceptions=False)
    text = client.get("/").text
    status = {re.search(r"href='/runs/([^']+)'", r).group(1): (re.search(r"<td class='status [a-z]+'>(\w+)<", r).group(1),
                                                               cells(r, "progress")[0], cells(r, "note")[0])
              for r in rows(text, "run")}
    assert status["partial"][:2] == ("running", f"{SMALL_CELLS}/30") and "resume" in status["partial"][2]
    assert status["waiting"][:2] == ("empty", f"0/{SMALL_CELLS}")
    page = client.get("/runs/partial")
    assert page.status_code == 200 and "id='partial'" in page.text and len(rows(page.text, "comparison-row")) == 5
    waiting = client.get("/runs/waiting")
    assert waiting.status_code == 200 and "id='no-results'" in waiting.text and "0/20" in waiting.text
    # a sweep holding the write lock: the page reads a snapshot and says a sweep is writing
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys\nfrom mecharena.runner.store import ResultStore\n"
         "store = ResultStore.create(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()\nstore.close()"),
         str(extra_runs / "partial")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        locked = next(r for r in rows(client.get("/").text, "run") if "/runs/partial'" in r)
        assert "<td class='status running'>running</td>" in locked and cells(locked, "progress") == [f"{SMALL_CELLS}/30"]
        assert "a sweep is writing" in cells(locked, "note")[0]
        page = client.get("/runs/partial?metric=revenue")
        assert page.status_code == 200 and "a sweep is writing it" in page.text
        assert client.get("/runs/partial/figures/heatmap.png?metric=revenue").content[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_runs_page_with_a_missing_runs_directory(tmp_path):
    client = TestClient(build_app(tmp_path / "nowhere", tmp_path), raise_server_exceptions=False)
    response = client.get("/")
    assert response.status_code == 200
    clean(response)
    assert "does not exist" in errors(response.text)[0] and str(tmp_path / "nowhere") in errors(response.text)[0]
    assert "<table id='runs'>" in response.text and not rows(response.text, "run")


# --- comparison ----------------------------------------------------------------------------------


def test_comparison_page_shows_the_reports_estimates_and_figures(client, runs_dir):
    response = client.get(f"/runs/{SMALL_RUN}?metric=revenue")
    assert response.status_code == 200
    clean(response)
    assert f"<h1>{SMALL_RUN}</h1>" in response.text
    assert "<form id='metric-form' method='get'" in response.text and "<button id='apply'" in response.text
    assert "<select id='metric' name='metric'" in response.text and "<option value='revenue' selected>" in response.text
    results = load_results(runs_dir / SMALL_RUN)
    table_rows = rows(response.text, "comparison-row")
    pairs = group(results.rows, lambda r: (r.mechanism, r.population))
    assert len(table_rows) == len(pairs) == 5  # 2 x 2 + mcafee x truthful
    for row, ((mechanism, population), members) in zip(table_rows, pairs.items(), strict=True):
        assert cells(row, "text mechanism") == [mechanism] and cells(row, "text population") == [population]
        for rules in results.rules:  # one mean and one interval per information policy
            estimate = pooled([r for r in members if r.rules == rules], "revenue")
            assert f"<td class='mean' data-rules='{rules}'>{number(estimate.mean)}</td>" in row
            interval = f"[{number(estimate.mean - estimate.half)}, {number(estimate.mean + estimate.half)}]"
            assert f"<td class='ci' data-rules='{rules}'>{interval}</td>" in row
    for kind in ("bars", "heatmap", "curve"):
        src = f"/runs/{SMALL_RUN}/figures/{kind}.png?metric=revenue"
        assert f"<img class='{kind}' src='{src}'" in response.text
        image = client.get(src)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_default_and_unknown_metric(client):
    default = client.get(f"/runs/{SMALL_RUN}")
    assert default.status_code == 200 and "<option value='efficiency' selected>" in default.text
    unknown = client.get(f"/runs/{SMALL_RUN}?metric=bogus")
    assert unknown.status_code == 422
    clean(unknown)
    assert "unknown metric 'bogus'" in errors(unknown.text)[0] and "revenue" in errors(unknown.text)[0]
    assert client.get(f"/runs/{SMALL_RUN}/figures/heatmap.png?metric=bogus").status_code == 422
    assert client.get(f"/runs/{SMALL_RUN}/figures/pie.png").status_code == 404


def test_run_errors_are_pages(client, runs_dir):
    missing = client.get("/runs/no-such-run")
    assert missing.status_code == 404
    clean(missing)
    assert "<h1>Run not found</h1>" in missing.text and str(runs_dir / "no-such-run") in errors(missing.text)[0]
    assert client.get("/runs/%2E%2E").status_code == 404
    assert client.get("/runs/no-such-run/figures/heatmap.png").status_code == 404
    corrupt = client.get(f"/runs/{CORRUPT_RUN}")
    assert corrupt.status_code == 422  # the data is bad, not the server
    clean(corrupt)
    assert "cannot be read" in errors(corrupt.text)[0] and "results.duckdb" in errors(corrupt.text)[0]
    assert client.get(f"/runs/{CORRUPT_RUN}/figures/heatmap.png").status_code == 422
    empty = client.get(f"/runs/{EMPTY_RUN}")
    assert empty.status_code == 200 and "id='no-results'" in empty.text
    assert client.get(f"/runs/{EMPTY_RUN}/figures/heatmap.png").status_code == 404


def test_a_simulate_ledger_is_listed_as_a_ledger_with_its_replay_command(tmp_path):
    """``simulate --ledger DIR`` under --runs is a recording to replay, not an empty sweep to run."""
    from typer.testing import CliRunner

    from mecharena.cli import app

    runs = tmp_path / "runs"
    recorded = CliRunner().invoke(app, ["simulate", "--mechanism", "second_price", "--population", "truthful:3",
                                        "--markets", "8", "--rounds", "2", "--ledger", str(runs / "rec"), "--json"])
    assert recorded.exit_code == 0, recorded.output
    (runs / "broken").mkdir()
    (runs / "broken" / "meta.json").write_text("{not json")
    client = TestClient(build_app(runs, Path("nowhere")), raise_server_exceptions=False)
    listed = {re.search(r"href='/runs/([^']+)'", r).group(1): r for r in rows(client.get("/").text, "run")}
    status = re.search(r"<td class='status [a-z]+'>(\w+)<", listed["rec"]).group(1)
    note = cells(listed["rec"], "note")[0]
    assert (status, cells(listed["rec"], "progress")[0]) == ("ledger", "-")
    assert f"mecharena replay {runs / 'rec'}" in note and "second_price x truthful:3" in note
    assert "mecharena run" not in note
    assert re.search(r"<td class='status [a-z]+'>(\w+)<", listed["broken"]).group(1) == "corrupt"
    page = client.get("/runs/rec")
    assert page.status_code == 200
    clean(page)
    assert "<table id='ledger'>" in page.text and len(rows(page.text, "ledger-field")) == 10
    assert f"<code id='replay-command'>mecharena replay {runs / 'rec'}</code>" in page.text
    assert client.get("/runs/rec/figures/bars.png").status_code == 404
    broken = client.get("/runs/broken")
    assert broken.status_code == 422 and "not valid JSON" in errors(broken.text)[0]


# --- exploits ------------------------------------------------------------------------------------


def test_exploits_page_lists_the_library(client, library, report):
    response = client.get("/exploits")
    assert response.status_code == 200
    clean(response)
    (row,) = rows(response.text, "exploit")
    assert f"<a class='exploit-link' href='/exploits/{report.id}'>{report.id}</a>" in row
    assert "shading" in row and "first_price" in row
    explicit = client.get("/exploits", params={"library": str(library)})
    assert len(rows(explicit.text, "exploit")) == 1


def test_exploits_page_with_a_missing_library(client, tmp_path):
    response = client.get("/exploits", params={"library": str(tmp_path / "none")})
    assert response.status_code == 200
    clean(response)
    assert "does not exist" in errors(response.text)[0] and not rows(response.text, "exploit")
    other = client.get("/exploits/abc", params={"library": str(tmp_path / "none")})
    assert other.status_code == 404 and "<h1>Exploit not found</h1>" in other.text


def test_exploit_page_shows_the_report_and_the_replayed_timeline(client, report):
    response = client.get(f"/exploits/{report.id[:6]}")  # a unique prefix
    assert response.status_code == 200
    clean(response)
    text = unescape(response.text)
    assert f"<h1>Exploit {report.id}</h1>" in text
    lo, hi = report.gain.ci95
    for needle in ("first_price v1", "shading", report.severity.label, report.mitigation,
                   f"{report.gain.mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"):
        assert needle in text
    assert "<p id='replay' class='ok'>reproduced exactly" in text
    timeline = text[text.index("<div id='timeline'>"):]
    rounds = re.findall(r"<div class='round' data-round='(\d+)'>", timeline)
    assert rounds == [str(t) for t in range(report.trace.rounds)]
    for section in timeline.split("<div class='round'")[1:]:
        for ledger in ("deviated", "baseline"):
            assert f"<div class='ledger {ledger}'>" in section
        assert section.count("<p class='bids'>bids: seat 0* ") == 2  # the deviator's seat is marked
        assert section.count("<p class='winners'>winners: ") == 2 and section.count("<p class='payments'>") == 2
        assert section.count("no messages") == 2
        assert "<tr class='deviator'><td>0</td>" in section
    chosen = client.get(f"/exploits/{report.id}?market=5")
    assert chosen.status_code == 200 and "Timeline: market 5" in chosen.text
    assert chosen.text.count("<div class='round'") == report.trace.rounds


def test_an_engine_exploit_shows_its_bid_function(client, report, tmp_path):
    """A best_response report draws its table: one point per grid value, gaps where it abstains, the
    truthful diagonal beside it; a family's report (the fixture's shading) has no such figure."""
    from mecharena.fuzz.report import build_report
    from mecharena.fuzz.search import fuzz
    from mecharena.metrics.harness import Cell

    assert "id='bid-function'" not in client.get(f"/exploits/{report.id}").text
    target = Cell(mechanism="first_price", population="truthful:3", rounds=1)
    result = fuzz(target, families=["best_response"], budget=1, markets=400, rounds=1, eval_markets=400, samples=4000)
    library = tmp_path / "engine"
    found = build_report(result, library, trace_markets=20)
    Library(library, create=True).add(found)
    page = client.get(f"/exploits/{found.id}", params={"library": str(library)})
    assert page.status_code == 200
    clean(page)
    svg = page.text[page.text.index("<svg id='bid-function'"):]
    svg = svg[:svg.index("</svg>")]
    group = agents.population(f"{found.strategy.agent}:1").groups[0]
    entries = len(group.params.bids.split("/"))
    abstaining = group.params.bids.split("/").count("x")
    drawn = sum(len(p.split()) for p in re.findall(r"<polyline class='bids'[^>]* points='([^']*)'", svg))
    assert drawn == entries - abstaining > 10
    assert "stroke-dasharray" in svg  # the truthful diagonal


def test_a_ring_exploit_shows_its_certificate_and_its_play(client, tmp_path):
    """A ring found by ``mecharena ring`` is a report like any other: its page says whether it holds, what
    it does and what its members do once a partner is caught, and its traces replay."""
    from mecharena.fuzz.cell import ring_cell

    library = tmp_path / "rings"
    _, data = ring_cell("second_price", {}, "bne:4", {}, {}, "uniform", 0, rounds=3, library=library, deviators=3,
                        phases=1, generations=3, defection_generations=2, markets=60, eval_markets=200,
                        features=("bias", "value", "lead"))
    page = client.get(f"/exploits/{data['report']['id']}", params={"library": str(library)})
    assert page.status_code == 200
    clean(page)
    (family,) = re.findall(r"id='report-family'>(.*?)</td>", page.text, re.S)
    verdict = "A ring of 3 holds" if data["enforced"] else "No ring found holds"
    assert verdict in family and "What the ring does" in family and "Once a partner is caught" in family
    assert "id='replay-error'" not in page.text


def test_a_stateful_exploit_shows_each_seats_actions_and_state_round_by_round(client, tmp_path):
    """The service marketplace keeps strikes and tasks per seat and takes quality, haste and fakes as actions: the
    timeline shows them for every seat and round, as the trace ledger recorded them."""
    from mecharena.fuzz.report import build_report
    from mecharena.fuzz.search import fuzz
    from mecharena.ledger import connect
    from mecharena.metrics.harness import Cell

    target = Cell(mechanism="service", population="truthful:3", rounds=3)
    result = fuzz(target, families=["policy"], budget=4, markets=40, rounds=3, eval_markets=40)
    library = tmp_path / "stateful"
    found = build_report(result, library, trace_markets=4)
    Library(library, create=True).add(found)
    page = client.get(f"/exploits/{found.id}", params={"library": str(library), "market": 1})
    assert page.status_code == 200
    clean(page)
    timeline = page.text[page.text.index("<div id='timeline'>"):]
    for column in ("action quality", "action haste", "action fakes", "state strikes", "state tasks"):
        assert timeline.count(f">{column}</th>") == 2 * 3, column  # both ledgers, every round
    con = connect(library / found.trace.deviated)
    tasks = con.execute("SELECT state_tasks FROM events WHERE market = 1 AND round = 2 ORDER BY seat").fetchall()
    con.close()
    last = timeline[timeline.index("data-round='2'"):]
    start = last.index("<tr class='deviator'>")
    row = last[start:last.index("</tr>", start)]
    assert row.endswith(f"<td>{fmt(tasks[0][0])}</td>")  # the deviator's tasks after round 2, as recorded


def test_a_recorded_ledger_shows_a_market_round_by_round_with_each_seats_actions_and_state(tmp_path):
    """``simulate --ledger`` of the reputation marketplace (scores, listings and ratings per seat; quality, re-entry
    and fakes as actions): the run page shows the chosen market's rounds, every seat's declared actions and state
    after each round as the ledger recorded them; a market the ledger lacks is a 422 page naming the range."""
    from typer.testing import CliRunner

    from mecharena.cli import app
    from mecharena.ledger import connect

    runs = tmp_path / "runs"
    recorded = CliRunner().invoke(app, ["simulate", "--mechanism", "reputation", "--population", "truthful:3",
                                        "--markets", "5", "--rounds", "4", "--seed", "2", "--ledger", str(runs / "rep"),
                                        "--json"])
    assert recorded.exit_code == 0, recorded.output
    client = TestClient(build_app(runs, Path("nowhere")), raise_server_exceptions=False)
    first = client.get("/runs/rep")
    assert first.status_code == 200 and "<h2>Rounds: market 0</h2>" in first.text
    page = client.get("/runs/rep", params={"market": 3})
    assert page.status_code == 200
    clean(page)
    timeline = page.text[page.text.index("<div id='timeline'>"):]
    assert timeline.count("<div class='round'") == 4
    for column in ("action quality", "action reenter", "action fakes", "state score", "state listings"):
        assert timeline.count(f">{column}</th>") == 4, column
    con = connect(runs / "rep")
    score = con.execute("SELECT state_score FROM events WHERE market = 3 AND round = 3 ORDER BY seat").fetchall()
    con.close()
    last = timeline[timeline.index("data-round='3'"):]
    head = last[last.index("<thead>"):last.index("</thead>")]
    column = re.findall(r"<th[^>]*>([^<]*)</th>", head).index("state score")
    seat2 = re.findall(r"<tr class='seat'>(.*?)</tr>", last)[2]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", seat2)[column] == fmt(score[2][0])  # as recorded
    for market, message in (("5", "market must be in [0, 4] (the ledger has 5 markets), got 5"),
                            ("x", "market must be an integer, got 'x'")):
        bad = client.get("/runs/rep", params={"market": market})
        assert bad.status_code == 422 and errors(bad.text) == [message], bad.text


def test_exploit_errors_are_pages(client, report):
    unknown = client.get("/exploits/ffffffffffff")
    assert unknown.status_code == 404
    clean(unknown)
    assert "<h1>Exploit not found</h1>" in unknown.text and "unknown exploit id 'ffffffffffff'" in errors(unknown.text)[0]
    last = report.trace.markets - 1
    for market, message in (("abc", "market must be an integer, got 'abc'"),
                            ("999", f"market must be in [0, {last}]")):
        bad = client.get(f"/exploits/{report.id}?market={market}")
        assert bad.status_code == 422 and message in errors(bad.text)[0]


# --- live referee ----------------------------------------------------------------------------------


def start(client, stage: int = 2, policy: str = "greedy", seed: int = 0) -> str:
    response = client.post("/live", data={"stage": str(stage), "policy": policy, "seed": str(seed)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/live/[0-9a-f]{32}", location)
    return location


def round_count(text: str) -> int:
    return len(re.findall(r"<div class='round' data-round='\d+'>", text))


def test_live_start_form(client):
    response = client.get("/live")
    assert response.status_code == 200
    clean(response)
    assert "<form id='start' method='post' action='/live'>" in response.text
    assert re.findall(r"<select id='stage' name='stage'>(.*?)</select>", response.text)[0].count("<option") == 5
    policies = re.findall(r"<option value='(\w+)'", re.findall(r"<select id='policy' name='policy'>(.*?)</select>",
                                                                 response.text)[0])
    assert policies == ["random", "greedy", "learned"]
    assert "<button id='start-button'" in response.text


def test_live_episode_stepped_by_policy_and_manually(client):
    location = start(client, stage=3, policy="greedy", seed=4)
    page = client.get(location)
    assert page.status_code == 200
    clean(page)
    assert "second_price" in divs(page.text, "mechanism") and "no choice yet" in divs(page.text, "why")
    assert round_count(page.text) == 0
    assert f"<form id='policy-step' method='post' action='{location}/step'>" in page.text
    assert f"<form id='manual-step' method='post' action='{location}/manual' novalidate>" in page.text
    for name in ("rule", "reserve", *FLAGS, "shill_penalty", "withdrawal_penalty", "collusion_penalty", "coalition"):
        assert f"name='{name}'" in page.text
    stepped = client.post(f"{location}/step")  # the redirect is followed back to the page
    assert stepped.status_code == 200 and round_count(stepped.text) == designer.ROUNDS
    why = divs(stepped.text, "why")
    assert "proxies seen: bid_mean = " in why and "collusion_rate" in why
    assert re.search(r"<span class='welfare'>welfare [0-9.]+</span>", stepped.text)
    assert re.search(r"<span class='price'>price [0-9.e-]+</span>", stepped.text)
    manual = client.post(f"{location}/manual", data={
        "rule": "vcg", "reserve": "0.2", "competing_bids": "on", "clearing_price": "on", "shill_penalty": "1",
        "withdrawal_penalty": "0", "collusion_penalty": "0.5", "coalition": "restrict"})
    assert manual.status_code == 200 and round_count(manual.text) == 2 * designer.ROUNDS
    assert divs(manual.text, "mechanism") == ("vcg, reserve 0.2; reveals: competing bids, clearing price; fines: "
                                              "shill 1, collusion 0.5; coalition: restrict")
    assert "your own mechanism" in divs(manual.text, "why")
    assert "<td class='text'>manual</td>" in manual.text and "<td class='text'>policy</td>" in manual.text


def test_live_bad_manual_input_is_422_and_changes_nothing(client):
    location = start(client, stage=1, policy="random", seed=1)
    before = client.post(f"{location}/step").text
    for form, field in (({"rule": "vcg", "reserve": "5"}, "reserve"), ({"rule": "dutch"}, "rule"),
                        ({"shill_penalty": "lots"}, "shill_penalty"), ({"competing_bids": "maybe"}, "competing_bids"),
                        ({"coalition": "cartel"}, "coalition"), ({"colour": "red"}, "colour")):
        response = client.post(f"{location}/manual", data=form)
        assert response.status_code == 422, form
        clean(response)
        (message,) = errors(response.text)
        assert field in message, (form, message)
        assert round_count(response.text) == designer.ROUNDS
        assert divs(response.text, "mechanism") == divs(before, "mechanism")
    assert round_count(client.get(location).text) == designer.ROUNDS


def test_live_learned_designer_says_why(client):
    location = start(client, stage=2, policy="learned", seed=3)
    page = client.post(f"{location}/step")
    why = divs(page.text, "why")
    assert "predicted mean reward over the next 3 steps" in why and len(re.findall(r"/r=[\d.]+/\S+ \d\.\d{3}", why)) == 3


def test_live_episode_ends(client):
    location = start(client, stage=1, policy="greedy", seed=2)
    for _ in range(designer.HORIZON):
        assert client.post(f"{location}/step").status_code == 200
    page = client.get(location)
    assert round_count(page.text) == designer.HORIZON * designer.ROUNDS and "the episode is over" in page.text
    assert "<button id='step-policy' type='submit' disabled>" in page.text
    over = client.post(f"{location}/step")
    assert over.status_code == 409 and "the episode is over" in errors(over.text)[0]


def test_live_bad_start_and_unknown_episode(client):
    for form, message in (({"stage": "9", "policy": "greedy"}, "stage must be one of 1, 2, 3, 4, 5, got '9'"),
                          ({"stage": "1", "policy": "oracle"}, "policy must be one of random, greedy, learned"),
                          ({"stage": "1", "policy": "greedy", "seed": "-1"}, "seed must be an integer >= 0")):
        response = client.post("/live", data=form)
        assert response.status_code == 422 and message in errors(response.text)[0]
        clean(response)
    for response in (client.get("/live/0123"), client.post("/live/0123/step"), client.post("/live/0123/manual")):
        assert response.status_code == 404 and "<h1>Episode not found</h1>" in response.text


def test_live_sessions_are_bounded_and_expire(runs_dir, library):
    client = TestClient(build_app(runs_dir, library, max_sessions=1, idle_timeout=0.3),
                        raise_server_exceptions=False)
    location = start(client)
    full = client.post("/live", data={"stage": "1", "policy": "greedy"})
    assert full.status_code == 503 and "too many live episodes" in errors(full.text)[0]
    time.sleep(0.5)
    assert client.get(location).status_code == 404
    start(client)  # the expired one freed its slot


# --- the shell -------------------------------------------------------------------------------------


def test_no_stack_trace_ever(runs_dir, library):
    def broken(name: str, stage: int, seed: int):
        raise RuntimeError("the designer exploded")

    client = TestClient(build_app(runs_dir, library, policies=broken), raise_server_exceptions=False)
    response = client.post("/live", data={"stage": "1", "policy": "greedy"})
    assert response.status_code == 500
    clean(response)
    assert "<h1>Internal error</h1>" in response.text and "the designer exploded" in response.text
    for path, status in (("/nowhere", 404), ("/runs/small/figures", 404)):
        page = client.get(path)
        assert page.status_code == status
        clean(page)
    assert client.delete("/").status_code == 405


def test_names_and_ids_are_escaped(tmp_path):
    """A run directory, an exploit id, a library path or a form value holding markup comes out as text, never as
    a tag: the templates escape every value they show."""
    runs = tmp_path / "runs"
    (runs / "<script>alert(1)").mkdir(parents=True)
    client = TestClient(build_app(runs, tmp_path / "<b>library"), raise_server_exceptions=False)
    pages = {"/": 200, "/runs/%3Cscript%3Ealert(1)": 200, "/runs/%3Cscript%3Ealert(1)/figures/bars.png": 404,
             "/exploits": 200, "/exploits/%3Cscript%3Ealert(1)": 404, "/exploits/%3Cscript%3E/x": 404}
    for path, status in pages.items():
        response = client.get(path)
        assert response.status_code == status, path
        clean(response)
        assert "<script>" not in response.text and "<b>" not in response.text, path
        assert "&lt;script&gt;" in response.text or "&lt;b&gt;" in response.text, path
    bad = client.post("/live", data={"stage": "1", "policy": "<script>", "seed": "<script>"})
    assert bad.status_code == 422 and "<script>" not in bad.text and "&lt;script&gt;" in bad.text


def test_static_assets_ship_with_the_package(client):
    assert {p.name for p in STATIC.iterdir()} >= {"ui.css", "ui.js"}
    for name, kind in (("ui.css", "text/css"), ("ui.js", "javascript")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert "http" not in (STATIC / "ui.js").read_text()  # no CDN, nothing fetched from elsewhere


def test_run_rejects_a_bad_port(tmp_path):
    with pytest.raises(ConfigError, match="port must be in 1..65535, got 70000"):
        run(tmp_path, tmp_path, "127.0.0.1", 70000)
