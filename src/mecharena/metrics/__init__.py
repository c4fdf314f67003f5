"""Outcome metrics and confidence intervals."""

from mecharena.metrics.summary import mean_ci, ratio_ci, summarize

__all__ = ["mean_ci", "ratio_ci", "summarize"]
