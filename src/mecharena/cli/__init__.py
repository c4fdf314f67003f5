"""The ``mecharena`` command. A shell: parsing, printing and exit codes; no economics here."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from mecharena import agents, mechanisms
from mecharena.core.config import parse_assignments
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.settings import CLI_SAMPLES, FuzzSettings, RepairSettings, description
from mecharena.cli import bench, designer, llm, train
from mecharena.cli import fuzz as exploits
from mecharena.cli.fuzz import LibraryOption
from mecharena.cli.shell import JsonFlag, SeedOption, exit_with, make_console, progress_bar, seed_option
from mecharena.cli.shell import fail as shell_fail

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Mechanism Arena: stress-test economic mechanisms against strategic agents.")
app.add_typer(bench.app, name="bench")
app.add_typer(designer.app, name="designer")
app.add_typer(llm.app, name="llm")
app.add_typer(train.app, name="train")
app.add_typer(exploits.app, name="exploits")
# The command's output and its errors/progress. No command parameter may be called `out` or
# `err`: it would hide these consoles inside the command (tests/test_cli.py checks every command).
out = make_console()
err = make_console(stderr=True)

FUZZ, REPAIR = FuzzSettings(), RepairSettings()  # the defaults (mecharena.core.settings holds them and the bounds)


def _setting(model: type, name: str) -> Any:
    """A CLI option whose help is the settings field's description."""
    return typer.Option(help=description(model, name))


ValuesOption = Annotated[str, typer.Option(help=(
    "value distribution: uniform | power:shape=2 | exponential:shape=3 | empirical:path=values.csv[,column=NAME] "
    "(a CSV of values: the first column, or the one named); add common=C for interdependent values, e.g. "
    "uniform:common=1 (a pure common value: the mean signal), and persistent=true to keep each agent's value "
    "every round of an episode"))]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="config field key=value (repeatable)")]
InfoOption = Annotated[list[str] | None, typer.Option("--info", help="information policy key=value")]
EnforceOption = Annotated[list[str] | None, typer.Option("--enforce", help="enforcement key=value")]


def fail(exc: Exception) -> typer.Exit:
    """Print the error without a traceback and exit with status 2."""
    return shell_fail(exc, err)


def parse_search(items: list[str]) -> dict[str, Any]:
    """``["listing_fee=0:0.5", "weighting=linear,sqrt"]`` -> ``{"listing_fee": (0.0, 0.5), "weighting": [...]}``."""
    space: dict[str, Any] = {}
    for item in items:
        name, eq, text = (part.strip() for part in item.partition("="))
        low, colon, high = text.partition(":")
        try:
            if not (eq and name and text):
                raise ValueError
            space[name] = (float(low), float(high)) if colon else [_value(v.strip()) for v in text.split(",")]
        except ValueError:
            raise ConfigError(f"--search expects NAME=LOW:HIGH (numbers) or NAME=A,B,C (choices), got {item!r}") \
                from None
    return space


def _value(text: str) -> Any:
    """A JSON value (number, boolean) where it parses, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_settings(items: list[str], option: str = "--set") -> dict[str, Any]:
    """``["reserve_price=0.5", "pricing=lowest_winning"]`` -> a dict; values are JSON when they parse."""
    return parse_assignments(items, lambda item: f"{option} expects key=value, got {item!r}")


# --- plug-ins (mecharena.plugins, docs/plugins.md) and `check` ----------------------------------
def _print_version(value: bool) -> None:
    if value:
        from mecharena import __version__

        print(f"mecharena {__version__}")
        raise typer.Exit(0)


@app.callback()
def load_plugins(plugin: Annotated[list[str] | None, typer.Option(
        "--plugin", help="load a plug-in before the command: a .py file or a module defining MECHANISM(S) / "
                         "AGENT(S) / FAMILY(IES) (repeatable; MECHARENA_PLUGINS and installed entry points load "
                         "too)")] = None,
        version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                              help="print mecharena's version and exit")] = False) -> None:
    from mecharena import plugins

    try:
        plugins.activate(plugin or [])
    except MechArenaError as exc:
        raise fail(exc) from None


@app.command("check")
def check(mechanism: Annotated[str, typer.Argument(help="mechanism id (see `mecharena mechanisms`)", show_default=False)],
          as_json: JsonFlag = False) -> None:
    """Run check_mechanism over the mechanism's example configs: each check passed or failed (exit 1 on a failure)."""
    from mecharena.mechanisms.checker import run_checks

    try:
        report = run_checks(mechanisms.get(mechanism))
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({"mechanism": mechanism, "source": mechanisms.REGISTRY.source(mechanism), "cases": report.cases,
                          "passed": report.passed, "checks": report.rows()}, indent=2))
    else:
        verdict = "passed" if report.passed else "FAILED"
        table = Table(title=f"check_mechanism {mechanism}: {verdict} ({report.cases} config x market size cases clean)")
        for column in ("check", "status", "rule, or the first failure"):
            table.add_column(column)
        for row in report.rows():
            style = {"passed": "green", "failed": "bold red"}.get(row["status"], "dim")
            table.add_row(row["check"], f"[{style}]{row['status']}[/]", escape(row["detail"] or row["description"]))
        out.print(table)
    if not report.passed:
        raise typer.Exit(1)
