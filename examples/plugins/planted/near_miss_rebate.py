"""Second-price auction with near-miss rebates: a planted refund flaw (mecharena plug-in).

Rule: every bid > 0 takes part; the highest wins (ties: seeded priority) and pays the second-highest
bid (0 when alone). Every loser whose bid came within ``margin`` of the winning bid receives a
consolation rebate of ``rebate_share`` times its own bid (defaults: within 0.1, half the bid),
meant to keep close runners-up coming back.

Flaw: a loser's refund grows with its own bid, so losing with a high bid pays.

Exploit: bid above the value, to lose narrowly with a large bid: at n = 3 every value bids about
the margin above itself (0.12 at value 0, 0.60 at 0.5; more at larger n), capped at 1 - margin,
where every loss is a near miss; the cost is winning more often at a price above the value.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round, bids in
[0, 4] or abstaining; see ``examples/plugins/planted/README.md``), defaults:

=====  ==========
n      gain
=====  ==========
3      0.008209
4      0.015401
5      0.024748
=====  ==========

With ``rebate_share = 0`` the rule is the Vickrey auction and the exploitability is 0.

Load it with ``mecharena --plugin examples/plugins/planted/near_miss_rebate.py check near_miss_rebate``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class NearMissRebateConfig(MechanismConfig):
    """Config of the second-price auction with near-miss rebates."""

    margin: float = Field(0.1, ge=0, description="a loser bidding at least the winning bid minus this is refunded")
    rebate_share: float = Field(0.5, ge=0, le=1, description="share of its own bid a near-miss loser receives")


def properties(config: NearMissRebateConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "efficient"}
    return frozenset(promised | ({"truthful", "weak_budget_balance"} if config.rebate_share == 0 else set()))


def kernel(config: NearMissRebateConfig, values: Any, bids: Any, priority: Any, times: Any = None):
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
    near_miss = enters & (allocation == 0) & (bids >= top - config.margin)
    receipts = config.rebate_share * np.where(near_miss, bids, 0.0)
    return finish(allocation, allocation * second, receipts, allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: NearMissRebateConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = sorted((i for i in range(n) if valid[i] and bids[i] > 0), key=lambda i: (bids[i], priority[i]),
                      reverse=True)
    allocation, gains, payments, receipts = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    if entrants:
        winner, top = entrants[0], bids[entrants[0]]
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = bids[entrants[1]] if len(entrants) > 1 else 0.0
        for i in entrants[1:]:
            if bids[i] >= top - config.margin:
                receipts[i] = config.rebate_share * bids[i]
    return scalar_outcome(gains, allocation, payments, receipts, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="near_miss_rebate", version=1, summary="second price; losers within a margin of the winner get part of "
    "their bid back", config_model=NearMissRebateConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"rebate_share": 0.0}, {"margin": 0.5, "rebate_share": 1.0}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of bidding ``bids`` with ``values`` against n - 1 truthful U[0, 1] rivals.

    The highest rival value X has CDF ``x^k`` on [0, 1], k = n - 1. The bid b wins when X < c = min(b, 1)
    and pays X; it loses narrowly, and receives ``s b``, when b < X <= b + margin:
    ``E[u] = v c^k - k/(k + 1) c^(k+1) + s b (min(b + margin, 1)^k - c^k)``.

    Args:
        values: values, broadcastable against ``bids``.
        bids: bids in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    config, k = MECHANISM.config(config), n - 1
    c = np.minimum(bids, 1.0)
    near = np.minimum(bids + config.margin, 1.0) ** k - c**k
    return values * c**k - k / (k + 1) * c ** (k + 1) + config.rebate_share * bids * near


def kinks(config: NearMissRebateConfig) -> Any:
    """Bids where the expected utility has a kink: where a near miss, then a loss, becomes impossible."""
    return np.array([max(1.0 - config.margin, 0.0), 1.0])


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
