"""Saboteur: a spiteful bidder, the symmetric equilibrium bid when every bidder weighs rivals' losses.

A saboteur with spite alpha in [0, 1) maximises ``(1 - alpha) pi_i - alpha sum_{j != i} pi_j``, pi
being each bidder's surplus (the spite model of Morgan, Steiglitz and Reis 2003, "The spite motive and
equilibrium behavior in auctions", *Contributions to Economic Analysis & Policy* 2(1), whose weight on
the rivals is alpha / (1 - alpha) of ours; Brandt, Sandholm and Shoham 2007, "Spiteful bidding in
sealed-bid auctions", *IJCAI*). The bids below are derived here from first-order conditions, shown
to be global best responses, and checked by a numerical best response in
tests/agents/test_saboteur.py; both papers find these qualitative results (overbidding in second
price, bids above the risk-neutral ones in first price). As :mod:`mecharena.agents.bne` does, it
plays the symmetric Bayes-Nash equilibrium: the n - 1 others are its twins (the same alpha), values
i.i.d. with CDF F and density f. A bidder of value v mimicking type z of the others' increasing bid
function b wins when z beats Y, the highest other value (G its CDF, g = G'); the equilibrium is the
b that makes z = v optimal.

* **Second price.** Losing does not end its influence: the winner pays its bid. With Y2 the
  second-highest other value, its spiteful payoff is ``(1 - alpha) E[(v - b(Y)) 1{Y < z}] - alpha
  E[(Y - max(b(z), b(Y2))) 1{Y > z}]``, whose first-order condition at z = v is
  ``(v - b) f + alpha b' (1 - F) = 0``, b(top) = top. Its solution overbids the value:

      b(v) = v + integral_v^top (1 - F(t))^(1/alpha) dt / (1 - F(v))^(1/alpha),

  for U[0, 1] values ``b(v) = (v + alpha) / (1 + alpha)``, whatever n.
  A reserve (announced) has no closed form here: refused; a secret one is planned as 0.
* **First price, and pay-as-bid with k units and unit demand.** A winner among the others pays its
  own bid, so the saboteur hurts them only by taking a unit: losing to Y (the k-th highest other
  value) leaves its owner ``Y - b(Y)``. The payoff ``(1 - alpha)(v - b(z)) G(z) - alpha
  integral_z^top (y - b(y)) g(y) dy`` gives ``(1 - alpha) b' G = (v - b) g``, b(r) = r: the CRRA
  condition of :mod:`mecharena.agents.crra` with rho = alpha, so

      b(v) = v - integral_r^v H / H(v),   H = G^(1/(1 - alpha)),

  for U[0, 1] values, one unit and no reserve ``b(v) = (n - 1) v / (n - alpha)``, above the
  risk-neutral ``(n - 1) v / n`` (Krishna, *Auction Theory*, 2nd ed., prop. 2.2). A value below the
  reserve bids its value (it cannot win, nor touch a price).

Both are global best responses, not only stationary points: substituting the first-order condition
at z into the derivative of the payoff gives ``(1 - alpha) g(z) (v - z)`` in both auctions, positive
below v and negative above (and a bid below b's range never wins, while in second price raising it
towards b(low) only raises the winner's price). alpha = 0 is the risk-neutral equilibrium: truthful
in second price, :mod:`mecharena.agents.bne`'s bid in first price. Spite costs the saboteur: in
second price truthful bidding maximises its own surplus, so every overbid that changes the outcome
lowers it, and lowers the winners' surplus (they pay more, or lose the item to it).

Integrals use a grid of 4,096 intervals with 8-point Gauss-Legendre per interval (the first-price
one is :func:`mecharena.agents.bne.shaded_bids`'s), interpolated linearly; for U[0, 1] values both
match the closed forms to about 1e-9 (tests/agents/test_saboteur.py). Other mechanisms, an entry fee
and common values are refused: spite changes even dominant-strategy rules, and no rule is derived here.
"""

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType, MarketContext, require_mechanism
from mecharena.agents.bne import auction_bids
from mecharena.agents.values import ValueDistribution
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 1
SUPPORTED = ("first_price", "second_price", "pay_as_bid")
_GRID = 4096
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


class SaboteurParams(StrictModel):
    spite: float = Field(0.5, ge=0, lt=1, description="weight alpha on the others' losses: maximises "
                         "(1 - alpha) own surplus - alpha (the others' surplus)")


def second_price_bids(dist: ValueDistribution, values: FloatArray, spite: float) -> FloatArray:
    """Symmetric spiteful equilibrium bids of the second-price auction without a reserve (any shape)::

        b(v) = v + sum_{cells j >= i} a_j ((1 - F(v_j)) / (1 - F(v_i)))^(1/alpha),
        a_j = integral over cell j of ((1 - F(t)) / (1 - F(v_j)))^(1/alpha) dt,

    the module docstring's integral split at the grid points v_i, in log space (the ratios are at most 1:
    nothing overflows however small alpha is).
    """
    if spite == 0:
        return np.array(values, dtype=float, copy=True)
    power = 1.0 / spite
    grid = np.linspace(dist.low, dist.high, _GRID + 1)
    half = np.diff(grid) / 2
    nodes = (grid[:-1] + half)[:, None] + half[:, None] * _NODES[None, :]
    survival = 1.0 - dist.cdf(grid)
    left = survival[:-1, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(left > 0, np.clip((1.0 - dist.cdf(nodes)) / left, 0.0, 1.0), 0.0)
        pieces = (ratio**power * _WEIGHTS).sum(axis=1) * half
        log_s = power * np.log(survival[:-1])  # -inf where no value lies above
        terms = np.log(pieces) + log_s
    tail = np.logaddexp.accumulate(terms[::-1])[::-1]  # log sum_{j >= i} a_j (1 - F(v_j))^(1/alpha)
    with np.errstate(invalid="ignore"):
        over = np.where(np.isfinite(log_s), np.exp(tail - log_s), 0.0)
    return np.asarray(values, dtype=float) + np.interp(values, grid, np.append(over, 0.0))


def act(context: MarketContext, params: SaboteurParams, state, values: FloatArray, draws) -> FloatArray:
    require_mechanism(context, "saboteur", SUPPORTED, unit_demand=True,
                      reason="has a spiteful equilibrium bid only for sealed-bid auctions")
    name, config = context.mechanism.name, context.config
    if context.values.common > 0:
        raise ConfigError(f"saboteur has no closed form with common values (common={context.values.common}); "
                          "use private values (common=0)")
    if name != "second_price":
        return auction_bids(context, values, "saboteur", power=1.0 / (1.0 - params.spite))
    if config.entry_fee > 0:
        raise ConfigError(f"saboteur has no closed form with entry_fee > 0, got {config.entry_fee}; set entry_fee=0")
    if context.visible_reserve > 0:
        raise ConfigError(f"saboteur has no closed form for second_price with an announced reserve, got "
                          f"reserve_price={context.visible_reserve}; set reserve_price=0 or "
                          "reserve_visibility='secret'")
    return second_price_bids(context.values, values, params.spite)


AGENT = AgentType(name="saboteur", version=VERSION,
                  summary="spiteful bidder: weighs rivals' losses, the symmetric equilibrium bid (overbids in "
                          "second price)",
                  act=act, params_model=SaboteurParams)
