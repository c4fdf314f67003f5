"""Second-price (Vickrey) sealed-bid auction of one item, with reserve and entry fee.

Rule: every bid >= reserve (and > 0) takes part; the highest wins (ties: seeded priority) and
pays max(second-highest participating bid, reserve). Participants pay the entry fee.

Known results (values i.i.d. U[0, 1], n bidders; Krishna, *Auction Theory*, 2nd ed., ch. 2):

* truthful bidding is weakly dominant (Vickrey 1961), so with no fee the auction is IR;
* expected revenue with reserve r is ``2n(1 - r^(n+1))/(n+1) - (1 - r^n)``, which is
  ``(n-1)/(n+1)`` at r = 0 and is maximised at Myerson's r = 1/2 (Myerson 1981);
* expected welfare is ``n/(n+1) (1 - r^(n+1))``: efficiency ``1 - r^(n+1)``;
* revenue equivalence with first price under the symmetric BNE.
"""

from typing import Any

from mecharena.mechanisms import _single_item
from mecharena.mechanisms._single_item import SealedBidConfig
from mecharena.mechanisms.base import Mechanism

VERSION = 1


def properties(config: SealedBidConfig) -> frozenset[str]:
    if config.entry_fee > 0:
        return frozenset()
    props = {"truthful", "ir", "payments_le_bids"}
    return frozenset(props | ({"efficient"} if config.reserve_price == 0 else set()))


def kernel(config: SealedBidConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    return _single_item.kernel(config, values, bids, priority, second_price=True)


def reference(config: SealedBidConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    return _single_item.reference(config, values, bids, priority, second_price=True)


MECHANISM = Mechanism(
    name="second_price", version=VERSION, summary="Vickrey auction: highest bid wins, pays the second bid",
    config_model=SealedBidConfig, kernel=kernel, reference=reference, properties=properties,
    examples=({}, {"reserve_price": 0.3}, {"reserve_price": 0.5, "reserve_visibility": "secret"}, {"entry_fee": 0.05}, {"reserve_price": 0.2, "entry_fee": 0.1}),
    doc=__doc__,
)
