"""Deferred acceptance with a bonus for short lists: a planted preference-report flaw (mecharena plug-in).

Rule: a two-sided matching market laid out like the built-in ``deferred_acceptance``: seats
``0 .. proposers - 1`` propose, the others receive; every agent's value is a vector of its utilities for
each member of the other side, in seat order (``MarketSpec.partners`` = the larger side; columns beyond
the other side's size are ignored), and its bid is that vector as it reports it: it ranks the other side
by reported utility (ties: lower seat first) and finds acceptable exactly those it reports > 0; a report
with a non-finite or negative entry is invalid and leaves its agent unmatched. Proposers propose in
order down their lists and receivers hold the best proposal they have, as in deferred acceptance
(Gale and Shapley 1962), with one change meant to reward serious applicants: a proposer that declares
at least one and at most ``commit_list`` receivers acceptable is *committed*, and every receiver ranks a
committed proposer one place higher than its report does (it passes the proposer just above it in
the receiver's list unless that one is committed too; formally the receiver orders acceptable
proposers by ``2 * place - 3 * committed``, place 0 the best). Nobody becomes acceptable through the
bonus. An agent's value gain is its true utility for its partner (0 unmatched); no money changes hands.

Flaw: the length of a proposer's list is meant to say only whom it would accept, but it also buys
priority at every receiver. With ``commit_list = 0`` (``PLAIN``) no proposer is ever committed and the
rule is plain proposer-proposing deferred acceptance, where truth-telling is a dominant strategy for
every proposer (Dubins and Freedman 1981, *Amer. Math. Monthly* 88(7): 485-494; Roth 1982, *Math. of
OR* 7(4): 617-628): exploitability exactly 0 for a proposer.

Exploit: a proposer truncates its list to its top two (its true order kept). It gives up its third
choice, which it would get only when rejected by its top two, and in exchange wins every contest at its
top two against a rival it trails by one place. Truncating to its favourite alone trades more of the
fallback for the same priority and is worth less.

True exploitability (one deviator; everyone else reports truthfully; each agent's utilities for the
other side i.i.d. U[0, 1], so each agent's ranking is a uniformly random order, independent across
agents; one round; population ``truthful:6`` with ``proposers = 3``: 3 proposers, 3 receivers). The
deviator may play any report the ranking search expresses (any reordering of its true ranking,
truncated to its top ``keep`` for keep in 0..3) as a function of its own ranking, and

    true exploitability = E[ max_report E[u | own utilities, report] ] - E[ E[u | own utilities, truthful] ]

per round, u its utility for its partner (0 unmatched). The matching depends on the rankings alone,
and given its own ranking an agent's utility for its k-th choice has mean (4 - k)/4 (the k-th highest
of 3 uniforms), so the expectation is a finite sum: :func:`exploitability` enumerates all 6^6 profiles
of rankings and the deviator's 24 reports and returns an exact fraction:

==========  ============  ============  =========================================
deviator    config        exact         best report (the same at every ranking)
==========  ============  ============  =========================================
proposer    default       7/96          true order, top 2 kept: 0.072917
proposer    PLAIN         0             the truthful report
receiver    default       1/64          true order, top 2 kept: 0.015625
receiver    PLAIN         1/64          true order, top 2 kept: 0.015625
==========  ============  ============  =========================================

Truthful, the first proposer's expected utility is 61/96 (0.635417); truncating to its top two raises
it to 17/24 (0.708333), to its favourite alone to 31/48 (0.645833), also above the truth. The receiver's
row is the familiar gain of a receiver truncating its list under deferred acceptance (Roth 1982; Roth
and Sotomayor 1990, *Two-Sided Matching*, ch. 4): truthful proposers list all three receivers, so none
is committed and the flaw leaves a receiver's options unchanged. The matching under PLAIN is exactly
the built-in ``deferred_acceptance``'s.

Load it with ``mecharena --plugin examples/plugins/planted/matching/committed_priority.py check
committed_priority``.
"""

import itertools
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.core.errors import ConfigError
from mecharena.mechanisms import MarketSpec, Mechanism, MechanismConfig
from mecharena.mechanisms.matching import defer_one_at_a_time, propose, reported, settle, split

MAX_SIDE = 5


