"""What the designer chooses: a :class:`MechanismAction` (JSON at every boundary).

Every field is read by the simulation (:mod:`mecharena.designer.core`):

* ``rule``: the clearing rule. ``first_price`` and ``second_price`` sell one unit a round
  (the rest of the supply stays unsold); ``vcg`` (the (k+1)-th price under unit demand),
  ``uniform_price`` (every winner pays the lowest accepted bid) and ``pay_as_bid`` sell all k.
* ``reserve`` (absolute, in value units) or ``reserve_change`` (a bounded move from the
  current reserve); neither keeps the current reserve.
* five information flags: what bidders are told (learners converge faster with more, a cartel
  can police its members only through winner identities or bids, a shill aims with bids).
* three penalties in [0, 3], each charged as a fine of ``FINE_UNIT`` x penalty: ``shill``
  (audited markets; honest price-setting losers look like shills and are fined too),
  ``withdrawal`` (charged on every exit; keeps agents in, deters entry), ``collusion``
  (how it is charged depends on ``coalition``).
* ``coalition``: ``allow`` (no collusion fines), ``restrict`` (at most two ring members can
  coordinate; confirmed collusion is fined), ``penalize_suspected`` (every market whose bids
  show the collusion signal fines its near-zero bidders, honest or not), ``penalize_confirmed``
  (only audited, actually colluding seats are fined).
"""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mecharena.core.config import StrictModel

RULES = ("first_price", "second_price", "vcg", "uniform_price", "pay_as_bid")
COALITIONS = ("allow", "restrict", "penalize_suspected", "penalize_confirmed")
FLAGS = ("reveal_reserve", "competing_bids", "winner_identity", "clearing_price", "bid_distribution")
PENALTIES = ("shill_penalty", "withdrawal_penalty", "collusion_penalty")
MAX_RESERVE = 1.0
MAX_RESERVE_CHANGE = 0.2
MAX_PENALTY = 3.0
# Width of the mechanism vector (designer.core.Mechanism.vectors): rule one-hot, reserve, flags,
# penalties / 3, coalition one-hot.
MECHANISM_WIDTH = len(RULES) + 1 + len(FLAGS) + len(PENALTIES) + len(COALITIONS)


class MechanismAction(StrictModel):
    """One decision of the designer: the rules of the next step's rounds.

    >>> MechanismAction(rule="vcg", reserve=0.1, competing_bids=True).rule
    'vcg'
    """

    rule: Literal["first_price", "second_price", "vcg", "uniform_price", "pay_as_bid"] = Field(
        "second_price", description="clearing rule")
    reserve: float | None = Field(None, ge=0, le=MAX_RESERVE, description="absolute reserve price")
    reserve_change: float | None = Field(
        None, ge=-MAX_RESERVE_CHANGE, le=MAX_RESERVE_CHANGE,
        description="move from the current reserve (result clipped to [0, 1])")
    reveal_reserve: bool = Field(True, description="tell bidders the reserve before they bid")
    competing_bids: bool = Field(False, description="reveal every bid with its bidder after the round")
    winner_identity: bool = Field(False, description="reveal who won after the round")
    clearing_price: bool = Field(True, description="reveal the price paid after the round")
    bid_distribution: bool = Field(False, description="reveal anonymous bid quantiles after the round")
    shill_penalty: float = Field(0.0, ge=0, le=MAX_PENALTY, description="fine on shill bids caught by audit")
    withdrawal_penalty: float = Field(0.0, ge=0, le=MAX_PENALTY, description="fine on every exit")
    collusion_penalty: float = Field(0.0, ge=0, le=MAX_PENALTY, description="fine on collusion (see coalition)")
    coalition: Literal["allow", "restrict", "penalize_suspected", "penalize_confirmed"] = Field(
        "allow", description="coalition policy")

    @model_validator(mode="after")
    def _one_reserve(self) -> "MechanismAction":
        if self.reserve is not None and self.reserve_change is not None:
            raise ValueError("give reserve or reserve_change, not both")
        return self

    def resolved_reserve(self, current: float) -> float:
        """The reserve this action sets, given the ``current`` one."""
        if self.reserve is not None:
            return self.reserve
        if self.reserve_change is not None:
            return float(np.clip(current + self.reserve_change, 0.0, MAX_RESERVE))
        return current
