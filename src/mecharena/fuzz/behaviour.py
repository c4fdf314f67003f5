"""What a deviation does, in words, read from its play rather than from its parameters.

A searched policy is 30 or more weights; what it does is in its decisions. :func:`describe_play` plays
the deviation, pools the deviators' decisions over markets and rounds, and says for each output
(the bid as a line in the value where it bids, when it takes part (bids > 0: a value threshold where
one explains the decisions), each declared action field) what it does, split by the one
condition that changes it most: round 0 or later, the last round, having won the round before, holding the
highest value of its ring (K > 1 deviators), or a per-seat field
of the mechanism's state being set (e.g. ``registered = 1``, ``strikes > 0``). A split is named only
where both sides hold MIN_SHARE of the decisions and differ by more than the output's tolerance, so a
policy that ignores every condition reads as one clause per output. Each side of a split may split
again by another condition (DEPTH levels) where that changes the output by more than NESTED_GAP
tolerances (an inner clause costs the reader more words), so a behaviour that depends on two conditions
reads as both: "if streak = 1: (if in the last round: bids 1.80x value, else bids 1.50x value), else bids its
value".
"""

from dataclasses import dataclass

import numpy as np

from mecharena import mechanisms
from mecharena.core.types import BoolArray, FloatArray
from mecharena.fuzz.score import Deviation, agent_seats, deviated_population, replace_cell
from mecharena.mechanisms.schema import ActionField
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

MIN_SHARE = 0.05  # each side of a named split holds at least this share of the decisions
BID_TOL = 0.02  # fitted bids within this of each other (at the 10th and 90th value percentiles) read the same
RATE_TOL = 0.1  # entry rates within this read the same
THRESHOLD_FIT = 0.95  # a value threshold names entry where it explains this share of the decisions
FIELD_TOL = 0.05  # action fields whose means differ by less than this share of their range read the same
DEPTH = 2  # conditions named one inside the other at most
NESTED_GAP = 2.0  # an inner split is named where it changes the output by more than this many tolerances


@dataclass(frozen=True, slots=True)
class Decisions:
    """The deviators' decisions, one entry per seat, market and round."""

    values: FloatArray  # (D,)  what the seat knew
    bids: FloatArray  # (D,)
    entered: BoolArray  # (D,)
    fields: dict[str, FloatArray]  # action field -> (D,)
    conditions: dict[str, BoolArray]  # label -> (D,)


def decisions(target: Cell, deviation: Deviation, *, seed: int, markets: int, rounds: int) -> Decisions | None:
    """Play ``deviation`` in ``target`` and pool its decisions (None where a seat bids more than one number)."""
    spec = deviated_population(target.population, seed, deviation.deviators, deviation.agent_spec, deviation.after)
    cell = replace_cell(target, seed=seed, markets=markets, rounds=rounds, population=spec)
    episode = cell.episode()
    seats = agent_seats(episode.owner, deviation.after + deviation.deviators)[deviation.after:]
    declared = {f.name for f in episode.context.mechanism.state if f.per == "seat"}
    columns: dict[str, list[FloatArray]] = {}
    won_before = np.zeros((markets, seats.size), dtype=bool)
    for record in play(episode, rounds):
        if record.bids.ndim > 2:
            return None
        seen = record.values if record.signals is None else record.signals
        row = {"value": seen[:, seats], "bid": record.bids[:, seats], "entered": record.active[:, seats],
               **{f"field {k}": v[:, seats] for k, v in record.actions.items()},
               **{f"state {k}": record.state[k][:, seats] for k in sorted(declared & record.state.keys())}}
        if rounds > 1:
            row["cond in round 0"] = np.full(row["bid"].shape, record.round == 0)
            row["cond in the last round"] = np.full(row["bid"].shape, record.round == rounds - 1)
            row["cond it won the round before"] = won_before
        if seats.size > 1:  # a ring: whether the seat holds its highest value (what a knockout decides)
            row["cond it has the ring's highest value"] = row["value"] == row["value"].max(axis=1, keepdims=True)
        won_before = record.outcome.allocation[:, seats] > 0
        for key, x in row.items():
            columns.setdefault(key, []).append(np.ravel(x))
    flat = {k: np.concatenate(v) for k, v in columns.items()}
    conditions = {}  # the mechanism's own state first: on a tie it names the behaviour more exactly
    for key, x in flat.items():
        if key.startswith("state "):
            conditions[f"{key[6:]} = 1" if np.isin(x, (0.0, 1.0)).all() else f"{key[6:]} > 0"] = x > 0
    conditions.update({k[5:]: v.astype(bool) for k, v in flat.items() if k.startswith("cond ")})
    return Decisions(flat["value"], flat["bid"], flat["entered"].astype(bool),
                     {k[6:]: v for k, v in flat.items() if k.startswith("field ")}, conditions)


