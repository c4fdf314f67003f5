"""The dashboard end to end in headless Chromium (Playwright driving Debian's ``chromium``).

Each test loads pages of a live dashboard (``tests/server/conftest.py``: a real run directory from
``mecharena run``, a real exploit library from ``mecharena fuzz``) and clicks through them as a
person would: the runs table, a run's comparison under another metric, an exploit's replayed
trace, a live referee episode stepped by a policy and by hand. A screenshot of every page lands in
``test-artifacts/ui/`` (named by page). The last test polls the dashboard while ``mecharena run``
writes a sweep: every answer within a second, status ``running`` with growing progress, then
``complete``.

Chromium is found at ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH; when it is
missing or does not start, the tests fail (never skip) and say how to install it.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.runner.specs import SMALL_CELLS
from tests.server.conftest import CORRUPT_RUN, EMPTY_RUN, SMALL_RUN, serve

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `browser` fixture fails every test with how to install it
    Page = expect = None

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
INSTALL = ("install it with `apt-get update && apt-get install -y chromium` (Debian; `make test` does this), "
           "or set CHROMIUM to a Chromium binary")
TIMEOUT_MS = 15_000
RESPONSIVE_S = 1.0  # the most one page may take while a sweep runs

# 3 mechanisms x 2 populations x 4 seeds = 24 cells of ~0.5 s: a sweep of ~12 s on one worker
SWEEP = """\
name: live-sweep
markets: 20000
rounds: 10
seeds: [0, 1, 2, 3]
mechanisms: [{id: second_price}, {id: first_price}, {id: uniform_price, config: {units: 2}}]
populations: ["truthful:5", "bne:5"]
"""
SWEEP_CELLS = 24
SWEEP_RUN = "live-sweep"


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``$CHROMIUM``, else the first of chromium, chromium-browser on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; fails (not skips) with install instructions when it cannot be started."""
    if expect is None:
        pytest.fail("the browser tests need Playwright: pip install 'playwright>=1.40' (in the dev extra; "
                    "`make test` installs it). Playwright drives the system Chromium; it downloads no browser.")
    from playwright.sync_api import Error, sync_playwright

    path = chromium_path()
    if path is None:
        pytest.fail(f"Chromium not found ($CHROMIUM unset, no chromium or chromium-browser on PATH): {INSTALL}")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, headless=True)
        except Error as exc:
            problem = f"Chromium at {path} did not start: {exc.message}"
        else:
            problem = None
        if problem:  # failed outside the except block: the message, not Playwright's traceback
            pytest.fail(f"{problem}\n{INSTALL}")
        expect.set_options(timeout=TIMEOUT_MS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, dashboard) -> Iterator["Page"]:
    """A fresh page on the dashboard; the test fails on any JavaScript error or broken sub-resource."""
    context = browser.new_context(base_url=dashboard, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"JavaScript error on {tab.url}: {exc}"))
    tab.on("requestfailed", lambda request: None if "ERR_ABORTED" in (request.failure or "") else problems.append(
        f"request failed: {request.method} {request.url}: {request.failure}"))

    def on_response(response) -> None:
        # A page may answer 404 (unknown run) and a form post 4xx (bad input); an image, a style
        # sheet or a script must load, and no page answers a server error.
        kind = response.request.resource_type
        if response.status >= 500 or (
                response.status >= 400 and kind in ("image", "stylesheet", "script", "font")):
            problems.append(f"{kind} {response.request.method} {response.url} answered {response.status}")

    tab.on("response", on_response)
    yield tab
    context.close()
    if problems:
        pytest.fail("the browser saw errors:\n" + "\n".join(problems))


