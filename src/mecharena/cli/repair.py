"""What the ``repair`` and ``rank`` commands run: input checks, the call, tables or JSON.

The CLI parses its options and hands them here; these functions validate them (raising
:class:`~mecharena.core.errors.ConfigError` with the field, the value and what is allowed), run
:func:`~mecharena.fuzz.repair.repair` or :func:`~mecharena.fuzz.rank.rank`, print rich tables to
``console`` (stdout by default) or one JSON object, and return the exit status.
"""

import json
import math
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mecharena.cli.options import (REPAIR, EnforceOption, InfoOption, SetOption, err, fail, out, parse_search,
                                   parse_settings, setting)
from mecharena.cli.shell import JsonFlag, SeedOption, make_console, progress_bar
from mecharena.core.config import parse_assignments, shown_value
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.settings import RepairSettings, description
from mecharena.fuzz.rank import METRICS, rank
from mecharena.fuzz.repair import Candidate, RepairResult, repair
from mecharena.mechanisms import get as get_mechanism
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.harness import Cell

#: The most seeds a ranking given as a count may use (each is one evaluation per mechanism).
MAX_RANK_SEEDS = 10_000


def parse_mechanism(spec: str) -> tuple[str, dict[str, Any]]:
    """``"id[:key=value;key=value]"`` -> (id, config); values are JSON when they parse.

    >>> parse_mechanism("second_price:reserve_price=0.5;reserve_visibility=secret")
    ('second_price', {'reserve_price': 0.5, 'reserve_visibility': 'secret'})

    Raises:
        ConfigError: an empty id, a piece that is not ``key=value``, or an invalid config.
        UnknownIdError: an unknown mechanism.
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"mechanism spec must be 'id[:key=value;...]', got {spec!r}")
    config = parse_assignments(rest.split(";"),
                               lambda piece: f"mechanism spec {spec!r}: expected key=value, got {piece!r}")
    get_mechanism(name).config(config)  # unknown id or invalid field: fail before any run
    return name, config


def _cell(mechanism: str, settings: dict[str, Any], population: str, information: dict[str, Any] | None,
          enforcement: dict[str, Any] | None, values: str, **sizes: Any) -> Cell:
    get_mechanism(mechanism).config(settings)
    info = InformationPolicy.build(**(information or {}))
    enforce = Enforcement.build(**(enforcement or {}))
    cell = Cell.build(mechanism=mechanism, config=dict(settings), population=population, information=info,
                      enforcement=enforce, values=values, **sizes)
    cell.episode()  # population and values spec errors surface here, before any search
    return cell


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def _write_json(console: Console, data: dict[str, Any]) -> None:
    console.file.write(json.dumps(_json_safe(data), indent=2) + "\n")
    console.file.flush()


def _interval(metric: dict[str, Any], digits: int = 4) -> str:
    mean = metric["mean"]
    if not math.isfinite(mean):
        return "n/a"
    lo, hi = metric["ci95"]
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _changes(candidate: Candidate, result: RepairResult) -> str:
    diff = candidate.design.changes(result.original.design)
    if not diff:
        return "(original)"

    def show(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return "\n".join(f"{k}: {show(old)} -> {show(new)}" for k, (old, new) in diff.items())


def repair_table(result: RepairResult) -> Table:
    """The original, the Pareto front and the recommendation as one table."""
    target = result.target
    table = Table(title=f"Repair: {target.mechanism} vs {target.population}\n"
                        f"floors: welfare >= {result.thresholds['welfare']:.4f}, "
                        f"revenue >= {result.thresholds['revenue']:.4f}", show_lines=True)
    for name, justify in (("#", "right"), ("role", "left"), ("changes from the original", "left"),
                          ("exploitability [95% CI]", "right"), ("welfare", "right"), ("revenue", "right"),
                          ("best exploit", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    shown = dict.fromkeys([0, *result.pareto, *([result.recommended.index] if result.recommended else [])])
    for index in shown:
        c = result.candidates[index]
        roles = [r for r, on in (("original", index == 0), ("pareto", index in result.pareto),
                                 ("recommended", result.recommended is not None and index == result.recommended.index))
                 if on]
        table.add_row(str(index), ", ".join(roles) or ("feasible" if c.feasible else "infeasible"),
                      escape(_changes(c, result)), _interval(c.exploitability), _interval(c.welfare, 3),
                      _interval(c.revenue, 3), escape(c.exploit or "-"))
    return table


def repair_command(
    mechanism: str,
    settings: dict[str, Any],
    population: str,
    *,
    information: dict[str, Any] | None = None,
    enforcement: dict[str, Any] | None = None,
    values: str = "uniform",
    seed: int = 0,
    search: dict[str, Any] | None = None,
    as_json: bool = False,
    console: Console | None = None,
    on_candidate: Callable[[Any, int], None] | None = None,
    **settings_: Any,
) -> int:
    """Repair ``mechanism`` (with ``settings``) against ``population`` and print the report.

    Args:
        mechanism, settings: the mechanism id and its config fields.
        population: the population spec, e.g. ``truthful:4``.
        information, enforcement: fields of the target's information and enforcement policies.
        values: the value distribution spec.
        seed, search: see :func:`~mecharena.fuzz.repair.repair`.
        settings_: fields of :class:`~mecharena.core.settings.RepairSettings` (families, deviators,
            budget, ...), passed to :func:`~mecharena.fuzz.repair.repair`.
        as_json: print one JSON object (``RepairResult.as_dict()``) instead of tables.
        console: where to print (default: stdout).
        on_candidate: called with each evaluated design and the count so far (progress bars).

    Returns:
        0 when the report was printed (a recommendation that keeps the original is still a result).

    Raises:
        ConfigError: a floor outside [0, 1], a budget below 1, an empty family list, bad sizes, or
            an invalid mechanism config, policy field or population.
        UnknownIdError: an unknown mechanism, agent or family.
    """
    console = console or make_console()
    if settings_.get("families") == []:
        raise ConfigError("families must name at least one deviation family, got an empty list")
    cell = _cell(mechanism, settings, population, information, enforcement, values)
    result = repair(cell, seed=seed, search=search, on_candidate=on_candidate, **settings_)
    if as_json:
        _write_json(console, result.as_dict())
        return 0
    console.print(repair_table(result))
    feasible = sum(c.feasible for c in result.candidates)
    console.print(f"{len(result.candidates)} designs evaluated (the original + {len(result.candidates) - 1} "
                  f"proposed), {feasible} feasible.")
    rec, orig = result.recommended, result.original
    if result.improved and rec is not None:
        console.print(f"[bold green]recommended:[/] design #{rec.index}: exploitability "
                      f"{orig.exploitability['mean']:.4f} -> {rec.exploitability['mean']:.4f}, welfare "
                      f"{orig.welfare['mean']:.3f} -> {rec.welfare['mean']:.3f}, revenue "
                      f"{orig.revenue['mean']:.3f} -> {rec.revenue['mean']:.3f}")
    else:
        console.print("[bold yellow]no feasible design is less exploitable than the original[/] "
                      "(try lower floors or a larger --budget)")
    return 0


def rank_table(entries: list[dict[str, Any]], metric: str) -> Table:
    """Places, tiers, means with intervals, and whether each is separated from the next."""
    table = Table(title=f"Ranking by {metric} (paired over {entries[0]['n']} common seeds, 95% t intervals)")
    for name, justify in (("place", "right"), ("tier", "right"), ("mechanism", "left"), (f"{metric} [95% CI]", "right"),
                          ("vs next: difference [95% CI]", "right"), ("separated", "left"), ("seeds to separate", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # a mechanism spec is never cut
    for i, e in enumerate(entries):
        if i + 1 < len(entries):
            vs = e["versus"][entries[i + 1]["label"]]
            diff, sep = _interval(vs["difference"]), "yes" if vs["separated"] else "no"
            needed = "-" if vs["seeds_needed"] is None else str(vs["seeds_needed"])
        else:
            diff, sep, needed = "", "", ""
        table.add_row(str(e["place"]), str(e["tier"]), escape(e["label"]), _interval(e), diff, sep, needed)
    return table


def rank_command(
    mechanisms: list[str],
    population: str,
    metric: str = "revenue",
    seeds: int | list[int] = 5,
    *,
    markets: int = 1000,
    rounds: int = 20,
    values: str = "uniform",
    descending: bool = True,
    as_json: bool = False,
    console: Console | None = None,
) -> int:
    """Rank mechanisms on ``metric`` against one population, with paired intervals over seeds.

    Args:
        mechanisms: at least two distinct specs ``id[:key=value;...]`` (the spec is the label).
        population: the population spec every mechanism faces.
        metric: a metric of :func:`~mecharena.metrics.harness.evaluate` (see ``rank.METRICS``).
        seeds: a count n (seeds 0 .. n-1, n >= 2) or an explicit list of distinct seeds.
        markets, rounds: size of each evaluation.
        values: the value distribution spec.
        descending: highest first (False: lowest first, for costs such as ``ic_regret``).
        as_json: print one JSON object instead of tables.
        console: where to print (default: stdout).

    Returns:
        0 when the ranking was printed.

    Raises:
        ConfigError: fewer than two mechanisms, a repeated spec, an unknown metric, bad seeds or sizes.
        UnknownIdError: an unknown mechanism or agent.
    """
    console = console or make_console()
    specs = list(mechanisms)
    if len(specs) < 2:
        raise ConfigError(f"rank needs at least 2 mechanisms to compare, got {len(specs)}: {specs!r}")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"mechanisms must be distinct specs, got {specs!r}")
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 2 <= seeds <= MAX_RANK_SEEDS:
            raise ConfigError(f"seeds must be an integer in [2, {MAX_RANK_SEEDS}] (a paired interval needs two "
                              f"seeds), got {shown_value(seeds)}")
        seeds = list(range(seeds))
    cells = {}
    for spec in specs:
        name, config = parse_mechanism(spec)
        cells[spec] = _cell(name, config, population, None, None, values, markets=markets, rounds=rounds)
    entries = rank(cells, metric, list(seeds), descending=descending)
    if as_json:
        _write_json(console, {"metric": metric, "population": population, "seeds": list(seeds),
                              "descending": descending, "markets": markets, "rounds": rounds, "ranking": entries})
        return 0
    console.print(rank_table(entries, metric))
    return 0


# ---- the top-level commands `repair` and `rank` --------------------------------------------------------------
commands = typer.Typer()


@commands.command("repair")
def repair_cmd(
    mechanism: Annotated[str, typer.Option(help="the mechanism to repair")],
    population: Annotated[str, typer.Option(help="the population it must hold up against")],
    settings: SetOption = None,
    info: InfoOption = None,
    enforce: EnforceOption = None,
    families: Annotated[str | None, typer.Option(help="comma-separated " + description(RepairSettings, "families"))
                        ] = None,
    deviators: Annotated[int, setting(RepairSettings, "deviators")] = REPAIR.deviators,
    budget: Annotated[int, setting(RepairSettings, "budget")] = REPAIR.budget,
    inner_budget: Annotated[int, setting(RepairSettings, "inner_budget")] = REPAIR.inner_budget,
    welfare_floor: Annotated[float, setting(RepairSettings, "welfare_floor")] = REPAIR.welfare_floor,
    revenue_floor: Annotated[float, setting(RepairSettings, "revenue_floor")] = REPAIR.revenue_floor,
    markets: Annotated[int, setting(RepairSettings, "markets")] = REPAIR.markets,
    rounds: Annotated[int, setting(RepairSettings, "rounds")] = REPAIR.rounds,
    eval_markets: Annotated[int, setting(RepairSettings, "eval_markets")] = REPAIR.eval_markets,
    seed: SeedOption = 0,
    search: Annotated[list[str] | None, typer.Option(
        "--search", help="also search a config field: NAME=LOW:HIGH or NAME=A,B,C (repeatable)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the mechanism's design space for lower exploitability within welfare and revenue floors."""
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


@commands.command("rank")
def rank_cmd(
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
    try:
        code = rank_command(list(mechanisms), population, metric, seeds, markets=markets, rounds=rounds,
                            descending=not ascending, as_json=as_json, console=out)
    except MechArenaError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)
