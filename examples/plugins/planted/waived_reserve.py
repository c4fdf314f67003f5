"""Second-price auction whose reserve is waived for a lone qualifier: a planted reserve flaw (mecharena plug-in).

Rule: every bid > 0 takes part and counts for the price; the highest bid wins (ties: seeded priority)
if it is at least ``reserve_price``, and pays the second-highest bid, or the reserve when it is the
only bid. The reserve is meant as the seller's minimum, but when exactly one bid clears it the
winner pays the runner-up's lower bid.

Flaw: the reserve only decides who may win, never what the winner pays, so a bidder whose value is
just below the reserve can win at a price below its value.

Exploit: a value v in ``(k r/(k + 1), r)`` (k = n - 1 rivals) bids exactly the reserve r and wins
whenever every rival is below r, paying the highest rival's bid; every other value bids truthfully.
Its gain integrates in closed form: ``r^(k+2) / (2 (k + 1)^2)``, the oracle's check.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round, bids in
[0, 4] or abstaining; see ``examples/plugins/planted/README.md``), default reserve 0.5:

=====  ==========
n      gain
=====  ==========
3      0.003472
4      0.000977
5      0.000312
=====  ==========

With ``reserve_price = 0`` the rule is the Vickrey auction and the exploitability is 0.

Load it with ``mecharena --plugin examples/plugins/planted/waived_reserve.py check waived_reserve``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class WaivedReserveConfig(MechanismConfig):
    """Config of the second-price auction with a waived reserve."""

    reserve_price: float = Field(0.5, ge=0, le=1, description="lowest bid that can win (not a price floor)")


def properties(config: WaivedReserveConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "weak_budget_balance"}
    return frozenset(promised | ({"truthful", "efficient"} if config.reserve_price == 0 else set()))


def kernel(config: WaivedReserveConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    score = np.sort(np.where(enters, bids, 0.0), axis=1)
    top = score[:, -1:]
    alone = enters.sum(axis=1, keepdims=True) == 1
    second = score[:, -2:-1] if bids.shape[1] > 1 else np.zeros_like(top)
    tied = enters & (bids == top) & (top >= config.reserve_price)
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(bids.shape[0]), winner] = tied.any(axis=1)
    price = np.where(alone, config.reserve_price, second)
    return finish(allocation, allocation * price, np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: WaivedReserveConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = sorted((i for i in range(n) if valid[i] and bids[i] > 0), key=lambda i: (bids[i], priority[i]),
                      reverse=True)
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if entrants and bids[entrants[0]] >= config.reserve_price:
        winner = entrants[0]
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = bids[entrants[1]] if len(entrants) > 1 else config.reserve_price
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="waived_reserve", version=1, summary="second price; the reserve decides who may win, not the price",
    config_model=WaivedReserveConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"reserve_price": 0.0}, {"reserve_price": 0.9}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of bidding ``bids`` with ``values`` against n - 1 truthful U[0, 1] rivals.

    A bid b below the reserve never wins; from the reserve up it wins when the highest rival value
    X (CDF ``x^k``, k = n - 1) is below c = min(b, 1) and pays X: ``E[u] = v c^k - k/(k + 1) c^(k+1)``.

    Args:
        values: values, broadcastable against ``bids``.
        bids: bids in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    config, k = MECHANISM.config(config), n - 1
    c = np.minimum(bids, 1.0)
    return np.where(bids >= config.reserve_price, values * c**k - k / (k + 1) * c ** (k + 1), 0.0)


def kinks(config: WaivedReserveConfig) -> Any:
    """Bids where the expected utility jumps: the reserve."""
    return np.array([config.reserve_price, 1.0])


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
