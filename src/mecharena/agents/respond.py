"""Type-wise best responses of one seat against fixed rivals, and the table agent that plays one.

Fix everything about M sampled markets except one seat's action: the rivals' bids, the tie-breaking
priorities, the order times. With private values the seat's allocation and net payment ``p_m(b)``
(payments minus receipts) depend on its action b, not on its values, and its gain is linear in its
values. With K marginal values ``v_1 >= ... >= v_K`` (multi-unit demand; K = 1 for a unit-demand
buyer, or a unit-supply seller whose allocation is -1 when it sells at cost v)

    U(v, b) = sum_k v_k A_k(b) - P(b),   A_k(b) = mean_m a_mk(b),   P(b) = mean_m p_m(b),

where ``a_mk`` is 1 when the seat wins at least k units (K = 1: its allocation, -1 for a sale). So
one pass of clears over candidate actions gives expected utility on the whole (values x actions)
grid from the same M markets: every type's best response is estimated on all of them (common random
numbers), with no shape assumed. An action is a vector of D bids:

* one bid (D = 1): the seat's bid or ask;
* multi-unit demand (D = K): non-increasing marginal bids ``b_1 >= ... >= b_K``;
* false names (``Sample.identities`` = m >= 2 consecutive seats, merged into one unit-demand agent):
  D = 2, the own identity's bid and the bid every false name places (0: the false names abstain),
  with ``A(b)`` the chance that any identity wins. Each false name that bids pays the expected shill
  fine (``Sample.shill``) on top.

With interdependent values (``ValueDistribution.common`` = c, n agents) a type is a signal x and the
value in market m is ``a x + c_m``, with ``a = 1 - c + c / n`` and ``c_m`` = c / n times the others'
signals; so ``U(x, b) = x a A(b) - (P(b) - mean_m a_m(b) c_m)``: the same form, with A scaled by
``Sample.own_share`` = a and the winning part of ``c_m`` (``Sample.common``) taken off P.

Candidates span a wide range (0, the smallest action, up to several times the largest value) on a
grid of non-increasing vectors, include truthful bidding, and are refined around each type's best
action. Bid 0 is abstaining (the loop zeroes the bid of a seat that sits out).

:func:`check_private_values` verifies the linearity on the sample itself (clearing again with the
seat's values moved) and refuses mechanisms whose outcome depends on true values.

The agent type ``best_response`` plays a table over an evenly spaced value grid. One bid per entry
(``bids=0.1/0.25/x/...``): the bid of the nearest grid value (``interpolate=nearest``, right for
discontinuous responses) or the linear interpolation of its two neighbours (``linear``, for smooth
equilibria); ``x`` abstains. Multi-unit demand K: each entry is K non-increasing bids joined by
``;`` (``bids=0.1;0/0.2;0/...``), one entry per non-increasing point ``(g_1 >= ... >= g_K)`` of the
grid ``low + i (high - low) / (G - 1)``, i = 0..G-1, listed in lexicographic order of the grid
indices (for K = 2: (0,0), (1,0), (1,1), (2,0), ...); a type plays the entry of its nearest grid
point. ``identities=m`` holds m seats (its own and m - 1 false names); ``names=...``, a one-bid
table on the same grid, is what every false name bids (default: they abstain).
"""

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from mecharena.agents.base import Action, AgentType, MarketContext
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import Mechanism