def shoot(page: "Page", name: str) -> None:
    """Save a full-page screenshot as ``test-artifacts/ui/{name}.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def path_of(page: "Page") -> str:
    return urlsplit(page.url).path


def check_nav(page: "Page") -> None:
    for link in ("nav-runs", "nav-exploits", "nav-live"):
        expect(page.locator(f"nav a#{link}")).to_be_visible()


def check_images(page: "Page", selector: str) -> None:
    """At least one ``selector`` image, and every one of them decoded (not a broken icon)."""
    images = page.locator(selector)
    expect(images.first).to_be_attached()
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()  # lazy images load once in view
    page.wait_for_function("s => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth > 0)",
                           arg=selector, timeout=TIMEOUT_MS)


def run_rows(page: "Page") -> dict[str, tuple[str, str]]:
    """The runs table: {run name: (status, progress)}, the name from the row's run link."""
    rows, table = page.locator("#runs tr.run"), {}
    for i in range(rows.count()):
        row = rows.nth(i)
        name = unquote(row.locator("a.run-link").get_attribute("href").rstrip("/").rsplit("/", 1)[-1])
        table[name] = (row.locator("td.status").inner_text().strip(), row.locator("td.progress").inner_text().strip())
    return table


def round_count(page: "Page") -> int:
    return page.locator("#rounds .round").count()


def wait_for_more_rounds(page: "Page", than: int) -> int:
    page.wait_for_function("n => document.querySelectorAll('#rounds .round').length > n", arg=than,
                           timeout=TIMEOUT_MS)
    return round_count(page)


def test_runs_page_lists_every_run_with_status_and_progress(page):
    page.goto("/")
    expect(page.locator("table#runs")).to_be_visible()
    check_nav(page)
    rows = run_rows(page)
    assert set(rows) == {SMALL_RUN, EMPTY_RUN, CORRUPT_RUN}, rows
    assert rows[SMALL_RUN] == ("complete", f"{SMALL_CELLS}/{SMALL_CELLS}")
    assert rows[EMPTY_RUN][0] == "empty"
    assert rows[CORRUPT_RUN][0] == "corrupt"
    shoot(page, "runs")


def test_click_through_a_comparison(page):
    page.goto("/")
    page.locator(f'a.run-link[href="/runs/{SMALL_RUN}"]').click()
    expect(page).to_have_url(re.compile(rf"/runs/{SMALL_RUN}(\?.*)?$"))
    expect(page.locator("h1")).to_contain_text(SMALL_RUN)
    check_nav(page)
    comparison = page.locator("table#comparison")
    expect(comparison).to_be_visible()
    for label in ("sp", "fp", "mcafee"):  # every mechanism of the spec is compared
        expect(comparison).to_contain_text(label)
    check_images(page, "img.heatmap")
    check_images(page, "img.curve")
    shoot(page, "run")

    metric = page.locator("form#metric-form select#metric")
    options = metric.locator("option").evaluate_all("options => options.map(o => o.value)")
    current = metric.input_value()
    assert {"revenue", "efficiency"} <= set(options), options
    chosen = "efficiency" if current != "efficiency" else "revenue"
    before = comparison.inner_text()
    metric.select_option(chosen)
    page.locator("form#metric-form button#apply").click()
    expect(page).to_have_url(re.compile(rf"/runs/{SMALL_RUN}\?(.*&)?metric={chosen}(&.*)?$"))
    expect(page.locator("select#metric")).to_have_value(chosen)
    expect(page.locator("h1")).to_contain_text(SMALL_RUN)
    expect(comparison).to_be_visible()
    assert comparison.inner_text() != before, f"the comparison table did not change from {current} to {chosen}"
    check_images(page, "img.heatmap")
    check_images(page, "img.curve")
    shoot(page, f"run-{chosen}")

    page.locator("nav a#nav-runs").click()
    expect(page.locator("table#runs")).to_be_visible()


def test_run_errors_are_pages_not_tracebacks(page):
    assert page.goto("/runs/no-such-run").status == 404
    expect(page.locator("h1")).to_have_text("Run not found")
    check_nav(page)
    shoot(page, "run-not-found")
    page.goto(f"/runs/{CORRUPT_RUN}")
    expect(page.locator("div.error").first).to_be_visible()
    assert "Traceback" not in page.content()
    shoot(page, "run-corrupt")


