"""The report's findings: what the run answers, one sentence each, with the section holding the evidence.

* **Robustness** (per population): the mechanism whose worst case over the run's information and
  enforcement variants is best, on efficiency (else the first headline metric), with its 95% interval
  and the runner-up.
* **Failures**: for each failure criterion of :data:`mecharena.report.tables.FAILURES`, the worst
  mechanism x population x rules whose interval excludes "no failure" (for a low-end criterion such
  as efficiency: clearly below the best of the run), and what causes it: the
  information or enforcement variant of the same mechanism and population that removes most of it,
  where the difference exceeds both intervals; otherwise the rule's own.
* **Transparency paradox**: where revealing more (more of the information policy's fields) lowers
  revenue beyond both intervals, the largest such drop.
* **Collapse**: how many cells lost half their participation, and the worst.
* **Exploits** (with an exploit library, ``report --exploits DIR``): the fuzzer's failure reports
  against the run's mechanism x population cells whose fresh-seed gain is above 0 beyond its
  interval, largest first, each with its id and the command that shows its evidence.

Estimates pool seeds as the tables do (:func:`mecharena.report.data.pooled`).
"""

import math
from dataclasses import dataclass
from typing import Any

import yaml

from mecharena import mechanisms
from mecharena.core.errors import MechArenaError
from mecharena.mechanisms.policy import InformationPolicy
from mecharena.report.data import Estimate, Results, Row, group, pooled
from mecharena.report.tables import FAILURES


@dataclass(frozen=True, slots=True)
class Finding:
    """One sentence and the report section (its anchor) holding the figure and table behind it."""

    text: str
    evidence: str
    kind: str  # robustness, failure, transparency, collapse, exploit, scope


MAX_EXPLOITS = 5


def _est(e: Estimate, digits: int = 3) -> str:
    return f"{e.mean:.{digits}f} ± {e.half:.2g}" if math.isfinite(e.half) and e.half > 0 else f"{e.mean:.{digits}f}"


def _apart(a: Estimate, b: Estimate) -> bool:
    """The two means differ by more than both intervals' half-widths together."""
    return abs(a.mean - b.mean) > (a.half if math.isfinite(a.half) else 0) + (b.half if math.isfinite(b.half) else 0)


def _rules(rows) -> str:
    return rows[0].rules


def robustness(results: Results) -> list[Finding]:
    metric = "efficiency" if "efficiency" in results.metric_names else next(iter(results.headline()), None)
    if metric is None:
        return []
    out = []
    for population, rows in group(results.rows, lambda r: r.population).items():
        worst = {}
        for mechanism, mech_rows in group(rows, lambda r: r.mechanism).items():
            cases = [(pooled(g, metric), _rules(g)) for g in group(mech_rows, lambda r: r.rules).values()]
            cases = [c for c in cases if math.isfinite(c[0].mean)]
            if cases:
                worst[mechanism] = min(cases, key=lambda c: c[0].mean)
        if len(worst) < 2:
            continue
        ranked = sorted(worst.items(), key=lambda item: -item[1][0].mean)
        (best, (e, rules)), (second, (e2, _)) = ranked[0], ranked[1]
        under = f" even under its worst rules ({rules})" if len(results.rules) > 1 else ""
        last = f", and {ranked[-1][0]} is last ({_est(ranked[-1][1][0])})" if len(ranked) > 2 else ""
        out.append(Finding(f"Against {population}, {best} holds up best: {metric} {_est(e)}{under}; {second} follows "
                           f"({_est(e2)}){last}.", "robustness", "robustness"))
    return out


def failures(results: Results) -> list[Finding]:
    out = []
    groups = group(results.rows, lambda r: (r.mechanism, r.population, r.information, r.enforcement))
    for metric, description, end in FAILURES:
        estimates = {key: pooled(rows, metric) for key, rows in groups.items()}
        estimates = {k: e for k, e in estimates.items() if math.isfinite(e.mean)}
        if not estimates:
            continue
        sign = 1 if end == "high" else -1
        key, e = max(estimates.items(), key=lambda item: sign * item[1].mean)
        if end == "high" and not e.mean - (e.half if math.isfinite(e.half) else 0) > 1e-9:
            continue
        if end == "low" and not _apart(e, max(estimates.values(), key=lambda x: x.mean)):
            continue  # the lowest is a failure only where it is clearly below the best
        mechanism, population, information, enforcement = key
        rules = groups[key][0].rules
        variants = {k: v for k, v in estimates.items() if k[:2] == key[:2] and k != key}
        text = f"The {description.split(' (')[0]} is {mechanism} against {population} under {rules}: {metric} {_est(e)}"
        if variants:
            other, o = min(variants.items(), key=lambda item: sign * item[1].mean)
            if _apart(e, o):
                changed = [("information", other[2], information)] if other[2] != information else []
                changed += [("enforcement", other[3], enforcement)] if other[3] != enforcement else []
                change = " and ".join(f"{part} {new} instead of {old}" for part, new, old in changed)
                policy = " and ".join(f"the {part} policy" for part, _, _ in changed)
                text += f"; with {change} it is {_est(o)}, so {policy} drives it."
            else:
                text += "; no information or enforcement variant in the run changes it: it is the mechanism's own."
        else:
            text += "."
        out.append(Finding(text, "failures", "failure"))
    return out


