"""Bayes-Nash agent: the symmetric equilibrium bid, assuming every other agent is its twin.

For the k-unit pay-as-bid auction with unit demand (k = 1 is the first-price auction, and the
continuous Dutch clock starting above every value, its strategic twin),
i.i.d. values with CDF F and a public reserve r, the symmetric equilibrium bid is

    b(v) = E[max(Y, r) | Y < v] = v - (1 / G(v)) * integral_r^v G(y) dy,   v >= r,

where Y is the k-th highest of the other n - 1 values and
``G(y) = sum_{j<k} C(n-1, j) F(y)^(n-1-j) (1 - F(y))^j`` its CDF (Krishna, *Auction Theory*,
2nd ed., prop. 2.2 and ch. 13; Riley and Samuelson 1981). With F uniform on [0, 1] and
k = 1 this is ``v - (v^n - r^n) / (n v^(n-1))``. A value below r bids its value (it cannot win).
A bid of a value at or above r is never below r (floating error in the integral is clamped away).

With fewer rivals than units (n - 1 < k: G is identically 1) nobody competes for a unit, so
the price is the reserve: every value at or above r bids r, or the smallest bid that enters
(``mechanisms.base.SMALLEST_BID``: the kernels take part only bids > 0) when r = 0, and wins.
The referee's adaptive bidders (``designer.core.bne_ratios``) use the same rule.
A secret or unannounced reserve is planned as if it were the lowest value. Where truthful bidding is
dominant the agent bids truthfully; in the linear public-goods game it contributes 0 when
the MPCR is below 1 (the selfish Nash equilibrium) and everything above 1.

Every other mechanism (a plug-in, an entry fee, a rule without a closed form) gets the equilibrium
solver's symmetric bid function (:mod:`mecharena.agents.equilibrium`: iterated best responses with
a NashConv certificate, solved once per mechanism, version, config, n and value distribution, then
cached), linear between its grid values.

Where the population's groups draw values from different priors (asymmetric bidders, see
:mod:`mecharena.agents.population`), the closed forms above, all symmetric, do not apply: the agent
plays its own prior's bid function in the solver's asymmetric equilibrium, one strategy per distinct
prior (:func:`mecharena.agents.equilibrium.solve_groups`), unless truthful bidding is dominant. In
first price with two uniform bidders on [0, 1] and [0, 2] it reproduces Plum's (1992) closed form
(tests/agents/test_equilibrium.py).

The integral is evaluated on a grid of 4,096 intervals with 8-point Gauss-Legendre per
interval (exact for the polynomial G of uniform values) and interpolated linearly.

With interdependent values (``ValueDistribution.common`` = c > 0: value_i = (1 - c) s_i + c mean_j s_j
of i.i.d. signals s with CDF F) the symmetric equilibria without a reserve are (Milgrom and Weber
1982; Krishna, *Auction Theory*, 2nd ed., ch. 6) ``b(x) = w(x)`` in second price and
``b(x) = integral_0^x w dG / G(x)`` in first price, where G = F^(n-1) and ``w(y) = v(y, y) =
(1 - c) y + (c / n) (2 y + (n - 2) E[s | s < y])`` is the value of a bidder whose signal ties the
highest of the others'. With uniform signals ``w(y) = y ((1 - c) + c (n + 2) / (2 n))``. Other
mechanisms, or a reserve, have no closed form here with common values, and the solver plays private
values only: ``bne`` refuses them.
"""

import functools
import math

import numba
import numpy as np

from mecharena.agents import equilibrium
from mecharena.agents.base import AgentType, MarketContext
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.mechanisms.base import SMALLEST_BID

VERSION = 2
_GRID = 4096
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def order_statistic_cdf(f: FloatArray, rivals: int, k: int) -> FloatArray:
    """P(the k-th highest of ``rivals`` i.i.d. draws is below y) given F(y) = ``f``; 1 when k > rivals."""
    return sum(math.comb(rivals, j) * f ** (rivals - j) * (1 - f) ** j for j in range(min(k, rivals + 1)))


def kth_highest_cdf(dist: ValueDistribution, y: FloatArray, rivals: int, k: int) -> FloatArray:
    """CDF of the k-th highest of ``rivals`` i.i.d. values (1 when k > rivals)."""
    return order_statistic_cdf(dist.cdf(y), rivals, k)


