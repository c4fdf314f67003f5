"""Second-price auction with a margin discount: a planted payment-rule flaw (mecharena plug-in).

Rule: every bid > 0 takes part; the highest wins (ties: seeded priority) and pays the second-highest
bid p2 (0 when alone) minus a discount that grows with its winning margin:
``max(0, p2 - discount * (b1 - p2))``, meant to reward decisive bidders.

Flaw: the winner's price falls as its own bid rises, so the price is no longer independent of the
winner's bid and overbidding pays.

Exploit: overbid. Values above about 0.57 (n = 3; 0.67 at n = 5) bid the top of the range, 4: they
always win and pay ``max(0, 1.05 p2 - 0.2)``, nothing when every rival is below 0.19, which is worth
more than the occasional price above the value; lower values overbid by 1.5 to 3 percent.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round; the
mean gain per round of the best response over truthful bidding, bids in [0, 4] or abstaining;
see ``examples/plugins/planted/README.md``), default discount 0.05:

=====  ==========
n      gain
=====  ==========
3      0.043277
4      0.036767
5      0.032505
=====  ==========

With ``discount = 0`` the rule is the Vickrey auction and the exploitability is 0 (Vickrey 1961).

Load it with ``mecharena --plugin examples/plugins/planted/margin_discount.py check margin_discount``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class MarginDiscountConfig(MechanismConfig):
    """Config of the margin-discount auction."""

    discount: float = Field(0.05, ge=0, le=1, description="price cut per unit of the winner's margin over p2")


def properties(config: MarginDiscountConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "weak_budget_balance", "efficient"}
    return frozenset(promised | ({"truthful"} if config.discount == 0 else set()))


def kernel(config: MarginDiscountConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    score = np.sort(np.where(enters, bids, 0.0), axis=1)
    top = score[:, -1:]
    second = score[:, -2:-1] if bids.shape[1] > 1 else np.zeros_like(top)
    tied = enters & (bids == top)
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(bids.shape[0]), winner] = tied.any(axis=1)
    price = np.maximum(0.0, second - config.discount * (top - second))
    return finish(allocation, allocation * price, np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: MarginDiscountConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = sorted((i for i in range(n) if valid[i] and bids[i] > 0), key=lambda i: (bids[i], priority[i]),
                      reverse=True)
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if entrants:
        winner = entrants[0]
        top, second = bids[winner], bids[entrants[1]] if len(entrants) > 1 else 0.0
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = max(0.0, second - config.discount * (top - second))
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="margin_discount", version=1, summary="second price minus a discount growing with the winning margin",
    config_model=MarginDiscountConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"discount": 0.0}, {"discount": 1.0}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of bidding ``bids`` with ``values`` against n - 1 truthful U[0, 1] rivals.

    The highest rival value X has density ``k x^(k-1)`` on [0, 1], k = n - 1. The bid b wins when
    X < c = min(b, 1) and pays ``max(0, (1 + d) X - d b)``, which is 0 below ``a = min(d b/(1 + d), c)``:
    ``E[u] = v c^k - (1 + d) k/(k + 1) (c^(k+1) - a^(k+1)) + d b (c^k - a^k)``.

    Args:
        values: values, broadcastable against ``bids``.
        bids: bids in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    d, k = MECHANISM.config(config).discount, n - 1
    c = np.minimum(bids, 1.0)
    a = np.minimum(d * bids / (1 + d), c)
    return values * c**k - (1 + d) * k / (k + 1) * (c ** (k + 1) - a ** (k + 1)) + d * bids * (c**k - a**k)


def kinks(config: MarginDiscountConfig) -> Any:
    """Bids where the expected utility has a kink: 1 (winning is certain) and ``(1 + d)/d`` (the price is 0)."""
    return np.array([1.0] + ([(1 + config.discount) / config.discount] if config.discount else []))


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
