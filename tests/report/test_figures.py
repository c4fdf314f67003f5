"""The report's curve panels: noise in the third decimal is not drawn as a swing across the panel."""

import numpy as np
from matplotlib.figure import Figure

from mecharena.report import figures


def limits(values: list[float], keep_span: bool) -> tuple[float, float]:
    ax = Figure().add_subplot()
    ax.plot(np.arange(len(values)), values)
    if keep_span:
        figures._keep_span(ax)
    return ax.get_ylim()


def test_a_flat_curve_keeps_a_span_of_a_tenth_of_its_level():
    low, high = limits([0.9978, 0.9955, 0.9979, 0.9964], keep_span=True)  # efficiency near 1, as in a small run
    assert high - low >= figures.MIN_SPAN * (low + high) / 2 - 1e-12
    assert low < 0.9955 and high > 0.9979  # every point still inside


def test_a_curve_that_moves_keeps_its_own_axis():
    values = [0.2, 0.5, 0.9, 0.4]
    assert limits(values, keep_span=True) == limits(values, keep_span=False)
