"""Two-sided matching by deferred acceptance (Gale and Shapley 1962), proposers' side proposing.

Seats ``0 .. proposers - 1`` propose; the other seats receive. Every agent's value is a vector of
its utilities for each member of the other side, in seat order (``MarketSpec.partners`` = M =
the larger side; columns beyond the other side's size are ignored), and its bid is the same
vector as it reports it: it ranks the other side by reported utility (ties: lower seat first)
and finds acceptable exactly those it reports > 0. A report with a non-finite or negative entry
is invalid: that agent is left unmatched. No money changes hands.

Rule (batched, simultaneous proposals; the result is the same as one proposal at a time): every
free proposer proposes to the most preferred receiver it has not yet proposed to among those it
finds acceptable; each receiver holds the best acceptable proposal it has (new or held) and
rejects the rest; until no free proposer has anyone left to propose to. An agent's value gain is
its true utility for its partner (0 unmatched); welfare sums them, and max_welfare is the largest
sum of any matching (by enumeration: at most 5 agents a side).

Known results (Gale and Shapley 1962, *Amer. Math. Monthly* 69(1); Roth 1982, *Math. of OR* 7(4);
Dubins and Freedman 1981, *Amer. Math. Monthly* 88(7); Roth and Sotomayor 1990, ch. 2 and 4):

* the matching is stable for the reported preferences: no pair of a proposer and a receiver who
  both prefer each other to their partners (or to being alone), and nobody matched to a partner
  it finds unacceptable (so truthful agents are IR);
* it is the proposer-optimal stable matching, and reporting truthfully is a dominant strategy for
  every proposer (no proposer, alone or in a coalition, gains by misreporting);
* no stable mechanism is strategy-proof for both sides: a receiver can gain by truncating its
  list (declaring acceptable only partners above some threshold), e.g. in the classic
  three-by-three cycle of preferences.
"""

import itertools
from functools import cache
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.core.errors import ConfigError
from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome

VERSION = 2  # 2: each agent's utilities for the other side are its own draws (they were sorted like marginal values)
MAX_SIDE = 5


class MatchingConfig(MechanismConfig):
    """Config of a deferred-acceptance matching market."""

    proposers: int = Field(3, ge=1, le=MAX_SIDE, description="the first seats propose; the others receive")


def market_spec(config: MatchingConfig, n_agents: int) -> MarketSpec:
    receivers = n_agents - config.proposers
    if not 1 <= receivers <= MAX_SIDE:
        raise ConfigError(f"deferred_acceptance with proposers={config.proposers} needs 1 to {MAX_SIDE} receivers: "
                          f"between {config.proposers + 1} and {config.proposers + MAX_SIDE} agents, got {n_agents}")
    return MarketSpec(partners=max(config.proposers, receivers),
                      action_rule="each reported utility must be finite and >= 0 (> 0: acceptable)")


def other_side(config: MatchingConfig, n_agents: int, seats: Any) -> Any:
    """The number of members on the other side of each of ``seats`` (an int or an array of seat indices).

    >>> other_side(MatchingConfig(proposers=2), 5, np.arange(5)).tolist()
    [3, 3, 2, 2, 2]
    """
    return np.where(np.asarray(seats) < config.proposers, n_agents - config.proposers, config.proposers)


def properties(config: MatchingConfig) -> frozenset[str]:
    return frozenset({"ir", "budget_balance"})


def split(config: MatchingConfig, x: Any) -> tuple[Any, Any]:
    """(B, P, R) proposers' columns for the receivers and (B, R, P) receivers' columns for the proposers."""
    p = config.proposers
    r = x.shape[1] - p
    return x[:, :p, :r], x[:, p:, :p]


def reported(bids: Any) -> tuple[Any, Any]:
    """(B, N, M) the reports as played (an invalid agent's all 0: it finds nobody acceptable) and (B, N) which
    reports are valid (every entry finite and >= 0)."""
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(bids) & (bids >= 0)).all(axis=2)
    return np.where(valid[:, :, None], bids, 0.0), valid


def propose(asks: Any, scores: Any) -> Any:
    """(B, P) each proposer's receiver (-1: none), by simultaneous proposals.

    Args:
        asks: (B, P, R) each proposer's reported utility for each receiver; it proposes down its list in that
            order (ties: lower seat first) to those it reports > 0.
        scores: (B, R, P) each receiver's score of each proposer: it holds the highest (ties: lower seat) and
            accepts only scores > 0.
    """
    b, p, r = asks.shape
    order = np.argsort(-asks, axis=2, kind="stable")  # each proposer's receivers, best first
    rows = np.arange(b)[:, None]
    seats = np.arange(p)[None, :]
    pointer = np.zeros((b, p), dtype=int)
    held = np.full((b, r), -1)  # the proposer each receiver holds
    for _ in range(p * r):
        matched = (held[:, :, None] == np.arange(p)[None, None, :]).any(axis=1)
        target = np.take_along_axis(order, np.minimum(pointer, r - 1)[:, :, None], axis=2)[:, :, 0]
        proposing = ~matched & (pointer < r) & (np.take_along_axis(asks, target[:, :, None], axis=2)[:, :, 0] > 0)
        if not proposing.any():
            break
        pointer = pointer + proposing
        # each receiver's options: what it holds and the proposals it gets, by its scores
        score = np.full((b, p, r), -np.inf)
        score[rows, seats, target] = np.where(proposing, scores[rows, target, seats], -np.inf)
        has = held >= 0
        score[np.nonzero(has)[0], held[has], np.nonzero(has)[1]] = scores[has, held[has]]
        best = score.argmax(axis=1)  # ties: the lower seat
        keep = np.take_along_axis(score, best[:, None, :], axis=1)[:, 0, :] > 0
        held = np.where(keep, best, -1)
    partner = np.full((b, p), -1)
    has = held >= 0
    partner[np.nonzero(has)[0], held[has]] = np.nonzero(has)[1]
    return partner


