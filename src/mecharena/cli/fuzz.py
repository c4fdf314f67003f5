"""``mecharena exploits ...`` (the command group), and the plain functions behind it and ``mecharena regress`` and
``mecharena metagame``: print, return an exit code.

They raise :class:`~mecharena.core.errors.MechArenaError` on bad input (missing library,
unknown or ambiguous id, bad mechanism config) and leave turning it into a message and exit
status 2 to the CLI shell.
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mecharena.cli.options import (FUZZ, RING, EnforceOption, InfoOption, SetOption, ValuesOption, err, exit_here, fail,
                                   parse_settings, setting)
from mecharena.cli.shell import JsonFlag, SeedOption, exit_with, make_console, progress_bar, seed_option
from mecharena.core.errors import MechArenaError
from mecharena.core.settings import CLI_SAMPLES, FuzzSettings, RingSettings, description
from mecharena.fuzz.library import Library
from mecharena.fuzz.regress import DEFAULT_MARKETS, regress


def _interval(mean: float, ci95: Any) -> str:
    return f"{mean:+.4f} [{ci95[0]:+.4f}, {ci95[1]:+.4f}]"


def _size(sample: Any) -> str:
    """'M markets x T rounds, seed S' of a gain's sample (a mapping or a model with those fields)."""
    get = sample.get if isinstance(sample, dict) else lambda name: getattr(sample, name)
    return f"{get('markets')} markets x {get('rounds')} rounds, seed {get('seed')}"


def _print_json(data: Any, console: Console | None) -> None:
    text = json.dumps(data, indent=2)
    if console is None:
        print(text)
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def exploits_list(library_dir: str, as_json: bool, console: Console | None = None) -> int:
    """List the library's exploits.

    Args:
        library_dir: the exploit library directory.
        as_json: print a JSON list of full reports instead of a table.
        console: where output goes (default: stdout).

    Returns:
        0.

    Raises:
        LibraryError: the library is missing or holds a corrupt report.
    """
    reports = Library(library_dir).list()
    if as_json:
        _print_json([r.model_dump(mode="json") for r in reports], console)
        return 0
    console = console or make_console()
    table = Table(title=escape(f"Exploits in {library_dir} ({len(reports)})"))
    for column in ("id", "mechanism", "family", "deviators", "gain [95% CI]", "markets", "frequency", "severity"):
        # ids are what `exploits show/replay` take: folded onto the next line at worst, never cut
        table.add_column(column, justify="right" if column in ("deviators", "markets", "frequency") else "left",
                         overflow="fold" if column in ("id", "mechanism") else "ellipsis")
    for r in reports:
        table.add_row(r.id, f"{r.mechanism} v{r.mechanism_version}", r.strategy.family, str(r.agents_involved.deviators),
                      _interval(r.gain.mean, r.gain.ci95), str(r.gain.markets), f"{r.frequency:.1%}", r.severity.label)
    console.print(table)
    return 0


