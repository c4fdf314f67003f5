"""The report's figures: matplotlib ``Figure`` objects rendered with the Agg canvas to PNG.

No pyplot and no global backend switch: each function builds its own figure from
:class:`~mecharena.report.data.Results` and returns it, :func:`save` writes it.
"""

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mecharena.report.data import Results, group, mean_curve, pooled

LINESTYLES = ("-", "--", ":", "-.")
LOWER_IS_BETTER = {"ic_regret", "negative_payoff_rate", "collusion_gain", "gini", "deficit_rate", "top_share",
                   "volatility", "convergence", "collapse", "price_elevation", "sybil_gain"}
DPI = 100
MIN_SPAN = 0.1  # a curve panel's y-axis spans at least this share of the curves' level


def save(figure: Figure, path: Path) -> Path:
    """Render ``figure`` to the PNG file ``path`` with the Agg canvas."""
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def bid_function(values: list[float], bids: list[float], title: str) -> Figure:
    """A found bid function against truthful bidding (abstaining drawn as bids of 0)."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.subplots()
    axes.plot(values, values, color="0.6", linestyle="--", label="truthful (bid = value)")
    axes.step(values, bids, where="mid", color="tab:red", linewidth=2, label="found best response")
    axes.set_xlabel("value")
    axes.set_ylabel("bid (0: abstains)")
    axes.set_title(title, fontsize=11)
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    return figure


def exploit_gains(labels: list[str], gains: list[tuple[float, float, float]]) -> Figure:
    """The fuzzer's exploits: each one's fresh-seed gain per agent and round with its 95% interval."""
    figure = Figure(figsize=(8.0, 1.2 + 0.45 * len(labels)), layout="constrained")
    axes = figure.subplots()
    mean = np.array([g[0] for g in gains])
    spread = np.array([[g[0] - g[1] for g in gains], [g[2] - g[0] for g in gains]])
    rows = np.arange(len(labels))[::-1]
    axes.barh(rows, mean, xerr=spread, color="tab:red", alpha=0.8, capsize=3)
    axes.set_yticks(rows, labels, fontsize=9)
    axes.axvline(0, color="0.3", linewidth=0.8)
    axes.set_xlabel("deviators' gain per agent and round (fresh seed, 95% interval)")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _grid(count: int, columns: int = 3, width: float = 5.0, height: float = 3.6,
          sharey: bool = False) -> tuple[Figure, list]:
    cols = min(count, columns)
    rows = math.ceil(count / cols)
    figure = Figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False, sharey=sharey).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, axes[:count]


def _colors(results: Results) -> dict[str, tuple]:
    palette = [tuple(c) for c in colormaps["tab10"].colors]
    return {p: palette[i % len(palette)] for i, p in enumerate(results.populations)}


def metric_bars(results: Results, metric: str) -> Figure:
    """``metric`` by mechanism (x) and population (colour), one panel per information policy,
    seed-pooled means with 95% intervals."""
    figure, axes = _grid(len(results.rules), sharey=True)
    colors = _colors(results)
    groups = group(results.rows, lambda r: (r.rules, r.mechanism, r.population))
    width = 0.8 / max(len(results.populations), 1)
    for ax, rules in zip(axes, results.rules, strict=True):
        for j, population in enumerate(results.populations):
            xs, means, halves = [], [], []
            for i, mechanism in enumerate(results.mechanisms):
                rows = groups.get((rules, mechanism, population))
                if rows:
                    estimate = pooled(rows, metric)
                    xs.append(i - 0.4 + width * (j + 0.5))
                    means.append(estimate.mean)
                    halves.append(0.0 if math.isnan(estimate.half) else estimate.half)
            if xs:
                ax.bar(xs, means, width=width * 0.9, color=colors[population], label=population,
                       yerr=halves, capsize=3, error_kw={"elinewidth": 1})
        ax.set_xticks(range(len(results.mechanisms)), results.mechanisms, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"information: {rules}", fontsize=10)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    _legend(figure, axes)
    figure.suptitle(f"{metric} by mechanism and population (mean over seeds, 95% CI)")
    return figure


def heatmap(results: Results, metric: str) -> Figure:
    """Mechanism x population matrix of seed-pooled ``metric``, one panel per information policy,
    one colour scale for all panels."""
    groups = group(results.rows, lambda r: (r.rules, r.mechanism, r.population))
    tables = []
    for rules in results.rules:
        table = np.full((len(results.mechanisms), len(results.populations)), np.nan)
        for i, mechanism in enumerate(results.mechanisms):
            for j, population in enumerate(results.populations):
                rows = groups.get((rules, mechanism, population))
                if rows:
                    table[i, j] = pooled(rows, metric).mean
        tables.append(table)
    finite = np.concatenate([t[np.isfinite(t)] for t in tables]) if tables else np.zeros(0)
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    cmap = "magma_r" if metric in LOWER_IS_BETTER else "viridis"
    figure, axes = _grid(len(results.rules), width=1.6 + 1.3 * len(results.populations),
                         height=1.2 + 0.55 * len(results.mechanisms))
    image = None
    for ax, rules, table in zip(axes, results.rules, tables, strict=True):
        image = ax.imshow(np.ma.masked_invalid(table), cmap=cmap, vmin=low, vmax=high, aspect="auto")
        for (i, j), value in np.ndenumerate(table):
            if np.isfinite(value):
                shade = (value - low) / (high - low)
                dark = shade > 0.5 if cmap == "magma_r" else shade < 0.5
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(results.populations)), results.populations, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(results.mechanisms)), results.mechanisms, fontsize=8)
        ax.set_title(f"information: {rules}", fontsize=10)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label=metric)
    figure.suptitle(f"{metric}: mechanism x population (mean over seeds)")
    return figure


def curves(results: Results, curve: str, title: str) -> Figure:
    """Per-round ``curve`` (mean over seeds), one panel per mechanism, a line per population
    (colour) and information policy (line style)."""
    figure, axes = _grid(len(results.mechanisms))
    colors = _colors(results)
    groups = group(results.rows, lambda r: (r.mechanism, r.population, r.rules))
    for ax, mechanism in zip(axes, results.mechanisms, strict=True):
        for population in results.populations:
            for k, rules in enumerate(results.rules):
                rows = groups.get((mechanism, population, rules))
                if not rows:
                    continue
                values = mean_curve(rows, curve)
                if values.size and np.isfinite(values).any():
                    label = population if len(results.rules) == 1 else f"{population}, {rules}"
                    ax.plot(np.arange(1, values.size + 1), values, color=colors[population],
                            linestyle=LINESTYLES[k % len(LINESTYLES)], linewidth=1.4, label=label)
        ax.set_title(mechanism, fontsize=10)
        ax.set_xlabel("round", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            _keep_span(ax)
        else:
            ax.text(0.5, 0.5, "no values (undefined in these markets)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="grey")
    axes[0].set_ylabel(curve)
    _legend(figure, axes)
    figure.suptitle(title)
    return figure


def _keep_span(ax, share: float = MIN_SPAN) -> None:
    """Widen the y-axis to at least ``share`` of the curves' level around their middle, so that
    round-to-round noise in the third decimal is not drawn as a swing across the panel."""
    low, high = ax.get_ylim()
    middle = (low + high) / 2
    need = share * abs(middle)
    if high - low < need:
        ax.set_ylim(middle - need / 2, middle + need / 2)


def _legend(figure: Figure, axes: list) -> None:
    """One legend for the figure, below the panels (per-panel "best" placement is slow)."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize=8,
                      ncols=min(len(entries), 6))


