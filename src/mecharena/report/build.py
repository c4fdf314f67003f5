"""Write ``DIR/report.html`` (self-contained: figures embedded) and the figures as PNGs in ``DIR``."""

import base64
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from mecharena import agents
from mecharena.core.errors import MechArenaError
from mecharena.fuzz.library import Library
from mecharena.report import figures, tables
from mecharena.report.findings import Finding, exploited, findings
from mecharena.report.data import Results, load_results
from mecharena.runner.store import ResultsError

HEATMAPS = ("efficiency", "revenue", "bidder_surplus", "ic_regret", "negative_payoff_rate", "participation")
LEARNING = (("revenue", "Revenue per round"), ("price", "Clearing price per round"),
            ("efficiency", "Efficiency per round"))
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td.best { background: #d9f2d9; } td.worst { background: #f8d7d7; } td.bad { background: #f8d7d7; font-weight: bold; }
td.key { font-family: monospace; font-size: 0.9em; color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } .note { font-size: 0.85em; color: #555; }
.warn { background: #fff4d6; padding: 0.5em 1em; border-left: 4px solid #e0a800; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
ul.findings { font-size: 1.05em; line-height: 1.5; } ul.findings a { font-size: 0.85em; }
"""


@dataclass(frozen=True, slots=True)
class Report:
    """What :func:`build_report` wrote."""

    html: Path
    figures: tuple[Path, ...]
    cells: int  # finished cells in the report
    planned: int  # cells in the plan


def _table(table: tables.Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{html.escape(t)}</td>' if c else f"<td>{html.escape(t)}</td>"
                                    for t, c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    rows = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if table.rows else ""
    return f"<h3>{html.escape(table.title)}</h3>{rows}{note}"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f'<figcaption>{html.escape(caption)} (<a href="{html.escape(path.name)}">{html.escape(path.name)}</a>)'
            f"</figcaption></figure>")


def _findings(found: list[Finding]) -> str:
    items = "".join(f'<li data-kind="{f.kind}">{html.escape(f.text)} <a href="#{f.evidence}">evidence</a></li>'
                    for f in found)
    return f"<ul class='findings'>{items}</ul>"


def _left_out(flat: dict[str, str]) -> str:
    """The note on metrics without a figure: the same in every cell (see :meth:`Results.flat`)."""
    if not flat:
        return ""
    items = "; ".join(f"{html.escape(m)} ({html.escape(why)})" for m, why in flat.items())
    return (f"<p class='note' id='left-out'>No figure for metrics that are the same everywhere, so a chart of them "
            f"would show only rounding: {items}. The tables below still list them.</p>")


def _causes(results: Results) -> str:
    """What the arena knows of the curves' rhythm: the rules of the run's dropout and cartel agents that make
    their curves dip and recover (read from each population spec; a spec that does not parse here, such as a
    plug-in's that is not loaded, is skipped)."""
    notes: dict[str, str] = {}
    for label, spec in dict.fromkeys((r.population, r.population_spec) for r in results.rows):
        try:
            groups = agents.population(spec, 0).groups
        except MechArenaError:
            continue
        for group in groups:
            params, name = group.params, group.agent.name
            if name == "dropout":
                notes[f"dropout {params.patience} {params.outside}"] = (
                    f"Dropout agents ({html.escape(label)}) stay in the market for a trial of {params.patience} rounds, "
                    f"leave once their average utility per round falls below their outside option "
                    f"({params.outside:g}), stay out {params.patience} rounds, then come back for a new trial: the "
                    f"share in the market dips and recovers in steps of {params.patience} rounds.")
            elif name == "cartel" and params.punish_rounds:
                notes[f"cartel {params.punish_rounds}"] = (
                    f"Cartel members ({html.escape(label)}) answer a defection they detect with "
                    f"{params.punish_rounds} rounds of competitive bidding (they detect one only where the "
                    f"information policy reveals the winner or the bids): the collusion gain drops for "
                    f"{params.punish_rounds} rounds after each, then the ring resumes.")
    return "".join(f"<p class='note cause'>{text}</p>" for text in notes.values())


def _overview(results: Results) -> str:
    versions = "; ".join(f"{part}: " + ", ".join(f"{k} v{v}" for k, v in sorted(entries.items()))
                         for part, entries in results.versions.items() if entries)
    items = [("spec", results.name), ("cells", f"{len(results.rows)} finished of {results.planned} planned"),
             ("mechanisms", ", ".join(results.mechanisms)), ("populations", ", ".join(results.populations)),
             ("information policies", ", ".join(results.information)),
             ("enforcement", ", ".join(results.enforcement)), ("seeds", ", ".join(map(str, results.seeds))),
             ("versions", versions)]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
                   for k, v in items)
    text = f"<table>{rows}</table>"
    if len(results.rows) < results.planned:
        text += (f'<p class="warn">Only {len(results.rows)} of {results.planned} planned cells are finished; '
                 f"rerun <code>mecharena run</code> with the same spec and --out to complete them.</p>")
    warned = [r for r in results.rows if r.warnings]
    if warned:
        text += (f'<p class="warn">{len(warned)} cells raised warnings while computing, e.g. '
                 f"{html.escape(warned[0].label)}: {html.escape(warned[0].warnings[0])}</p>")
    return text


def build_report(directory: str | Path, exploits: str | Path | None = None) -> Report:
    """Read ``directory/results.duckdb`` and write ``report.html`` and PNG figures beside it.

    Args:
        directory: a run directory written by ``mecharena run``.
        exploits: an exploit library (``fuzz --library DIR``): its exploits against the run's
            mechanism x population cells join the findings, with a figure and a table.

    Returns:
        The paths written.

    Raises:
        ResultsError: missing or unreadable run directory or database, no finished cells, or
            the directory is not writable.
        LibraryError: ``exploits`` is not an exploit library.
    """
    directory = Path(directory)
    results = load_results(directory)
    reports = Library(exploits).list() if exploits is not None else []
    written: list[Path] = []
    sections: list[str] = []

    def draw(figure: Figure, name: str, caption: str) -> str:
        path = directory / name
        try:
            figures.save(figure, path)
        except OSError as exc:
            raise ResultsError(f"cannot write {path}: {exc}") from None
        written.append(path)
        return _figure(path, caption)

    metrics = results.headline()
    found = findings(results, reports)
    page_png = draw(figures.summary_page(results, [f.text for f in found]), "summary.png",
                    "One page: the findings and each mechanism's worst case per population (for papers and slides)")
    sections.append("<h2 id='findings'>Findings</h2>" + _findings(found) + page_png)
    sections.append("<h2 id='overview'>Overview</h2>" + _overview(results) + _table(tables.summary(results)))
    flat = {m: why for m in (*metrics, *HEATMAPS) if m in results.metric_names and (why := results.flat(m))}
    sections.append("<h2>Metrics by mechanism and population</h2>" + _left_out(flat) + "".join(
        draw(figures.metric_bars(results, m), f"metric_{m}.png", f"{m}: mean over seeds with 95% CI")
        for m in metrics if m not in flat))
    sections.append("<h2>Heatmaps</h2>" + "".join(
        draw(figures.heatmap(results, m), f"heatmap_{m}.png", f"{m}: mechanism x population")
        for m in HEATMAPS if m in results.metric_names and m not in flat))
    sections.append("<h2>Learning curves</h2>" + "".join(
        draw(figures.curves(results, c, title), f"curve_{c}.png", title)
        for c, title in LEARNING if c in results.curve_names))
    dynamics = []
    if "collusion_gain" in results.curve_names:
        dynamics.append(draw(figures.curves(results, "collusion_gain", "Collusion gain per round"),
                             "collusion.png", "Collusion: colluders' gain over truthful bidding, per round"))
    if "participation" in results.curve_names:
        dynamics.append(draw(figures.curves(results, "entry" if "entry" in results.curve_names else "participation",
                                            "Agents in the market per round"),
                             "dropout.png", "Dropout: share of agents still in the market, per round"))
    sweeps = figures.reserve_sweeps(results)
    dynamics.extend(draw(figure, f"reserve_{name}.png",
                         f"{name}: entry (agents still in the market), participation, revenue and "
                         "efficiency against the reserve price")
                    for name, figure in sweeps.items())
    sections.append("<h2 id='dynamics'>Collusion and dropout dynamics</h2>" + _causes(results) + "".join(dynamics))
    if metrics:
        sections.append("<h2 id='robustness'>Robustness</h2>" + draw(figures.robustness(results), "robustness.png",
                                                     "Spread of each headline metric across seeds and populations")
                        + _table(tables.robustness(results)))
    sections.append("<h2 id='failures'>Worst failures</h2>" + "".join(_table(t) for t in tables.failures(results)))
    if exploits is not None:
        pairs = exploited(results, reports)
        sections.append("<h2 id='exploits'>Exploits found by the fuzzer</h2>" + (
            draw(figures.exploit_gains([f"{row.mechanism} | {row.population} | {e.strategy.family} ({e.id})"
                                        for row, e in pairs], [(e.gain.mean, *e.gain.ci95) for _, e in pairs]),
                 "exploits.png", "Each exploit's gain per agent and round on a fresh seed, with its 95% interval")
            + _table(tables.exploits(pairs)) if pairs else
            f'<p class="note">None of the {len(reports)} exploits in {html.escape(str(exploits))} pays against '
            "this run's mechanisms and populations.</p>"))
    comparison = tables.information(results)
    sections.append("<h2 id='information'>Information policies</h2>" + (
        "".join(_table(t) for t in comparison) if comparison else
        '<p class="note">The spec has one information policy.</p>'))
    if results.spec_yaml:
        sections.append(f"<h2>Spec</h2><details><summary>YAML</summary><pre>{html.escape(results.spec_yaml)}"
                        f"</pre></details>")
    title = f"mecharena report: {results.name}"
    description = f"<p>{html.escape(results.description)}</p>" if results.description else ""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{description}"
            f"<p class='note'>Generated {stamp} from {html.escape(str(directory / 'results.duckdb'))}</p>"
            + "".join(sections) + "</body></html>")
    target = directory / "report.html"
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot write {target}: {exc}") from None
    return Report(target, tuple(written), len(results.rows), results.planned)
