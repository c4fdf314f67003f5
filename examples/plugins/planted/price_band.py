"""First-price auction with a half-price band: a planted narrow-window payment flaw (mecharena plug-in).

Rule: every bid > 0 takes part; the highest wins (ties: seeded priority) and pays its bid, except
that a winning bid inside the promotional band ``[band_low, band_low + band_width]`` pays only
``band_share`` of it (defaults: [0.40, 0.45], half price).

Flaw: the price jumps down inside a narrow band of winning bids, so a bid at the top of the band
beats the smooth shading curve for a middle range of values.

Exploit: a bidder whose value lies in a middle range (about [0.21, 1] at n = 3, [0.20, 0.77] at
n = 5) bids inside the band, mostly its top, 0.45, paying 0.225 when it wins; other values shade as
in any first-price auction. A search over smooth shading curves
``b = a v`` cannot find this: it needs a bid that is flat in the value over a range.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round, bids in
[0, 4] or abstaining; see ``examples/plugins/planted/README.md``). Against truthful rivals any
first-price auction rewards shading; the table gives the whole gain over truthful bidding and the
band's own part, the gain over the best response to the plain first-price rule (``band_share = 1``,
whose exploitability is ``(n-1)^(n-1) / (n^n (n+1))`` from bidding ``(n-1)v/n``):

=====  ==========  ===========  ==========
n      total       plain rule   band part
=====  ==========  ===========  ==========
3      0.059192    0.037037     0.022155
4      0.028797    0.021094     0.007703
5      0.016570    0.013653     0.002917
=====  ==========  ===========  ==========

Load it with ``mecharena --plugin examples/plugins/planted/price_band.py check price_band``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class PriceBandConfig(MechanismConfig):
    """Config of the first-price auction with a price band."""

    band_low: float = Field(0.40, ge=0, description="lowest winning bid of the discounted band")
    band_width: float = Field(0.05, ge=0, description="width of the band (its top is band_low + band_width)")
    band_share: float = Field(0.5, ge=0, le=1, description="share of its bid a winner inside the band pays")


def properties(config: PriceBandConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    return frozenset({"ir", "payments_le_bids", "weak_budget_balance", "efficient"})


def _price(config: PriceBandConfig, bid: Any) -> Any:
    """What a winning ``bid`` pays (a float or an array)."""
    inside = (bid >= config.band_low) & (bid <= config.band_low + config.band_width)
    return np.where(inside, config.band_share * bid, bid)


def kernel(config: PriceBandConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    score = np.where(enters, bids, -np.inf)
    tied = enters & (score == score.max(axis=1, keepdims=True))
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(bids.shape[0]), winner] = tied.any(axis=1)
    payments = allocation * _price(config, np.where(enters, bids, 0.0))
    return finish(allocation, payments, np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: PriceBandConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = [i for i in range(n) if valid[i] and bids[i] > 0]
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if entrants:
        winner = max(entrants, key=lambda i: (bids[i], priority[i]))
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = float(_price(config, bids[winner]))
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="price_band", version=1, summary="first price, but a winning bid inside a narrow band pays a share of it",
    config_model=PriceBandConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"band_share": 1.0}, {"band_low": 0.2, "band_width": 0.5}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of bidding ``bids`` with ``values`` against n - 1 truthful U[0, 1] rivals.

    The bid b wins when the highest rival value is below it, with probability ``min(b, 1)^(n-1)``,
    and then pays its price: ``E[u] = min(b, 1)^(n-1) (v - price(b))``.

    Args:
        values: values, broadcastable against ``bids``.
        bids: bids in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    config = MECHANISM.config(config)
    return np.minimum(bids, 1.0) ** (n - 1) * (values - _price(config, bids))


def kinks(config: PriceBandConfig) -> Any:
    """Bids where the expected utility jumps: the two ends of the band."""
    return np.array([config.band_low, config.band_low + config.band_width])


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
