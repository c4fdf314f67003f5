"""Load a run directory's results and pool them across seeds.

A *group* is one mechanism x population x rules (information policy, and enforcement when a
spec has several); its seeds are independent replications. The pooled estimate of a metric is
the mean of the seed means, and its 95% half-width combines the seeds' own half-widths as
independent standard errors: ``sqrt(sum h_s^2) / S``.

>>> pool([(1.0, 0.0, 2.0), (3.0, 2.0, 4.0)])  # two seeds, each mean +- 1
Estimate(mean=2.0, half=0.7071067811865476)
"""

import json
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np

from mecharena.core.types import FloatArray
from mecharena.runner.store import ResultsError, ResultStore

HEADLINE = ("efficiency", "revenue", "bidder_surplus", "participation", "ic_regret", "negative_payoff_rate",
            "collusion_gain", "gini")
NAN = float("nan")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Row:
    """One finished cell with its labels."""

    position: int
    key: str
    mechanism: str  # labels from the spec
    population: str
    information: str
    enforcement: str
    seed: int
    rules: str  # information, plus enforcement when the spec has several
    mechanism_id: str
    population_spec: str
    config: dict[str, Any]
    metrics: dict[str, tuple[float, float, float]]  # name -> (mean, lo, hi); NaN where undefined
    curves: dict[str, FloatArray]  # name -> (T,) per-round values; NaN where undefined
    warnings: tuple[str, ...]

    def metric(self, name: str) -> float:
        return self.metrics.get(name, (NAN, NAN, NAN))[0]

    @property
    def label(self) -> str:
        return f"{self.mechanism} | {self.population} | {self.rules} | seed {self.seed}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """A seed-pooled mean and its 95% half-width."""

    mean: float
    half: float


@dataclass(frozen=True, slots=True)
class Results:
    """Every finished cell of a run directory's latest spec, in spec order."""

    directory: Path
    name: str
    description: str
    spec_yaml: str
    planned: int  # cells in the plan, finished or not
    rows: tuple[Row, ...]
    mechanisms: tuple[str, ...]  # labels in spec order (those with results)
    populations: tuple[str, ...]
    information: tuple[str, ...]
    enforcement: tuple[str, ...]
    rules: tuple[str, ...]
    seeds: tuple[int, ...]
    metric_names: tuple[str, ...]
    curve_names: tuple[str, ...]
    versions: dict[str, dict[str, int]]

    def headline(self) -> tuple[str, ...]:
        """The headline metrics this run has, in a fixed order."""
        return tuple(m for m in HEADLINE if m in self.metric_names)

    def flat(self, metric: str) -> str | None:
        """Why a figure of ``metric`` would show nothing: it is undefined in every cell, or has the same mean in
        every cell up to rounding (``"0 in every cell"``; a bar chart of it draws floating-point noise on a
        1e-17 axis, a heatmap one solid colour). None where the cells differ.

        >>> import dataclasses
        >>> row = Row(0, "k", "sp", "truthful", "sealed", "none", 0, "sealed", "second_price", "truthful:3", {},
        ...           {"gain": (1e-17, 0.0, 2e-17)}, {}, ())
        >>> results = Results(Path("."), "run", "", "", 2, (row, dataclasses.replace(row, metrics={"gain": (0.0,) * 3})),
        ...                   ("sp",), ("truthful",), ("sealed",), ("none",), ("sealed",), (0,), ("gain",), (), {})
        >>> results.flat("gain"), results.flat("revenue")
        ('0 in every cell', 'undefined in every cell')
        """
        values = np.array([r.metric(metric) for r in self.rows])
        values = values[np.isfinite(values)]
        if values.size == 0:
            return "undefined in every cell"
        if values.max() - values.min() > 1e-9 * max(1.0, float(np.abs(values).max())):
            return None
        level = float(np.median(values))
        return f"{0.0 if abs(level) < 1e-9 else level:.4g} in every cell"


def _float(x: Any) -> float:
    return NAN if x is None else float(x)


def _ordered(values: Iterable[K]) -> tuple[K, ...]:
    return tuple(dict.fromkeys(values))


