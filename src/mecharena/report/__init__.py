"""Reports of a run directory: ``mecharena report DIR`` -> ``DIR/report.html`` and PNG figures.

The report reads ``DIR/results.duckdb`` (see :mod:`mecharena.runner.store`) and shows, for the
latest spec run there: the findings first (each a sentence with its interval and a link to its
evidence, and a one-page PNG summary), headline metrics by mechanism and population with 95%
intervals, mechanism x population heatmaps (a metric that is the same in every cell gets a note,
not a figure), learning curves (revenue, price, efficiency per round), collusion and dropout
dynamics (with the rules of the run's dropout and cartel agents that make those curves dip and
recover), robustness across seeds and populations, the worst cells for each failure criterion, and
each metric under every information policy (where a transparency paradox shows). It is a shell: it
only reads and draws.
"""

from mecharena.report.build import Report, build_report
from mecharena.report.data import Results, load_results

__all__ = ["Report", "Results", "build_report", "load_results"]
