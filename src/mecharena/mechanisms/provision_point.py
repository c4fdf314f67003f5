"""Provision-point mechanism for a threshold public good (Bagnoli and Lipman 1989;
Marks and Croson 1998, *J. Public Economics* 67: 195-220).

Rule: each agent contributes c_i in [0, endowment]. The good, costing ``threshold`` T, is
provided when ``sum(c) >= T``; then every agent gains its private value v_i. Without
provision contributions are refunded when ``refund`` is set (the money-back guarantee) and
otherwise kept by the mechanism. With ``rebate = proportional`` the excess ``sum(c) - T`` is
returned in proportion to contributions. Utility ``v_i [provided] - c_i + refund/rebate``;
welfare ``[provided] (sum(v) - T)``, at most ``max(0, sum(v) - T)``.

Budget: the mechanism buys the good at T, so its budget surplus (``Outcome.revenue``: money in
minus money out minus the cost of the good it provides) is ``sum(c) - refunds - rebates -
T [provided]``: 0 with a proportional rebate or a refund of a good not provided, the excess
``sum(c) - T`` when it keeps it, and the contributions it keeps without a refund. It never runs a
deficit (weak budget balance): a good is bought only when the contributions cover T.

Known results: with a refund, contributing 0 when others already reach T, and every
allocation of T among agents with values covering their shares, are Nash equilibria
(Bagnoli and Lipman 1989); sincere contributions (c_i = v_i) are IR with a refund and
weakly budget balanced always (the mechanism never pays out more than it collected).
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.mechanisms import _public_goods as pg
from mecharena.mechanisms.base import Mechanism, Outcome, is_valid_number, scalar_outcome

VERSION = 2


class ProvisionPointConfig(pg.PublicGoodsConfig):
    threshold: float = Field(2.0, gt=0, description="cost T of the good: provided when contributions reach it")
    refund: bool = Field(True, description="return contributions when the good is not provided")
    rebate: Literal["none", "proportional"] = Field("none", description="what happens to contributions above T")


def properties(config: ProvisionPointConfig) -> frozenset[str]:
    return frozenset({"weak_budget_balance"} | ({"ir"} if config.refund else set()))


def kernel(config: ProvisionPointConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    valid, c = pg.valid_contributions(config, bids)
    total = c.sum(axis=1, keepdims=True)
    provided = total >= config.threshold
    # threshold > 0, so a provided good has total > 0; elsewhere the share is unused
    excess_share = np.where(provided, (total - config.threshold) / np.where(provided, total, 1.0), 0.0)
    rebate = c * excess_share if config.rebate == "proportional" else np.zeros_like(c)
    receipts = np.where(provided, rebate, c if config.refund else 0.0)
    gains = np.where(provided, values, 0.0)
    surplus = values.sum(axis=1) - config.threshold
    return Outcome(allocation=provided * np.ones_like(c), payments=c, receipts=receipts,
                   utility=gains - c + receipts, valid=valid, participated=c > 0,
                   revenue=c.sum(axis=1) - receipts.sum(axis=1) - config.threshold * provided[:, 0],
                   welfare=np.where(provided[:, 0], surplus, 0.0), max_welfare=np.maximum(surplus, 0.0))


def reference(config: ProvisionPointConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    n = len(bids)
    valid = [is_valid_number(b, 0.0, config.endowment) for b in bids]
    c = [b if ok else 0.0 for b, ok in zip(bids, valid, strict=True)]
    total = sum(c)
    provided = total >= config.threshold
    if provided:
        receipts = [x * (total - config.threshold) / total if config.rebate == "proportional" else 0.0 for x in c]
    else:
        receipts = list(c) if config.refund else [0.0] * n
    surplus = sum(values) - config.threshold
    return scalar_outcome([v if provided else 0.0 for v in values], [float(provided)] * n, c, receipts, valid,
                          [x > 0 for x in c], max_welfare=max(surplus, 0.0),
                          welfare=surplus if provided else 0.0, good=-config.threshold if provided else 0.0)


MECHANISM = Mechanism(
    name="provision_point", version=VERSION, summary="threshold public good with refund and optional rebate",
    config_model=ProvisionPointConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=pg.market_spec, truthful=pg.truthful,
    examples=({}, {"refund": False}, {"rebate": "proportional", "threshold": 1.0},
              {"threshold": 0.5, "endowment": 0.5, "refund": False, "rebate": "proportional"}),
    doc=__doc__,
)
