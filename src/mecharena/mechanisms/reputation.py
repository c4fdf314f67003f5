"""Reputation marketplace: sellers set a price and a hidden quality, buyers buy by the displayed score and
rate, and the platform's rule turns ratings into scores across rounds.

Every seat is a seller with one listing. Its value ``theta`` (clipped to [0, 1]) is its quality type:
the quality it delivers at full effort (use persistent values, ``uniform:persistent=true``, for a
seller whose type lasts the episode). Each round:

* **Actions.** The bid is the price as a share of the listing's displayed score r (``p = bid r``;
  0: not listed this round). Declared action fields: ``quality`` (effort e in [0, 1], default 1:
  it delivers ``q = e theta``, hidden from the buyer), ``reenter`` (1: drop the listing's record
  and list under a fresh identity; exit and re-entry, "whitewashing") and ``fakes`` (fake positive
  reviews bought for its own listing through sock-puppet accounts, ``fake_cost`` each; sybil
  reviews). A seller's first listing and every re-entry pay ``listing_fee`` to the platform.
* **Buyers.** Each listed seller meets one buyer, whose outside option u is uniform on [0, 1]
  (hashed from the seat's priority, :mod:`mecharena.mechanisms.draws`): she expects quality r
  and buys when ``r - p >= u``. A sale earns the seller ``p - effort_cost q`` and the buyer
  ``q - p - u``; the buyer's rating is positive with probability q (Bernoulli ratings, the Beta
  reputation system: Josang and Ismail 2002, *15th Bled eCommerce Conference*).
* **The rule.** A listing's evidence is (positive, negative) rating weights; each round old
  evidence is multiplied by ``decay`` (lambda) and the new ratings added, fake ones with weight
  ``unverified_weight``. The score is the Beta posterior mean ``(m s + positive) / (s + positive
  + negative)`` (m ``prior_mean``, s ``prior_strength``), and m with less evidence than
  ``min_history``: the **average** rule (s = 0, lambda = 1), **Bayesian** (s > 0) and **decayed**
  (lambda < 1, the forgetting factor of Josang and Ismail).
* **The listing as an asset.** A seller values its listing at ``future_value`` times its score
  (reputation as an asset: Tadelis 1999, *AER* 89(3)), marked to market each round: its value gain
  includes ``future_value (r_after - r_before)``, which sums over an episode to ``future_value
  (r_final - m)``, so the last rounds are not a free-for-all. Re-entering abandons the old
  listing's worth.

Utility = trade profit - fake reviews' cost + the listing's change in worth - fees. The outcome:
``allocation`` = -(units sold), ``payments`` = fees (the platform's revenue), ``welfare`` = trade
surplus ``(1 - effort_cost) q - u`` of each sale minus the fake reviews' cost (the listing's worth
is private to the seller and fees are transfers), ``max_welfare`` = the trade surplus every
seller's type allows, ``sum max(0, (1 - effort_cost) theta - u)``.

State (per seat): ``positive``, ``negative`` (evidence), ``listings`` (identities used) and
``score`` (the score shown after the round: what the seller, and a policy, sees of itself).
Events (per seat): ``shown`` (the score the buyer saw), ``sold``, ``quality`` (delivered, where
sold), ``fakes`` (counted) and ``buyer`` (the buyer's surplus ``q - p - u``, where sold).

Known results (tests/mechanisms/test_reputation.py):

* the Bayesian score after k positive ratings out of n is ``(m s + k) / (s + n)``;
* an honest seller's average-rule score is an unbiased estimate of its quality, and its decayed
  evidence weight never exceeds ``1 / (1 - lambda)`` ratings (Aperjis and Johari 2010, *Optimal
  windows for aggregating ratings*);
* a myopic seller with an accurate score r = q maximizes ``(p - c q)(r - p)`` at the price share
  ``(1 + c) / 2``: the honest plan (:func:`truthful`);
* milking (Shapiro 1983, *QJE* 98(4); Holmstrom 1999, *RES* 66(1)): with a long memory, cutting
  quality after building a record keeps the price up while the record decays slowly; a
  forgetting rule makes the record respond within about ``1 / (1 - lambda)`` rounds (Dellarocas
  2005, *ISR* 16(2));
* whitewashing (Friedman and Resnick 2001, *JEMS* 10(2), "the social cost of cheap pseudonyms"):
  when a new identity is shown better than a bad record, low types cheat and re-enter; the cure
  makes newcomers pay their dues (an entry fee or a lower prior mean), which honest newcomers bear
  too;
* fake reviews are cheap talk that a verified-purchase-only rule (``unverified_weight`` 0) ignores.

Not promised: truthfulness (full effort is not dominant), IR (an unlucky honest seller may sell
below cost), efficiency.
"""

from typing import Any

import numpy as np
from pydantic import Field