class CommittedPriorityConfig(MechanismConfig):
    """Config of deferred acceptance with a bonus for short lists."""

    proposers: int = Field(3, ge=1, le=MAX_SIDE, description="the first seats propose; the others receive")
    commit_list: int = Field(2, ge=0, le=MAX_SIDE, description=(
        "a proposer declaring 1 to commit_list receivers acceptable moves up one place in every receiver's "
        "ranking (0: never; plain deferred acceptance)"))


PLAIN = {"commit_list": 0}  # plain proposer-proposing deferred acceptance


def market_spec(config: CommittedPriorityConfig, n_agents: int) -> MarketSpec:
    receivers = n_agents - config.proposers
    if not 1 <= receivers <= MAX_SIDE:
        raise ConfigError(f"committed_priority with proposers={config.proposers} needs 1 to {MAX_SIDE} receivers: "
                          f"between {config.proposers + 1} and {config.proposers + MAX_SIDE} agents, got {n_agents}")
    return MarketSpec(partners=max(config.proposers, receivers),
                      action_rule="each reported utility must be finite and >= 0 (> 0: acceptable)")


def properties(config: CommittedPriorityConfig) -> frozenset[str]:
    return frozenset({"ir", "budget_balance"})


def _scores(config: CommittedPriorityConfig, asks: Any, answers: Any) -> Any:
    """(B, R, P) each receiver's score of each proposer, higher preferred, > 0 exactly where acceptable."""
    p = asks.shape[1]
    count = (asks > 0).sum(axis=2)
    committed = (count >= 1) & (count <= config.commit_list)  # (B, P)
    mine, rival = answers[:, :, :, None], answers[:, :, None, :]  # (B, R, P, 1), (B, R, 1, P)
    seat = np.arange(p)
    ahead = (rival > mine) | ((rival == mine) & (seat[None, :] < seat[:, None]))  # rival k ahead of proposer i
    key = 2 * ahead.sum(axis=3) - 3 * committed[:, None, :]
    return np.where(answers > 0, 3.0 * p + 3 - key, 0.0)


def _defer(config: CommittedPriorityConfig, bids: Any) -> tuple[Any, Any, Any]:
    """(B, P) each proposer's receiver (-1: none), (B, N, M) the reports as played and (B, N) their validity: the
    built-in deferred acceptance's proposals, receivers scoring proposers by :func:`_scores`."""
    played, valid = reported(bids)
    asks, answers = split(config, played)
    return propose(asks, _scores(config, asks, answers)), played, valid


