"""Shared pieces of the public-goods mechanisms: contributions in [0, endowment]."""

import numpy as np
from pydantic import Field

from mecharena.core.types import BoolArray, FloatArray
from mecharena.mechanisms.base import MarketSpec, MechanismConfig


class PublicGoodsConfig(MechanismConfig):
    endowment: float = Field(1.0, gt=0, description="money each agent may contribute at most")


def market_spec(config: PublicGoodsConfig, n_agents: int) -> MarketSpec:
    return MarketSpec(action_high=config.endowment,
                      action_rule=f"each contribution must be finite and in [0, {config.endowment}]")


def valid_contributions(config: PublicGoodsConfig, bids: FloatArray) -> tuple[BoolArray, FloatArray]:
    """Validity (B, N) and contributions with invalid ones set to 0."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0) & (bids <= config.endowment)
    return valid, np.where(valid, bids, 0.0)


def truthful(config: PublicGoodsConfig, values: FloatArray, spec: MarketSpec) -> FloatArray:
    """A sincere contributor offers its value, up to its endowment."""
    return np.minimum(values, config.endowment)
