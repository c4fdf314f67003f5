"""The report's tables as plain data (headers and rows of cells), rendered to HTML elsewhere.

Each cell is ``(text, css_class)``; the class marks what to highlight (``best``, ``worst``,
``bad``).
"""

import math
from dataclasses import dataclass

from mecharena.report.data import Estimate, Results, Row, group, pooled

Cell = tuple[str, str]
# (metric, description, which end is the failure)
FAILURES = (
    ("efficiency", "lowest efficiency", "low"),
    ("ic_regret", "highest incentive-compatibility regret (gain from a unilateral deviation)", "high"),
    ("negative_payoff_rate", "highest rate of negative payoffs (individual rationality violated)", "high"),
    ("collusion_gain", "highest collusion gain (cartel utility over truthful bidding)", "high"),
    ("deficit_rate", "highest deficit rate (budget balance violated)", "high"),
    ("sybil_gain", "highest sybil gain (false-name bidding pays)", "high"),
)
COMPARED = ("revenue", "efficiency", "bidder_surplus", "participation")
TOP = 3


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""


def number(x: float) -> str:
    """4 significant digits; a dash for NaN."""
    return "–" if not math.isfinite(x) else f"{x:.4g}"


def estimate(e: Estimate) -> str:
    if not math.isfinite(e.mean):
        return "–"
    return number(e.mean) if not math.isfinite(e.half) or e.half == 0 else f"{number(e.mean)} ± {e.half:.2g}"


def summary(results: Results) -> Table:
    """One row per mechanism x population x rules: the headline metrics pooled over seeds."""
    metrics = results.headline()
    rows = []
    for (mechanism, population, rules), group_rows in group(
            results.rows, lambda r: (r.mechanism, r.population, r.rules)).items():
        rows.append(((mechanism, ""), (population, ""), (rules, ""), (str(len(group_rows)), ""),
                     *((estimate(pooled(group_rows, m)), "") for m in metrics)))
    return Table("Headline metrics (mean over seeds ± 95% CI)",
                 ("mechanism", "population", "information", "seeds", *metrics), tuple(rows))


def robustness(results: Results) -> Table:
    """Per mechanism and headline metric: the widest range across seeds (within a population and
    information policy) and across populations (of seed means, within an information policy)."""
    metrics = results.headline()
    rows = []
    for mechanism, mech_rows in group(results.rows, lambda r: r.mechanism).items():
        cells: list[Cell] = [(mechanism, "")]
        for metric in metrics:
            seed_spread = _max_range(group(mech_rows, lambda r: (r.population, r.rules)).values(),
                                     lambda rows, m=metric: [r.metric(m) for r in rows])
            population_spread = _max_range(
                group(mech_rows, lambda r: r.rules).values(),
                lambda rows, m=metric: [pooled(g, m).mean for g in group(rows, lambda r: r.population).values()])
            cells.append((f"{number(seed_spread)} / {number(population_spread)}", ""))
        rows.append(tuple(cells))
    return Table("Robustness: widest range across seeds / across populations", ("mechanism", *metrics), tuple(rows),
                 "Left: the largest max − min over seeds of one population under one information policy. Right: "
                 "the largest max − min over populations of the seed means under one information policy. Small "
                 "is robust.")


def _max_range(groups, values_of) -> float:
    spreads = []
    for rows in groups:
        values = [v for v in values_of(rows) if math.isfinite(v)]
        if len(values) > 1:
            spreads.append(max(values) - min(values))
    return max(spreads) if spreads else float("nan")


def _cell_row(row: Row, metric: str) -> tuple[Cell, ...]:
    mean, lo, hi = row.metrics[metric]
    interval = f"[{number(lo)}, {number(hi)}]" if math.isfinite(lo) and math.isfinite(hi) and hi > lo else ""
    return ((row.mechanism, ""), (row.population, ""), (row.rules, ""), (str(row.seed), ""),
            (number(mean), "bad"), (interval, ""), (row.key, "key"))