def exploits_show(library_dir: str, id: str, as_json: bool, console: Console | None = None) -> int:
    """Print one failure report (``id`` may be a unique prefix).

    Returns:
        0.

    Raises:
        LibraryError: missing library, ambiguous prefix or corrupt report.
        UnknownIdError: no such exploit.
    """
    report = Library(library_dir).get(id)
    if as_json:
        _print_json(report.model_dump(mode="json"), console)
        return 0
    console = console or make_console()
    table = Table(title=f"Exploit {report.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    settings = ", ".join(f"{k}={v}" for k, v in report.config.items()) or "defaults"
    severity = report.severity
    relative = "n/a" if severity.relative is None else f"{severity.relative:.1%} of welfare per agent and round"
    rows = [
        ("mechanism", f"{report.mechanism} v{report.mechanism_version} ({settings})"),
        ("population", report.population),
        ("information", report.information.model_dump_json()),
        ("enforcement", report.enforcement.model_dump_json()),
        ("values", report.values),
        ("affected rule", report.affected_rule),
        ("agents involved", (f"{report.agents_involved.deviators} deviator(s) at seats {report.agents_involved.seats} "
                             f"playing {report.agents_involved.agent}")),
        ("strategy", f"{report.strategy.family}: {report.strategy.summary}\n"
                     + ", ".join(f"{k}={v}" for k, v in report.strategy.params.items())),
        ("gain", (f"{_interval(report.gain.mean, report.gain.ci95)} per agent and round "
                  f"({_size(report.gain)}, fresh evaluation)")),
        ("frequency", f"{report.frequency:.1%} of markets"),
        ("severity", f"{severity.label} ({relative})\n{severity.rule}"),
        ("trace", (f"{report.trace.baseline}\n{report.trace.deviated}\ntrace gain {report.trace.recorded_gain!r} "
                   f"({_size(report.trace)}: a smaller sample than the gain above)")),
        ("mitigation", report.mitigation),
        ("regression", f"{report.regression.command}\n{report.regression.rule}"),
    ]
    for field, value in rows:
        table.add_row(field, escape(value))
    console.print(table, highlight=False)
    return 0


def exploits_replay(library_dir: str, id: str, as_json: bool, console: Console | None = None) -> int:
    """Replay an exploit's trace ledgers and recompute its gain from their events.

    Returns:
        0 when both ledgers replay exactly and the recomputed gain equals the recorded one bit
        for bit, else 1.

    Raises:
        LibraryError / UnknownIdError: see :func:`exploits_show`.
        LedgerError: a trace ledger is missing or corrupt beyond replaying.
    """
    result = Library(library_dir).replay(id)
    if as_json:
        _print_json(result, console)
        return 0 if result["ok"] else 1
    console = console or make_console()
    table = Table(title=f"Replay of exploit {result['id']}")
    for column in ("ledger", "rounds", "events", "mismatches", "reproduced"):
        table.add_column(column, justify="left" if column == "ledger" else "right")
    for name in ("baseline", "deviated"):
        r = result[name]
        table.add_row(escape(f"{name} ({r['directory']})"), str(r["rounds"]), str(r["events"]), str(r["mismatch_count"]),
                      "yes" if r["ok"] else "[red]no[/]")
    console.print(table)
    trace, reported = result["trace"], result["reported_gain"]
    console.print(f"trace gain ({_size(trace)}): recorded {result['recorded_gain']!r}, replayed "
                  f"{result['replayed_gain']!r}: "
                  + ("[bold green]identical[/]" if result["exact"] else "[bold red]different[/]"), highlight=False)
    console.print(f"reported gain (fuzz, exploits list and show) {_interval(reported['mean'], reported['ci95'])} "
                  f"({_size(reported)}, fresh evaluation): the trace is a different, smaller sample, so its gain "
                  "differs by sampling", highlight=False)
    console.print("[bold green]exploit reproduced exactly[/]" if result["ok"] else
                  "[bold red]exploit NOT reproduced[/]")
    return 0 if result["ok"] else 1


def regress_command(library_dir: str, mechanism: str, settings: dict[str, Any], seed: int = 0,
                    markets: int = DEFAULT_MARKETS, rounds: int | None = None, threshold: float | None = None,
                    as_json: bool = False, console: Console | None = None, only: str | None = None) -> int:
    """Re-check every library exploit against ``mechanism`` with ``settings`` (see :func:`~mecharena.fuzz.regress.regress`).

    Returns:
        1 when any exploit still pays (its gain's lower 95% bound exceeds the threshold), else 0,
        so a CI job fails while a known exploit is open.

    Raises:
        LibraryError: missing library.
        UnknownIdError / ConfigError: unknown mechanism, invalid settings or sizes.
    """
    rows = regress(Library(library_dir), mechanism, settings, seed=seed, markets=markets, rounds=rounds,
                   threshold=threshold, only=only)
    paying = sum(r["still_pays"] for r in rows)
    if as_json:
        _print_json({"mechanism": mechanism, "config": settings, "exploits": rows, "still_pay": paying}, console)
        return 1 if paying else 0
    console = console or make_console()
    settings_text = ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"
    table = Table(title=escape(f"Regression of {library_dir} against {mechanism} ({settings_text})"))
    for column in ("id", "family", "gain [95% CI]", "threshold", "status"):
        table.add_column(column, overflow="fold")
    colors = {"still_pays": "bold red", "closed": "green", "inconclusive": "yellow", "skipped": "dim"}
    for r in rows:
        gain = _interval(r["gain"]["mean"], r["gain"]["ci95"]) if "gain" in r else escape(r["reason"])
        table.add_row(r["id"], r["family"], gain, f"{r['threshold']:g}", f"[{colors[r['status']]}]{r['status']}[/]")
    console.print(table)
    console.print(f"[bold red]{paying} exploit(s) still pay[/]" if paying else
                  "[bold green]no exploit still pays[/]")
    return 1 if paying else 0


# --- `mecharena metagame` ----------------------------------------------------------------------------------


def _aliases(strategies: list[str]) -> dict[str, str]:
    """Short names for long specs (found tables): ``br1``, ``br2``, ... in the order they were added."""
    names, count = {}, 0
    for label in strategies:
        if len(label) > 32:
            count += 1
            names[label] = f"br{count}"
        else:
            names[label] = label
    return names


def _mix(sigma: dict[str, float], names: dict[str, str]) -> str:
    return ", ".join(f"{names[k]} {v:.2f}" for k, v in sigma.items())


def metagame_print(result: dict[str, Any], console: Console | None = None) -> None:
    """The meta-game's findings first (worst equilibria against the intended profile, alpha-Rank's
    top), then PSRO's iterations, every equilibrium, alpha-Rank's masses and the strategies."""
    console = console or make_console()
    names = _aliases(result["strategies"])
    intended = result["intended"]
    head = Table(title=escape(f"Meta-game of {result['mechanism']}: {result['players']} players, "
                              f"{result['profiles']['total']} profiles x {result['markets']} markets x "
                              f"{result['rounds']} rounds, seed {result['seed']}"), show_header=False)
    head.add_column("finding", style="bold")
    head.add_column("value")
    ranking = result["alpharank"]
    top = ranking["order"][0]
    mass = ranking["mass"][top]
    head.add_row("alpha-Rank top", escape(f"{names[top]} (mass {mass['mean']:.3f} [{mass['ci95'][0]:.3f}, "
                                          f"{mass['ci95'][1]:.3f}]; order unchanged in {ranking['stable']:.0%} of "
                                          f"{ranking['resamples']} resamples)"))
    head.add_row("meta-Nash", escape(_mix(result["equilibria"][0]["sigma"], names)
                                     + f" (regret {result['equilibria'][0]['regret']:.2g})"))
    for measure in ("welfare", "revenue"):
        worst = result[f"worst_{measure}"]
        text = f"{_mix(worst['sigma'], names)}: {_interval(worst[measure]['mean'], worst[measure]['ci95'])}"
        if intended is not None:
            ratio = worst["ratio_to_intended"]
            text += (f"\nintended ({names[intended['strategy']]}): "
                     f"{_interval(intended[measure]['mean'], intended[measure]['ci95'])}\nratio {ratio['mean']:.4f} "
                     f"[{ratio['ci95'][0]:.4f}, {ratio['ci95'][1]:.4f}]")
        head.add_row(f"worst equilibrium {measure}", escape(text))
    head.add_row("equilibria found", f"{len(result['equilibria'])} (regret <= {result['tolerance']:.2g})")
    done = result["profiles"]
    reused = f" (the rest reused from {done['directory']})" if done["computed"] < done["total"] else ""
    head.add_row("profiles computed", f"{done['computed']} of {done['total']}{reused}")
    console.print(head)
    if result["psro"]:
        table = Table(title="PSRO")
        for column in ("iteration", "meta-Nash", "meta payoff", "response gain [95% CI]", "added"):
            table.add_column(column)
        every = {**names, **_aliases(result["strategies"] + [h["response"] for h in result["psro"]])}
        for h in result["psro"]:
            table.add_row(str(h["iteration"]), escape(_mix(h["meta_nash"], every)), f"{h['meta_payoff']:.4f}",
                          escape(f"{every[h['response']]}: {_interval(h['gain']['mean'], h['gain']['ci95'])}"),
                          "yes" if h["added"] else "no (converged)")
        console.print(table)
    table = Table(title="alpha-Rank and equilibria")
    equilibria = [f"eq {i + 1}" for i in range(len(result["equilibria"]))]
    for column in ("strategy", "alpha-Rank mass [95%]", "P(top)", *equilibria):
        table.add_column(column)
    for label in ranking["order"]:
        mass = ranking["mass"][label]
        table.add_row(escape(names[label]), f"{mass['mean']:.3f} [{mass['ci95'][0]:.3f}, {mass['ci95'][1]:.3f}]",
                      f"{mass['top']:.2f}", *[f"{e['sigma'].get(label, 0.0):.3f}" for e in result["equilibria"]])
    console.print(table)
    legend = [(short, label) for label, short in names.items() if short != label]
    if legend:
        table = Table(title="Found strategies")
        table.add_column("name")
        table.add_column("agent spec", overflow="fold")
        for short, label in legend:
            table.add_row(short, escape(label))
        console.print(table)


# --- the `mecharena exploits` commands ---------------------------------------------------------------------

app = typer.Typer(no_args_is_help=True, help="The exploit library: failure reports found by `fuzz`.")
LibraryOption = Annotated[Path, typer.Option("--library", help="exploit library directory")]
ExploitArgument = Annotated[str, typer.Argument(help="report id (or a unique prefix)")]
out = make_console()


@app.command("list")
def list_command(library: LibraryOption = Path("exploits"), as_json: JsonFlag = False) -> None:
    """Every failure report in the library."""
    exit_with(exploits_list, str(library), as_json, console=out)


@app.command("show")
def show_command(exploit: ExploitArgument, library: LibraryOption = Path("exploits"), as_json: JsonFlag = False) -> None:
    """One failure report in full."""
    exit_with(exploits_show, str(library), exploit, as_json, console=out)


@app.command("replay")
def replay_command(exploit: ExploitArgument, library: LibraryOption = Path("exploits"),
                   as_json: JsonFlag = False) -> None:
    """Replay a report's ledgers and recompute its recorded gain exactly (exit 1 if it differs)."""
    exit_with(exploits_replay, str(library), exploit, as_json, console=out)


# ---- the top-level commands `fuzz`, `ring`, `regress` and `metagame` ----------------------------------------
commands = typer.Typer()


@commands.command("fuzz")
def fuzz_cmd(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    population: Annotated[str, typer.Option(help="the population whose own policy deviations are scored against")],
    settings: SetOption = None,
    deviators: Annotated[int, setting(FuzzSettings, "deviators")] = FUZZ.deviators,
    families: Annotated[str | None, typer.Option(help="comma-separated " + description(FuzzSettings, "families"))
                        ] = None,
    budget: Annotated[int, setting(FuzzSettings, "budget")] = FUZZ.budget,
    seed: SeedOption = 0,
    info: InfoOption = None,
    enforce: EnforceOption = None,
    values: ValuesOption = "uniform",
    sampler: Annotated[str, setting(FuzzSettings, "sampler")] = FUZZ.sampler,
    restarts: Annotated[int, setting(FuzzSettings, "restarts")] = FUZZ.restarts,
    markets: Annotated[int, setting(FuzzSettings, "markets")] = FUZZ.markets,
    rounds: Annotated[int, setting(FuzzSettings, "rounds")] = FUZZ.rounds,
    eval_markets: Annotated[int, setting(FuzzSettings, "eval_markets")] = FUZZ.eval_markets,
    threshold: Annotated[float, setting(FuzzSettings, "threshold")] = FUZZ.threshold,
    library: Annotated[Path, typer.Option(help="exploit library directory for failure reports")] = Path("exploits"),
    report: Annotated[bool, typer.Option(help="write a failure report when an exploit is found")] = True,
    samples: Annotated[int, setting(FuzzSettings, "samples")] = CLI_SAMPLES,
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


@commands.command("ring")
def ring_cmd(
    mechanism: Annotated[str, typer.Option(help="mechanism id (see `mecharena mechanisms`)")],
    population: Annotated[str, typer.Option(help="the population; its first K agents form the ring")],
    settings: SetOption = None,
    deviators: Annotated[int, setting(RingSettings, "deviators")] = RING.deviators,
    seed: SeedOption = 0,
    info: InfoOption = None,
    enforce: EnforceOption = None,
    values: ValuesOption = "uniform",
    rounds: Annotated[int, typer.Option(help="rounds of every market")] = 10,
    phases: Annotated[int, setting(RingSettings, "phases")] = RING.phases,
    generations: Annotated[int, setting(RingSettings, "generations")] = RING.generations,
    defection_generations: Annotated[int, setting(RingSettings, "defection_generations")
                                     ] = RING.defection_generations,
    markets: Annotated[int, setting(RingSettings, "markets")] = RING.markets,
    eval_markets: Annotated[int, setting(RingSettings, "eval_markets")] = RING.eval_markets,
    store: Annotated[Path | None, typer.Option(help="folder keeping every generation: a rerun resumes")] = None,
    features: Annotated[str | None, typer.Option(help="comma-separated " + description(RingSettings, "features"))
                        ] = None,
    credible: Annotated[bool, typer.Option(help=description(RingSettings, "credible"))] = RING.credible,
    threshold: Annotated[float, setting(FuzzSettings, "threshold")] = FUZZ.threshold,
    library: Annotated[Path, typer.Option(help="exploit library directory for failure reports")] = Path("exploits"),
    report: Annotated[bool, typer.Option(help="write a failure report when the ring's gain is an exploit")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Search a ring that holds across rounds: a policy the K deviators share that no member gains by leaving.

    What the members can check of each other is what the information policy (--info) reveals: where it
    reveals nothing, a ring cannot punish and holds only what no member wants to take. A ring whose gain's
    lower bound exceeds --threshold is stored as a failure report, with its certificate."""
    from mecharena.fuzz.cell import ring_cell

    try:
        with progress_bar(err, hidden=as_json) as bar:
            task = bar.add_task("ring search", total=phases)
            found, data = ring_cell(mechanism, parse_settings(settings or []), population,
                                    parse_settings(info or [], "--info"), parse_settings(enforce or [], "--enforce"),
                                    values, seed, rounds=rounds, threshold=threshold,
                                    library=library if report else None, deviators=deviators, phases=phases,
                                    generations=generations, defection_generations=defection_generations,
                                    markets=markets, eval_markets=eval_markets, store=store, credible=credible,
                                    features=tuple(f.strip() for f in (features or "").split(",") if f.strip()),
                                    on_phase=lambda done: bar.update(task, completed=done))
    except (MechArenaError, ValueError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out.print(found.verdict)
    table = Table(title=f"ring search {mechanism} x {population} (K={deviators}, {rounds} rounds)")
    for column in ("phase", "ring gain (search seed)", "score (final archive)", "defections known",
                   "shirking punishers known"):
        table.add_column(column)
    for row in data["phases"]:
        table.add_row(str(row["phase"]), f"{row['ring_gain']:+.4f}", f"{row['score']:+.4f}", str(row["archive"]),
                      str(row["shirkers"]))
    out.print(table)
    if found.description:
        out.print(escape(f"What the ring does: {found.description}"))
    out.print(escape(f"Once a partner is caught: {found.punishment or 'nothing changes'}"))
    out.print(escape(f"The ring's agent (its first {deviators} seats replay it): {data['agent']}"))
    if data["report"]:
        out.print(escape(f"Failure report {data['report']['id']} in {library} (mecharena exploits show)"))


@commands.command("regress")
def regress_cmd(
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
    exit_here(regress_command, str(library), mechanism, parse_settings(settings or []), seed, markets,
               rounds, threshold, as_json, only=only)




@commands.command("metagame")
def metagame_cmd(
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