def test_open_an_exploits_trace(page, exploit_library):
    library, found = exploit_library
    report = json.loads((library / f"{found['id']}.json").read_text())  # the stored failure report
    page.goto("/")
    page.locator("nav a#nav-exploits").click()
    expect(page).to_have_url(re.compile(r"/exploits/?$"))
    rows = page.locator("table#exploits tr.exploit")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("first_price")
    check_nav(page)
    shoot(page, "exploits")

    rows.first.locator("a.exploit-link").click()
    expect(page).to_have_url(re.compile(rf"/exploits/{report['id']}$"))
    expect(page.locator("#timeline")).to_be_visible()
    expect(page.locator("#timeline .round")).to_have_count(report["trace"]["rounds"])
    check_nav(page)
    shoot(page, "exploit")

    assert page.goto("/exploits/000000000000").status == 404
    expect(page.locator("h1")).to_have_text("Exploit not found")
    shoot(page, "exploit-not-found")


def test_step_a_live_episode(page):
    page.goto("/")
    page.locator("nav a#nav-live").click()
    expect(page).to_have_url(re.compile(r"/live/?$"))
    check_nav(page)
    policies = page.locator("form#start select#policy option").evaluate_all("options => options.map(o => o.value)")
    assert {"random", "greedy", "learned"} <= set(policies), policies
    stages = page.locator("form#start select#stage option").evaluate_all("options => options.map(o => o.value)")
    assert stages, "no stage to choose"
    shoot(page, "live")

    page.locator("select#stage").select_option(stages[0])
    page.locator("select#policy").select_option("greedy")
    page.locator("button#start-button").click()
    expect(page).to_have_url(re.compile(r"/live/[^/?#]+$"))
    session = path_of(page)
    expect(page.locator("#mechanism")).not_to_be_empty()
    expect(page.locator("#why")).to_be_visible()
    expect(page.locator("#rounds")).to_be_attached()
    rounds = round_count(page)

    page.locator("form#policy-step button#step-policy").click()
    rounds = wait_for_more_rounds(page, rounds)
    expect(page.locator("#why")).not_to_be_empty()  # the policy says why it chose the mechanism
    assert path_of(page) == session
    shoot(page, "live-session")

    manual = page.locator("form#manual-step")
    manual.locator("select[name=rule]").select_option("vcg")
    manual.locator("input[name=reserve]").fill("0.2")
    manual.locator("button#step-manual").click()
    rounds = wait_for_more_rounds(page, rounds)
    expect(page.locator("#mechanism")).to_contain_text("vcg")
    shoot(page, "live-manual")

    manual = page.locator("form#manual-step")
    manual.evaluate("form => form.noValidate = true")  # let the server judge the value, not the browser
    manual.locator("input[name=reserve]").fill("5")
    manual.locator("button#step-manual").click()
    expect(page.locator("div.error").first).to_contain_text("reserve")
    assert round_count(page) == rounds, "a rejected manual step must not play a round"
    shoot(page, "live-manual-error")


class RunsTable(HTMLParser):
    """Parses ``<table id="runs">``: ``rows`` maps a run's name (from its run link) to status and progress."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self._row: dict[str, str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and "run" in classes:
            self._row = {"name": "", "status": "", "progress": ""}
        elif self._row is not None and tag == "td":
            self._cell = next((c for c in ("status", "progress") if c in classes), None)
        elif self._row is not None and tag == "a" and "run-link" in classes:
            self._row["name"] = unquote((attributes.get("href") or "").rstrip("/").rsplit("/", 1)[-1])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows[self._row["name"]] = {k: " ".join(v.split()) for k, v in self._row.items()}
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell:
            self._row[self._cell] += data


class Elements(HTMLParser):
    """Parses a page: ``ids`` and ``classes`` of its elements."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.classes: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        self.classes.update((attributes.get("class") or "").split())


def fraction(progress: str) -> tuple[int, int] | None:
    found = re.fullmatch(r"(\d+)\s*/\s*(\d+)", progress)
    return (int(found[1]), int(found[2])) if found else None