def shaded_bids(dist: ValueDistribution, values: FloatArray, n: int, k: int, reserve: float,
                power: float = 1.0) -> FloatArray:
    """Symmetric equilibrium bids of the k-unit pay-as-bid auction (first price for k = 1):
    ``b(v) = v - integral_r^v H / H(v)`` with ``H = G^power`` (``power = 1/(1 - rho)`` for CRRA
    bidders, see :mod:`mecharena.agents.crra`; 1 for risk neutrality).

    Values below the reserve bid their value; the others bid at least ``max(reserve, SMALLEST_BID)``,
    exactly that when ``n - 1 < k`` (no competition for a unit).
    """
    start = max(reserve, dist.low)
    if start >= dist.high:
        return values.copy()
    entry = max(reserve, SMALLEST_BID)  # the lowest bid that takes part
    if n - 1 < k:
        return np.where(values >= start, entry, values)
    grid, curve = _curve(dist, n, k, float(start), float(power))
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim >= 1:
        out = np.empty(values.shape)
        x = values if values.ndim == 2 else values.reshape(-1, 1)
        _shade(x, grid, curve, float(start), float(entry), out.reshape(x.shape))
        return out
    return np.where(values >= start, np.maximum(interp_even(values, grid, curve), entry), values)


def interp_even(x: FloatArray, xp: FloatArray, fp: FloatArray) -> FloatArray:
    """``np.interp(x, xp, fp)`` bit for bit, for an increasing, evenly spaced ``xp`` (any shape of ``x``):
    each point's interval comes from arithmetic instead of a binary search, about 10x faster on a 4,097-point
    grid."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if xp.size == 1:  # one point: NumPy gives its value everywhere, NaN included
        return np.full(x.shape, fp[0])
    out = np.empty_like(x)
    _shade(x.reshape(-1, 1), xp, fp, -np.inf, -np.inf, out.reshape(-1, 1))  # nothing below -inf but NaN
    return out


@numba.njit(cache=True, nogil=True)
def _shade(x: FloatArray, xp: FloatArray, fp: FloatArray, start: float, entry: float, out: FloatArray) -> None:
    """``np.where(x >= start, np.maximum(np.interp(x, xp, fp), entry), x)`` in one pass over 2-d arrays, for an
    increasing, evenly spaced ``xp``; ``np.maximum`` keeps a NaN interpolated value.

    NumPy's rules: below xp[0] fp[0], at or above xp[-1] fp[-1], a grid point its own value, else
    slope * (x - xp[j]) + fp[j] with xp[j] <= x < xp[j + 1]. The guessed j is moved until that holds, so
    rounding in the guess never changes the interval."""
    n = xp.size - 1
    low, high = xp[0], xp[n]
    scale = n / (high - low) if n > 0 else 0.0
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[i, c]
            if not v >= start:
                out[i, c] = v
                continue
            if n == 0 or v >= high:
                y = fp[n]
            elif v < low:
                y = fp[0]
            else:
                j = min(int((v - low) * scale), n - 1)
                while j > 0 and v < xp[j]:
                    j -= 1
                while j < n - 1 and v >= xp[j + 1]:
                    j += 1
                slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
                y = fp[j] if v == xp[j] else slope * (v - xp[j]) + fp[j]
                if y != y:  # NumPy then tries from the right end, then a flat interval's value
                    y = slope * (v - xp[j + 1]) + fp[j + 1]
                    if y != y and fp[j] == fp[j + 1]:
                        y = fp[j]
            out[i, c] = y if not y < entry else entry


@functools.lru_cache(maxsize=256)
def _curve(dist: ValueDistribution, n: int, k: int, start: float, power: float) -> tuple[FloatArray, FloatArray]:
    """The bid function of :func:`shaded_bids` on its grid from ``start``: the same for every round of a
    run, so it is computed once (arrays read-only)."""

    def h(y: FloatArray) -> FloatArray:
        g = kth_highest_cdf(dist, y, n - 1, k)
        return g if power == 1.0 else g**power

    grid = np.linspace(start, dist.high, _GRID + 1)
    half = np.diff(grid) / 2
    nodes = (grid[:-1] + half)[:, None] + half[:, None] * _NODES[None, :]
    pieces = (h(nodes) * _WEIGHTS).sum(axis=1) * half
    integral = np.concatenate([[0.0], np.cumsum(pieces)])
    g = h(grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = np.where(g > 0, grid - integral / g, grid)
    grid.flags.writeable = curve.flags.writeable = False
    return grid, curve


def common_value_bids(dist: ValueDistribution, signals: FloatArray, n: int, first_price: bool) -> FloatArray:
    """Symmetric equilibrium bids with interdependent values and no reserve (module docstring): w(x) in
    second price, E[w(Y) | Y < x] over the highest other signal Y in first price."""
    grid = np.linspace(dist.low, dist.high, _GRID + 1)
    f = dist.cdf(grid)
    middle = (grid[1:] + grid[:-1]) / 2
    below = np.concatenate([[0.0], np.cumsum(middle * np.diff(f))])  # integral of s dF up to y
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = np.where(f > 0, below / f, grid)  # E[s | s < y]
    w = (1 - dist.common) * grid + dist.common / n * (2 * grid + (n - 2) * mean_below)
    if first_price:
        g = f ** (n - 1)
        paid = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(g))])
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(g > 0, paid / g, w)
    return np.interp(signals, grid, w)


def first_price_like(context: MarketContext) -> bool:
    """First price, pay-as-bid, or a continuous Dutch clock that starts above every value (first price's
    strategic twin: its outcome is first price's for the same bids)."""
    name, config = context.mechanism.name, context.config
    return name in ("first_price", "pay_as_bid") or (name == "dutch" and config.increment == 0
                                                      and config.start_price >= context.values.high)


def auction_bids(context: MarketContext, values: FloatArray, agent: str, power: float = 1.0) -> FloatArray | None:
    """Equilibrium bids in first price and unit-demand pay-as-bid (None for other mechanisms).

    Raises:
        ConfigError: an entry fee, multi-unit demand or common values (no closed form).
    """
    config = context.config
    if not first_price_like(context):
        return None
    if context.values.common > 0:
        raise ConfigError(f"{agent} has no closed form with common values (common={context.values.common}); "
                          f"use private values (common=0)")
    if getattr(config, "entry_fee", 0.0) > 0:
        raise ConfigError(f"{agent} has no closed form with entry_fee > 0; set entry_fee=0")
    if getattr(config, "demand", 1) != 1:
        raise ConfigError(f"{agent} for pay_as_bid needs unit demand (demand=1)")
    k = getattr(config, "units", 1)
    return shaded_bids(context.values, values, context.n_agents, k, context.visible_reserve, power)


def act(context: MarketContext, params, state, values: FloatArray, draws) -> FloatArray:
    name, config = context.mechanism.name, context.config
    if context.priors is not None:  # asymmetric bidders
        return _asymmetric_act(context, values)
    if context.values.common > 0:
        return _common_value_act(context, values)
    if first_price_like(context) and getattr(config, "entry_fee", 0.0) == 0:
        bids = auction_bids(context, values, "bne")
        if bids is not None:
            return bids
    if name == "vcm":
        return np.full_like(values, config.endowment if config.mpcr > 1 else 0.0)
    if "truthful" in context.mechanism.properties(config):
        return context.mechanism.truthful(config, values, context.spec)
    try:
        found = equilibrium.cached_solve(context.mechanism, config, context.n_agents, context.values)
    except ConfigError as exc:
        raise ConfigError(f"bne has no closed form for {name} with this config and the equilibrium solver cannot "
                          f"play it: {exc}") from None
    return found.bid(values)


def _asymmetric_act(context: MarketContext, values: FloatArray) -> FloatArray:
    """The group's bid function in the solver's equilibrium with one strategy per distinct prior."""
    mechanism, config = context.mechanism, context.config
    if "truthful" in mechanism.properties(config):
        return mechanism.truthful(config, values, context.spec)
    distinct = list({id(p): p for p in context.priors}.values())
    groups = [(sum(p is q for p in context.priors), q) for q in distinct]
    try:
        found = equilibrium.cached_groups(mechanism, config, groups)
    except ConfigError as exc:
        raise ConfigError(f"bne with asymmetric priors plays the equilibrium solver, which cannot play "
                          f"{mechanism.name} with this config: {exc}") from None
    own = next(k for k, q in enumerate(distinct) if q is context.values)
    return found[own].bid(values)


def _common_value_act(context: MarketContext, signals: FloatArray) -> FloatArray:
    name, config = context.mechanism.name, context.config
    plain = getattr(config, "reserve_price", 0.0) == 0 and getattr(config, "entry_fee", 0.0) == 0
    if name not in ("first_price", "second_price") or not plain:
        raise ConfigError(f"bne has no closed form for {name} with common values (common={context.values.common})"
                          f"{'' if plain else ' and a reserve or entry fee'}; closed forms cover first and second "
                          f"price without a reserve or entry fee, and the equilibrium solver plays private values")
    return common_value_bids(context.values, signals, context.n_agents, name == "first_price")


AGENT = AgentType(name="bne", version=VERSION, summary="symmetric Bayes-Nash equilibrium bid", act=act)
