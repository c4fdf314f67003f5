"""``mecharena simulate | demo | run | report | replay``: markets simulated, sweeps run and reported, ledgers
replayed."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from mecharena.cli.options import SetOption, ValuesOption, err, exit_here, fail, out, parse_settings
from mecharena.cli.shell import JsonFlag, SeedOption, progress_bar
from mecharena.core.errors import MechArenaError

commands = typer.Typer()


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


@commands.command()
def simulate(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    population: Annotated[str, typer.Option(help=(
        "TYPE:COUNT[,TYPE:COUNT...], e.g. truthful:5 or bne:3; a group with its own value prior: "
        "bne(values=uniform:high=2):1,bne:1 (asymmetric bidders)"))],
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
        regret = f", mean regret {counts['regret']:.4g} per decision" if "regret" in counts else ""
        out.print(escape(f"{agent} structured output: {counts['requests']} requests, {counts['valid']} parsed at once, "
                         f"{counts['repaired']} repaired, {counts['fallback']} fallback, {counts['error']} error; "
                         f"{counts['decisions'] - counts['dominated']} of {counts['decisions']} decisions valid as "
                         f"actions ({counts['dominated']} dominated){regret}"), highlight=False)


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


@commands.command()
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


@commands.command("run")
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


@commands.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by `mecharena run` (--out)",
                                            show_default=False)],
    exploits: Annotated[Path | None, typer.Option(
        "--exploits", help="an exploit library (fuzz --library DIR): its exploits against the run's cells join the "
        "findings")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write DIR/report.html (self-contained) and PNG figures from DIR/results.duckdb."""
    from mecharena.report import build_report

    try:
        result = build_report(run_dir, exploits)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({"report": str(result.html), "figures": [str(f) for f in result.figures],
                          "cells": result.cells, "planned": result.planned}, indent=2))
        return
    out.print(f"report: {result.html} ({len(result.figures)} figures, {result.cells} of {result.planned} cells)",
              highlight=False, soft_wrap=True, markup=False)




@commands.command("replay")
def replay(
    ledger_dir: Annotated[Path, typer.Argument(help="ledger directory (simulate --ledger DIR)", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Rebuild every recorded outcome of a full-mode ledger from its events and compare, bit for bit."""
    from mecharena.cli.ledger import replay_command

    exit_here(replay_command, str(ledger_dir), as_json)
