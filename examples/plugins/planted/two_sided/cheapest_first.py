"""Two-sided posted price, cheapest sellers served first: a planted rationing flaw (mecharena plug-in).

Rule: agents ``0 .. buyers - 1`` buy one unit each, the rest sell one unit each (a seller's value is its
cost). The market posts a price p. A buyer accepts with a bid > 0 and >= p, a seller with an ask <= p (a bid
or ask that is not finite and >= 0 abstains). With K accepting buyers and M accepting sellers, min(K, M)
pairs trade, all at p: buyers are served in arrival order (seeded priority, highest first), and sellers,
meant to favour the efficient ones, cheapest ask first (ties: priority). A trading buyer gains its value
minus p, a trading seller p minus its cost.

Flaw: the ask is meant only to say yes or no to p, but it also decides a seller's place in the queue when
sellers are the long side; every accepting seller receives the same p, so a low ask costs nothing and
buys priority. With ``seller_queue = "arrival"`` (sellers served in arrival order, as buyers are) the rule
is a fixed-price double auction, where saying yes exactly when the cost is below p is dominant for both
sides (Hagerty and Rogerson 1987, *J. Econ. Theory* 42: 94-107): exploitability 0.

Exploit: understate the cost. A seller whose cost is below p asks 0 and goes to the head of the queue: it
trades whenever any buyer accepts, instead of only when more buyers accept than there are cheaper sellers;
a seller whose cost is above p abstains (asks above p), as a truthful one does. Unlike the familiar
overstated ask of a k-double auction, the ask moves *down*, and the price it receives is unchanged.

True exploitability (one deviator: the first seller; every other buyer and seller reports truthfully;
values and costs i.i.d. U[0, 1]; one round; the mean gain per round of the best response over truthful
asking, asks in [0, 4] or abstaining; see ``examples/plugins/planted/README.md`` for the one-sided
definition this follows). With S sellers, K ~ Binomial(buyers, 1 - p) accepting buyers and L ~ Binomial(S - 1,
c) rivals cheaper than the cost c, asking 0 gains ``(p - c) P(1 <= K <= L)`` over the truthful ask for
c < p and nothing above, so the exploitability is ``int_0^p (p - c) P(1 <= K <= L) dc``, a polynomial
integral. At the defaults (p = 1/2, buyers = 2), ``P(1 <= K <= L) = P(L >= 1)/2 + P(L >= 2)/4``:

=====  =======  ==========  ==========
n      sellers  gain        exact
=====  =======  ==========  ==========
4      2        0.010417    1/96
5      3        0.019531    5/256
6      4        0.027344    7/256
=====  =======  ==========  ==========

(n = 5: ``P(1 <= K <= L) = c - c^2/4`` and ``int_0^(1/2) (1/2 - c)(c - c^2/4) dc = 5/256``.) With
``seller_queue = "arrival"`` the same oracle gives 0 at every n.

Load it with ``mecharena --plugin examples/plugins/planted/two_sided/cheapest_first.py check cheapest_first``.
"""

from math import comb
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.core.errors import ConfigError
from mecharena.mechanisms import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class CheapestFirstConfig(MechanismConfig):
    """Config of the two-sided posted price."""

    buyers: int = Field(2, ge=1, le=100_000, description="agents 0..buyers-1 buy; the rest sell")
    price: float = Field(0.5, ge=0, description="the posted price every trade is made at")
    seller_queue: Literal["ask", "arrival"] = Field(
        "ask", description="order in which accepting sellers are served: cheapest ask first, or arrival order")


def properties(config: CheapestFirstConfig) -> frozenset[str]:
    """What the rules promise to truthful agents (checked by ``check_mechanism``)."""
    promised = {"ir", "payments_le_bids", "weak_budget_balance", "budget_balance"}
    return frozenset(promised | ({"truthful"} if config.seller_queue == "arrival" else set()))


def market_spec(config: CheapestFirstConfig, n_agents: int) -> MarketSpec:
    """The first ``buyers`` seats buy, the others sell."""
    if n_agents and config.buyers >= n_agents:
        raise ConfigError(f"buyers must be < the number of agents ({n_agents}) so that someone sells, "
                          f"got {config.buyers}")
    return MarketSpec(sellers=np.arange(n_agents) >= config.buyers,
                      action_rule="each bid or ask must be finite and >= 0")


def _places(accept: Any, keys: tuple) -> Any:
    """(B, S) each agent's place (0: first) in its side's queue, accepting agents first, then by ``keys``
    (most significant first, each ascending), then by seat."""
    seats = np.broadcast_to(np.arange(accept.shape[1]), accept.shape)
    order = np.lexsort((seats, *reversed(keys), ~accept), axis=1)
    places = np.empty_like(order)
    np.put_along_axis(places, order, np.broadcast_to(np.arange(accept.shape[1]), accept.shape), axis=1)
    return places


