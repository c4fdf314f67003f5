"""Second-price auction with a participation rebate per bid: a planted false-name flaw (mecharena plug-in).

Rule: every bid > 0 takes part; the highest wins (ties: seeded priority) and pays the second-highest
bid (0 when alone). To thicken the market every bid of at least ``rebate_floor`` (default 0.1) earns
a participation rebate of ``rebate`` (default 0.02); the floor keeps token bids from collecting it.

Flaw: the rebate is paid per identity, so an agent that bids under m names collects it m times, and
a false name bidding exactly the floor never wins and never raises the price above the floor.

Exploit: enter under the most identities allowed (m = 6 here): the agent's own identity bids its
value (at least the floor) and each false name bids the floor, collecting 5 extra rebates and
paying at least the floor when it wins. With one identity the only gain left is a low value bidding
the floor to collect a single rebate, which is much smaller.

True exploitability (one deviator, n - 1 truthful rivals, values i.i.d. U[0, 1], one round; the
deviator chooses m in 1..6 identities and bids in [0, 4] or abstains; see
``examples/plugins/planted/README.md``), defaults; "one identity": m fixed at 1:

=====  ==========  ============
n      gain        one identity
=====  ==========  ============
3      0.101642    0.001975
4      0.101972    0.001997
5      0.101998    0.002000
=====  ==========  ============

With ``rebate = 0`` the rule is the Vickrey auction and the exploitability is 0 (false-name bids do
not pay there either; Yokoo, Sakurai and Matsubara 2004, *Games Econ. Behav.* 46: 174-188).

Load it with ``mecharena --plugin examples/plugins/planted/identity_rebate.py check identity_rebate``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome

#: The most identities the deviator of the exploitability definition may bid under.
MAX_IDENTITIES = 6


class IdentityRebateConfig(MechanismConfig):
    """Config of the second-price auction with a participation rebate."""

    rebate: float = Field(0.02, ge=0, le=1, description="paid to every bid of at least rebate_floor")
    rebate_floor: float = Field(0.1, gt=0, le=1, description="lowest bid that earns the participation rebate")


def properties(config: IdentityRebateConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "efficient"}
    return frozenset(promised | ({"truthful", "weak_budget_balance"} if config.rebate == 0 else set()))


def kernel(config: IdentityRebateConfig, values: Any, bids: Any, priority: Any, times: Any = None):
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
    receipts = np.where(enters & (bids >= config.rebate_floor), config.rebate, 0.0)
    return finish(allocation, allocation * second, receipts, allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config: IdentityRebateConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = sorted((i for i in range(n) if valid[i] and bids[i] > 0), key=lambda i: (bids[i], priority[i]),
                      reverse=True)
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if entrants:
        winner = entrants[0]
        allocation[winner], gains[winner] = 1.0, values[winner]
        payments[winner] = bids[entrants[1]] if len(entrants) > 1 else 0.0
    receipts = [config.rebate if i in entrants and bids[i] >= config.rebate_floor else 0.0 for i in range(n)]
    return scalar_outcome(gains, allocation, payments, receipts, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="identity_rebate", version=1, summary="second price plus a participation rebate for every bid above a floor",
    config_model=IdentityRebateConfig, kernel=kernel, reference=reference, properties=properties,
    merges_identities=True, examples=({}, {"rebate": 0.0}, {"rebate": 0.3, "rebate_floor": 0.5}), doc=__doc__,
)


def expected_utility(values: Any, bids: Any, n: int, config: Any = None, identities: int = 1) -> Any:
    """Exact expected utility of one agent against n - 1 truthful U[0, 1] rivals.

    With one identity the agent bids b; with m >= 2 its own identity bids b >= f (the rebate floor)
    and its m - 1 false names bid f. No other profile of m bids does better: a name below the floor
    earns nothing, and a false name above it only raises the price. The highest rival value X has CDF
    ``x^k`` (k = n - 1); with c = min(b, 1) and rebate rho:

    * m = 1: b wins when X < c and pays X: ``v c^k - k/(k + 1) c^(k+1) + rho [b >= f]``;
    * m >= 2 (b >= f): b wins when X < c and pays max(X, f):
      ``v c^k - f^(k+1) - k/(k + 1) (c^(k+1) - f^(k+1)) + m rho``; -inf below the floor.

    Args:
        values: values, broadcastable against ``bids``.
        bids: the agent's highest bid, in [0, 4] (0 abstains).
        n: market size (the deviator and n - 1 rivals; its false names come on top).
        config: the mechanism's config (None: the defaults).
        identities: m, the identities the agent bids under.
    """
    config, k = MECHANISM.config(config), n - 1
    c, f = np.minimum(bids, 1.0), config.rebate_floor
    if identities == 1:
        return np.where(bids > 0, values * c**k - k / (k + 1) * c ** (k + 1) + config.rebate * (bids >= f), 0.0)
    paid = f ** (k + 1) + k / (k + 1) * (c ** (k + 1) - f ** (k + 1))
    return np.where(bids >= f, values * c**k - paid + identities * config.rebate, -np.inf)


def kinks(config: IdentityRebateConfig) -> Any:
    """Bids where the expected utility jumps: the rebate floor."""
    return np.array([config.rebate_floor, 1.0])


# The exact oracle: an exhaustive search over bids for each value and number of identities, then
# Gauss-Legendre over values.
_BIDS = np.linspace(0.0, 4.0, 201)  # first pass, with the rule's kinks; three local passes refine it 20-fold each
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_PIECES = 256  # value intervals of the Gauss-Legendre rule


def _best_bids(values: Any, n: int, config: Any, identities: int) -> Any:
    """(V,) the best highest bid for each value with ``identities`` identities."""
    special = kinks(MECHANISM.config(config))
    grid = np.union1d(_BIDS, special[(special >= 0) & (special <= 4)])
    best = np.empty_like(values)
    for start in range(0, values.size, 2048):  # chunks keep the (values, bids) arrays small
        v = values[start:start + 2048, None]
        pick = grid[np.argmax(expected_utility(v, grid[None, :], n, config, identities), axis=1)]
        for step in (2e-2, 1e-3, 5e-5):
            local = np.clip(pick[:, None] + np.linspace(-step, step, 41)[None, :], 0.0, 4.0)
            local = np.concatenate([pick[:, None], local], axis=1)
            pick = local[np.arange(len(v)), np.argmax(expected_utility(v, local, n, config, identities), axis=1)]
        best[start:start + 2048] = pick
    return best


def best_response(values: Any, n: int, config: Any = None, max_identities: int = MAX_IDENTITIES) -> tuple[Any, Any]:
    """The optimal highest bid and number of identities for each value, against n - 1 truthful rivals.

    Args:
        values: (V,) values in [0, 1].
        n: market size.
        config: the mechanism's config (None: the defaults).
        max_identities: the most identities the agent may bid under.

    Returns:
        ``(bids, identities)``: (V,) the own identity's bid in [0, 4], NaN where abstaining is optimal
        (the false names then abstain too), and (V,) m in 1..max_identities (1 when abstaining); the
        m - 1 false names bid ``config.rebate_floor``.
    """
    values = np.asarray(values, dtype=np.float64)
    best, best_m, best_u = np.full_like(values, np.nan), np.ones(values.shape, dtype=np.int64), np.zeros_like(values)
    # From two identities on, m only adds m rebates: the best bid is the same for every m >= 2.
    split = _best_bids(values, n, config, 2) if max_identities > 1 else values
    for m in range(1, max_identities + 1):
        bids = _best_bids(values, n, config, 1) if m == 1 else split
        u = expected_utility(values, bids, n, config, m)
        better = u > best_u  # strict: the fewest identities among equals
        best, best_m, best_u = np.where(better, bids, best), np.where(better, m, best_m), np.maximum(u, best_u)
    return best, best_m


def true_exploitability(n: int, config: Any = None, max_identities: int = MAX_IDENTITIES) -> float:
    """``E_v[max_(b, m) E[u | v, b, m]] - E_v[E[u | v, truthful]]`` per round, values U[0, 1] (module docstring)."""
    # The truthful bid crosses every kink, where its utility may jump: no interval may straddle one.
    special = kinks(MECHANISM.config(config))
    edges = np.union1d(np.linspace(0.0, 1.0, _PIECES + 1), special[(special > 0) & (special < 1)])
    half = np.diff(edges)[:, None] / 2
    values = ((edges[:-1, None] + half) + half * _NODES).ravel()
    weights = (half * _WEIGHTS).ravel()
    bids, identities = best_response(values, n, config, max_identities)
    gain = np.zeros_like(values)
    for m in np.unique(identities):
        mine = (identities == m) & ~np.isnan(bids)
        gain[mine] = expected_utility(values[mine], bids[mine], n, config, int(m))
    return float(weights @ (gain - expected_utility(values, values, n, config)))