VERSION = 2
ABSTAIN = "x"
UNIT_SEPARATOR = ";"
MAX_TABLE = 1025
REFINED_TYPES = 41  # types whose best actions are refined (evenly spread); every type picks among all actions
MAX_UNITS = 4  # the most marginal bids per action searched (the grid grows as points^K)
MAX_IDENTITIES = 16
# Market copies per clearing call (about 16 * N * K bytes a row). Small enough that each call's arrays (tens of
# MB at most) are reused from the heap rather than mapped afresh: at 2,000,000 rows every call paid page faults
# for hundreds of MB, and a best response to truthful:5 in second price took 9.7 s wall (7.9 s of it in the
# kernel) against 1.4 s at 100,000 rows; results do not depend on it (rows are independent).
CHUNK_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class Sample:
    """M markets with one seat to respond in: everything but that seat's bids is fixed."""

    values: FloatArray  # (M, N[, K])  true values (costs for sellers)
    bids: FloatArray  # (M, N[, K])  rivals' bids as cleared (the responder's seats are replaced)
    priority: FloatArray  # (M, N)
    times: FloatArray | None  # (M, N) order times, or None
    seat: int
    identities: int = 1  # seats seat .. seat + identities - 1 are the responder's (its own first)
    shill: float = 0.0  # expected fine per false name that bids (audit probability x shill penalty)
    # Interdependent values (ValueDistribution.common): the responder's value is own_share x its signal
    # plus common[m], the part that others' signals make of it in market m.
    common: FloatArray | None = None  # (M,)
    own_share: float = 1.0

    @property
    def markets(self) -> int:
        return self.values.shape[0]

    @property
    def units(self) -> int:
        """K, the marginal values of the responder."""
        return self.values.shape[2] if self.values.ndim == 3 else 1

    @property
    def width(self) -> int:
        """D, the bids of one action (see the module docstring)."""
        return self.units if self.values.ndim == 3 else min(self.identities, 2)


@dataclass(frozen=True, slots=True)
class Response:
    """Expected utility over a (values x actions) grid, and each type's best action.

    With one value and one bid the arrays are 1-D as shown; with K values or D bids they gain a
    trailing axis: values (V, K), candidates (G, D), allocation (G, K), best (V, D).
    """

    values: FloatArray  # (V,)  value grid
    candidates: FloatArray  # (G,)  bids evaluated, ascending (lexicographic rows for D > 1)
    allocation: FloatArray  # (G,)  A(b): mean allocation of the seat (x Sample.own_share)
    payment: FloatArray  # (G,)  P(b): mean net payment of the seat (less the value others' signals add)
    best: FloatArray  # (V,)  best bid per value (0: abstain)
    gain: FloatArray  # (V,)  U(v, best) - U(v, truthful): in-sample gain over truthful bidding

    def utility(self, values: FloatArray, bids: FloatArray) -> FloatArray:
        """U(v, b) for matching arrays of values (V[, K]) and evaluated bids (V[, D])."""
        if self.candidates.ndim == 1:
            index = np.searchsorted(self.candidates, bids)
            return values * self.allocation[index] - self.payment[index]
        where = {row.tobytes(): i for i, row in enumerate(self.candidates)}
        index = np.array([where[row.tobytes()] for row in np.asarray(bids, dtype=float).reshape(len(bids), -1) + 0.0])
        v = values.reshape(len(index), -1)
        return (v * self.allocation.reshape(self.allocation.shape[0], -1)[index]).sum(axis=1) - self.payment[index]

    @property
    def mean_gain(self) -> float:
        """In-sample gain averaged over the value grid (equal weights)."""
        return float(self.gain.mean())


def _columns(x: FloatArray) -> FloatArray:
    """A trailing axis for 1-D arrays (one value or one bid per row)."""
    return x[:, None] if x.ndim == 1 else x


