"""The ``mecharena`` command. A shell: parsing, printing and exit codes; no economics here."""

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError, MechArenaError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Mechanism Arena: stress-test economic mechanisms against strategic agents.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (print JSON with --json).")
app.add_typer(bench_app, name="bench")
out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]


def fail(exc: Exception) -> typer.Exit:
    """Print the error without a traceback and exit with status 2."""
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(2)


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["reserve_price=0.5", "pricing=lowest_winning"]`` -> a dict; values are JSON when they parse."""
    settings: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    return settings


def config_fields(mechanism: mechanisms.Mechanism) -> list[dict[str, Any]]:
    model = mechanism.config_model
    return [
        {"name": name, "default": info.default, "allowed": model.allowed(name), "description": info.description or ""}
        for name, info in model.model_fields.items()
    ]


@app.command("mechanisms")
def list_mechanisms(as_json: JsonFlag = False) -> None:
    """Every mechanism with its description, config fields and version."""
    rows = [
        {"name": name, "version": m.version, "summary": m.summary, "description": (m.doc or "").strip(),
         "properties": sorted(m.properties(m.config())), "config": config_fields(m)}
        for name, m in mechanisms.REGISTRY.items()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Mechanisms", show_lines=True)
    for column in ("name", "v", "rule", "config fields (default: allowed)", "promises (default config)"):
        table.add_column(column)
    for row in rows:
        fields = "\n".join(f"{f['name']}={f['default']!r}: {f['allowed']}" for f in row["config"]) or "-"
        table.add_row(row["name"], str(row["version"]), row["summary"], fields, ", ".join(row["properties"]) or "-")
    out.print(table)


def run_simulation(mechanism_name: str, settings: dict[str, Any], population: str, markets: int, rounds: int,
                   seed: int, values: str, progress: bool) -> dict[str, Any]:
    from mecharena.metrics import summarize
    from mecharena.sim import simulate

    mechanism = mechanisms.get(mechanism_name)
    config = mechanism.config(settings)
    pop = agents.population(population)
    dist = agents.parse_distribution(values)
    with Progress(console=err, transient=True, disable=not progress) as bar:
        task = bar.add_task(f"{mechanism.name} x {pop.spec}", total=rounds)
        trace = simulate(mechanism, config, pop, markets=markets, rounds=rounds, seed=seed, values=dist,
                         on_round=lambda _t: bar.advance(task))
    return {
        "mechanism": mechanism.name,
        "config": config.model_dump(),
        "population": pop.spec,
        "values": dist.model_dump(),
        "markets": markets,
        "rounds": rounds,
        "seed": seed,
        "versions": {"mechanism": {mechanism.name: mechanism.version}, "agents": pop.versions},
        "metrics": summarize(trace),
    }


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
    for name in SHORT:
        table.add_column(SHORT[name], justify="right")
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
    settings: Annotated[list[str] | None, typer.Option("--set", help="config field key=value (repeatable)")] = None,
    markets: Annotated[int, typer.Option(help="independent markets B")] = 1000,
    rounds: Annotated[int, typer.Option(help="rounds per market T")] = 10,
    seed: Annotated[int, typer.Option(help="root seed")] = 0,
    values: Annotated[str, typer.Option(help="value distribution: uniform | power:shape=2 | exponential:shape=3")] = (
        "uniform"
    ),
    as_json: JsonFlag = False,
) -> None:
    """Simulate repeated markets of one mechanism and report metrics with 95% intervals."""
    try:
        result = run_simulation(mechanism, parse_settings(settings or []), population, markets, rounds, seed,
                                values, progress=not as_json and sys.stderr.isatty())
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    settings_text = ", ".join(f"{k}={v}" for k, v in result["config"].items()) or "defaults"
    out.print(metric_rows_table(f"{result['mechanism']} ({settings_text})\n{result['population']}, "
                                f"B={markets}, T={rounds}, seed={seed}", result["metrics"]))


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
]


@app.command()
def demo(
    markets: Annotated[int, typer.Option(help="independent markets per mechanism")] = 20_000,
    rounds: Annotated[int, typer.Option(help="rounds per market")] = 5,
    seed: Annotated[int, typer.Option(help="root seed")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """A tour: every mechanism against its textbook population, one table."""
    rows = []
    try:
        with Progress(console=err, transient=True, disable=as_json or not sys.stderr.isatty()) as bar:
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


@bench_app.command("engine")
def bench_engine(
    markets: Annotated[int, typer.Option(help="markets B")] = 100_000,
    agents_: Annotated[int, typer.Option("--agents", help="bidders n")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Second price at n=10, B=100,000: full engine vs bare NumPy kernel vs scalar reference."""
    from mecharena.benchmarks.engine import run

    if markets < 1 or agents_ < 2:
        raise fail(ConfigError(f"markets must be >= 1 and agents >= 2, got markets={markets}, agents={agents_}"))
    result = run(markets=markets, agents=agents_)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"Engine throughput: second price, n={agents_}, B={markets}")
    table.add_column("path")
    table.add_column("markets/s", justify="right")
    for path, key in (("engine (validated)", "engine_markets_per_s"), ("bare NumPy kernel", "bare_kernel_markets_per_s"),
                      ("scalar reference", "scalar_reference_markets_per_s")):
        table.add_row(path, f"{result[key]:,.0f}")
    out.print(table)
    out.print(f"engine / bare = {result['engine_over_bare']:.2f} (target >= 0.5); "
              f"engine / scalar = {result['engine_over_scalar']:.0f}x (target >= 10); "
              f"peak memory {result['engine_peak_bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    app()
