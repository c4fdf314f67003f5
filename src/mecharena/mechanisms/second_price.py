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

from mecharena.mechanisms import _single_item
from mecharena.mechanisms._single_item import SealedBidConfig

VERSION = 1


def properties(config: SealedBidConfig) -> frozenset[str]:
    if config.entry_fee > 0:
        return frozenset()
    props = {"truthful", "ir", "payments_le_bids"}
    return frozenset(props | ({"efficient"} if config.reserve_price == 0 else set()))


MECHANISM = _single_item.mechanism("second_price", VERSION, "Vickrey auction: highest bid wins, pays the second bid",
                                   second_price=True, properties=properties, doc=__doc__)