def _split(d: Decisions, within: BoolArray, gap, used: tuple[str, ...] = ()) -> tuple[str, BoolArray] | None:
    """The condition (other than ``used``) that changes ``gap(side, other side)`` most among ``within``, if above 1
    (NESTED_GAP inside another split; else None)."""
    best, chosen = (NESTED_GAP if used else 1.0), None
    for label, cond in d.conditions.items():
        if label in used:
            continue
        yes, no = within & cond, within & ~cond
        if min(yes.sum(), no.sum()) >= MIN_SHARE * within.sum() and min(yes.sum(), no.sum()) >= 2:
            g = gap(yes, no)
            if g > best:
                best, chosen = g, (label, cond)
    return chosen


def _clause(d: Decisions, within: BoolArray, say, gap, used: tuple[str, ...] = ()) -> tuple[str, bool]:
    """``say`` of the decisions ``within``, split by the condition that changes it most and each side again, DEPTH
    levels deep; and whether it split."""
    found = None if len(used) == DEPTH else _split(d, within, gap, used)
    if found is None:
        return say(within), False
    label, cond = found
    sides = []
    for side in (within & cond, within & ~cond):
        words, split = _clause(d, side, say, gap, (*used, label))
        sides.append(f"({words})" if split else words)
    return f"if {label}: {sides[0]}, else {sides[1]}", True


def _line(d: Decisions, among: BoolArray) -> tuple[float, float]:
    """(slope, intercept) of the bids against the values ``among`` (a constant where values do not vary)."""
    v, b = d.values[among], d.bids[among]
    if np.ptp(v) < 1e-9:
        return 0.0, float(b.mean())
    slope, intercept = np.polyfit(v, b, 1)
    return float(slope), float(intercept)


def _bid_words(slope: float, intercept: float) -> str:
    if abs(slope) < BID_TOL:
        return f"bids {intercept:.2f} whatever its value"
    if abs(slope - 1) < BID_TOL and abs(intercept) < BID_TOL:
        return "bids its value"
    offset = f" {'+' if intercept >= 0 else '-'} {abs(intercept):.2f}" if abs(intercept) >= BID_TOL else ""
    return f"bids {slope:.2f}x value{offset}"


def _entry_words(values: FloatArray, part: BoolArray) -> str:
    """When the seat takes part (bids > 0): a value threshold where one explains THRESHOLD_FIT of the
    decisions, else how often."""
    if part.all() or not part.any():
        return "always takes part" if part.all() else "stays out"
    cuts = np.unique(np.percentile(values, np.arange(1, 100)))
    below = (values[:, None] < cuts[None, :]) == part[:, None]
    fit = below.mean(axis=0)
    best = int(np.argmax(np.maximum(fit, 1 - fit)))
    if max(fit[best], 1 - fit[best]) >= THRESHOLD_FIT:
        return f"takes part when value {'<' if fit[best] >= 0.5 else '>='} {cuts[best]:.2f}"
    return f"takes part in {part.mean():.0%} of rounds"


def _field_words(field: ActionField, x: FloatArray) -> str:
    mean = float(x.mean())
    if np.ptp(x) == 0:
        return f"{field.name} = {mean:g}"
    if field.integer and np.isin(x, (0.0, 1.0)).all():
        return f"{field.name} = 1 in {mean:.0%} of rounds"
    return f"{field.name} {mean:.2f} on average"


def describe(d: Decisions, actions: tuple[ActionField, ...] = ()) -> str:
    """One sentence: the bid, entry where it is not always, and each action field not left at its default
    (module docstring)."""
    everyone = np.ones(d.bids.size, dtype=bool)
    entered = d.entered & (d.bids > 0)
    clauses = []
    if entered.sum() >= 2:
        lo, hi = np.percentile(d.values, [10, 90])

        def bid_gap(yes: BoolArray, no: BoolArray) -> float:
            (a1, c1), (a2, c2) = _line(d, yes), _line(d, no)
            return max(abs((a1 - a2) * v + c1 - c2) for v in (lo, hi)) / BID_TOL

        clauses.append(_clause(d, entered, lambda among: _bid_words(*_line(d, among)), bid_gap)[0])
    entry, split = _clause(d, everyone, lambda among: _entry_words(d.values[among], entered[among]),
                           lambda y, n: abs(entered[y].mean() - entered[n].mean()) / RATE_TOL)
    if split or entered.mean() < 1 - RATE_TOL / 4:
        clauses.append(entry)
    for a in actions:
        x = d.fields.get(a.name)
        if x is None or (x == a.default).all():
            continue
        width = FIELD_TOL * (a.high - a.low)
        clauses.append(_clause(d, everyone, lambda among, a=a, x=x: _field_words(a, x[among]),
                               lambda y, n, x=x, w=width: abs(x[y].mean() - x[n].mean()) / w)[0])
    return "; ".join(clauses) if clauses else "stays out"


def describe_play(target: Cell, deviation: Deviation, *, seed: int, markets: int = 400,
                  rounds: int | None = None) -> str | None:
    """What ``deviation`` does in ``target`` over ``rounds`` (default: the target's), in one sentence
    (None where a seat bids more than one number)."""
    rounds = target.rounds if rounds is None else rounds
    found = decisions(target, deviation, seed=seed, markets=markets, rounds=rounds)
    return None if found is None else describe(found, mechanisms.get(target.mechanism).actions)