def _revealed(results: Results) -> dict[str, int]:
    """How many of the information policy's fields each label reveals (from the spec)."""
    try:
        spec = yaml.safe_load(results.spec_yaml) or {}
        return {label: sum(bool(v) for v in InformationPolicy.build(**(fields or {})).model_dump().values())
                for label, fields in (spec.get("information") or {}).items()}
    except Exception:  # a spec the report cannot read says nothing about the order
        return {}


def transparency(results: Results) -> list[Finding]:
    if "revenue" not in results.metric_names or len(results.information) < 2:
        return []
    revealed = _revealed(results)
    worst = None
    for (mechanism, population, _), rows in group(results.rows, lambda r: (r.mechanism, r.population,
                                                                          r.enforcement)).items():
        by_info = {info: pooled(g, "revenue") for info, g in group(rows, lambda r: r.information).items()}
        for less, a in by_info.items():
            for more, b in by_info.items():
                if revealed.get(more, 0) > revealed.get(less, 0) and b.mean < a.mean and _apart(a, b):
                    if worst is None or a.mean - b.mean > worst[0]:
                        worst = (a.mean - b.mean, mechanism, population, less, more, a, b)
    if worst is None:
        return []
    _, mechanism, population, less, more, a, b = worst
    return [Finding(f"Transparency paradox: in {mechanism} against {population}, revealing more ({more} instead of "
                    f"{less}) lowers revenue from {_est(a)} to {_est(b)}.", "information", "transparency")]


def collapse(results: Results) -> list[Finding]:
    rows = [r for r in results.rows if "collapse" in r.metrics]
    collapsed = [r for r in rows if r.metric("collapse") >= 0.5]
    if not collapsed:
        return []
    pairs = group(collapsed, lambda r: (r.mechanism, r.population))
    (mechanism, population), worst = max(pairs.items(), key=lambda item: len(item[1]))
    return [Finding(f"Participation collapsed (below half of round 0 by the last quarter) in {len(collapsed)} of "
                    f"{len(rows)} cells, most often {mechanism} against {population} ({len(worst)} cells).",
                    "dynamics", "collapse")]


def exploited(results: Results, reports: list) -> list[tuple[Row, Any]]:
    """The library's failure reports against a (mechanism, population) of the run, each with a row of that
    cell, whose fresh gain's interval is above 0; the largest gain first."""
    cells = {(r.mechanism_id, r.population_spec): r for r in results.rows}
    found = [(cells[e.mechanism, e.population], e) for e in reports
             if (e.mechanism, e.population) in cells and e.gain.ci95[0] > 0]
    return sorted(found, key=lambda pair: -pair[1].gain.mean)


def _same_config(row: Row, config: dict[str, Any]) -> bool:
    """Whether ``config`` is the row's mechanism config once validated (False for a mechanism not loaded here)."""
    try:
        return config == mechanisms.get(row.mechanism_id).config(row.config).model_dump(mode="json")
    except MechArenaError:
        return False


def exploits(results: Results, reports: list) -> list[Finding]:
    """What the fuzzer found against the run's cells (at most MAX_EXPLOITS sentences, largest gain first)."""
    out = []
    for row, e in exploited(results, reports)[:MAX_EXPLOITS]:
        deviators = e.agents_involved.deviators
        config = "" if _same_config(row, e.config) else f" (at {', '.join(f'{k}={v}' for k, v in e.config.items())})"
        out.append(Finding(
            f"The fuzzer found that {deviators} {e.strategy.family} deviator{'s' if deviators > 1 else ''} against "
            f"{row.mechanism}{config} with {row.population} gain {e.gain.mean:.3g} per agent and round "
            f"[{e.gain.ci95[0]:.3g}, {e.gain.ci95[1]:.3g}] on a fresh seed, {e.severity.label} severity: "
            f"{e.strategy.summary} (exploit {e.id}; `mecharena exploits show {e.id}`).", "exploits", "exploit"))
    return out


def findings(results: Results, reports: list | None = None) -> list[Finding]:
    """Every finding of the module docstring, and the exploit library's (``reports``, failure reports)
    against the run's cells; a scope sentence when the run holds nothing to compare."""
    found = robustness(results) + failures(results) + transparency(results) + collapse(results) \
        + exploits(results, reports or [])
    if not found:
        found = [Finding(f"{len(results.rows)} cells of {len(results.mechanisms)} mechanism(s) and "
                         f"{len(results.populations)} population(s): nothing to compare and no failure beyond its "
                         "interval; the headline metrics are below.", "overview", "scope")]
    return found