def kernel(config: CommittedPriorityConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    partner, played, valid = _defer(config, bids)
    return settle(config, values, played, partner, valid)


def reference(config: CommittedPriorityConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python: the built-in's one proposal at a time, receivers ranking by ``2 * place - 3 *
    committed``."""
    p = config.proposers

    def prefers(report: list, prefs: list, j: int, i: int, k: int) -> bool:
        likes = report[p + j]
        places = sorted(range(p), key=lambda x: (-likes[x], x))

        def key(x: int) -> int:  # receiver j's key for proposer x: lower is preferred
            return 2 * places.index(x) - 3 * (1 <= len(prefs[x]) <= config.commit_list)

        return key(i) < key(k)

    return defer_one_at_a_time(p, values, bids, prefers)


MARKET_SIZE = 6  # three proposers and three receivers, as the docstring's table

MECHANISM = Mechanism(
    name="committed_priority", version=1,
    summary="deferred acceptance; a proposer listing at most commit_list receivers moves up a place at each",
    config_model=CommittedPriorityConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=market_spec,
    examples=({}, PLAIN, {"proposers": 2}, {"proposers": 1, "commit_list": 1}, {"proposers": 4, "commit_list": 3}),
    doc=__doc__,
)


# The exact oracle: every profile of rankings, every report of the deviator.

@cache
def reports(m: int) -> tuple[tuple[int, int], ...]:
    """Every (order, keep) a ranking report can name with m members on the other side: order indexes
    ``itertools.permutations(range(m))`` (0: the true order), keep in 0..m; (0, m) is truthful."""
    return tuple((order, keep) for order in range(len(_orders(m))) for keep in range(m + 1))


@cache
def _orders(m: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(m)))


def report_bids(ranking: Any, m: int, order: int, keep: int) -> Any:
    """(..., m) the reported utilities of an agent whose members, best first, are ``ranking`` (..., m): its true
    ranks listed in the order ``_orders(m)[order]``, the first ``keep`` of them scored m, m - 1, ..., the rest 0."""
    listed = np.asarray(ranking)[..., list(_orders(m)[order])]
    out = np.zeros(listed.shape)
    scores = np.where(np.arange(m) < keep, m - np.arange(m), 0.0)  # by place in the reported list
    np.put_along_axis(out, listed, np.broadcast_to(scores, listed.shape), axis=-1)
    return out


def _payoffs(seat: int, config: Any = None) -> tuple[Any, int, int]:
    """(rankings, reports) integer sums over every profile of the others' rankings of (m + 1 - k) for the
    deviator at ``seat`` matched to its true k-th choice (0 unmatched), the number of profiles summed, and m."""
    config = MECHANISM.config(config)
    if config.proposers != 3 or seat not in (0, 3):
        raise ConfigError("the exact oracle covers 3 proposers and 3 receivers, the first of either side deviating")
    return _table(seat, config.commit_list), 6 ** 5, 3


@cache
def _table(seat: int, commit_list: int) -> Any:
    config = MECHANISM.config({"proposers": 3, "commit_list": commit_list})
    n, m = 6, 3
    perms = np.array(_orders(m))  # (6, 3) every ranking, members best first
    truthful = report_bids(perms, m, 0, m)  # (6, 3) each ranking's true report
    others = np.array(list(itertools.product(range(len(perms)), repeat=n - 1)))  # (6^5, 5)
    mine = np.array([[report_bids(ranking, m, order, keep) for order, keep in reports(m)] for ranking in perms])
    cases = mine.reshape(-1, m)  # (6 * 24, 3) every (ranking, report)
    bids = np.empty((len(cases), len(others), n, m))
    bids[:, :, [i for i in range(n) if i != seat]] = truthful[others][None]
    bids[:, :, seat] = cases[:, None, :]
    partner, _, _ = _defer(config, bids.reshape(-1, n, m))
    partner = partner.reshape(len(cases), len(others), 3)
    if seat < 3:
        got = partner[:, :, seat]
    else:
        got = np.where((partner == seat - 3).any(axis=2), (partner == seat - 3).argmax(axis=2), -1)
    place = np.argsort(perms, axis=1).repeat(len(reports(m)), axis=0)  # (cases, 3) true place of each member
    utility = np.where(got >= 0, m - np.take_along_axis(place, np.maximum(got, 0), axis=1), 0)
    return utility.sum(axis=1).reshape(len(perms), len(reports(m)))


def exploitability(seat: int = 0, config: Any = None) -> Fraction:
    """The exact true exploitability (module docstring) of the deviator at ``seat`` (0: the first proposer,
    3: the first receiver): the best report per ranking, exhaustive over all profiles of rankings."""
    table, profiles, m = _payoffs(seat, config)
    truthful = reports(m).index((0, m))
    gain = int((table.max(axis=1) - table[:, truthful]).sum())
    return Fraction(gain, len(table) * profiles * (m + 1))


def expected_utility(seat: int = 0, config: Any = None) -> dict[tuple[int, int], Fraction]:
    """Each report's exact expected utility (averaged over the deviator's rankings too)."""
    table, profiles, m = _payoffs(seat, config)
    return {rep: Fraction(int(table[:, s].sum()), len(table) * profiles * (m + 1)) for s, rep in enumerate(reports(m))}


def best_reports(seat: int = 0, config: Any = None) -> list[tuple[int, int]]:
    """The deviator's best (order, keep) for each of its 6 rankings (``_orders(3)``), the first best on ties
    (the truthful report is listed first, so a ranking with nothing to gain tells the truth)."""
    table, _, _ = _payoffs(seat, config)
    m = 3
    first = [reports(m).index((0, m))] + [s for s in range(len(reports(m))) if reports(m)[s] != (0, m)]
    return [reports(m)[first[int(np.argmax(row[first]))]] for row in table]


def true_exploitability(n: int = MARKET_SIZE, config: Any = None, seat: int = 0) -> float:
    """:func:`exploitability` as a float (n must be 6: three a side)."""
    if n != MARKET_SIZE:
        raise ConfigError(f"the exact oracle covers n = {MARKET_SIZE}, got {n}")
    return float(exploitability(seat, config))
