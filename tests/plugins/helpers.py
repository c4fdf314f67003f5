"""Plug-in sources written into temporary directories by the tests."""

from pathlib import Path

# A mechanism the package does not ship, and an agent type with a parameter.
HALF_PRICE = '''"""Half-price auction: the highest bid wins and pays ``share`` times its bid."""

import numpy as np
from pydantic import Field

from mecharena.agents import AgentType
from mecharena.core.config import StrictModel
from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome


class HalfPriceConfig(MechanismConfig):
    share: float = Field(0.5, ge=0, le=1, description="share of its bid the winner pays")


def kernel(config, values, bids, priority, times=None):
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        enters = valid & (bids > 0)
    score = np.where(enters, bids, -np.inf)
    tied = enters & (score == score.max(axis=1, keepdims=True))
    winner = np.argmax(np.where(tied, priority, -np.inf), axis=1)
    allocation = np.zeros(bids.shape)
    allocation[np.arange(len(bids)), winner] = tied.any(axis=1)
    payments = allocation * np.where(enters, bids, 0.0) * config.share
    return finish(allocation, payments, np.zeros(bids.shape), allocation * values, valid, enters,
                  max_welfare=np.maximum(values.max(axis=1), 0.0))


def reference(config, values, bids, priority, times=None):
    n = len(bids)
    valid = [is_valid_number(b) for b in bids]
    entrants = [i for i in range(n) if valid[i] and bids[i] > 0]
    allocation, gains, payments = [0.0] * n, [0.0] * n, [0.0] * n
    if entrants:
        w = max(entrants, key=lambda i: (bids[i], priority[i]))
        allocation[w], gains[w], payments[w] = 1.0, values[w], config.share * bids[w]
    return scalar_outcome(gains, allocation, payments, [0.0] * n, valid, [i in entrants for i in range(n)],
                          max_welfare=max([0.0, *values]))


MECHANISM = Mechanism(
    name="half_price", version=1, summary="highest bid wins, pays a share of its bid", config_model=HalfPriceConfig,
    kernel=kernel, reference=reference, merges_identities=MERGES,
    properties=lambda config: frozenset({"ir", "payments_le_bids", "weak_budget_balance", "efficient"}),
    examples=({}, {"share": 1.0}),
)


class Params(StrictModel):
    x: float = Field(1.0, ge=0, le=2, description="bid x times the value")


AGENT = AgentType(name="myagent", version=1, summary="bids x times its value",
                  act=lambda context, params, state, values, draws: params.x * values, params_model=Params)
'''

# A variant of second price whose pieces each test replaces: {body} defines MECHANISM, AGENT ...
VARIANT = '''
import dataclasses

import numpy as np

from mecharena.agents import AgentType
from mecharena.mechanisms import Mechanism, first_price, second_price

BASE = dataclasses.replace(second_price.MECHANISM, name="variant")
{body}
'''


def half_price(directory: Path, merges: bool = True, name: str = "half_price.py") -> Path:
    """Write the half-price plug-in into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(HALF_PRICE.replace("MERGES", str(merges)))
    return path


def variant(directory: Path, body: str, name: str = "variant.py") -> Path:
    """Write a plug-in built from second price with ``body`` (Python) appended; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(VARIANT.format(body=body))
    return path
