"""Multi-unit Vickrey auction with volume pricing: a planted bid-vector flaw (mecharena plug-in).

Rule: ``units`` = k identical units; each bidder submits ``demand`` non-increasing marginal bids
(an invalid vector abstains). The k highest eligible marginal bids (> 0 and >= the reserve) win, as in
the multi-unit Vickrey (VCG) auction (ties: seeded priority, see the built-in ``vcg``). Let
``o_1 >= o_2 >= ... >= o_k`` be the k highest of the *other* bidders' marginal bids, padded with k
copies of the reserve. Vickrey charges a bidder that wins q units the q bids it displaces,
``o_k + o_(k-1) + ... + o_(k-q+1)``: the j-th unit it wins costs ``o_(k-j+1)``. Volume pricing, meant
to spare large buyers a rising price per unit, pulls the price of every further unit toward the first
unit's price ``o_k``: the j-th unit costs ``o_(k-j+1) - volume_discount * (o_(k-j+1) - o_k)``, so
``volume_discount = 1`` (the default) prices every unit a bidder wins at its first unit's Vickrey
price, ``q o_k``.

Flaw: the allocation still hands a bidder its second unit exactly when its second marginal bid beats
``o_(k-1)``, but that unit now costs ``o_(k-1) - d (o_(k-1) - o_k)`` (d = ``volume_discount``), less
than the ``o_(k-1)`` it displaces: at d = 1 winning it is worth ``v_2 - o_k``, not ``v_2 - o_(k-1)``,
and the second bid alone decides it.

Exploit: through the bid vector. Keep the first bid truthful and inflate the second marginal bid above
the second value (the opposite of the uniform-price auction's demand reduction); where that would
cross the first bid, flatten the vector to one bid for both units, above the first value.

Exploitability (this folder's definition): one deviator, the first bidder, and n - 1 bidders that bid
their marginal values truthfully; each bidder's two marginal values are the two order statistics of
two i.i.d. U[0, 1] draws (highest first); one round; k = 2 units, demand 2, no reserve. The deviator
may submit any ``b_1 >= b_2 >= 0``, and

    true exploitability = E_v[ max_{b_1 >= b_2} E[u | v, b] ] - E_v[ E[u | v, truthful] ]

per round, u = the values of the units won minus the payment, v = (v_1, v_2) the deviator's values.

Exact computation. The rivals' 2(n - 1) = M marginal bids pooled are M i.i.d. U[0, 1] draws; only
their highest two matter, X = o_1 >= Y = o_2, with joint density ``M (M - 1) y^(M-2)`` on
0 < y < x < 1 (David and Nagaraja, *Order Statistics*, 3rd ed., sec. 2.2). The deviator wins both
units when ``b_2 > X``, paying ``(1 - d) X + (1 + d) Y``, and one unit when ``b_2 < X`` and
``b_1 > Y``, paying Y. With A = min(b_2, 1), B = min(b_1, 1) the expected utility separates:

    E[u] = h(A) + g(B),   h(A) = v_2 A^M - (M - d)/(M + 1) A^(M+1),
    g(B) = v_1 B^M - (M - 1)/(M + 1) B^(M+1) + (1 - B) (M v_1 B^(M-1) - (M - 1) B^M).

g peaks at B = v_1 (truthful first bid), h at A = M v_2 / (M - d). The best response is
``(v_1, M v_2/(M - d))`` when ``v_2 <= (M - d) v_1 / M``, worth
``v_2^(M+1) / (M + 1) * ((M/(M - d))^M - (1 + d))`` over truthful bidding; otherwise the constraint
binds and both bids are one ``t`` in [v_1, 1], where ``t^(2-M) d/dt (h + g)(t)`` is the quadratic
``(M (M - 2) + d) t^2 + (M v_2 - M (M - 1)(1 + v_1)) t + M (M - 1) v_1``: t is its smaller root, or 1
(win both units for sure) when ``v_2 >= (M - d)/M``. The gain is integrated over the values' density
2 on v_1 >= v_2 with 8-point Gauss-Legendre on pieces split where the best response changes form.

At n = 2 (one rival, M = 2) and d = 1 the second bid doubles, ``b_2 = 2 v_2``, while
``v_2 <= v_1 / 2``; above, the flat bid is the smaller root of ``t^2 - 2 (1 + v_1 - v_2) t + 2 v_1``,
and values with ``v_2 >= 1/2`` bid 1 for both units. The three regions are worth 1/240 (closed form
above), 0.0065972 (numerically; 19/2880 to 30 digits) and 9/320 (``v_1 + v_2 - 2/3`` against truthful
bidding), in all 7/180 = 0.038889 per round, 9% of what truthful bidding earns here (0.433; 0.400 under Vickrey).
True exploitability, k = 2 units, demand 2 (refining both Gauss-Legendre grids fourfold moves no entry
by more than 2e-12):

=====  ==============  ==============
n      d = 1           d = 0.5
=====  ==============  ==============
2      0.038889        0.007986
3      0.008132        0.001761
4      0.003027        0.000668
=====  ==============  ==============

The tests use n = 2, d = 1. With ``volume_discount = 0`` (the ``PLAIN`` config) the rule is the
multi-unit Vickrey auction, where truthful bidding is weakly dominant for decreasing marginal values
(Vickrey 1961; Clarke 1971; Groves 1973; Krishna, *Auction Theory*, 2nd ed., ch. 12): exploitability 0.

Load it with
``mecharena --plugin examples/plugins/planted/multi_unit/volume_vickrey.py check volume_vickrey``.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.base import MarketSpec

PLAIN = {"units": 2, "demand": 2, "volume_discount": 0.0}  # the flaw switched off: the multi-unit Vickrey auction


class VolumeVickreyConfig(MechanismConfig):
    """Config of the volume-priced Vickrey auction."""

    units: int = Field(2, ge=1, le=1000, description="identical units for sale (k)")
    demand: int = Field(2, ge=1, le=16, description="units one agent may want (1: unit demand)")
    reserve_price: float = Field(0.0, ge=0, description="lowest marginal bid that can win a unit")
    volume_discount: float = Field(1.0, ge=0, le=1, description="share of the gap to the first unit's price "
                                                                "taken off every further unit's price")


def market_spec(config: VolumeVickreyConfig, n_agents: int) -> MarketSpec:
    """Values and bids are (B, N) with unit demand, (B, N, K) marginal bids with demand K > 1."""
    rule = "each bid must be finite and >= 0"
    if config.demand > 1:
        rule = f"each agent's {config.demand} marginal bids must be finite, >= 0 and non-increasing"
    return MarketSpec(units_per_agent=config.demand if config.demand > 1 else 0, action_rule=rule)


def properties(config: VolumeVickreyConfig) -> frozenset[str]:
    """What the rules promise to truthful bidders (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "weak_budget_balance"}
    promised |= {"efficient"} if config.reserve_price == 0 else set()
    return frozenset(promised | ({"truthful"} if config.volume_discount == 0 else set()))