from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.draws import seat_key, seat_keys, uniform, uniforms
from mecharena.mechanisms.schema import ActionField, StateField

VERSION = 1
BUYER, RATING = 0, 1  # streams of the hashed draws


class ReputationConfig(MechanismConfig):
    """Config of the reputation marketplace: the sellers' economics and the rule that shows scores."""

    effort_cost: float = Field(0.3, ge=0, le=1, description="seller's cost per unit of quality delivered per sale")
    future_value: float = Field(1.0, ge=0, le=100, description="seller's value per unit of its listing's score")
    prior_mean: float = Field(0.5, ge=0, le=1, description="score shown for a listing without evidence")
    prior_strength: float = Field(0.0, ge=0, le=1e6, description="pseudo-ratings of the prior (0: the average rule)")
    decay: float = Field(1.0, gt=0, le=1, description="weight kept by old evidence each round (1: no forgetting)")
    min_history: float = Field(0.0, ge=0, le=1e6, description="evidence weight below which the prior mean is shown")
    unverified_weight: float = Field(1.0, ge=0, le=1, description="weight of a review without a verified purchase")
    listing_fee: float = Field(0.0, ge=0, le=100, description="fee paid to the platform for each new identity")
    fake_cost: float = Field(0.05, ge=0, le=100, description="cost of one fake review")
    max_fakes: float = Field(5.0, ge=0, le=1000, description="most fake reviews a seller may buy per round")


STATE = (
    StateField("positive", description="positive rating weight of the listing"),
    StateField("negative", description="negative rating weight of the listing"),
    StateField("listings", description="identities the seller has listed under"),
    StateField("score", initial=0.5, description="score shown after the round (prior_mean before any)"),
)
ACTIONS = (
    ActionField("quality", 0.0, 1.0, 1.0, description="effort: the share of its quality type it delivers"),
    ActionField("reenter", 0, 1, 0, integer=True, description="1: list under a fresh identity (record dropped)"),
    ActionField("fakes", 0.0, 1000.0, 0.0, description="fake positive reviews bought for its own listing"),
)


def init(config: ReputationConfig, markets: int, n: int, draws: Any) -> dict:
    """No evidence, no listing yet, every score at the prior mean (nothing drawn)."""
    zeros = np.zeros((markets, n))
    return {"positive": zeros, "negative": zeros.copy(), "listings": zeros.copy(),
            "score": np.full((markets, n), config.prior_mean)}


def displayed(config: ReputationConfig, positive: Any, negative: Any) -> Any:
    """The Beta posterior mean ``(m s + positive) / (s + positive + negative)``; m without enough evidence."""
    m, s = config.prior_mean, config.prior_strength
    weight = positive + negative
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(s + weight > 0, (m * s + positive) / (s + weight), m)
    return np.where(weight < config.min_history, m, r) if config.min_history > 0 else r


def properties(config: ReputationConfig) -> frozenset[str]:
    """Revenue is the listing fees: never negative, and zero without a fee."""
    return frozenset({"weak_budget_balance"} | ({"budget_balance"} if config.listing_fee == 0 else set()))


def market_spec(config: ReputationConfig, n: int) -> MarketSpec:
    return MarketSpec(action_high=1.0, action_rule="each bid is the price as a share of the listing's score, in "
                                                   "[0, 1] (0: not listed)")


def truthful(config: ReputationConfig, values: Any, spec: MarketSpec) -> Any:
    """The honest plan: the myopic price share ``(1 + c) / 2`` of an accurate score (with the declared
    defaults: full effort, one identity, no fake reviews)."""
    return np.full(np.shape(values), (1.0 + config.effort_cost) / 2.0)


def step(config: ReputationConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """One round of every market; see the module docstring."""
    c, lam = config.effort_cost, config.decay
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0) & (bids <= 1)
    listed = valid & (bids > 0)
    new = listed & ((actions["reenter"] > 0) | (state["listings"] == 0))
    worth = displayed(config, state["positive"], state["negative"])
    positive, negative = np.where(new, 0.0, state["positive"]), np.where(new, 0.0, state["negative"])
    shown = displayed(config, positive, negative)
    keys = seat_keys(priority)
    outside, signal = uniforms(keys, BUYER), uniforms(keys, RATING)
    price = np.where(listed, bids, 0.0) * shown
    sold = listed & (shown - price >= outside)
    theta = np.clip(values, 0.0, 1.0)
    quality = actions["quality"] * theta
    fakes = np.where(listed, np.minimum(actions["fakes"], config.max_fakes), 0.0)
    good = sold & (signal < quality)
    positive = lam * positive + good + config.unverified_weight * fakes
    negative = lam * negative + (sold & ~good)
    score = displayed(config, positive, negative)
    spent = config.fake_cost * fakes
    gains = np.where(sold, price - c * quality, 0.0) - spent + config.future_value * (score - worth)
    new_state = {"positive": positive, "negative": negative, "listings": state["listings"] + new, "score": score}
    welfare = (np.where(sold, (1.0 - c) * quality - outside, 0.0) - spent).sum(axis=1)
    best = np.maximum(0.0, (1.0 - c) * theta - outside).sum(axis=1)
    outcome = finish(-sold.astype(float), config.listing_fee * new, np.zeros(bids.shape), gains, valid, listed,
                     best, welfare)
    return new_state, outcome, {"shown": np.where(listed, shown, 0.0), "sold": sold.astype(float),
                                "quality": np.where(sold, quality, 0.0), "fakes": fakes,
                                "buyer": np.where(sold, quality - price - outside, 0.0)}