def _max_gains_from_trade(config: CheapestFirstConfig, values: Any) -> Any:
    """(B,) the most welfare any trades can give: best buyers against cheapest sellers."""
    v = -np.sort(-values[:, :config.buyers], axis=1)
    c = np.sort(values[:, config.buyers:], axis=1)
    m = min(v.shape[1], c.shape[1])
    return np.maximum(v[:, :m] - c[:, :m], 0.0).sum(axis=1)


def kernel(config: CheapestFirstConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B markets at once; every array is (B, N)."""
    nb, p = config.buyers, config.price
    with np.errstate(invalid="ignore"):  # NaN orders are invalid, not an error
        valid = np.isfinite(bids) & (bids >= 0)
        accept = np.concatenate([valid[:, :nb] & (bids[:, :nb] > 0) & (bids[:, :nb] >= p),
                                 valid[:, nb:] & (bids[:, nb:] <= p)], axis=1)
    trades = np.minimum(accept[:, :nb].sum(axis=1), accept[:, nb:].sum(axis=1))[:, None]
    buyer_place = _places(accept[:, :nb], (-priority[:, :nb],))
    asks = np.where(accept[:, nb:], bids[:, nb:], 0.0)
    seller_keys = (asks, -priority[:, nb:]) if config.seller_queue == "ask" else (-priority[:, nb:],)
    seller_place = _places(accept[:, nb:], seller_keys)
    served = accept & (np.concatenate([buyer_place, seller_place], axis=1) < trades)
    sign = np.where(np.arange(bids.shape[1]) < nb, 1.0, -1.0)
    allocation = served * sign
    payments = np.where(served & (sign > 0), p, 0.0)
    receipts = np.where(served & (sign < 0), p, 0.0)
    return finish(allocation, payments, receipts, allocation * values, valid, accept,
                  max_welfare=_max_gains_from_trade(config, values))


def reference(config: CheapestFirstConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One market in plain Python: the test oracle of the kernel."""
    n, nb, p = len(bids), config.buyers, config.price
    valid = [is_valid_number(b) for b in bids]
    accept = [valid[i] and ((bids[i] > 0 and bids[i] >= p) if i < nb else bids[i] <= p) for i in range(n)]
    buyers = sorted((i for i in range(nb) if accept[i]), key=lambda i: (-priority[i], i))
    if config.seller_queue == "ask":
        sellers = sorted((i for i in range(nb, n) if accept[i]), key=lambda i: (bids[i], -priority[i], i))
    else:
        sellers = sorted((i for i in range(nb, n) if accept[i]), key=lambda i: (-priority[i], i))
    trades = min(len(buyers), len(sellers))
    served = set(buyers[:trades]) | set(sellers[:trades])
    allocation = [(1.0 if i < nb else -1.0) if i in served else 0.0 for i in range(n)]
    payments = [p if i in served and i < nb else 0.0 for i in range(n)]
    receipts = [p if i in served and i >= nb else 0.0 for i in range(n)]
    vs, cs = sorted(values[:nb], reverse=True), sorted(values[nb:])
    best = sum(max(v - c, 0.0) for v, c in zip(vs, cs, strict=False))
    return scalar_outcome([values[i] * allocation[i] for i in range(n)], allocation, payments, receipts, valid,
                          accept, max_welfare=best)


MARKET_SIZE = 5  # agents in the market `mecharena bench discovery` plays: three sellers, the table's middle row

MECHANISM = Mechanism(
    name="cheapest_first", version=1,
    summary="two-sided posted price; accepting sellers served cheapest ask first",
    config_model=CheapestFirstConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=market_spec,
    examples=({}, {"buyers": 1}, {"seller_queue": "arrival"}, {"buyers": 3, "price": 0.3},
              {"buyers": 1, "price": 0.8, "seller_queue": "arrival"}),
    doc=__doc__,
)


def _binomial(trials: int, prob: Any) -> Any:
    """(..., trials + 1) the Binomial(trials, prob) probabilities of 0 .. trials, for an array ``prob``."""
    prob = np.asarray(prob, dtype=np.float64)
    up, down = [np.ones_like(prob)], [np.ones_like(prob)]  # prob^j and (1 - prob)^j by repeated products
    for _ in range(trials):
        up.append(up[-1] * prob)
        down.append(down[-1] * (1 - prob))
    return np.stack([comb(trials, j) * up[j] * down[trials - j] for j in range(trials + 1)], axis=-1)


def trade_probability(asks: Any, n: int, config: Any = None) -> Any:
    """The first seller's chance to trade with the ask ``asks`` (<= p) against truthful rivals.

    K ~ Binomial(buyers, 1 - p) buyers accept. Cheapest first, the rivals ahead of the ask a are those
    whose cost is below a, L ~ Binomial(S - 1, a), and the seller trades when K > L. In arrival order,
    M ~ Binomial(S - 1, p) rivals accept and the seller's place among the M + 1 is uniform: it trades
    with probability ``min(K, M + 1)/(M + 1)``. Exhaustive over (K, L) or (K, M).
    """
    config = MECHANISM.config(config)
    nb, p = config.buyers, min(config.price, 1.0)
    sellers = n - nb
    k, m = np.arange(nb + 1)[:, None], np.arange(sellers)[None, :]
    if config.seller_queue == "ask":
        trades = (k > m).astype(float)  # (K, L)
        ahead = _binomial(sellers - 1, np.clip(asks, 0.0, 1.0))  # (..., S) over L
    else:
        trades = np.minimum(k, m + 1) / (m + 1)  # (K, M)
        ahead = _binomial(sellers - 1, np.full(np.shape(asks), p))  # (..., S) over M
    return ahead @ (_binomial(nb, 1.0 - p) @ trades)  # P(trade | L or M), averaged over K, then over L or M


def expected_utility(values: Any, bids: Any, n: int, config: Any = None) -> Any:
    """Exact expected utility of the first seller asking ``bids`` with costs ``values``, every other agent
    truthful, values and costs U[0, 1]: ``(p - c) P(trade | ask)`` for a valid ask <= p, else 0.

    Args:
        values: costs, broadcastable against ``bids``.
        bids: asks in [0, 4] (NaN: abstain).
        n: market size (buyers from the config; the rest sell).
        config: the mechanism's config (None: the defaults).
    """
    p = MECHANISM.config(config).price
    values, bids = np.broadcast_arrays(np.asarray(values, dtype=np.float64), np.asarray(bids, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        accepted = np.isfinite(bids) & (bids >= 0) & (bids <= p)
    chance = trade_probability(np.where(accepted, bids, 0.0), n, config)
    return np.where(accepted, (p - values) * chance, 0.0)


# The exact oracle: an exhaustive search over asks for each cost, then Gauss-Legendre over costs.
_ASKS = np.linspace(0.0, 4.0, 201)  # first pass, with p; three local passes refine it 20-fold each
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_PIECES = 256  # cost intervals of the Gauss-Legendre rule


def best_response(values: Any, n: int, config: Any = None) -> Any:
    """The first seller's optimal ask for each cost (NaN: abstaining is optimal), every other agent truthful.

    Args:
        values: (V,) costs in [0, 1].
        n: market size.
        config: the mechanism's config (None: the defaults).

    Returns:
        (V,) asks in [0, 4], NaN where no ask has positive expected utility.
    """
    values = np.asarray(values, dtype=np.float64)
    p = MECHANISM.config(config).price
    grid = np.union1d(_ASKS, [p] if p <= 4 else [])
    best = np.empty_like(values)
    for start in range(0, values.size, 2048):  # chunks keep the (costs, asks) arrays small
        v = values[start:start + 2048, None]
        pick = grid[np.argmax(expected_utility(v, grid[None, :], n, config), axis=1)]
        for step in (2e-2, 1e-3, 5e-5):
            local = np.clip(pick[:, None] + np.linspace(-step, step, 41)[None, :], 0.0, 4.0)
            local = np.concatenate([pick[:, None], local], axis=1)
            pick = local[np.arange(len(v)), np.argmax(expected_utility(v, local, n, config), axis=1)]
        best[start:start + 2048] = pick
    return np.where(expected_utility(values, best, n, config) > 0, best, np.nan)


def true_exploitability(n: int, config: Any = None) -> float:
    """``E_c[max_a E[u | c, a]] - E_c[E[u | c, truthful]]`` per round, costs U[0, 1] (module docstring).

    Both utilities are polynomials in c on either side of p (the truthful ask stops being accepted there),
    of degree at most n, so 8-point Gauss-Legendre on pieces split at p integrates them exactly up to
    rounding for n <= 15.
    """
    p = MECHANISM.config(config).price
    edges = np.union1d(np.linspace(0.0, 1.0, _PIECES + 1), [p] if 0 < p < 1 else [])
    half = np.diff(edges)[:, None] / 2
    values = ((edges[:-1, None] + half) + half * _NODES).ravel()
    weights = (half * _WEIGHTS).ravel()
    best = best_response(values, n, config)
    gain = np.where(np.isnan(best), 0.0, expected_utility(values, np.nan_to_num(best), n, config))
    return float(weights @ (gain - expected_utility(values, values, n, config)))