@cache
def _matchings(p: int, r: int) -> np.ndarray:
    """Every matching of p proposers and r receivers as (count, p) receiver indices (-1: unmatched)."""
    rows = [m for m in itertools.product(range(-1, r), repeat=p) if len({x for x in m if x >= 0}) == sum(x >= 0 for x in m)]
    return np.array(rows, dtype=int)


def _pair_values(config: MatchingConfig, values: Any) -> Any:
    """(B, P, R) the welfare of matching proposer i with receiver j: both true utilities."""
    mine, theirs = split(config, values)
    return mine + np.swapaxes(theirs, 1, 2)


def max_welfare(config: MatchingConfig, values: Any) -> Any:
    """(B,) the largest total true utility of any matching."""
    pairs = _pair_values(config, values)
    b, p, r = pairs.shape
    options = _matchings(p, r)  # (C, P)
    gathered = np.take_along_axis(pairs, np.maximum(options, 0).T[None, :, :].repeat(b, axis=0), axis=2)  # (B, P, C)
    return np.where(options.T[None] >= 0, gathered, 0.0).sum(axis=1).max(axis=1)


def settle(config: MatchingConfig, values: Any, reports: Any, partner: Any, valid: Any):
    """The outcome of ``partner`` (B, P): each matched pair gains its true utilities; nobody pays. An agent takes
    part when its valid report finds someone acceptable."""
    b, n = values.shape[:2]
    p = config.proposers
    won, gains = np.zeros((b, n)), np.zeros((b, n))
    market, proposer = np.nonzero(partner >= 0)
    receiver = p + partner[market, proposer]
    won[market, proposer] = won[market, receiver] = 1.0
    gains[market, proposer] = values[market, proposer, receiver - p]
    gains[market, receiver] = values[market, receiver, proposer]
    asks, answers = split(config, reports)
    acceptable = np.concatenate([(asks > 0).any(axis=2), (answers > 0).any(axis=2)], axis=1)
    zeros = np.zeros((b, n))
    return finish(won, zeros, zeros.copy(), gains, valid, valid & acceptable, max_welfare(config, values))


def kernel(config: MatchingConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    reports, valid = reported(bids)
    asks, answers = split(config, reports)  # receivers score proposers by their reported utilities
    return settle(config, values, reports, propose(asks, answers), valid)


def reference(config: MatchingConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python: one proposal at a time, from a queue of free proposers."""
    p = config.proposers

    def prefers(report: list, prefs: list, j: int, i: int, k: int) -> bool:
        likes = report[p + j]  # the receiver's reported utilities: the higher, then the lower seat
        return (likes[i], -i) > (likes[k], -k)

    return defer_one_at_a_time(p, values, bids, prefers)


def defer_one_at_a_time(p: int, values: Any, bids: Any, prefers: Any) -> dict:
    """Deferred acceptance for one market in plain Python (a test oracle): valid reports, each proposer's list
    (reported utility > 0, best first, ties the lower seat), one proposal at a time from a queue of free
    proposers, a receiver keeping the proposer it ``prefers(report, prefs, j, i, k)`` (receiver ``j``: proposer
    ``i`` over ``k``) among those it finds acceptable; the outcome with the best matching by brute force."""
    n = len(values)
    r = n - p
    valid = [all(is_valid_number(x) for x in row) for row in bids]
    report = [row if ok else [0.0] * len(row) for row, ok in zip(bids, valid, strict=True)]
    prefs = [sorted((j for j in range(r) if report[i][j] > 0), key=lambda j: (-report[i][j], j)) for i in range(p)]
    held: dict[int, int] = {}  # receiver -> proposer
    nxt = [0] * p
    free = list(range(p))
    while free:
        i = free.pop(0)
        if nxt[i] >= len(prefs[i]):
            continue
        j = prefs[i][nxt[i]]
        nxt[i] += 1
        if report[p + j][i] <= 0:
            free.append(i)
            continue
        current = held.get(j)
        if current is None:
            held[j] = i
        elif prefers(report, prefs, j, i, current):
            held[j] = i
            free.append(current)
        else:
            free.append(i)
    won, gains = [0.0] * n, [0.0] * n
    for j, i in held.items():
        won[i] = won[p + j] = 1.0
        gains[i], gains[p + j] = values[i][j], values[p + j][i]
    best = 0.0  # every matching, by brute force
    for pairs in itertools.product(range(-1, r), repeat=p):
        chosen = [(i, j) for i, j in enumerate(pairs) if j >= 0]
        if len({j for _, j in chosen}) == len(chosen):
            best = max(best, sum(values[i][j] + values[p + j][i] for i, j in chosen))
    width = [r] * p + [p] * r  # the columns that name a member of the other side
    participated = [valid[i] and any(x > 0 for x in report[i][:width[i]]) for i in range(n)]
    zeros = [0.0] * n
    return scalar_outcome(gains, won, zeros, zeros, valid, participated, best)


MECHANISM = Mechanism(
    name="deferred_acceptance", version=VERSION, summary="two-sided matching: proposers propose, receivers defer",
    config_model=MatchingConfig, kernel=kernel, reference=reference, properties=properties, market_spec=market_spec,
    examples=({}, {"proposers": 2}, {"proposers": 1}, {"proposers": 5}),
    doc=__doc__,
)