def step_reference(config: ReputationConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python, seller by seller."""
    c, lam, m, s = config.effort_cost, config.decay, config.prior_mean, config.prior_strength

    def show(pos: float, neg: float) -> float:
        if pos + neg < config.min_history:
            return m
        return (m * s + pos) / (s + pos + neg) if s + pos + neg > 0 else m

    new_state: dict[str, list[float]] = {name: [] for name in ("positive", "negative", "listings", "score")}
    events: dict[str, list[float]] = {name: [] for name in ("shown", "sold", "quality", "fakes", "buyer")}
    gains, sold_units, fees, valid, listed = [], [], [], [], []
    welfare = best = 0.0
    for i, bid in enumerate(bids):
        ok = is_valid_number(bid, 0.0, 1.0)
        on = ok and bid > 0
        pos, neg, ids = state["positive"][i], state["negative"][i], state["listings"][i]
        worth = show(pos, neg)
        fresh = on and (actions["reenter"][i] > 0 or ids == 0)
        if fresh:
            pos, neg, ids = 0.0, 0.0, ids + 1
        r = show(pos, neg)
        key = seat_key(priority[i])
        outside, signal = uniform(key, BUYER), uniform(key, RATING)
        theta = min(max(values[i], 0.0), 1.0)
        quality = actions["quality"][i] * theta
        fakes = min(actions["fakes"][i], config.max_fakes) if on else 0.0
        price = bid * r if on else 0.0
        sold = on and r - price >= outside
        good = sold and signal < quality
        pos = lam * pos + good + config.unverified_weight * fakes
        neg = lam * neg + (sold and not good)
        score = show(pos, neg)
        gains.append((price - c * quality if sold else 0.0) - config.fake_cost * fakes
                     + config.future_value * (score - worth))
        welfare += ((1.0 - c) * quality - outside if sold else 0.0) - config.fake_cost * fakes
        best += max(0.0, (1.0 - c) * theta - outside)
        for name, x in (("positive", pos), ("negative", neg), ("listings", ids), ("score", score)):
            new_state[name].append(float(x))
        for name, x in (("shown", r if on else 0.0), ("sold", float(sold)), ("quality", quality if sold else 0.0),
                        ("fakes", fakes), ("buyer", quality - price - outside if sold else 0.0)):
            events[name].append(float(x))
        sold_units.append(-float(sold))
        fees.append(config.listing_fee if fresh else 0.0)
        valid.append(ok)
        listed.append(on)
    outcome = scalar_outcome(gains, sold_units, fees, [0.0] * len(bids), valid, listed, max_welfare=best,
                             welfare=welfare)
    return new_state, outcome, events


#: The rules compared in docs/usecases.md. AVERAGE is the config's defaults: the share of positive ratings.
AVERAGE: dict[str, Any] = {}
BAYESIAN: dict[str, Any] = {"prior_strength": 2.0}
DECAYED: dict[str, Any] = {"prior_strength": 2.0, "decay": 0.7}
#: The repair: forget old ratings (against milking), charge each identity a fee (against whitewashing: a
#: transfer, so no trade is lost) and count verified purchases only (against fake reviews).
REPAIRED: dict[str, Any] = {"prior_strength": 0.5, "decay": 0.75, "unverified_weight": 0.0, "listing_fee": 0.2}
#: Verified purchases only: fake reviews closed, identities still free.
VERIFIED: dict[str, Any] = {"unverified_weight": 0.0}
RULES: dict[str, dict[str, Any]] = {"average": AVERAGE, "bayesian": BAYESIAN, "decayed": DECAYED, "verified": VERIFIED,
                                    "repaired": REPAIRED}

MECHANISM = Mechanism(
    name="reputation", version=VERSION,
    summary="reputation marketplace: sellers price and choose hidden quality, buyers rate, scores across rounds",
    config_model=ReputationConfig, kernel=None, reference=None, properties=properties, market_spec=market_spec,
    truthful=truthful, examples=(AVERAGE, BAYESIAN, DECAYED, REPAIRED, {"min_history": 1.5, "max_fakes": 1.0}),
    doc=__doc__, state=STATE, actions=ACTIONS, step=step, step_reference=step_reference, init=init,
)
