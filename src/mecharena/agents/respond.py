"""Type-wise best responses of one seat against fixed rivals, and the table agent that plays one.

Fix everything about M sampled markets except one seat's bid: the rivals' bids, the tie-breaking
priorities, the order times. With private values the seat's allocation ``a_m(b)`` and net payment
``p_m(b)`` (payments minus receipts) depend on its bid b, not on its value, and a unit-demand buyer
(or a unit-supply seller, whose allocation is -1 when it sells at cost v) gains ``v * a_m(b)``. So
for every value v at once

    U(v, b) = v * A(b) - P(b),   A(b) = mean_m a_m(b),   P(b) = mean_m p_m(b),

and one pass of clears over candidate bids gives expected utility on the whole (value x bid) grid
from the same M markets: every value's best response is estimated on all of them (common random
numbers), with no shape assumed. Candidates span a wide range (0, the smallest action, up to
several times the largest value), include truthful bidding, and are refined around each value's
best bid. Bid 0 is abstaining (the loop zeroes the bid of a seat that sits out).

:func:`check_private_values` verifies the linearity on the sample itself (clearing again with the
seat's value moved) and refuses mechanisms whose outcome depends on true values.

The agent type ``best_response`` plays a bid table over an evenly spaced value grid: the bid of
the nearest grid value (``interpolate=nearest``, right for discontinuous responses) or the linear
interpolation of its two neighbours (``linear``, for smooth equilibria); ``x`` abstains.
"""

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

VERSION = 1
ABSTAIN = "x"
MAX_TABLE = 1025
_CHUNK_ROWS = 2_000_000  # market copies per clearing call: bounds memory at about 16 * N bytes a row


@dataclass(frozen=True, slots=True)
class Sample:
    """M markets with one seat to respond in: everything but that seat's bid is fixed."""

    values: FloatArray  # (M, N)  true values (costs for sellers)
    bids: FloatArray  # (M, N)  rivals' bids as cleared (the seat's column is replaced)
    priority: FloatArray  # (M, N)
    times: FloatArray | None  # (M, N) order times, or None
    seat: int

    @property
    def markets(self) -> int:
        return self.values.shape[0]


@dataclass(frozen=True, slots=True)
class Response:
    """Expected utility over a (value x bid) grid, and each value's best bid."""

    values: FloatArray  # (V,)  value grid
    candidates: FloatArray  # (G,)  bids evaluated, ascending
    allocation: FloatArray  # (G,)  A(b): mean allocation of the seat
    payment: FloatArray  # (G,)  P(b): mean net payment of the seat
    best: FloatArray  # (V,)  best bid per value (0: abstain)
    gain: FloatArray  # (V,)  U(v, best) - U(v, v): in-sample gain over truthful bidding

    def utility(self, values: FloatArray, bids: FloatArray) -> FloatArray:
        """U(v, b) for matching arrays of values and evaluated bids."""
        index = np.searchsorted(self.candidates, bids)
        return values * self.allocation[index] - self.payment[index]

    @property
    def mean_gain(self) -> float:
        """In-sample gain averaged over the value grid (equal weights)."""
        return float(self.gain.mean())