def failures(results: Results) -> list[Table]:
    """The worst cells for each failure criterion, and every collapsed cell."""
    tables = []
    header = ("mechanism", "population", "information", "seed", "value", "95% CI", "cell key")
    for metric, description, end in FAILURES:
        rows = [r for r in results.rows if math.isfinite(r.metric(metric))]
        if not rows:
            continue
        rows.sort(key=lambda r: (r.metric(metric) if end == "low" else -r.metric(metric), r.position))
        if end == "high":
            rows = [r for r in rows if r.metric(metric) > 1e-9]
        worst: dict[tuple[str, str], Row] = {}
        for r in rows:  # worst first, so each pair keeps its worst cell
            worst.setdefault((r.mechanism, r.population), r)
        note = "" if rows else f"No cell has a positive {metric}."
        tables.append(Table(f"{description} ({metric})", header, tuple(_cell_row(r, metric) for r in list(worst.values())[:TOP]),
                            note or "The worst cell of each of the worst mechanism x population pairs."))
    collapsed = [r for r in results.rows if r.metric("collapse") >= 0.5]
    if any("collapse" in r.metrics for r in results.rows):
        tables.append(Table("collapse = 1 (participation in the last quarter below half of the first round)", header,
                            tuple(_cell_row(r, "collapse") for r in collapsed[:20]),
                            "No cell collapsed." if not collapsed else
                            f"First 20 of {len(collapsed)} collapsed cells." if len(collapsed) > 20 else ""))
    return tables


def information(results: Results) -> list[Table]:
    """For each compared metric: mechanism x population rows, one column per information policy,
    with the highest (``best``) and lowest (``worst``) policy of each row marked."""
    if len(results.information) < 2:
        return []
    several = len(results.enforcement) > 1
    tables = []
    groups = group(results.rows, lambda r: (r.mechanism, r.population, r.enforcement, r.information))
    keys = list(dict.fromkeys((r.mechanism, r.population, r.enforcement) for r in results.rows))
    for metric in COMPARED:
        if metric not in results.metric_names:
            continue
        rows = []
        for mechanism, population, enforcement in keys:
            estimates = [pooled(groups[(mechanism, population, enforcement, info)], metric)
                         if (mechanism, population, enforcement, info) in groups else Estimate(math.nan, math.nan)
                         for info in results.information]
            means = [e.mean for e in estimates if math.isfinite(e.mean)]
            high, low = (max(means), min(means)) if means else (math.nan, math.nan)
            spread = high - low if means else math.nan
            marks = ["" if not math.isfinite(e.mean) or spread <= 1e-12 else
                     "best" if e.mean == high else "worst" if e.mean == low else "" for e in estimates]
            rows.append(((mechanism, ""), (population, ""), *(((enforcement, ""),) if several else ()),
                         *((estimate(e), mark) for e, mark in zip(estimates, marks, strict=True)),
                         (number(spread), "")))
        header = ("mechanism", "population", *(("enforcement",) if several else ()), *results.information,
                  "max − min")
        tables.append(Table(f"{metric} under each information policy", header, tuple(rows),
                            "Highest per row in green, lowest in red. More information is not always better for "
                            "the seller: a row where a more revealing policy earns less revenue is a transparency "
                            "paradox." if metric == "revenue" else ""))
    return tables


def exploits(pairs: list) -> Table:
    """The exploit library's failure reports against the run's cells ((row, report) pairs, largest gain first)."""
    rows = tuple((
        (e.id, ""), (row.mechanism, ""), (row.population, ""), (e.strategy.family, ""),
        (str(e.agents_involved.deviators), ""), (f"{number(e.gain.mean)} [{number(e.gain.ci95[0])}, "
                                                 f"{number(e.gain.ci95[1])}]", "bad"),
        (f"{e.frequency:.0%}", ""), (e.severity.label, "worst" if e.severity.label == "high" else ""),
        (e.strategy.agent, "")) for row, e in pairs)
    return Table("Exploits found by the fuzzer", ("id", "mechanism", "population", "family", "deviators",
                                                  "gain per agent and round [95%]", "markets where it pays",
                                                  "severity", "deviators' agent"), rows,
                 "Gains are on a fresh seed. `mecharena exploits show ID` prints a report with its evidence (two ledgers, "
                 "without and with the deviation); `mecharena exploits replay ID` checks them bit for bit.")