def kernel(config: VolumeVickreyConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; values and bids are (B, N) or (B, N, K), priority (B, N)."""
    v3 = values if values.ndim == 3 else values[:, :, None]
    b3 = bids if bids.ndim == 3 else bids[:, :, None]
    n_markets, n_agents, demand = b3.shape
    k, d = config.units, config.volume_discount
    with np.errstate(invalid="ignore"):  # NaN bids are invalid, not an error
        valid = (np.isfinite(b3) & (b3 >= 0)).all(axis=2) & (np.diff(b3, axis=2) <= 0).all(axis=2)
        eligible = valid[:, :, None] & (b3 > 0) & (b3 >= config.reserve_price)
    flat = np.where(eligible, b3, -np.inf).reshape(n_markets, n_agents * demand)
    slot = np.broadcast_to(np.tile(np.arange(demand), n_agents), flat.shape)
    # highest bid first, then highest priority, then the lower slot (lexsort: the last key is primary)
    order = np.lexsort((slot, -np.repeat(priority, demand, axis=1), -flat), axis=-1)
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.broadcast_to(np.arange(flat.shape[1]), flat.shape), axis=1)
    won = ((position < k) & (flat > -np.inf)).reshape(b3.shape)
    q = won.sum(axis=2)
    scored = np.where(eligible, b3, -np.inf)
    payments = np.zeros((n_markets, n_agents))
    j = np.arange(k)[None, :]
    for i in range(n_agents):  # one pass per agent, vectorised over markets
        others = scored.copy()
        others[:, i, :] = -np.inf
        pool = np.concatenate([others.reshape(n_markets, -1), np.full((n_markets, k), config.reserve_price)], axis=1)
        best = -np.sort(-pool, axis=1)[:, :k]  # o_1 >= ... >= o_k
        first = best[:, k - 1:k]  # o_k: the price of the first unit
        taken = j >= k - q[:, i:i + 1]  # the q bids the agent displaces: o_(k-q+1) .. o_k
        payments[:, i] = np.where(taken, (1 - d) * best + d * first, 0.0).sum(axis=1)
    top = -np.sort(-v3.reshape(n_markets, -1), axis=1)[:, :k]
    return finish(q.astype(float), payments, np.zeros_like(payments), (v3 * won).sum(axis=2), valid,
                  eligible.any(axis=2), max_welfare=np.maximum(top, 0).sum(axis=1))


def reference(config: VolumeVickreyConfig, values: Any, bids: Any, priority: Any, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    if values and not isinstance(values[0], list):  # unit demand: one marginal bid each
        values, bids = [[v] for v in values], [[b] for b in bids]
    k, d, reserve = config.units, config.volume_discount, config.reserve_price
    valid = [all(is_valid_number(x) for x in b) and all(b[j] >= b[j + 1] for j in range(len(b) - 1)) for b in bids]
    entries = sorted(((x, priority[i], -j, i) for i, b in enumerate(bids) if valid[i]
                      for j, x in enumerate(b) if x > 0 and x >= reserve), reverse=True)
    won = [0] * len(bids)
    for *_, i in entries[:k]:
        won[i] += 1
    payments = []
    for i in range(len(bids)):
        best = sorted([e[0] for e in entries if e[3] != i] + [reserve] * k, reverse=True)[:k]
        payments.append(sum((1 - d) * best[k - 1 - j] + d * best[k - 1] for j in range(won[i])))
    gains = [sum(v[:q]) for v, q in zip(values, won, strict=True)]
    every = sorted((x for v in values for x in v), reverse=True)[:k]
    return scalar_outcome(gains, [float(q) for q in won], payments, [0.0] * len(bids), valid,
                          [any(e[3] == i for e in entries) for i in range(len(bids))],
                          max_welfare=sum(max(x, 0.0) for x in every))


MARKET_SIZE = 2  # agents in the market `mecharena bench discovery` plays: one rival, where the flaw is worth most

MECHANISM = Mechanism(
    name="volume_vickrey", version=1,
    summary="k units to the highest marginal bids; Vickrey prices, further units discounted to the first's",
    config_model=VolumeVickreyConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=market_spec, merges_identities=True,
    examples=({}, PLAIN, {"units": 3, "demand": 3, "volume_discount": 0.5},
              {"units": 4, "demand": 2, "reserve_price": 0.3}, {"units": 2, "demand": 1}),
    doc=__doc__,
)


# ---- the exact oracle (k = 2 units, demand 2, no reserve) ----


def _case(n: int, config: Any) -> tuple[int, float]:
    """(M, d): the rivals' pooled marginal bids and the volume discount; refuses what the oracle does not cover."""
    config = MECHANISM.config(config)
    if (config.units, config.demand, config.reserve_price) != (2, 2, 0.0) or n < 2:
        raise ValueError(f"the oracle covers units = 2, demand = 2, reserve 0 and n >= 2, got {config} with n = {n}")
    return 2 * (n - 1), config.volume_discount


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of the bid vector ``bids`` with values ``values`` against n - 1 truthful rivals.

    Closed form of the module docstring: ``h(min(b_2, 1)) + g(min(b_1, 1))``; a vector with
    ``b_1 < b_2`` or a negative bid is invalid and earns 0.

    Args:
        values: (..., 2) marginal values, highest first.
        bids: (..., 2) marginal bids, broadcastable against ``values``.
        n: market size (the deviator and n - 1 rivals).
        config: the mechanism's config (None: the defaults).
    """
    m, d = _case(n, config)
    values, bids = np.asarray(values, dtype=np.float64), np.asarray(bids, dtype=np.float64)
    v1, v2, b1, b2 = values[..., 0], values[..., 1], bids[..., 0], bids[..., 1]
    a, b = np.clip(b2, 0.0, 1.0), np.clip(b1, 0.0, 1.0)
    h = v2 * a**m - (m - d) / (m + 1) * a ** (m + 1)
    g = v1 * b**m - (m - 1) / (m + 1) * b ** (m + 1) + (1 - b) * (m * v1 * b ** (m - 1) - (m - 1) * b**m)
    return np.where((b1 >= b2) & (b2 >= 0), h + g, 0.0)


def best_response(values: Any, n: int, config: Any = None) -> Any:
    """The optimal bid vector for each value pair against n - 1 truthful rivals (module docstring).

    Args:
        values: (V, 2) marginal values, highest first.
        n: market size.
        config: the mechanism's config (None: the defaults).

    Returns:
        (V, 2) bids ``b_1 >= b_2`` in [0, 1] (a bid of 1 wins its unit for sure; higher ones do the same).
    """
    m, d = _case(n, config)
    values = np.asarray(values, dtype=np.float64)
    v1, v2 = values[:, 0], values[:, 1]
    second = m * v2 / (m - d)  # h's peak
    # the constraint binds: one bid t for both units, the smaller root of the quadratic (stable form)
    qa, qb, qc = m * (m - 2) + d, m * v2 - m * (m - 1) * (1 + v1), m * (m - 1) * v1
    root = 2 * qc / (-qb + np.sqrt(np.maximum(qb * qb - 4 * qa * qc, 0.0)))
    flat = np.where(m * v2 >= m - d, 1.0, np.clip(root, v1, 1.0))
    free = second <= v1
    return np.column_stack([np.where(free, v1, flat), np.where(free, second, flat)])


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def _gauss(edges: Any) -> tuple[Any, Any]:
    """Nodes and weights of 8-point Gauss-Legendre on each interval between consecutive ``edges``."""
    edges = np.asarray(edges, dtype=np.float64)
    half = np.diff(edges)[:, None] / 2
    return ((edges[:-1, None] + half) + half * _NODES).ravel(), (half * _WEIGHTS).ravel()


def true_exploitability(n: int, config: Any = None, pieces: int = 64) -> float:
    """``E_v[max_b E[u | v, b]] - E_v[E[u | v, truthful]]`` per round (module docstring).

    The values' density is 2 on ``v_1 >= v_2``. Outer rule over v_2, split at ``(M - d)/M`` (from there
    on the best response bids 1); inner rule over v_1 in [v_2, 1], split at ``min(1, M v_2/(M - d))``
    (below it the constraint ``b_1 >= b_2`` binds): the gain is smooth on every piece.
    """
    m, d = _case(n, config)
    r = (m - d) / m
    outer, w_outer = _gauss(np.union1d(np.linspace(0.0, r, pieces + 1), np.linspace(r, 1.0, pieces + 1)))
    total = 0.0
    unit = np.linspace(0.0, 1.0, pieces // 4 + 1)
    for v2, w2 in zip(outer, w_outer, strict=True):
        split = min(1.0, v2 / r)
        v1, w1 = _gauss(np.union1d(v2 + (split - v2) * unit, split + (1.0 - split) * unit))
        values = np.column_stack([v1, np.full_like(v1, v2)])
        best = best_response(values, n, config)
        gain = expected_utility(values, best, n, config) - expected_utility(values, values, n, config)
        total += w2 * 2.0 * float(w1 @ gain)
    return total
