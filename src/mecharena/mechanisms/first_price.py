"""First-price sealed-bid auction of one item, with reserve and entry fee.

Rule: every bid >= reserve (and > 0) takes part; the highest wins (ties: seeded priority) and
pays its own bid. Participants pay the entry fee.

Known results (values i.i.d. U[0, 1], n bidders; Krishna, *Auction Theory*, 2nd ed., ch. 2):

* the symmetric Bayes-Nash bid with reserve r is ``b(v) = v - (v^n - r^n) / (n v^(n-1))``
  for v >= r (Riley and Samuelson 1981);
* revenue equivalence: with those bids the expected revenue equals the second-price auction's,
  ``2n(1 - r^(n+1))/(n+1) - (1 - r^n)``;
* truthful bidding earns zero surplus (IR but not incentive compatible).
"""

from mecharena.mechanisms import _single_item
from mecharena.mechanisms._single_item import SealedBidConfig

VERSION = 1


def properties(config: SealedBidConfig) -> frozenset[str]:
    return frozenset() if config.entry_fee > 0 else frozenset({"ir", "payments_le_bids"})


MECHANISM = _single_item.mechanism("first_price", VERSION, "first-price sealed bid: highest bid wins, pays its bid",
                                   second_price=False, properties=properties, doc=__doc__)