# --- end of plug-ins ------------------------------------------------------------------------------


@app.command("mechanisms")
def list_mechanisms(as_json: JsonFlag = False) -> None:
    """Every mechanism with its description, config fields and version."""
    rows = [mechanisms.describe(m) for _, m in mechanisms.REGISTRY.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Mechanisms", show_lines=True)
    for column in ("name", "v", "rule", "config fields (default: allowed)", "promises (default config)"):
        table.add_column(column)
    for row in rows:
        fields = "\n".join(f"{f['name']}={f['default']!r}: {f['allowed']}" for f in row["config"]) or "-"
        rule = row["summary"] + "".join(f"\n[dim]{kind}: {', '.join(x['name'] for x in row[kind])}[/]"
                                        for kind in ("state", "actions") if row[kind])
        table.add_row(row["name"], str(row["version"]), rule, fields, ", ".join(row["properties"]) or "-")
    out.print(table)


def run_simulation(mechanism_name: str, settings: dict[str, Any], population: str, markets: int, rounds: int,
                   seed: int, values: str, progress: bool, information: dict[str, Any] | None = None,
                   enforcement: dict[str, Any] | None = None, ledger: Path | None = None,
                   ledger_mode: str = "full", channels: str | None = None) -> dict[str, Any]:
    from mecharena.metrics.run import simulate_summary

    with progress_bar(err, hidden=not progress) as bar:
        task = bar.add_task(f"{mechanism_name} x {population}", total=rounds)
        return simulate_summary(mechanism_name, settings, population, markets, rounds, seed, values, information,
                                enforcement, ledger, ledger_mode, on_round=lambda _t: bar.advance(task),
                                channels=channels)


SHORT = {"revenue": "revenue", "efficiency": "effic.", "welfare": "welfare", "bidder_surplus": "surplus",
         "participation": "particip.", "invalid_rate": "invalid"}


def metric_rows_table(title: str, metrics: dict[str, Any]) -> Table:
    """One run: a row per metric with its mean and 95% interval."""
    table = Table(title=title)
    for column, justify in (("metric", "left"), ("mean", "right"), ("95% CI", "right")):
        table.add_column(column, justify=justify)
    for name, m in metrics.items():
        lo, hi = m["ci95"]
        table.add_row(name, f"{m['mean']:.4f}", f"[{lo:.4f}, {hi:.4f}]")
    return table


def runs_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """Several runs: a row per run, a column per metric (mean ± 95% half-width)."""
    table = Table(title=title)
    table.add_column("run")
    for short in SHORT.values():
        table.add_column(short, justify="right")
    for row in rows:
        cells = []
        for name in SHORT:
            lo, hi = row["metrics"][name]["ci95"]
            cells.append(f"{row['metrics'][name]['mean']:.3f}\n[dim]±{(hi - lo) / 2:.3f}[/]")
        table.add_row(row["run"], *cells)
    return table


@app.command()
def simulate(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    population: Annotated[str, typer.Option(help="TYPE:COUNT[,TYPE:COUNT...], e.g. truthful:5 or bne:3")],
    settings: SetOption = None,
    markets: Annotated[int, typer.Option(help="independent markets B")] = 1000,
    rounds: Annotated[int, typer.Option(help="rounds per market T")] = 10,
    seed: SeedOption = 0,
    values: ValuesOption = "uniform",
    info: Annotated[list[str] | None, typer.Option(
        "--info", help="information policy flag key=value, e.g. winner_identity=true (see `mecharena rules`)")] = None,
    enforce: Annotated[list[str] | None, typer.Option(
        "--enforce", help="enforcement key=value, e.g. audit_probability=0.2 (see `mecharena rules`)")] = None,
    ledger: Annotated[Path | None, typer.Option(help="record the run's events in this directory")] = None,
    ledger_mode: Annotated[str, typer.Option(help="full (every event, replayable) or aggregate")] = "full",
    channels: Annotated[str | None, typer.Option(
        help="message channels, e.g. private,monitored,delay=1,side_payment_cap=0.5 (docs/talk.md)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate repeated markets of one mechanism and report metrics with 95% intervals."""
    try:
        result = run_simulation(mechanism, parse_settings(settings or []), population, markets, rounds, seed,
                                values, progress=not as_json and sys.stderr.isatty(),
                                information=parse_settings(info or [], "--info"),
                                enforcement=parse_settings(enforce or [], "--enforce"), ledger=ledger,
                                ledger_mode=ledger_mode, channels=channels)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    settings_text = ", ".join(f"{k}={v}" for k, v in result["config"].items()) or "defaults"
    out.print(metric_rows_table(f"{result['mechanism']} ({settings_text})\n{result['population']}, "
                                f"B={markets}, T={rounds}, seed={seed}", result["metrics"]))
    for agent, counts in result.get("structured_output", {}).items():
        out.print(escape(f"{agent} structured output: {counts['requests']} requests, {counts['valid']} valid, "
                         f"{counts['repaired']} repaired, {counts['fallback']} fallback, {counts['error']} error; "
                         f"{counts['dominated']} of {counts['decisions']} decisions dominated"), highlight=False)


DEMO_RUNS = [
    ("second_price", {"reserve_price": 0.5}, "truthful:5"),
    ("first_price", {"reserve_price": 0.5}, "bne:5"),
    ("uniform_price", {"units": 3}, "truthful:8"),
    ("pay_as_bid", {"units": 3}, "bne:8"),
    ("vcg", {"units": 3, "demand": 2}, "truthful:8"),
    ("mcafee", {"buyers": 5}, "truthful:10"),
    ("k_double", {"buyers": 5}, "truthful:10"),
    ("cda", {"buyers": 5}, "truthful:10"),
    ("posted_price", {"price": 0.6}, "truthful:5"),
    ("vcm", {"mpcr": 0.4}, "bne:5"),
    ("provision_point", {"threshold": 2.0}, "truthful:5"),
    ("english", {"increment": 0.01}, "truthful:5"),
    ("dutch", {}, "bne:5"),
    ("position", {"slots": 3}, "envy_free:5"),
    ("lmsr", {"liquidity": 1.0}, "truthful:5"),
    ("deferred_acceptance", {"proposers": 3}, "truthful:6"),
    ("reputation", {"decay": 0.8}, "truthful:5"),
    ("service", {"suspend_after": 3.0}, "truthful:5"),
    ("prisoners_dilemma", {"noise": 0.05}, "tit_for_tat:4"),
]


@app.command()
def demo(
    markets: Annotated[int, typer.Option(help="independent markets per mechanism")] = 20_000,
    rounds: Annotated[int, typer.Option(help="rounds per market")] = 5,
    seed: SeedOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """A tour: every mechanism against its textbook population, one table."""
    rows = []
    try:
        with progress_bar(err, hidden=as_json) as bar:
            task = bar.add_task("mechanisms", total=len(DEMO_RUNS))
            for name, settings, population in DEMO_RUNS:
                result = run_simulation(name, settings, population, markets, rounds, seed, "uniform", False)
                result["run"] = f"{name}\n[dim]{' '.join(f'{k}={v}' for k, v in settings.items())} {population}[/]"
                rows.append(result)
                bar.advance(task)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out.print(runs_table(f"Every mechanism, B={markets}, T={rounds}, seed={seed} (mean, ±95% CI)", rows))


def run_progress(as_json: bool) -> tuple[Progress, Any]:
    """A display for :func:`mecharena.runner.run_plan`: a bar with ETA on a terminal, one line
    per finished cell otherwise, nothing with --json. Returns the bar (a context manager) and
    the callback."""
    live = not as_json and err.is_terminal
    bar = progress_bar(err, hidden=not live)
    task = bar.add_task("cells", total=None)

    def on_progress(event) -> None:  # a mecharena.runner.RunProgress
        if event.cell is None:
            bar.update(task, total=event.total, completed=event.done)
            if not as_json and not live:
                err.print(f"{event.total} cells, {event.done} already stored", highlight=False)
            return
        bar.update(task, completed=event.done)
        if as_json or (live and not event.error):  # on a terminal the bar shows progress; failures get a line
            return
        cell = event.cell
        name = f"{cell.mechanism} x {cell.population} x {cell.information} x {cell.enforcement}, seed {cell.seed}"
        status = f"[red]failed: {escape(event.error)}[/]" if event.error else f"{event.seconds:.2f} s"
        err.print(f"\\[{event.done:>{len(str(event.total))}}/{event.total}] {escape(name)}: {status}",
                  highlight=False, soft_wrap=True)

    return bar, on_progress


@app.command("run")
def run_experiment(
    spec: Annotated[Path, typer.Argument(help="experiment spec (YAML); see examples/flagship.yaml",
                                         show_default=False)],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="run directory (default: runs/NAME, NAME from the spec)")] = None,
    backend: Annotated[str, typer.Option(help="local (process pool) or ray")] = "local",
    workers: Annotated[int | None, typer.Option(
        help="parallel workers (default: CPU count; ray: the cluster's CPUs); 1 runs in this process")] = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address for --backend ray (default: start a local Ray)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run every cell of an experiment spec into DIR/results.duckdb (resumable: stored cells are skipped)."""
    from mecharena import runner

    try:
        plan = runner.load_spec(spec)
        runner.check_backend(backend, workers, address)
    except MechArenaError as exc:
        raise fail(exc) from None
    out_path = out_dir if out_dir is not None else Path("runs") / plan.spec.name
    bar, on_progress = run_progress(as_json)
    try:
        with bar:
            summary = runner.run_plan(plan, out_path, backend=backend, workers=workers, address=address,
                                      on_progress=on_progress)
    except MechArenaError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        err.print(f"[bold yellow]interrupted:[/] every finished cell is stored in "
                  f"{escape(str(out_path / runner.DATABASE))}; run the same command again to resume",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        out.print(f"{summary.name}: {summary.cells} cells ({summary.distinct} distinct): {summary.computed} computed, "
                  f"{summary.skipped} already stored, {len(summary.failed)} failed, in {summary.seconds:.1f} s "
                  f"({summary.backend}, {summary.workers or 'default'} workers)", highlight=False, soft_wrap=True,
                  markup=False)
        out.print(f"results: {summary.database}\nreport:  mecharena report {summary.out}", highlight=False,
                  soft_wrap=True, markup=False)
        if summary.failed:
            table = Table(title="failed cells (not stored; a rerun tries them again)")
            for column in ("mechanism", "population", "information", "enforcement", "seed", "error"):
                table.add_column(column)
            for f in summary.failed:
                table.add_row(*(escape(str(f[k])) for k in ("mechanism", "population", "information", "enforcement",
                                                            "seed", "error")))
            err.print(table)
    if summary.failed:
        raise typer.Exit(1)


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by `mecharena run` (--out)",
                                            show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Write DIR/report.html (self-contained) and PNG figures from DIR/results.duckdb."""
    from mecharena.report import build_report

    try:
        result = build_report(run_dir)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({"report": str(result.html), "figures": [str(f) for f in result.figures],
                          "cells": result.cells, "planned": result.planned}, indent=2))
        return
    out.print(f"report: {result.html} ({len(result.figures)} figures, {result.cells} of {result.planned} cells)",
              highlight=False, soft_wrap=True, markup=False)


def params_fields(model) -> list[dict[str, Any]]:
    return [{"name": name, "default": info.default, "allowed": model.allowed(name),
             "description": info.description or ""} for name, info in model.model_fields.items()]


@app.command("agents")
def list_agents(as_json: JsonFlag = False) -> None:
    """Every agent type with its rule, parameters and version (use as TYPE(name=value):COUNT)."""
    import inspect

    rows = [{"name": name, "version": a.version, "summary": a.summary, "adaptive": a.adaptive,
             "description": (inspect.getmodule(a.act).__doc__ or "").strip(), "params": params_fields(a.params_model)}
            for name, a in agents.REGISTRY.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Agent types", show_lines=True)
    for column in ("name", "v", "rule", "parameters (default: allowed)"):
        table.add_column(column)
    for row in rows:
        params = "\n".join(f"{f['name']}={f['default']!r}: {f['allowed']}" for f in row["params"]) or "-"
        table.add_row(row["name"], str(row["version"]), row["summary"] + (" (adaptive)" if row["adaptive"] else ""),
                      params)
    out.print(table)


@app.command("rules")
def list_rules(as_json: JsonFlag = False) -> None:
    """The information policy and enforcement fields (for --info / --enforce and specs)."""
    from mecharena.sim import Enforcement, InformationPolicy

    rows = {"information": params_fields(InformationPolicy), "enforcement": params_fields(Enforcement)}
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for title, fields in rows.items():
        table = Table(title=title)
        for column in ("field", "default", "allowed", "meaning"):
            table.add_column(column)
        for f in fields:
            table.add_row(f["name"], repr(f["default"]), f["allowed"], f["description"])
        out.print(table)


@app.command("replay")
def replay(
    ledger_dir: Annotated[Path, typer.Argument(help="ledger directory (simulate --ledger DIR)", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Rebuild every recorded outcome of a full-mode ledger from its events and compare, bit for bit."""
    from mecharena.cli.ledger import replay_command

    _exit_with(replay_command, str(ledger_dir), as_json)


@app.command("fuzz")
def fuzz_command(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    population: Annotated[str, typer.Option(help="the population whose own policy deviations are scored against")],
    settings: SetOption = None,
    deviators: Annotated[int, _setting(FuzzSettings, "deviators")] = FUZZ.deviators,
    families: Annotated[str | None, typer.Option(help="comma-separated " + description(FuzzSettings, "families"))
                        ] = None,
    budget: Annotated[int, _setting(FuzzSettings, "budget")] = FUZZ.budget,
    seed: SeedOption = 0,
    info: InfoOption = None,
    enforce: EnforceOption = None,
    values: ValuesOption = "uniform",
    sampler: Annotated[str, _setting(FuzzSettings, "sampler")] = FUZZ.sampler,
    restarts: Annotated[int, _setting(FuzzSettings, "restarts")] = FUZZ.restarts,
    markets: Annotated[int, _setting(FuzzSettings, "markets")] = FUZZ.markets,
    rounds: Annotated[int, _setting(FuzzSettings, "rounds")] = FUZZ.rounds,
    eval_markets: Annotated[int, _setting(FuzzSettings, "eval_markets")] = FUZZ.eval_markets,
    threshold: Annotated[float, _setting(FuzzSettings, "threshold")] = FUZZ.threshold,
    library: Annotated[Path, typer.Option(help="exploit library directory for failure reports")] = Path("exploits"),
    report: Annotated[bool, typer.Option(help="write a failure report when an exploit is found")] = True,
    samples: Annotated[int, _setting(FuzzSettings, "samples")] = CLI_SAMPLES,
    plot: Annotated[Path | None, typer.Option(help="PNG of the discovery engine's bid function (default: beside "
                                                   "the failure report's traces)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search for profitable deviations: exploitability with a 95% CI from a fresh evaluation.

    The discovery engine (family best_response) searches the best bid for every value over any bid
    function; the families are named starting points searched beside it."""
    from mecharena.fuzz import FAMILIES
    from mecharena.fuzz.cell import fuzz_cell

    try:
        names = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
        with progress_bar(err, hidden=as_json) as bar:
            task = bar.add_task("fuzzing", total=budget)
            result, data = fuzz_cell(mechanism, parse_settings(settings or []), population,
                                     parse_settings(info or [], "--info"), parse_settings(enforce or [], "--enforce"),
                                     values, seed, threshold=threshold, library=library if report else None,
                                     families=names, deviators=deviators, budget=budget, sampler=sampler,
                                     restarts=restarts, markets=markets, rounds=rounds, eval_markets=eval_markets,
                                     samples=samples, on_trial=lambda _trial, done: bar.update(task, completed=done))
        figure = _bid_function_plot(result, data, library, plot)
    except (MechArenaError, ValueError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({**data, "plot": None if figure is None else str(figure)}, indent=2))
        return
    e = data["exploitability"]
    table = Table(title=f"fuzz {mechanism} x {population} (K={deviators}, {result.evaluations} evaluations)")
    table.add_column("measure")
    table.add_column("value")
    table.add_row("exploitability", f"{e['mean']:.5f}  95% CI [{e['ci95'][0]:.5f}, {e['ci95'][1]:.5f}]")
    if result.best is not None:
        best = result.best.deviation
        verdict = "" if data["exploit"] else " (not profitable: no exploit found)"
        if result.description:
            table.add_row("what it does", escape(f"{result.description}{verdict}"))
            table.add_row("best deviation", escape(f"{best.family}: {FAMILIES.get(best.family).summary}"))
        else:
            table.add_row("best deviation", escape(f"{best.family}: {FAMILIES.get(best.family).summary}{verdict}"))
            table.add_row("parameters", escape(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in best.params)))
        table.add_row("fresh gain", f"{result.fresh.mean:.5f} [{result.fresh.lo:.5f}, {result.fresh.hi:.5f}], "
                                    f"frequency {result.fresh.frequency:.2f}")
    if result.ring is not None and result.ring.description != result.description:
        table.add_row("coalition found", escape(result.ring.description))
    table.add_row("families searched", ", ".join(result.families))
    if result.skipped:
        table.add_row("not applicable", escape("; ".join(f"{k}: {v}" for k, v in result.skipped.items())))
    table.add_row("failure report", escape(f"{data['report']['id']} in {library}") if data["report"] else "-")
    if figure is not None:
        table.add_row("bid function plot", escape(str(figure)))
    out.print(table)


def _bid_function_plot(result: Any, data: dict[str, Any], library: Path, plot: Path | None) -> Path | None:
    """Draw the engine's bid function, when it is the best deviation, to ``plot``, or beside the stored report's
    traces; None if neither."""
    from mecharena.report.figures import bid_function, save

    found = result.response if result.best and result.best.deviation.family == "best_response" else None
    if found is None or (plot is None and not data["report"]):
        return None
    path = plot if plot is not None else library / "traces" / data["report"]["id"] / "bid_function.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    gain = data["exploitability"]
    title = f"{result.target.mechanism} x {result.target.population}: gain {gain['mean']:.4f} per round"
    return save(bid_function(found.response.values.tolist(), found.response.best.tolist(), title), path)


def _exit_with(command, *args: Any, **kwargs: Any) -> None:
    exit_with(command, *args, console=out, **kwargs)


@app.command("regress")
def regress(
    mechanism: Annotated[str, typer.Option(help="the mechanism variant to check")],
    settings: SetOption = None,
    library: LibraryOption = Path("exploits"),
    seed: Annotated[int, seed_option("root seed of the re-evaluations")] = 0,
    markets: Annotated[int, typer.Option(help="markets per re-evaluation")] = 2000,
    rounds: Annotated[int | None, typer.Option(help="rounds (default: each report's own)")] = None,
    threshold: Annotated[float | None, typer.Option(help="gain that counts as paying (default: each report's)")] = None,
    only: Annotated[str | None, typer.Option(help="only exploits found on this mechanism id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-run every library exploit against a mechanism variant; exit 1 if any still pays (for CI)."""
    from mecharena.cli import fuzz as commands

    _exit_with(commands.regress_command, str(library), mechanism, parse_settings(settings or []), seed, markets,
               rounds, threshold, as_json, only=only)


@app.command("repair")
def repair(
    mechanism: Annotated[str, typer.Option(help="the mechanism to repair")],
    population: Annotated[str, typer.Option(help="the population it must hold up against")],
    settings: SetOption = None,
    info: InfoOption = None,
    enforce: EnforceOption = None,
    families: Annotated[str | None, typer.Option(help="comma-separated " + description(RepairSettings, "families"))
                        ] = None,
    deviators: Annotated[int, _setting(RepairSettings, "deviators")] = REPAIR.deviators,
    budget: Annotated[int, _setting(RepairSettings, "budget")] = REPAIR.budget,
    inner_budget: Annotated[int, _setting(RepairSettings, "inner_budget")] = REPAIR.inner_budget,
    welfare_floor: Annotated[float, _setting(RepairSettings, "welfare_floor")] = REPAIR.welfare_floor,
    revenue_floor: Annotated[float, _setting(RepairSettings, "revenue_floor")] = REPAIR.revenue_floor,
    markets: Annotated[int, _setting(RepairSettings, "markets")] = REPAIR.markets,
    rounds: Annotated[int, _setting(RepairSettings, "rounds")] = REPAIR.rounds,
    eval_markets: Annotated[int, _setting(RepairSettings, "eval_markets")] = REPAIR.eval_markets,
    seed: SeedOption = 0,
    search: Annotated[list[str] | None, typer.Option(
        "--search", help="also search a config field: NAME=LOW:HIGH or NAME=A,B,C (repeatable)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the mechanism's design space for lower exploitability within welfare and revenue floors."""
    from mecharena.cli.repair import repair_command

    try:
        names = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
        with progress_bar(err, hidden=as_json) as bar:
            task = bar.add_task("designs", total=budget + 1)  # the original, then each proposal
            code = repair_command(mechanism, parse_settings(settings or []), population,
                                  information=parse_settings(info or [], "--info"),
                                  enforcement=parse_settings(enforce or [], "--enforce"), families=names,
                                  deviators=deviators, budget=budget, inner_budget=inner_budget,
                                  welfare_floor=welfare_floor, revenue_floor=revenue_floor, markets=markets,
                                  rounds=rounds, eval_markets=eval_markets, seed=seed,
                                  search=parse_search(search or []), as_json=as_json, console=out,
                                  on_candidate=lambda _candidate, done: bar.update(task, completed=done))
    except MechArenaError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


@app.command("rank")
def rank(
    mechanisms: Annotated[list[str], typer.Argument(help="two or more mechanism specs id[:key=value;...]")],
    population: Annotated[str, typer.Option(help="the population every mechanism faces")],
    metric: Annotated[str, typer.Option(help="metric to rank on (higher is better unless --ascending)")] = "revenue",
    seeds: Annotated[int, typer.Option(help="paired seeds (common random numbers)")] = 5,
    markets: Annotated[int, typer.Option(help="markets per evaluation")] = 1000,
    rounds: Annotated[int, typer.Option(help="rounds per evaluation")] = 20,
    ascending: Annotated[bool, typer.Option(help="lower is better")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Rank mechanisms under noisy outcomes: paired 95% intervals and the seeds needed to separate them."""
    from mecharena.cli.repair import rank_command

    try:
        code = rank_command(list(mechanisms), population, metric, seeds, markets=markets, rounds=rounds,
                            descending=not ascending, as_json=as_json, console=out)
    except MechArenaError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


@app.command("metagame")
def metagame(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    strategies: Annotated[str, typer.Option(
        help="comma-separated agent specs, e.g. 'truthful,bne,curve(scale=0.8)' (PSRO's starting set)")] = "truthful",
    settings: SetOption = None,
    players: Annotated[int, typer.Option(help="players n of the symmetric game")] = 3,
    markets: Annotated[int, typer.Option(help="markets per profile")] = 2000,
    rounds: Annotated[int, typer.Option(help="rounds per market")] = 1,
    values: ValuesOption = "uniform",
    seed: SeedOption = 0,
    intended: Annotated[str | None, typer.Option(
        help="the intended strategy (default: truthful where dominant, else bne)")] = None,
    iterations: Annotated[int, typer.Option(help="PSRO best responses added at most (0: no PSRO)")] = 0,
    epsilon: Annotated[float, typer.Option(help="PSRO stops when the best response gains less")] = 1e-3,
    br_markets: Annotated[int, typer.Option(help="markets each best response is fitted on")] = 4000,
    alpha: Annotated[float, typer.Option(help="alpha-Rank selection intensity")] = 10.0,
    population_size: Annotated[int, typer.Option(help="alpha-Rank population size m")] = 20,
    resamples: Annotated[int, typer.Option(help="payoff tables redrawn for alpha-Rank's stability")] = 100,
    adaptive: Annotated[int, typer.Option(help="rounds of extra simulation on the ranking's noisiest profiles")] = 0,
    workers: Annotated[int, typer.Option(help="processes evaluating profiles")] = 1,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="directory of the profile store (profiles.jsonl): a rerun resumes from it")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Empirical game analysis: payoff table, Nash equilibria (worst vs intended), alpha-Rank, PSRO."""
    from mecharena.agents.population import _split_groups
    from mecharena.fuzz import metagame as meta
    from mecharena.cli.fuzz import metagame_print

    try:
        s = meta.settings(mechanism=mechanism, config=parse_settings(settings or []), players=players,
                          strategies=[x.strip() for x in _split_groups(strategies)], markets=markets, rounds=rounds,
                          values=values, seed=seed, intended=intended, iterations=iterations, epsilon=epsilon,
                          br_markets=br_markets, alpha=alpha, population_size=population_size, resamples=resamples,
                          adaptive=adaptive, workers=workers)
        directory = None if out_dir is None else meta.check_directory(out_dir)
        result = meta.run(s, directory, on_iteration=None if as_json else lambda h: err.print(
            f"PSRO iteration {h['iteration']}: gain {h['gain']['mean']:.5f}", highlight=False))
    except (MechArenaError, ValueError) as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    metagame_print(result, out)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="seconds before an idle session ends")] = 300.0,
    max_sessions: Annotated[int, typer.Option("--max-sessions", help="concurrent sessions at most")] = 64,
    stage: Annotated[int, typer.Option("--stage", help="stage of sessions that name none")] = 1,
    policy_files: Annotated[bool, typer.Option(
        "--policy-files", help="let /api/design read constant:FILE, learned:FILE and llm:CONFIG policies from "
                               "files under the working directory")] = False,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="MECHARENA_TOKEN", show_envvar=True,
        help="bearer token every request must send (Authorization: Bearer TOKEN); required off loopback")] = None,
) -> None:
    """Serve the referee environment: OpenEnv (WebSocket /ws), session HTTP API (/api/sessions), /api/design."""
    from mecharena.server.app import run_server

    try:
        run_server(host, port, idle_timeout, max_sessions, stage=stage, policy_files=policy_files, token=token)
    except MechArenaError as exc:
        raise fail(exc) from None


def _negotiate_app() -> typer.Typer:
    from mecharena.llm.negotiator import make_negotiation_policy
    from mecharena.cli import negotiation as commands

    commands.policy_factory = make_negotiation_policy  # `negotiate play --policy llm:CONFIG`
    return commands.app


app.add_typer(_negotiate_app(), name="negotiate",
              help="The scarce-GPU bargaining economy: baselines, episodes, SFT data (docs/negotiation.md).")


@app.command("ui")
def ui(
    runs: Annotated[Path, typer.Option("--runs", help="directory of run directories (each with results.duckdb)")] = Path(
        "runs"),
    exploits: Annotated[Path, typer.Option("--exploits", help="exploit library directory")] = Path("exploits"),
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8050,
) -> None:
    """The web dashboard: runs and their progress, comparisons, the exploit library, a live referee episode."""
    from mecharena.server.ui import run

    if not 0 < port < 65536:
        raise fail(ConfigError(f"port must be in 1..65535, got {port}"))
    try:
        run(runs, exploits, host, port)
    except MechArenaError as exc:
        raise fail(exc) from None


@app.command("mcp")
def mcp(
    transport: Annotated[str, typer.Option("--transport", help="stdio or http (streamable HTTP)")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="address to listen on (http)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (http)")] = 8765,
    library: Annotated[Path, typer.Option("--library", help="exploit library the tools read and write")] = Path(
        "exploits"),
) -> None:
    """An MCP server: list_mechanisms, simulate, fuzz, evaluate_designer and exploits as tools."""
    from mecharena.server.mcp import run

    if transport not in ("stdio", "http") or not 0 < port < 65536:
        raise fail(ConfigError(f"--transport must be stdio or http and port in 1..65535, got {transport!r}, {port}"))
    try:
        run(transport, host, port, library=library)
    except MechArenaError as exc:
        raise fail(exc) from None


def main() -> None:
    """The ``mecharena`` command: the Typer app, with usage errors (an unknown command or option, a
    value of the wrong type) on one ``error:`` line like every other error, status 2."""
    try:
        code = app(standalone_mode=False, prog_name="mecharena")
    except Exception as exc:  # click's classes, matched by name: Typer may vendor its own click
        kinds = {kind.__name__ for kind in type(exc).__mro__}
        if "Abort" in kinds:
            err.print("aborted")
            raise SystemExit(130) from None
        if "ClickException" not in kinds:
            raise
        if "NoArgsIsHelpError" in kinds:  # the help is already shown
            raise SystemExit(exc.exit_code) from None
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if "UsageError" in kinds and ctx is not None else ""
        raise SystemExit(fail(ConfigError(exc.format_message() + where)).exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