def robustness(results: Results) -> Figure:
    """Each headline metric per mechanism: every cell (dots, coloured by population, one per
    seed and information policy) and the range of the population means (bar)."""
    metrics = results.headline()
    figure, axes = _grid(len(metrics), columns=4, width=4.2, height=3.4)
    colors = _colors(results)
    rng = np.random.default_rng(0)  # jitter only
    by_mechanism = group(results.rows, lambda r: r.mechanism)
    for ax, metric in zip(axes, metrics, strict=True):
        labelled: set[str] = set()
        for i, mechanism in enumerate(results.mechanisms):
            rows = by_mechanism.get(mechanism, [])
            by_population = group(rows, lambda r: (r.population, r.rules))
            means = [pooled(g, metric).mean for g in by_population.values()]
            means = [m for m in means if math.isfinite(m)]
            if means:
                ax.vlines(i, min(means), max(means), color="black", linewidth=5, alpha=0.25)
            for population in results.populations:
                values = [r.metric(metric) for r in rows if r.population == population]
                values = [v for v in values if math.isfinite(v)]
                if values:
                    ax.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=10, color=colors[population],
                               label=None if population in labelled else population, alpha=0.8)
                    labelled.add(population)
        ax.set_xticks(range(len(results.mechanisms)), results.mechanisms, rotation=35, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    _legend(figure, axes)
    figure.suptitle("Robustness: every cell (dots: seeds x populations x information) and the range of "
                    "population means (bar)")
    return figure


def reserve_sweeps(results: Results) -> dict[str, Figure]:
    """For every mechanism run at several reserve prices: entry, participation, revenue and efficiency against the
    reserve (seed-pooled mean with 95% CI), a line per population (colour) and information policy
    (style). This is where a dropout cascade shows. Returns ``{mechanism id: figure}``."""
    by_mechanism = group(results.rows, lambda r: r.mechanism_id)
    colors = _colors(results)
    out = {}
    for mechanism_id, rows in by_mechanism.items():
        reserves = sorted({float(r.config.get("reserve_price", 0.0)) for r in rows})
        if len(reserves) < 2:
            continue
        metrics = [m for m in ("entry", "participation", "revenue", "efficiency") if m in results.metric_names]
        figure, axes = _grid(len(metrics))
        lines = group(rows, lambda r: (r.population, r.rules))
        for ax, metric in zip(axes, metrics, strict=False):
            for k, rules in enumerate(results.rules):
                for population in results.populations:
                    members = lines.get((population, rules))
                    if not members:
                        continue
                    at = group(members, lambda r: float(r.config.get("reserve_price", 0.0)))
                    xs = sorted(at)
                    if len(xs) < 2:
                        continue
                    estimates = [pooled(at[x], metric) for x in xs]
                    label = population if len(results.rules) == 1 else f"{population}, {rules}"
                    ax.errorbar(xs, [e.mean for e in estimates], yerr=[e.half for e in estimates], capsize=3,
                                color=colors[population], linestyle=LINESTYLES[k % len(LINESTYLES)], marker="o",
                                markersize=3, linewidth=1.3, label=label)
            ax.set_title(metric, fontsize=10)
            ax.set_xlabel("reserve price", fontsize=8)
            ax.grid(alpha=0.3)
        _legend(figure, axes)
        figure.suptitle(f"{mechanism_id}: outcomes against the reserve price")
        out[mechanism_id] = figure
    return out


def summary_page(results: Results, sentences: list[str], metric: str = "efficiency") -> Figure:
    """One page for papers and slides: the findings in words beside each mechanism's worst case of
    ``metric`` over the run's rules, per population (bars: pooled over seeds, with 95% intervals)."""
    figure = Figure(figsize=(14, 8), layout="constrained")
    text_ax, bars = figure.subplots(1, 2, width_ratios=(1.1, 1))
    text_ax.axis("off")
    wrapped = ["\n".join(textwrap.wrap(f"• {s}", 78)) for s in sentences]
    text_ax.text(0, 1, f"{results.name}: findings", va="top", ha="left", fontsize=14, weight="bold",
                 transform=text_ax.transAxes)
    text_ax.text(0, 0.94, "\n\n".join(wrapped), va="top", ha="left", fontsize=9.5, transform=text_ax.transAxes)
    if metric not in results.metric_names:
        bars.axis("off")
        return figure
    colors = _colors(results)
    height = 0.8 / max(len(results.populations), 1)
    for j, population in enumerate(results.populations):
        for i, mechanism in enumerate(results.mechanisms):
            rows = [r for r in results.rows if r.mechanism == mechanism and r.population == population]
            cases = [pooled(g, metric) for g in group(rows, lambda r: r.rules).values()]
            cases = [c for c in cases if math.isfinite(c.mean)]
            if cases:
                worst = min(cases, key=lambda c: c.mean)
                bars.barh(i + j * height, worst.mean, height, xerr=worst.half if math.isfinite(worst.half) else 0,
                          color=colors[population], label=population if i == 0 else None)
    bars.set_yticks([i + 0.4 - height / 2 for i in range(len(results.mechanisms))], results.mechanisms, fontsize=9)
    bars.invert_yaxis()
    bars.set_xlabel(f"{metric}, worst case over information and enforcement (95% CI)")
    bars.grid(axis="x", alpha=0.3)
    bars.legend(fontsize=8, loc="lower right")
    return figure