def clear_many(mechanism: Mechanism, config: Any, sample: Sample, candidates: FloatArray) -> tuple[FloatArray, ...]:
    """(G,) mean allocation and mean net payment of the seat for each candidate bid (chunked clears).

    Returns:
        ``(allocation, payment)``, each (G,).
    """
    m, n = sample.values.shape
    per_call = max(1, _CHUNK_ROWS // m)
    allocation, payment = np.empty(candidates.size), np.empty(candidates.size)
    for start in range(0, candidates.size, per_call):
        chunk = candidates[start:start + per_call]
        g = chunk.size
        bids = np.tile(sample.bids, (g, 1))
        bids[:, sample.seat] = np.repeat(chunk, m)
        times = None if sample.times is None else np.tile(sample.times, (g, 1))
        out = mechanism.kernel(config, np.tile(sample.values, (g, 1)), bids, np.tile(sample.priority, (g, 1)), times)
        allocation[start:start + g] = out.allocation[:, sample.seat].reshape(g, m).mean(axis=1)
        net = out.payments[:, sample.seat] - out.receipts[:, sample.seat]
        payment[start:start + g] = net.reshape(g, m).mean(axis=1)
    return allocation, payment


def check_private_values(mechanism: Mechanism, config: Any, sample: Sample, bid: float, tol: float = 1e-9) -> None:
    """Raise :class:`ConfigError` unless the seat's utility is ``value * allocation - net payment``
    whatever its value (checked by clearing the sample again with the seat's value moved)."""
    bids = sample.bids.copy()
    bids[:, sample.seat] = bid
    outs = []
    for shift in (0.0, 0.5):
        values = sample.values.copy()
        values[:, sample.seat] += shift
        outs.append((values, mechanism.kernel(config, values, bids, sample.priority, sample.times)))
    s = sample.seat
    for values, out in outs:
        predicted = values[:, s] * out.allocation[:, s] - out.payments[:, s] + out.receipts[:, s]
        if not np.allclose(out.utility[:, s], predicted, atol=tol):
            raise ConfigError(f"the best-response search needs unit demand or unit supply (utility = value x units - "
                              f"payment); {mechanism.name} computes utility otherwise")
    (_, a), (_, b) = outs
    if not (np.array_equal(a.allocation[:, s], b.allocation[:, s]) and np.allclose(a.payments[:, s], b.payments[:, s])
            and np.allclose(a.receipts[:, s], b.receipts[:, s])):
        raise ConfigError(f"the best-response search needs private values: {mechanism.name}'s allocation or payments "
                          "change with the deviator's true value")


def candidate_grid(high: float, points: int, extra: FloatArray = np.zeros(0)) -> FloatArray:
    """Sorted unique bids: ``points`` evenly spaced on [0, high] plus ``extra``."""
    return np.unique(np.concatenate([np.linspace(0.0, high, points), extra]))


def respond(mechanism: Mechanism, config: Any, sample: Sample, values: FloatArray, *, bid_high: float,
            points: int = 257, refine: int = 2, bandwidth: float = 0.0) -> Response:
    """Best bid for each value in ``values`` against ``sample``, searched over [0, ``bid_high``].

    A coarse grid of ``points`` bids (plus truthful bids for each value) is cleared on every market;
    then, ``refine`` times, an 8x finer grid around each value's best bid so far.

    Args:
        mechanism: the mechanism (its kernel is called directly: inputs are already valid).
        config: its validated config.
        sample: M markets with the responding seat.
        values: (V,) value grid.
        bid_high: the highest bid searched.
        points: bids of the coarse grid (>= 3).
        refine: refinement passes.
        bandwidth: half-width of the window over which A(b) and P(b) are averaged before each value's
            best bid is chosen (0: none). A few hundredths of the value range steadies the argmax of
            a flat optimum against sampling noise; the gains reported are the unsmoothed ones.

    Returns:
        The :class:`Response` over every bid evaluated.
    """
    candidates = candidate_grid(bid_high, points, np.clip(values, 0.0, None))
    allocation, payment = clear_many(mechanism, config, sample, candidates)
    step = bid_high / (points - 1)
    for _ in range(refine):
        best = _best(values, candidates, allocation, payment, bandwidth)
        offsets = np.linspace(-step, step, 17)
        extra = np.setdiff1d(np.clip(best[:, None] + offsets[None, :], 0.0, bid_high).ravel(), candidates)
        if extra.size:
            a, p = clear_many(mechanism, config, sample, extra)
            order = np.argsort(np.concatenate([candidates, extra]), kind="stable")
            candidates = np.concatenate([candidates, extra])[order]
            allocation, payment = np.concatenate([allocation, a])[order], np.concatenate([payment, p])[order]
        step /= 8
    best = _best(values, candidates, allocation, payment, bandwidth)
    truthful = np.clip(values, 0.0, None)
    response = Response(values, candidates, allocation, payment, best, np.zeros(values.size))
    gain = response.utility(values, best) - response.utility(values, truthful)
    return Response(values, candidates, allocation, payment, best, gain)


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
          bandwidth: float) -> FloatArray:
    """Each value's best candidate: the maximum of the smoothed utility, then, among the bids whose
    unsmoothed utility equals that choice's exactly (a flat region), the one closest to the value."""
    smooth_a, smooth_p = _smooth(candidates, bandwidth, allocation, payment)
    chosen = np.argmax(values[:, None] * smooth_a[None, :] - smooth_p[None, :], axis=1)  # (V,)
    utility = values[:, None] * allocation[None, :] - payment[None, :]  # (V, G)
    top = utility[np.arange(values.size), chosen][:, None]
    tied = np.abs(utility - top) <= 1e-12 * np.maximum(1.0, np.abs(top))
    distance = np.where(tied, np.abs(candidates[None, :] - values[:, None]), np.inf)
    return candidates[np.argmin(distance, axis=1)]