def _clear_rows(mechanism: Mechanism, config: Any, sample: Sample, candidates: FloatArray) -> tuple[FloatArray, ...]:
    """(G, K) mean A_k and (G,) mean net payment of the responder for each candidate row of (G, D)."""
    m = sample.markets
    s, ids, k_units = sample.seat, sample.identities, sample.units
    multi = sample.values.ndim == 3
    per_call = max(1, CHUNK_ROWS // m)
    allocation, payment = np.empty((candidates.shape[0], k_units)), np.empty(candidates.shape[0])
    for start in range(0, candidates.shape[0], per_call):
        chunk = candidates[start:start + per_call]
        g = chunk.shape[0]
        bids = np.tile(sample.bids, (g, 1, 1) if multi else (g, 1))
        if multi:
            bids[:, s, :] = np.repeat(chunk, m, axis=0)
        else:
            bids[:, s] = np.repeat(chunk[:, 0], m)
            if ids > 1:
                bids[:, s + 1:s + ids] = np.repeat(chunk[:, 1], m)[:, None]
        times = None if sample.times is None else np.tile(sample.times, (g, 1))
        out = mechanism.kernel(config, np.tile(sample.values, (g, 1, 1) if multi else (g, 1)), bids,
                               np.tile(sample.priority, (g, 1)), times)
        seats = slice(s, s + ids)
        net = (out.payments[:, seats] - out.receipts[:, seats]).sum(axis=1) if ids > 1 else \
            out.payments[:, s] - out.receipts[:, s]
        won = np.minimum(out.allocation[:, seats].sum(axis=1), 1.0) if ids > 1 else out.allocation[:, s]
        for k in range(k_units):
            column = (won >= k + 1).astype(float) if multi else won
            allocation[start:start + g, k] = sample.own_share * column.reshape(g, m).mean(axis=1)
        payment[start:start + g] = net.reshape(g, m).mean(axis=1)
        if sample.common is not None:  # the value others' signals add is a negative payment, paid where it wins
            payment[start:start + g] -= (won.reshape(g, m) * sample.common[None, :]).mean(axis=1)
        if ids > 1 and sample.shill:
            payment[start:start + g] += sample.shill * (ids - 1) * (chunk[:, 1] > 0)
    return allocation, payment


def clear_many(mechanism: Mechanism, config: Any, sample: Sample, candidates: FloatArray) -> tuple[FloatArray, ...]:
    """Mean allocation and mean net payment of the seat for each candidate action (chunked clears).

    Args:
        candidates: (G,) bids, or (G, D) actions (see :attr:`Sample.width`).

    Returns:
        ``(allocation, payment)``: (G,) each for one value and one bid; else (G, K) and (G,).
    """
    allocation, payment = _clear_rows(mechanism, config, sample, _columns(candidates))
    if candidates.ndim == 1 and sample.units == 1:
        return allocation[:, 0], payment
    return allocation, payment


def check_private_values(mechanism: Mechanism, config: Any, sample: Sample, bid: float, tol: float = 1e-9) -> None:
    """Raise :class:`ConfigError` unless the seat's utility is ``sum_k value_k x [won >= k units] - net
    payment`` whatever its values (checked by clearing the sample again with the seat's values moved)."""
    bids = sample.bids.copy()
    bids[:, sample.seat] = bid
    outs = []
    for shift in (0.0, 0.5):
        values = sample.values.copy()
        values[:, sample.seat] += shift
        outs.append((values, mechanism.kernel(config, values, bids, sample.priority, sample.times)))
    s = sample.seat
    for values, out in outs:
        if values.ndim == 3:
            won = out.allocation[:, s][:, None] >= np.arange(1, values.shape[2] + 1)[None, :]
            gain = (values[:, s] * won).sum(axis=1)
        else:
            gain = values[:, s] * out.allocation[:, s]
        predicted = gain - out.payments[:, s] + out.receipts[:, s]
        if not np.allclose(out.utility[:, s], predicted, atol=tol):
            raise ConfigError(f"the best-response search needs utility = the values of the units won - payment; "
                              f"{mechanism.name} computes utility otherwise")
    (_, a), (_, b) = outs
    if not (np.array_equal(a.allocation[:, s], b.allocation[:, s]) and np.allclose(a.payments[:, s], b.payments[:, s])
            and np.allclose(a.receipts[:, s], b.receipts[:, s])):
        raise ConfigError(f"the best-response search needs private values: {mechanism.name}'s allocation or payments "
                          "change with the deviator's true value")


def candidate_grid(high: float, points: int, extra: FloatArray = np.zeros(0), width: int = 1) -> FloatArray:
    """Sorted unique actions: (G,) bids ``points`` evenly spaced on [0, high] plus ``extra``; for
    ``width`` D > 1, (G, D) every non-increasing vector of about ``points ** (1 / D)`` (at least 3)
    evenly spaced bids per coordinate, plus the rows of ``extra``."""
    if width == 1:
        return np.unique(np.concatenate([np.linspace(0.0, high, points), _columns(extra)[:, 0] if extra.size else extra]))
    axis = np.linspace(0.0, high, _per_axis(points, width))
    tuples = np.array(list(itertools.combinations_with_replacement(range(axis.size - 1, -1, -1), width)))
    return np.unique(np.concatenate([axis[tuples], extra.reshape(-1, width)]) + 0.0, axis=0)


def _per_axis(points: int, width: int) -> int:
    return max(3, math.ceil(points ** (1.0 / width)))


def truthful_actions(values: FloatArray, width: int) -> FloatArray:
    """(V[, D]) truthful actions: each value bid as it is; false names abstain."""
    clipped = np.clip(values, 0.0, None)
    if width == 1 or values.ndim == 2:
        return clipped
    return np.concatenate([clipped[:, None], np.zeros((values.size, width - 1))], axis=1)


def _offsets(step: float, width: int) -> FloatArray:
    """(R, D) refinement offsets: a 17-point line for one bid, a (2 ceil(8^(1/D)) + 1)^D box for D."""
    line = np.linspace(-step, step, 2 * math.ceil(8 ** (1.0 / width)) + 1)
    return line[:, None] if width == 1 else np.array(list(itertools.product(line, repeat=width)))


def _new_rows(rows: FloatArray, existing: FloatArray) -> FloatArray:
    """The unique rows of (R, D) ``rows`` that are not rows of ``existing``, sorted."""
    if rows.shape[1] == 1:
        return np.setdiff1d(rows[:, 0], existing[:, 0])[:, None]
    rows = np.unique(rows + 0.0, axis=0)
    seen = {row.tobytes() for row in existing}
    return rows[np.array([row.tobytes() not in seen for row in rows], dtype=bool)]


def respond(mechanism: Mechanism, config: Any, sample: Sample, values: FloatArray, *, bid_high: float,
            points: int = 257, refine: int = 2, bandwidth: float = 0.0, edges: bool = True) -> Response:
    """Best action for each type in ``values`` against ``sample``, bids searched over [0, ``bid_high``].

    A coarse grid (``points`` bids, or non-increasing vectors of about ``points ** (1/D)`` bids per
    coordinate; plus truthful actions for each type) is cleared on every market; then, ``refine``
    times, an 8x finer grid around the best action so far of each of REFINED_TYPES evenly spread types
    (every type, when there are no more); each type's best is then chosen among every action cleared.

    Args:
        mechanism: the mechanism (its kernel is called directly: inputs are already valid).
        config: its validated config.
        sample: M markets with the responding seat.
        values: (V,) value grid, or (V, K) non-increasing marginal values (multi-unit demand).
        bid_high: the highest bid searched.
        points: bids of the coarse grid (>= 3).
        refine: refinement passes.
        bandwidth: half-width of the window over which A(b) and P(b) are averaged before each value's
            best bid is chosen (0: none; one bid only). A few hundredths of the value range steadies
            the argmax of a flat optimum against sampling noise; the gains reported are the unsmoothed ones.
        edges: with a bandwidth, take the best unsmoothed action within it of the smoothed optimum (keeps a
            jump such as a reserve: discontinuous responses) rather than the smoothed optimum itself (smooth
            bid functions, e.g. an equilibrium's).

    Returns:
        The :class:`Response` over every action evaluated.
    """
    width = sample.width
    truthful = _columns(truthful_actions(values, width))
    candidates = _columns(candidate_grid(bid_high, points, truthful, width))
    allocation, payment = _clear_rows(mechanism, config, sample, candidates)
    grid = _columns(values)
    step = bid_high / ((points if width == 1 else _per_axis(points, width)) - 1)
    spread = np.linspace(0, grid.shape[0] - 1, min(grid.shape[0], REFINED_TYPES))
    centers = np.unique(spread.round().astype(int))
    for _ in range(refine):
        best = _best(grid[centers], candidates, allocation, payment, bandwidth, truthful[centers], edges)
        tried = best[:, None, :] + _offsets(step, width)[None, :, :]
        tried = np.minimum.accumulate(np.clip(tried, 0.0, bid_high), axis=2).reshape(-1, width)
        extra = _new_rows(tried, candidates)
        if extra.size:
            a, p = _clear_rows(mechanism, config, sample, extra)
            joined = np.concatenate([candidates, extra])
            order = np.lexsort(joined.T[::-1])
            candidates = joined[order]
            allocation, payment = np.concatenate([allocation, a])[order], np.concatenate([payment, p])[order]
        step /= 8
    best = _best(grid, candidates, allocation, payment, bandwidth, truthful, edges)
    gain = _utility(grid, allocation, payment)
    rows = np.arange(grid.shape[0])
    index = {row.tobytes(): i for i, row in enumerate(candidates + 0.0)}
    at_truth = np.array([index[row.tobytes()] for row in truthful + 0.0])
    at_best = np.array([index[row.tobytes()] for row in best + 0.0])
    gain = gain[rows, at_best] - gain[rows, at_truth]
    if width == 1 and values.ndim == 1:
        return Response(values, candidates[:, 0], allocation[:, 0], payment, best[:, 0], gain)
    return Response(values, candidates, allocation if sample.units > 1 else allocation[:, 0], payment,
                    best, gain)


def _utility(values: FloatArray, allocation: FloatArray, payment: FloatArray) -> FloatArray:
    """(V, G) U(v, b) from (V, K) values, (G, K) allocations and (G,) payments."""
    if values.shape[1] == 1:
        return values[:, 0][:, None] * allocation[:, 0][None, :] - payment[None, :]
    return values @ allocation.T - payment[None, :]


def _smooth(candidates: FloatArray, bandwidth: float, *curves: FloatArray) -> tuple[FloatArray, ...]:
    """Each curve averaged over [b - bandwidth, b + bandwidth] (piecewise linear between candidates)."""
    if bandwidth <= 0:
        return curves
    lo = np.maximum(candidates - bandwidth, candidates[0])
    hi = np.minimum(candidates + bandwidth, candidates[-1])
    out = []
    for curve in curves:
        integral = np.concatenate([[0.0], np.cumsum(np.diff(candidates) * (curve[1:] + curve[:-1]) / 2)])
        width = hi - lo
        mean = (np.interp(hi, candidates, integral) - np.interp(lo, candidates, integral)) / np.where(width > 0, width, 1)
        out.append(np.where(width > 0, mean, curve))
    return tuple(out)


def _best(values: FloatArray, candidates: FloatArray, allocation: FloatArray, payment: FloatArray,
          bandwidth: float, truthful: FloatArray, edges: bool) -> FloatArray:
    """(V, D) each type's best candidate: the maximum of the smoothed utility (one bid and one value
    only: a curve over bids; smoothing steadies a flat optimum against noise), with ``edges`` the best
    unsmoothed utility within ``bandwidth`` of it (the raw curve picks the point, which keeps a jump
    such as a reserve or a tick edge); then, among the actions whose unsmoothed utility equals that
    choice's exactly (a flat region), the one closest to truthful bidding (L1 distance)."""
    utility = _utility(values, allocation, payment)  # (V, G)
    if candidates.shape[1] == 1 and values.shape[1] == 1 and bandwidth > 0:
        smooth_a, smooth_p = _smooth(candidates[:, 0], bandwidth, allocation[:, 0], payment)
        chosen = np.argmax(_utility(values, smooth_a[:, None], smooth_p), axis=1)
        if edges:
            near = np.abs(candidates[None, :, 0] - candidates[chosen, 0][:, None]) <= bandwidth
            chosen = np.argmax(np.where(near, utility, -np.inf), axis=1)
    else:
        chosen = np.argmax(utility, axis=1)  # (V,)
    top = utility[np.arange(values.shape[0]), chosen][:, None]
    tied = np.abs(utility - top) <= 1e-12 * np.maximum(1.0, np.abs(top))
    distance = np.abs(candidates[None, :, :] - truthful[:, None, :]).sum(axis=2)
    return candidates[np.argmin(np.where(tied, distance, np.inf), axis=1)]


# --- the agent type that plays a table -------------------------------------------------------------------


def format_table(bids: FloatArray, abstain: FloatArray | None = None) -> str:
    """``"0.1/0.25/x/..."``: bids to 6 significant digits, ``x`` where the seat abstains; rows of a
    (E, K) array become entries of K bids joined by ``;`` (``"0.5;0/x/..."``)."""
    quiet = np.zeros(bids.shape[0], bool) if abstain is None else abstain
    if bids.ndim == 1:
        return "/".join(ABSTAIN if q else f"{float(b):.6g}" for b, q in zip(bids, quiet, strict=True))
    return "/".join(ABSTAIN if q else UNIT_SEPARATOR.join(f"{float(x):.6g}" for x in row)
                    for row, q in zip(bids, quiet, strict=True))


def table_grid(entries: int, units: int) -> int:
    """G, the grid points per value axis of a table of ``entries`` entries of ``units`` bids each
    (one entry per non-increasing point of a G^K grid), or 0 when no G gives that count."""
    g = 1
    while math.comb(g + units - 1, units) < entries:
        g += 1
    return g if math.comb(g + units - 1, units) == entries else 0


def parse_table(text: str) -> tuple[FloatArray, np.ndarray]:
    """``(bids, abstain)`` from :func:`format_table`'s text: bids (E,) for one bid per entry, (E, K)
    for entries of K bids.

    Raises:
        ConfigError: fewer than 2 or more than MAX_TABLE entries, an entry that is not a finite
            number >= 0 or ``x``, entries of unequal length, more than MAX_UNITS bids in an entry,
            bids within an entry that increase, or an entry count that is no grid's.
    """
    parts = [p.strip() for p in str(text).split("/")]
    if not 2 <= len(parts) <= MAX_TABLE:
        raise ConfigError(f"bids must hold 2 to {MAX_TABLE} entries separated by '/', got {len(parts)}")
    lengths = {len(p.split(UNIT_SEPARATOR)) for p in parts if p != ABSTAIN} or {1}
    if len(lengths) > 1:
        raise ConfigError(f"bids entries must all hold the same number of bids (joined by {UNIT_SEPARATOR!r}), "
                          f"got {sorted(lengths)}")
    units = lengths.pop()
    if units > MAX_UNITS:
        raise ConfigError(f"bids entries must hold at most {MAX_UNITS} bids, got {units}")
    bids, abstain = np.zeros((len(parts), units)), np.zeros(len(parts), bool)
    for i, part in enumerate(parts):
        if part == ABSTAIN:
            abstain[i] = True
            continue
        for k, item in enumerate(part.split(UNIT_SEPARATOR)):
            try:
                bids[i, k] = float(item)
            except ValueError:
                bids[i, k] = math.nan
            if not (math.isfinite(bids[i, k]) and bids[i, k] >= 0):
                raise ConfigError(f"bids entry {i} must be a finite number >= 0 or '{ABSTAIN}' (abstain), "
                                  f"got {part[:40]!r}")
        if (np.diff(bids[i]) > 0).any():
            raise ConfigError(f"bids entry {i} must be non-increasing (first unit's bid highest), got {part[:40]!r}")
    if units > 1 and not table_grid(len(parts), units):
        raise ConfigError(f"bids of {units} units must hold one entry per non-increasing point of a G^{units} grid "
                          f"(G(G+1)/2 entries for 2 units), got {len(parts)}")
    return (bids[:, 0] if units == 1 else bids), abstain


class TableParams(StrictModel):
    """A bid table over evenly spaced values on [low, high] (see the module docstring)."""

    low: float = Field(0.0, description="value of the table's first entry")
    high: float = Field(1.0, description="value of the table's last entry")
    bids: str = Field("0/1", description="bids separated by '/', one per grid value (K bids joined by ';' with "
                                         "multi-unit demand); 'x' abstains")
    interpolate: Literal["nearest", "linear"] = Field("nearest", description="between grid values")
    identities: int = Field(1, ge=1, le=MAX_IDENTITIES, description="seats held: its own and identities - 1 "
                                                                    "false names")
    names: str | None = Field(None, description="what every false name bids: a one-bid table on the grid of "
                                                "bids (default: false names abstain)")

    @field_validator("bids", "names")
    @classmethod
    def _table(cls, text: str | None) -> str | None:
        if text is None:
            return text
        try:
            parse_table(text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return text

    @model_validator(mode="after")
    def _ordered(self) -> "TableParams":
        if not self.high > self.low:
            raise ValueError(f"high must be > low ({self.low}), got {self.high}")
        bids, _ = parse_table(self.bids)
        if bids.ndim > 1 and self.interpolate != "nearest":
            raise ValueError(f"interpolate must be 'nearest' for a table of several bids per entry, "
                             f"got {self.interpolate!r}")
        if self.names is not None:
            names, _ = parse_table(self.names)
            if names.ndim > 1 or names.shape[0] != bids.shape[0]:
                raise ValueError(f"names must hold one bid per entry of bids ({bids.shape[0]}), "
                                 f"got {self.names[:40]!r}")
            if self.identities < 2:
                raise ValueError("names needs identities >= 2 (false names to bid them), got identities=1")
        return self


def _one_bid(table: FloatArray, abstain: np.ndarray, params: TableParams,
             values: FloatArray) -> tuple[FloatArray, np.ndarray]:
    k = table.size
    position = np.clip((values - params.low) / (params.high - params.low) * (k - 1), 0.0, k - 1)
    nearest = np.rint(position).astype(np.int64)
    out, enter = table[nearest], ~abstain[nearest]
    if params.interpolate == "linear":
        lo = np.floor(position).astype(np.int64)
        hi = np.minimum(lo + 1, k - 1)
        both = ~abstain[lo] & ~abstain[hi]
        w = position - lo
        out = np.where(both, (1 - w) * table[lo] + w * table[hi], out)
    return np.where(enter, out, 0.0), enter


def table_bids(params: TableParams, values: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """(bids, enter) of the table for ``values`` of any shape; with K bids per entry, values (..., K)
    give bids (..., K) and enter (...)."""
    table, abstain = parse_table(params.bids)
    if table.ndim == 1:
        return _one_bid(table, abstain, params, values)
    units = table.shape[1]
    if values.shape[-1] != units:
        raise ConfigError(f"bids entries hold {units} bids but the market gives {values.shape[-1]} values per agent")
    g = table_grid(table.shape[0], units)
    position = np.clip((values - params.low) / (params.high - params.low) * (g - 1), 0.0, g - 1)
    index = np.minimum.accumulate(np.rint(position).astype(np.int64), axis=-1)
    lookup = np.zeros((g,) * units, dtype=np.int64)  # grid point -> entry (lexicographic order)
    points = list(itertools.combinations_with_replacement(range(g - 1, -1, -1), units))
    for entry, point in enumerate(sorted(points)):
        lookup[point] = entry
    entry = lookup[tuple(np.moveaxis(index, -1, 0))]
    enter = ~abstain[entry]
    return np.where(enter[..., None], table[entry], 0.0), enter


def bid_function(params: TableParams) -> tuple[FloatArray, FloatArray, FloatArray | None] | None:
    """(values, bids, false names' bids or None) of a one-bid table on its grid, NaN where it abstains;
    None for a table of several bids per entry."""
    table, abstain = parse_table(params.bids)
    if table.ndim > 1:
        return None
    names = None
    if params.names is not None:
        named, silent = parse_table(params.names)
        names = np.where(silent, np.nan, named)
    return np.linspace(params.low, params.high, table.size), np.where(abstain, np.nan, table), names


def table_points(low: float, high: float, grid: int, units: int) -> FloatArray:
    """(E, K) the value points of a table's entries, in the table's order (see the module docstring)."""
    axis = np.linspace(low, high, grid)
    return axis[np.array(sorted(itertools.combinations_with_replacement(range(grid - 1, -1, -1), units)))]


def act(context: MarketContext, params: TableParams, state: None, values: FloatArray, draws) -> Action:
    units = context.spec.units_per_agent or 1
    table, _ = parse_table(params.bids)
    width = table.shape[1] if table.ndim > 1 else 1
    if context.spec.orders_per_agent or width != units:
        raise ConfigError(f"best_response's table holds {width} bid(s) per entry; {context.mechanism.name} is "
                          f"configured for {context.spec.orders_per_agent or units} "
                          f"{'orders' if context.spec.orders_per_agent else 'units'} per agent")
    m = params.identities
    own = values[:, ::m]
    bids, enter = table_bids(params, own)
    if m > 1:
        names = np.zeros_like(bids)
        if params.names is not None:
            names = _one_bid(*parse_table(params.names), params, own)[0]
        full = np.repeat(names, m, axis=1)
        full[:, ::m] = bids
        # false names stay in the market (a zero bid, no withdrawal fine) whenever the owner does
        bids, enter = full, np.repeat(enter, m, axis=1)
    return Action(bids=np.minimum(bids, context.spec.action_high), enter=enter)


AGENT = AgentType(name="best_response", version=VERSION,
                  summary="plays a bid table over values (a found best response or equilibrium)",
                  act=act, params_model=TableParams, identities=lambda params: params.identities)