def load_results(directory: str | Path) -> Results:
    """Read ``directory/results.duckdb``.

    Raises:
        ResultsError: missing or unreadable directory or database, or no finished cell yet.
    """
    directory = Path(directory)
    with ResultStore.open(directory) as store:
        try:
            columns, raw = store.results(timings=False)
            meta = store.meta()
            planned = store.plan_size()
        except duckdb.Error as exc:
            raise ResultsError(f"cannot read the results in {store.path}: {exc}") from None
    if not raw:
        raise ResultsError(f"{directory / 'results.duckdb'} has no finished cells yet "
                           f"({planned} planned); run `mecharena run SPEC.yaml --out {directory}` to compute them")
    records = [dict(zip(columns, r, strict=True)) for r in raw]
    enforcement = _ordered(r["enforcement"] for r in records)
    rows = []
    versions: dict[str, dict[str, int]] = {"mechanism": {}, "agents": {}}
    try:
        for r in records:
            metrics = {name: (_float(m["mean"]), _float(m["ci95"][0]), _float(m["ci95"][1]))
                       for name, m in json.loads(r["metrics"]).items()}
            curves = {name: np.array([_float(x) for x in values], dtype=float)
                      for name, values in json.loads(r["curves"]).items()}
            for part, entries in json.loads(r["versions"]).items():
                if isinstance(entries, dict):
                    versions.setdefault(part, {}).update(entries)
            rules = r["information"] if len(enforcement) == 1 else f"{r['information']} / {r['enforcement']}"
            rows.append(Row(r["position"], r["key"], r["mechanism"], r["population"], r["information"],
                            r["enforcement"], r["seed"], rules, r["mechanism_id"], r["population_spec"],
                            json.loads(r["config"]), metrics, curves, tuple(json.loads(r["warnings"]))))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ResultsError(f"{directory / 'results.duckdb'} holds a malformed result row: {exc!r}") from None
    return Results(
        directory=directory, name=meta.get("spec_name", directory.name), description=_description(meta),
        spec_yaml=meta.get("spec_yaml", ""), planned=planned, rows=tuple(rows),
        mechanisms=_ordered(r.mechanism for r in rows), populations=_ordered(r.population for r in rows),
        information=_ordered(r.information for r in rows), enforcement=enforcement,
        rules=_ordered(r.rules for r in rows), seeds=tuple(sorted({r.seed for r in rows})),
        metric_names=_ordered(m for r in rows for m in r.metrics), curve_names=_ordered(c for r in rows for c in r.curves),
        versions=versions)


def _description(meta: dict[str, str]) -> str:
    try:
        return str(json.loads(meta.get("spec_json", "{}")).get("description", ""))
    except ValueError:
        return ""


def group(rows: Iterable[Row], key: Callable[[Row], K]) -> dict[K, list[Row]]:
    """Rows by ``key(row)``, keys in first-seen order."""
    groups: dict[K, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def pool(estimates: Sequence[tuple[float, float, float]]) -> Estimate:
    """Pool independent ``(mean, lo, hi)`` estimates (e.g. one per seed); NaN ones are left out."""
    finite = [(m, lo, hi) for m, lo, hi in estimates if math.isfinite(m)]
    if not finite:
        return Estimate(NAN, NAN)
    mean = sum(m for m, _, _ in finite) / len(finite)
    halves = [(hi - lo) / 2 if math.isfinite(hi - lo) else 0.0 for _, lo, hi in finite]
    return Estimate(mean, math.sqrt(sum(h * h for h in halves)) / len(finite))


def pooled(rows: Sequence[Row], metric: str) -> Estimate:
    """The seed-pooled estimate of ``metric`` over ``rows`` (normally one group's seeds)."""
    return pool([r.metrics[metric] for r in rows if metric in r.metrics])


def mean_curve(rows: Sequence[Row], curve: str) -> FloatArray:
    """The per-round mean of ``curve`` over ``rows`` (NaN where no row has a value)."""
    curves = [r.curves[curve] for r in rows if curve in r.curves]
    if not curves:
        return np.full(0, NAN)
    length = max(c.size for c in curves)
    stacked = np.full((len(curves), length), NAN)
    for i, c in enumerate(curves):
        stacked[i, :c.size] = c
    counts = np.isfinite(stacked).sum(axis=0)
    total = np.where(np.isfinite(stacked), stacked, 0.0).sum(axis=0)
    return np.where(counts > 0, total / np.maximum(counts, 1), NAN)
