"""Bidder with constant relative risk aversion (CRRA), risk-averse or risk-seeking: the symmetric equilibrium bid.

Utility of a surplus x >= 0 is ``u(x) = x^(1-rho) / (1-rho)``, rho in [-4, 1) (rho = 0: risk
neutral; rho > 0: risk-averse, concave u; rho < 0: risk-seeking, convex u). Write a = 1 - rho.
In the k-unit pay-as-bid auction with unit demand (k = 1: first
price), i.i.d. values with CDF F, n bidders and a public reserve r, let G be the CDF of Y, the
k-th highest of the other n - 1 values (the bid to beat). If the others bid b(.) increasing, a
bidder of value v mimicking type z wins with probability G(z) and maximises
``(v - b(z))^a G(z)``; the first-order condition at z = v is

    a b'(v) G(v) = g(v) (v - b(v)),   b(r) = r,

which is the risk-neutral condition for the CDF ``H = G^(1/a)``. Hence

    b(v) = v - (1 / H(v)) * integral_r^v H(y) dy,   H = G^(1/(1-rho)),   v >= r

(Riley and Samuelson 1981, *American Economic Review* 71: 381-392; Maskin and Riley
1984, *Econometrica* 52: 1473-1518; Krishna, *Auction Theory*, 2nd ed., section 4.1). With
U[0, 1] values, k = 1 and r = 0, ``H(y) = y^((n-1)/(1-rho))`` and

    b(v) = (n - 1) v / (n - rho),

the Cox, Smith and Walker (1988, *J. Risk and Uncertainty* 1: 61-99) CRRA bid: above the
risk-neutral ``(n-1) v / n`` for every rho > 0 (risk aversion raises bids; revenue equivalence
fails in the seller's favour) and below it for every rho < 0 (a risk-seeking bidder gambles on a
larger surplus at a lower chance of winning; revenue falls). The derivation holds for every
rho < 1: the mimicking objective ``a ln(v - b(z)) + ln G(z)`` is concave in z for any a > 0, so the
first-order condition gives the best response. A value below r bids its value (it cannot win). A secret
reserve is planned as 0. Where truthful bidding is dominant (second price, uniform price with
the (k+1)-th price, VCG, posted price) it bids truthfully: dominance holds for any attitude
to risk. The integral uses a grid of 4,096 intervals with 8-point Gauss-Legendre per interval,
interpolated linearly, as :mod:`mecharena.agents.bne` does.
"""

from pydantic import Field

from mecharena.agents.base import AgentType, MarketContext
from mecharena.agents.bne import auction_bids, shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray

VERSION = 2


class CRRAParams(StrictModel):
    rho: float = Field(0.5, ge=-4, lt=1, description="relative risk aversion: u(x) = x^(1-rho)/(1-rho); "
                       "< 0: risk-seeking")


def crra_bids(dist: ValueDistribution, values: FloatArray, n: int, k: int, reserve: float, rho: float) -> FloatArray:
    """Symmetric equilibrium bids of CRRA bidders in the k-unit pay-as-bid auction (first price: k = 1)."""
    return shaded_bids(dist, values, n, k, reserve, power=1.0 / (1.0 - rho))


def act(context: MarketContext, params: CRRAParams, state, values: FloatArray, draws) -> FloatArray:
    name, config = context.mechanism.name, context.config
    bids = auction_bids(context, values, "crra", power=1.0 / (1.0 - params.rho))
    if bids is not None:
        return bids
    if "truthful" in context.mechanism.properties(config):
        return context.mechanism.truthful(config, values, context.spec)
    raise ConfigError(
        f"crra has no equilibrium bid for {name} with this config; it supports first_price, "
        "pay_as_bid (unit demand) and every config where truthful bidding is dominant"
    )


AGENT = AgentType(name="crra", version=VERSION, summary="risk-averse (CRRA) symmetric equilibrium bid",
                  act=act, params_model=CRRAParams)