def test_dashboard_stays_responsive_during_a_sweep(tmp_path, exploit_library, page):
    """Poll ``/`` and the run's page while ``mecharena run`` writes it: each answer within a second,
    the run ``running`` with progress growing, then ``complete``."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP)
    runs = tmp_path / "runs"
    runs.mkdir()
    slow: list[str] = []
    seen: list[tuple[bool, str, tuple[int, int] | None]] = []  # (runner alive throughout, status, progress)
    shot = False
    with serve(runs, exploit_library[0]) as url, httpx.Client(base_url=url, timeout=10) as client:

        def get(path: str) -> httpx.Response:
            started = time.perf_counter()
            response = client.get(path)
            took = time.perf_counter() - started
            if took > RESPONSIVE_S:
                slow.append(f"GET {path} took {took:.2f} s")
            assert response.status_code == 200, f"GET {path} answered {response.status_code}: {response.text[:500]}"
            return response

        command = [sys.executable, "-m", "mecharena.cli", "run", str(spec), "--out", str(runs / SWEEP_RUN),
                   "--workers", "1"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                alive = process.poll() is None
                table = RunsTable()
                table.feed(get("/").text)
                row = table.rows.get(SWEEP_RUN)
                if row is not None:
                    run_page = Elements(get(f"/runs/{SWEEP_RUN}").text)
                    assert "error" not in run_page.classes, f"/runs/{SWEEP_RUN} shows an error while the sweep runs"
                    alive = alive and process.poll() is None
                    seen.append((alive, row["status"], fraction(row["progress"])))
                    if alive and not shot and row["status"] == "running" and (fraction(row["progress"]) or (0,))[0] >= 3:
                        shot = True  # the pages as a person sees them mid-sweep
                        page.goto(f"{url}/")
                        shoot(page, "runs-during-sweep")
                        page.goto(f"{url}/runs/{SWEEP_RUN}")
                        expect(page.locator("h1")).to_contain_text(SWEEP_RUN)
                        shoot(page, "run-during-sweep")
                if process.poll() is not None and not alive:
                    break
                time.sleep(0.2)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            stderr = process.communicate(timeout=30)[1]
        assert process.returncode == 0, f"mecharena run exited {process.returncode}:\n{stderr}"

        final = RunsTable()
        final.feed(get("/").text)
        assert final.rows.get(SWEEP_RUN) == {"name": SWEEP_RUN, "status": "complete",
                                             "progress": f"{SWEEP_CELLS}/{SWEEP_CELLS}"}, final.rows
        done = Elements(get(f"/runs/{SWEEP_RUN}").text)
        assert "comparison" in done.ids and "error" not in done.classes

    assert not slow, f"the dashboard was slow while the sweep ran: {slow}"
    running = [progress for alive, status, progress in seen if alive and status == "running"]
    assert running, f"the run never showed as running while `mecharena run` wrote it: {seen}"
    # Transients: 0/0 before the runner has stored its plan; ?/? when a snapshot caught a torn write.
    assert all(p is None or p[1] == SWEEP_CELLS or p == (0, 0) for p in running), running
    done_cells = [p[0] for p in running if p is not None and p[1] == SWEEP_CELLS]
    assert done_cells == sorted(done_cells), f"progress went backwards: {done_cells}"
    assert len(set(done_cells)) >= 3, f"progress did not grow while the sweep ran: {done_cells}"
    for alive, status, progress in seen:
        if alive:  # before the plan is stored the run may look empty; complete only once every cell is
            assert status in ("empty", "running", "complete"), (status, progress)
            assert status != "complete" or progress == (SWEEP_CELLS, SWEEP_CELLS), (status, progress)
    assert shot, "never caught the sweep running at 3 or more cells for a screenshot"


def test_the_report_opens_with_its_findings(browser, runs_dir, tmp_path):
    """The report's first section answers the question: non-empty findings, each linking to a section that exists,
    above the one-page summary figure; the test fails if the section is missing or empty."""
    from mecharena.report import build_report

    run = tmp_path / "run"
    shutil.copytree(runs_dir / SMALL_RUN, run)
    build_report(run)
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    tab.goto((run / "report.html").as_uri())
    first = tab.locator("h2").first
    expect(first).to_have_text("Findings")
    items = tab.locator("ul.findings li")
    assert items.count() >= 1
    for i in range(items.count()):
        assert len(items.nth(i).inner_text()) > 40
        anchor = items.nth(i).locator("a").get_attribute("href")
        assert tab.locator(anchor).count() == 1, anchor
    expect(tab.locator("#findings ~ figure img").first).to_be_visible()
    shoot(tab, "report-findings")
    tab.close()
