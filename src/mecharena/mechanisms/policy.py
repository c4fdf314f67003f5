"""The rules around the mechanism: what the market reveals, and how it polices agents.

Every flag is read somewhere: the information flags decide which fields of
:class:`~mecharena.agents.base.Observation` agents receive (and so what adaptive agents
learn from and whether a cartel can detect defection); the enforcement terms are charged
by the round loop (:func:`mecharena.sim.loop.play_round`).
"""

from pydantic import Field

from mecharena.core.config import StrictModel


class InformationPolicy(StrictModel):
    """What agents are told. The reserve before bidding; the rest after each round."""

    reserve: bool = Field(True, description="announce the reserve price (hidden: agents plan with 0)")
    clearing_price: bool = Field(True, description="announce the price per unit paid by winners")
    winner_identity: bool = Field(False, description="announce who was allocated")
    competing_bids: bool = Field(False, description="announce every bid with its bidder")
    bid_distribution: bool = Field(False, description="announce anonymous quantiles of the bids")


class Enforcement(StrictModel):
    """Fines and audits. An audit of a market-round reveals collusion and false-name bids."""

    shill_penalty: float = Field(0.0, ge=0, le=3, description="fine per false-name identity caught bidding")
    withdrawal_penalty: float = Field(0.0, ge=0, le=3, description="fine on an agent that exits the market")
    collusion_penalty: float = Field(0.0, ge=0, le=3, description="fine on each cartel member caught colluding")
    audit_probability: float = Field(0.0, ge=0, le=1, description="chance that a market-round is audited")
