"""Ranking misreport: a matching market's agent reports its preference list reordered and truncated.

In a market where each agent reports utilities for the members of the other side (``MarketSpec.partners``,
with a ``proposers`` config field splitting the seats: deferred acceptance, or a plug-in with the same
layout), only the ranking and who is acceptable matter. With
``m`` members on the other side, the agent ranks them by its true utility (ties: lower seat first),
lists them in the order ``permutations(range(m))[order]`` of those true ranks (``order`` 0: the true
order; 1: the last two swapped; ...), and declares acceptable only the first ``keep`` of that list
that it truly finds acceptable (``keep`` >= m: all of them; 0: nobody, staying unmatched). ``order``
0 with every member kept reports exactly the true preferences. Every strategy a ranking market allows
short of declaring an unacceptable partner acceptable is one (order, keep): the discovery engine
enumerates them (:func:`mecharena.fuzz.discover.report_strategies`).
"""

import itertools
import math
from functools import cache
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType, Draws, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray
from mecharena.mechanisms.matching import MAX_SIDE, other_side

VERSION = 1


class RankReportParams(StrictModel):
    order: int = Field(0, ge=0, le=math.factorial(MAX_SIDE) - 1,
                       description="which reordering of the true ranks it lists (0: the true order)")
    keep: int = Field(MAX_SIDE, ge=0, le=MAX_SIDE, description="how many of its list it declares acceptable")


@cache
def orders(m: int) -> tuple[tuple[int, ...], ...]:
    """Every order of m true ranks, index 0 the identity."""
    return tuple(itertools.permutations(range(m)))


def sides(context: MarketContext) -> IntArray:
    """(S,) the number of members on the other side of each of the group's seats."""
    return other_side(context.config, context.n_agents, np.arange(context.n_agents)[context.seats])


def require_ranking_market(name: str, spec: Any, config: Any, who: str = "rank_report") -> None:
    """Raise :class:`ConfigError` unless the market takes preference reports: values and bids per member of the
    other side (``spec.partners``) and a ``proposers`` config field splitting the seats into two sides."""
    if not spec.partners or not isinstance(getattr(config, "proposers", None), int):
        raise ConfigError(f"{who} needs a matching market (utilities for each member of the other side and a "
                          f"proposers field), got {name}")


def init(context: MarketContext, params: RankReportParams, seats: int, draws: Draws) -> None:
    require_ranking_market(context.mechanism.name, context.spec, context.config)
    smallest = int(sides(context).min())
    if params.order >= math.factorial(smallest):
        raise ConfigError(f"rank_report: order must be in [0, {math.factorial(smallest) - 1}] (the orders of "
                          f"{smallest} members on the other side), got {params.order}")


def report(values: FloatArray, m: int, order: int, keep: int) -> FloatArray:
    """(B, M) the report of one seat with true utilities ``values`` (B, M), ``m`` members on the other side.

    >>> report(np.array([[0.2, 0.9, 0.5]]), 3, 1, 3).tolist()  # members 1, 2, 0 by preference, listed 1, 0, 2
    [[2.0, 3.0, 1.0]]
    >>> report(np.array([[0.2, 0.9, 0.5]]), 3, 0, 1).tolist()  # only the favourite acceptable
    [[0.0, 3.0, 0.0]]
    """
    ranking = np.argsort(-values[:, :m], axis=1, kind="stable")  # (B, m) members by true preference
    listed = ranking[:, list(orders(m)[order])]  # member at each position of the reported list
    position = np.argsort(listed, axis=1)  # (B, m) each member's position in the list
    truly = values[:, :m] > 0
    out = np.zeros_like(values, dtype=float)
    out[:, :m] = np.where((position < keep) & truly, m - position, 0.0)
    return out


def act(context: MarketContext, params: RankReportParams, state: None, values: FloatArray, draws: Draws
        ) -> FloatArray:
    out = np.zeros_like(values, dtype=float)
    for j, m in enumerate(sides(context)):
        out[:, j] = report(values[:, j], int(m), params.order, params.keep)
    return out


AGENT = AgentType(name="rank_report", version=VERSION,
                  summary="reports its preference ranking reordered and truncated (matching markets)",
                  act=act, init=init, params_model=RankReportParams)
