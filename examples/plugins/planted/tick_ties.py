"""Second-price auction on a tick grid, ties to the lower bid: a planted tie-breaking flaw (mecharena plug-in).

Rule: every bid > 0 takes part and is ranked by its tick, ``floor(bid * ticks) / ticks`` (default
ticks of 0.05; ``ticks = 0`` ranks exact bids). The highest tick wins; a tie in the top tick goes to
the lower actual bid, meant to favour the more modest bidder (equal bids: seeded priority). The
winner pays the second-highest tick (0 when alone).

Flaw: within a tick the lower bid wins the tie at the same price, so the best bid in a tick is its
bottom edge; the flaw exists only through ties.

Exploit: bid exactly the bottom of a tick: the bottom of the value's own tick (a value of 0.37 bids
0.35) wins every tie at that tick and pays the same price, and near the top of a tick the bottom of
the next one pays off when the expected tie win outweighs the price above the value.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round, bids in
[0, 4] or abstaining; see ``examples/plugins/planted/README.md``), default ticks of 1/20:

=====  ==========
n      gain
=====  ==========
3      0.000844
4      0.000849
5      0.000854
=====  ==========

With ``ticks = 0`` (exact bids, where ties have probability 0) the rule is the Vickrey auction and
the exploitability is 0.

Load it with ``mecharena --plugin examples/plugins/planted/tick_ties.py check tick_ties``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class TickTiesConfig(MechanismConfig):
    """Config of the second-price auction on ticks."""

    ticks: int = Field(20, ge=0, le=10_000, description="ticks per unit of money (0: bids are ranked exactly)")


def properties(config: TickTiesConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "weak_budget_balance"}
    return frozenset(promised | ({"truthful", "efficient"} if config.ticks == 0 else set()))


def tick(config: TickTiesConfig, bids: Any) -> Any:
    """The tick a bid ranks at (a float or an array)."""
    return np.floor(bids * config.ticks) / config.ticks if config.ticks else bids


def kernel(config: TickTiesConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    ranks = np.where(enters, tick(config, np.where(enters, bids, 0.0)), -1.0)
    ordered = np.sort(ranks, axis=1)
    top = ordered[:, -1:]
    second = np.maximum(ordered[:, -2:-1], 0.0) if bids.shape[1] > 1 else np.zeros_like(top)
    in_top = enters & (ranks == top)
    lowest = np.where(in_top, bids, np.inf).min(axis=1, keepdims=True)
    tied = in_top & (bids == lowest)
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(bids.shape[0]), winner] = tied.any(axis=1)
    return finish(allocation, allocation * second, np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: TickTiesConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = [i for i in range(n) if valid[i] and bids[i] > 0]
    rank = {i: float(tick(config, bids[i])) for i in entrants}
    # the highest tick first, then the lower bid, then the higher priority
    ranked = sorted(entrants, key=lambda i: (-rank[i], bids[i], -priority[i]))
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if ranked:
        winner = ranked[0]
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = rank[ranked[1]] if len(ranked) > 1 else 0.0
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="tick_ties", version=1, summary="second price on a tick grid; a tie in the top tick goes to the lower bid",
    config_model=TickTiesConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"ticks": 0}, {"ticks": 4}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of bidding ``bids`` with ``values`` against n - 1 truthful U[0, 1] rivals.

    With T ticks per unit, the bid b ranks at tick ``t = j/T``, ``j = floor(b T)``; a rival of value x
    ranks at ``floor(x T)/T``. With ``G(x) = min(x, 1)^k`` (k = n - 1) the CDF of the highest rival:
    b wins outright when every rival ranks below t, paying the highest rival tick,
    ``sum_{i<j} (v - i/T) (G((i+1)/T) - G(i/T))``; and it wins the tie when the top rivals share its
    tick but all bid above b, with probability ``(min(t, 1) + (min(t + 1/T, 1) - b)^+)^k - min(t, 1)^k``,
    paying t. With T = 0 it is the Vickrey auction: ``v c^k - k/(k + 1) c^(k+1)``, c = min(b, 1).

    Args:
        values: values, broadcastable against ``bids``.
        bids: bids in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    config, k = MECHANISM.config(config), n - 1
    bids = np.asarray(bids, dtype=np.float64)
    if not config.ticks:
        c = np.minimum(bids, 1.0)
        return values * c**k - k / (k + 1) * c ** (k + 1)
    t = tick(config, bids)
    j = np.rint(t * config.ticks).astype(np.int64)
    levels = np.arange(4 * config.ticks + 2) / config.ticks
    mass = np.diff(np.minimum(levels, 1.0) ** k)  # P(the highest rival ranks at tick i)
    below = np.concatenate([[0.0], np.cumsum(mass)])[j]  # P(every rival ranks below tick j)
    paid = np.concatenate([[0.0], np.cumsum(levels[:-1] * mass)])[j]
    floor = np.minimum(t, 1.0)
    above = np.maximum(np.minimum(t + 1 / config.ticks, 1.0) - bids, 0.0)
    tie = (floor + above) ** k - floor**k
    return np.where(bids > 0, values * below - paid + tie * (values - t), 0.0)


def kinks(config: TickTiesConfig) -> Any:
    """Bids where the expected utility jumps: every tick's bottom edge and the largest bid below it."""
    edges = tick(config, np.arange(1, 4 * config.ticks + 1) / config.ticks) if config.ticks else np.array([])
    return np.concatenate([edges, np.nextafter(edges, 0.0)])


