"""Reports of a run directory: ``mecharena report DIR`` -> ``DIR/report.html`` and PNG figures.

The report reads ``DIR/results.duckdb`` (see :mod:`mecharena.runner.store`) and shows, for the
latest spec run there: headline metrics by mechanism and population with 95% intervals,
mechanism x population heatmaps, learning curves (revenue, price, efficiency per round),
collusion and dropout dynamics, robustness across seeds and populations, the worst cells for
each failure criterion, and each metric under every information policy (where a transparency
paradox shows). It is a shell: it only reads and draws.
"""

from mecharena.report.build import Report, build_report
from mecharena.report.data import Results, load_results

__all__ = ["Report", "Results", "build_report", "load_results"]