# --- the agent type that plays a table -------------------------------------------------------------------


def format_table(bids: FloatArray, abstain: FloatArray | None = None) -> str:
    """``"0.1/0.25/x/..."``: bids to 6 significant digits, ``x`` where the seat abstains."""
    quiet = np.zeros(bids.size, bool) if abstain is None else abstain
    return "/".join(ABSTAIN if q else f"{float(b):.6g}" for b, q in zip(bids, quiet, strict=True))


def parse_table(text: str) -> tuple[FloatArray, np.ndarray]:
    """``(bids, abstain)`` from :func:`format_table`'s text.

    Raises:
        ConfigError: fewer than 2 or more than MAX_TABLE entries, or an entry that is not a finite
            number >= 0 or ``x``.
    """
    parts = [p.strip() for p in str(text).split("/")]
    if not 2 <= len(parts) <= MAX_TABLE:
        raise ConfigError(f"bids must hold 2 to {MAX_TABLE} entries separated by '/', got {len(parts)}")
    bids, abstain = np.zeros(len(parts)), np.zeros(len(parts), bool)
    for i, part in enumerate(parts):
        if part == ABSTAIN:
            abstain[i] = True
            continue
        try:
            bids[i] = float(part)
        except ValueError:
            bids[i] = math.nan
        if not (math.isfinite(bids[i]) and bids[i] >= 0):
            raise ConfigError(f"bids entry {i} must be a finite number >= 0 or '{ABSTAIN}' (abstain), got {part!r}")
    return bids, abstain


class TableParams(StrictModel):
    """A bid table over ``points`` evenly spaced values on [low, high]."""

    low: float = Field(0.0, description="value of the table's first entry")
    high: float = Field(1.0, description="value of the table's last entry")
    bids: str = Field("0/1", description="bids separated by '/', one per grid value; 'x' abstains")
    interpolate: Literal["nearest", "linear"] = Field("nearest", description="between grid values")

    @field_validator("bids")
    @classmethod
    def _table(cls, text: str) -> str:
        try:
            parse_table(text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return text

    @model_validator(mode="after")
    def _ordered(self) -> "TableParams":
        if not self.high > self.low:
            raise ValueError(f"high must be > low ({self.low}), got {self.high}")
        return self


def table_bids(params: TableParams, values: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """(bids, enter) of the table for ``values`` of any shape."""
    bids, abstain = parse_table(params.bids)
    k = bids.size
    position = np.clip((values - params.low) / (params.high - params.low) * (k - 1), 0.0, k - 1)
    nearest = np.rint(position).astype(np.int64)
    out, enter = bids[nearest], ~abstain[nearest]
    if params.interpolate == "linear":
        lo = np.floor(position).astype(np.int64)
        hi = np.minimum(lo + 1, k - 1)
        both = ~abstain[lo] & ~abstain[hi]
        w = position - lo
        out = np.where(both, (1 - w) * bids[lo] + w * bids[hi], out)
    return np.where(enter, out, 0.0), enter


def act(context: MarketContext, params: TableParams, state: None, values: FloatArray, draws) -> Action:
    if context.spec.units_per_agent or context.spec.orders_per_agent:
        raise ConfigError(f"best_response plays one bid per seat; {context.mechanism.name} is configured for "
                          "several units or orders per agent")
    bids, enter = table_bids(params, values)
    return Action(bids=np.minimum(bids, context.spec.action_high), enter=enter)


AGENT = AgentType(name="best_response", version=VERSION,
                  summary="plays a bid table over values (a found best response or equilibrium)",
                  act=act, params_model=TableParams)