# The exact oracle: an exhaustive search over bids for each value, then Gauss-Legendre over values.
_BIDS = np.linspace(0.0, 4.0, 201)  # first pass, with the rule's kinks; three local passes refine it 20-fold each
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_PIECES = 256  # value intervals of the Gauss-Legendre rule


def best_response(values: Any, n: int, config: Any = None) -> Any:
    """The optimal bid for each value (NaN: abstaining is optimal), against n - 1 truthful rivals.

    Args:
        values: (V,) values in [0, 1].
        n: market size.
        config: the mechanism's config (None: the defaults).

    Returns:
        (V,) bids in [0, 4], NaN where no bid has positive expected utility.
    """
    values = np.asarray(values, dtype=np.float64)
    special = kinks(MECHANISM.config(config))
    grid = np.union1d(_BIDS, special[(special >= 0) & (special <= 4)])
    best = np.empty_like(values)
    for start in range(0, values.size, 2048):  # chunks keep the (values, bids) arrays small
        v = values[start:start + 2048, None]
        pick = grid[np.argmax(expected_utility(v, grid[None, :], n, config), axis=1)]
        for step in (2e-2, 1e-3, 5e-5):
            local = np.clip(pick[:, None] + np.linspace(-step, step, 41)[None, :], 0.0, 4.0)
            local = np.concatenate([pick[:, None], local], axis=1)
            pick = local[np.arange(len(v)), np.argmax(expected_utility(v, local, n, config), axis=1)]
        best[start:start + 2048] = pick
    return np.where(expected_utility(values, best, n, config) > 0, best, np.nan)


def true_exploitability(n: int, config: Any = None) -> float:
    """``E_v[max_b E[u | v, b]] - E_v[E[u | v, truthful]]`` per round, values U[0, 1] (module docstring)."""
    # The truthful bid crosses every kink, where its utility may jump: no interval may straddle one.
    special = kinks(MECHANISM.config(config))
    edges = np.union1d(np.linspace(0.0, 1.0, _PIECES + 1), special[(special > 0) & (special < 1)])
    half = np.diff(edges)[:, None] / 2
    values = ((edges[:-1, None] + half) + half * _NODES).ravel()
    weights = (half * _WEIGHTS).ravel()
    best = best_response(values, n, config)
    gain = np.where(np.isnan(best), 0.0, expected_utility(values, np.nan_to_num(best), n, config))
    return float(weights @ (gain - expected_utility(values, values, n, config)))
