"""Marketplace reputation: sellers choosing effort, buyers rating, a reputation rule; a mecharena plug-in.

One market-round is a whole reputation game of P periods (``periods``) among N sellers, played out
inside the kernel: the engine's rounds stay independent, and a seller's strategy is its plan for
the P periods, submitted as its orders (``MarketSpec(orders_per_agent=2P)``, bids ``(B, N, 2P)``).

**Sellers.** Seat i's value ``theta_i`` is its private quality type: the quality it delivers at
full effort. Its first P orders are its efforts: ``e in [0, 1]`` delivers quality ``q = e theta``
in that period at cost ``effort_cost * q`` per sale; ``e + 2`` (an order in [2, 3]) first drops
the listing and re-enters under a new identity, whose record is empty (whitewashing; a flag in
the first period changes nothing, every listing starts new). Its last P orders are fake ratings
bought in each period (in ``[0, max_fakes]``, ``fake_cost`` each). The sellers that buy fake
ratings form a ring: each spreads its fakes evenly over the ring's other listings (a lone buyer's
fakes land on its own listing, through sock-puppet accounts). An order outside these ranges is
invalid: the seat lists nothing (zero payoff).

**Buyers.** In every period each listing meets one buyer. Its displayed reputation r is the
buyer's estimate of quality; the price is the share ``price_share`` (mu) of it, ``p = mu r``, a
reputation premium (Shapiro 1983, *QJE* 98(4)); the buyer's outside option u is uniform on
``[0, 1 - mu]``, so she buys when ``r - p >= u``, with probability r. A sale earns the seller
``p - effort_cost q``, the buyer ``q - p - u`` (against her outside option), and yields one
verified rating: positive with probability q (Bernoulli ratings, as in the Beta reputation
system; Josang and Ismail 2002, *15th Bled eCommerce Conference*). After the P periods the
seller also keeps ``future_value * r_final``: its listing's worth for future business
(reputation as an asset; Tadelis 1999, *AER* 89(3)).

**The rule.** Evidence is a pair (positive, negative) of rating weights per identity; each period
old evidence is multiplied by ``decay`` (lambda) and the new ratings added, fake ones with weight
``unverified_weight``. The displayed reputation is the Beta posterior mean

    r = (m s + positive) / (s + positive + negative),    m = prior_mean, s = prior_strength,

and m when there is no evidence (or less weight than ``min_history``). Three classic rules:
**average** (s = 0, lambda = 1: the share of positive ratings, an unrated listing shown at m),
**Bayesian** (s > 0, lambda = 1: Beta(m s, (1 - m) s) prior) and **decayed** (lambda < 1: the
forgetting factor of Josang and Ismail). Each new identity pays ``listing_fee`` to the platform.

Known results this plug-in reproduces (tests/examples/test_reputation.py):

* the Bayesian display after k positive ratings out of n is ``(m s + k) / (s + n)``;
* an honest seller's average-rule reputation is an unbiased estimate of its quality, and its
  long-run decayed evidence weight is ``1 / (1 - lambda)`` ratings at most, the price of
  responsiveness (Aperjis and Johari 2010, *Optimal windows for aggregating ratings*);
* milking (Shapiro 1983; Holmstrom 1999, *RES* 66(1)): with a long memory, cutting quality after
  building a record keeps the price up while the record decays slowly, so the cut pays; a
  forgetting rule makes the record respond within ~1/(1 - lambda) periods (Dellarocas 2005, *ISR*
  16(2): only recent ratings should count);
* whitewashing (Friedman and Resnick 2001, *JEMS* 10(2), "the social cost of cheap
  pseudonyms"): when a new identity is shown better than a bad record, low types cheat and
  re-enter; the cure is to make newcomers pay their dues, a lower prior mean or an entry fee,
  whose cost honest newcomers bear too;
* unverified fake ratings are cheap talk that a verified-purchase-only rule (weight 0) ignores.

Not promised: truthfulness (honest effort is not a dominant strategy: milking the final periods
pays under every rule with a lag), IR (an unlucky honest seller may sell below cost), efficiency.
Revenue is the listing fees, so the platform never loses money, and with no fee money only moves
between sellers and buyers outside the seats.

Load it with ``mecharena --plugin examples/plugins/reputation.py COMMAND ...``; run it as a script
to print the exploitability table of docs/usecases.md.
"""

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.agents import AgentType, MarketContext
from mecharena.agents.base import require_mechanism
from mecharena.core.config import StrictModel
from mecharena.fuzz.families import Family, Param
from mecharena.mechanisms import MarketSpec, Mechanism, MechanismConfig, finish, scalar_outcome
from mecharena.mechanisms.draws import seat_key, seat_keys, uniform, uniforms
from mecharena.mechanisms.reputation import displayed  # the same Beta-posterior score

NAME = "reputation_market"
RENEW = 2.0  # an effort order offset by this re-enters under a new identity
VERSION = 1


class ReputationConfig(MechanismConfig):
    """Config of the reputation market: the game, and the rule that displays reputations."""

    periods: int = Field(20, ge=1, le=200, description="periods P of one reputation game (one market-round)")
    effort_cost: float = Field(0.3, ge=0, le=1, description="seller's cost per unit of quality delivered per sale")
    price_share: float = Field(0.6, gt=0, lt=1, description="price as a share mu of the displayed reputation")
    future_value: float = Field(1.0, ge=0, description="seller's value per unit of final displayed reputation")
    prior_mean: float = Field(0.5, ge=0, le=1, description="reputation shown for a listing without evidence")
    prior_strength: float = Field(0.0, ge=0, description="pseudo-ratings of the prior (0: the average rule)")
    decay: float = Field(1.0, gt=0, le=1, description="weight kept by old evidence each period (1: no forgetting)")
    min_history: float = Field(0.0, ge=0, description="evidence weight below which the prior mean is shown")
    unverified_weight: float = Field(1.0, ge=0, le=1, description="weight of a rating without a verified purchase")
    listing_fee: float = Field(0.0, ge=0, description="fee paid to the platform for each new identity")
    fake_cost: float = Field(0.05, ge=0, description="cost of one fake rating")
    max_fakes: float = Field(5.0, ge=0, description="most fake ratings a seller may buy per period")


def properties(config: ReputationConfig) -> frozenset[str]:
    """Revenue is the listing fees: never negative, and zero without a fee."""
    return frozenset({"weak_budget_balance"} | ({"budget_balance"} if config.listing_fee == 0 else set()))


def market_spec(config: ReputationConfig, n: int) -> MarketSpec:
    return MarketSpec(orders_per_agent=2 * config.periods, action_high=RENEW + 1.0,
                      action_rule=f"efforts must be in [0, 1] (or [2, 3]: re-enter) and fake ratings in "
                                  f"[0, {config.max_fakes:g}]")


def truthful(config: ReputationConfig, values: Any, spec: MarketSpec) -> Any:
    """The honest plan: full effort every period under one identity, no fake ratings."""
    shape = np.shape(values)
    return np.concatenate([np.ones(shape + (config.periods,)), np.zeros(shape + (config.periods,))], axis=-1)


# --- the game -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Game:
    """Everything that happened in B reputation games of P periods among N sellers."""

    valid: Any  # (B, N)  False: the seat's orders were invalid and it listed nothing
    shown: Any  # (B, N, P)  displayed reputation at the start of each period (0: not listed)
    sold: Any  # (B, N, P)  the period's buyer bought
    price: Any  # (B, N, P)
    quality: Any  # (B, N, P)  quality the seller would deliver that period (delivered if sold)
    outside: Any  # (B, N, P)  the buyer's outside option
    fakes: Any  # (B, N, P)  fake ratings bought
    identities: Any  # (B, N)  identities used (listings created)
    final: Any  # (B, N)  displayed reputation after the last period
    profit: Any  # (B, N)  trade profit - fake ratings' cost + future value (before fees)
    buyer: Any  # (B, N)  buyers' surplus at this seller, against their outside options
    surplus: Any  # (B, N)  trade surplus: sum of (1 - effort_cost) q - u over sales, minus fake costs
    best: Any  # (B, N)  the most trade surplus the seller's type allows: sum of max(0, (1 - c) theta - u)


def parse_orders(config: ReputationConfig, bids: Any) -> tuple[Any, Any, Any, Any]:
    """(valid (B, N), effort (B, N, P), renew (B, N, P), fakes (B, N, P)) from orders (B, N, 2P)."""
    p = config.periods
    plan, fakes = bids[..., :p], bids[..., p:]
    with np.errstate(invalid="ignore"):
        renew = (plan >= RENEW) & (plan <= RENEW + 1.0)
        ok_plan = ((plan >= 0) & (plan <= 1)) | renew
        ok_fakes = (fakes >= 0) & (fakes <= config.max_fakes)
    valid = (ok_plan & ok_fakes).all(axis=-1)
    effort = np.where(renew, plan - RENEW, plan)
    renew = renew & (np.arange(p) > 0)
    keep = valid[..., None]
    return valid, np.where(keep, effort, 0.0), renew & keep, np.where(keep, fakes, 0.0)


def play_game(config: ReputationConfig, values: Any, bids: Any, priority: Any) -> Game:
    """B reputation games at once: values (B, N), bids (B, N, 2P), priority (B, N). Pure and deterministic."""
    valid, effort, renew, fakes = parse_orders(config, bids)
    b, n = values.shape
    c, mu, lam = config.effort_cost, config.price_share, config.decay
    keys = seat_keys(priority)
    member = valid & (fakes.sum(axis=-1) > 0)
    ring = member.sum(axis=1, keepdims=True)
    positive, negative = np.zeros((b, n)), np.zeros((b, n))
    identities = valid.astype(float)
    cols = {k: [] for k in ("shown", "sold", "price", "quality", "outside")}
    profit, buyer, surplus, best = (np.zeros((b, n)) for _ in range(4))
    for t in range(config.periods):
        new = renew[..., t]
        positive, negative = np.where(new, 0.0, positive), np.where(new, 0.0, negative)
        identities = identities + new
        shown = np.where(valid, displayed(config, positive, negative), 0.0)
        draw, signal = uniforms(keys, 4 * t), uniforms(keys, 4 * t + 1)
        sold = valid & (draw < shown)
        quality = effort[..., t] * values
        price = mu * shown
        outside = (1.0 - mu) * draw
        bought = fakes[..., t]
        profit = profit + np.where(sold, price - c * quality, 0.0) - config.fake_cost * bought
        buyer = buyer + np.where(sold, quality - price - outside, 0.0)
        surplus = surplus + np.where(sold, (1.0 - c) * quality - outside, 0.0) - config.fake_cost * bought
        best = best + np.maximum(0.0, (1.0 - c) * values - outside)
        total = bought.sum(axis=1, keepdims=True)
        received = np.where(member, np.where(ring > 1, (total - bought) / np.maximum(ring - 1, 1), bought), 0.0)
        good = sold & (signal < quality)
        positive = lam * positive + good + config.unverified_weight * received
        negative = lam * negative + (sold & ~good)
        for name, value in (("shown", shown), ("sold", sold), ("price", price), ("quality", quality),
                            ("outside", outside)):
            cols[name].append(value)
    final = np.where(valid, displayed(config, positive, negative), 0.0)
    profit = profit + config.future_value * final
    stack = {name: np.stack(v, axis=-1) for name, v in cols.items()}
    return Game(valid, stack["shown"], stack["sold"], stack["price"], stack["quality"], stack["outside"], fakes,
                identities, final, profit, buyer, surplus, best)


def kernel(config: ReputationConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """B games at once; values and priority (B, N), bids (B, N, 2P).

    The Outcome: allocation = -(units sold), gains = the seller's profit (with future value),
    payments = listing fees; welfare = trade surplus of sellers and buyers (the future value is
    private to the seller and not counted), max_welfare = the trade surplus every seller's type allows.
    """
    game = play_game(config, values, bids, priority)
    fees = config.listing_fee * game.identities
    return finish(-game.sold.sum(axis=-1).astype(float), fees, np.zeros(values.shape), game.profit, game.valid,
                  game.valid, max_welfare=game.best.sum(axis=1), welfare=game.surplus.sum(axis=1))


def reference(config: ReputationConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One game in plain Python: the test oracle of the kernel."""
    n, p, c, mu, lam = len(values), config.periods, config.effort_cost, config.price_share, config.decay
    m, s = config.prior_mean, config.prior_strength

    def show(pos: float, neg: float) -> float:
        weight = pos + neg
        if weight < config.min_history:
            return m
        return (m * s + pos) / (s + weight) if s + weight > 0 else m

    def ok(x: float, low: float, high: float) -> bool:
        return not math.isnan(x) and low <= x <= high

    valid = [all(ok(x, 0, 1) or ok(x, RENEW, RENEW + 1) for x in row[:p]) and all(ok(x, 0, config.max_fakes)
                                                                                   for x in row[p:]) for row in bids]
    fakes = [[row[p + t] if valid[i] else 0.0 for t in range(p)] for i, row in enumerate(bids)]
    members = [i for i in range(n) if valid[i] and sum(fakes[i]) > 0]
    keys = [seat_key(x) for x in priority]
    pos, neg, ids = [0.0] * n, [0.0] * n, [1.0 if v else 0.0 for v in valid]
    sold_units, profit, welfare, best = [0.0] * n, [0.0] * n, 0.0, 0.0
    for t in range(p):
        received = [0.0] * n
        for i in members:
            if len(members) == 1:
                received[i] = fakes[i][t]
            else:
                received[i] = sum(fakes[j][t] for j in members if j != i) / (len(members) - 1)
        for i in range(n):
            draw, signal = uniform(keys[i], 4 * t), uniform(keys[i], 4 * t + 1)
            outside = (1.0 - mu) * draw
            best += max(0.0, (1.0 - c) * values[i] - outside)
            if not valid[i]:
                continue
            order = bids[i][t]
            effort = order - RENEW if order >= RENEW else order
            if order >= RENEW and t > 0:
                pos[i], neg[i], ids[i] = 0.0, 0.0, ids[i] + 1
            r = show(pos[i], neg[i])
            quality = effort * values[i]
            sold = draw < r
            profit[i] -= config.fake_cost * fakes[i][t]
            welfare -= config.fake_cost * fakes[i][t]
            good = sold and signal < quality
            if sold:
                sold_units[i] += 1
                profit[i] += mu * r - c * quality
                welfare += (1.0 - c) * quality - outside
            pos[i] = lam * pos[i] + good + config.unverified_weight * received[i]
            neg[i] = lam * neg[i] + (sold and not good)
    gains = [profit[i] + config.future_value * show(pos[i], neg[i]) if valid[i] else 0.0 for i in range(n)]
    fees = [config.listing_fee * ids[i] for i in range(n)]
    return scalar_outcome(gains, [-x for x in sold_units], fees, [0.0] * n, valid, valid, max_welfare=best,
                          welfare=welfare)


#: The rules compared in docs/usecases.md. NAIVE is the config's defaults: the share of positive ratings.
NAIVE: dict[str, Any] = {}
BAYESIAN: dict[str, Any] = {"prior_strength": 2.0}
DECAYED: dict[str, Any] = {"prior_strength": 2.0, "decay": 0.7}
#: The repair: forget old ratings (decay, against milking), charge each identity a fee (against
#: whitewashing: a transfer, so no trade is lost) and count verified purchases only (against fake ratings).
REPAIRED: dict[str, Any] = {"prior_strength": 0.5, "decay": 0.75, "unverified_weight": 0.0, "listing_fee": 0.2}
#: The same with newcomers shown below the average ("pay your dues"): buyers gain, trades are lost.
REPAIRED_LOW_START: dict[str, Any] = {**REPAIRED, "prior_mean": 0.3}
RULES: dict[str, dict[str, Any]] = {"average": NAIVE, "bayesian": BAYESIAN, "decayed": DECAYED, "repaired": REPAIRED,
                                    "repaired_low_start": REPAIRED_LOW_START}

MECHANISM = Mechanism(
    name=NAME, version=VERSION,
    summary="reputation game: sellers choose effort per period, buyers buy and rate by displayed reputation",
    config_model=ReputationConfig, kernel=kernel, reference=reference, properties=properties,
    market_spec=market_spec, truthful=truthful,
    examples=(NAIVE, BAYESIAN, DECAYED, REPAIRED, {"periods": 3, "min_history": 1.5, "max_fakes": 1.0}),
    doc=__doc__,
)


# --- agent types: strategy generators (each returns a seller's plan for the P periods) ---------------


def _periods(context: MarketContext, agent: str) -> int:
    require_mechanism(context, agent, (NAME,))
    return context.config.periods


def _orders(effort: Any, renew: Any, fakes: Any) -> Any:
    """Orders (B, S, 2P) from efforts, re-entry flags and fake ratings, each (B, S, P)."""
    return np.concatenate([effort + RENEW * renew, fakes], axis=-1)


def _honest(context: MarketContext, params: Any, state: None, values: Any, draws: Any) -> Any:
    """Full effort every period under one identity, no fake ratings."""
    _periods(context, "honest")
    return truthful(context.config, values, context.spec)


class MilkerParams(StrictModel):
    """Build a record, then cut quality."""

    warmup: float = Field(0.7, ge=0, le=1, description="share of the periods played at full effort first")
    cut: float = Field(0.0, ge=0, le=1, description="effort after the build-up")
    above: float = Field(0.0, ge=0, le=1, description="only types at or above this milk (the others are honest)")


def _milk(context: MarketContext, params: MilkerParams, state: None, values: Any, draws: Any) -> Any:
    p = _periods(context, "milker")
    start = int(np.floor(params.warmup * p + 0.5))
    milks = (values >= params.above)[..., None] & (np.arange(p) >= start)
    effort = np.where(milks, params.cut, 1.0)
    return _orders(effort, np.zeros(effort.shape, bool), np.zeros(effort.shape))


class WhitewasherParams(StrictModel):
    """Cheat, and shed the record under a new identity."""

    below: float = Field(0.8, ge=0, le=1, description="types below this cheat (the others are honest)")
    effort: float = Field(0.0, ge=0, le=1, description="effort while cheating")
    every: int = Field(1, ge=1, le=200, description="periods between new identities")


def _whitewash(context: MarketContext, params: WhitewasherParams, state: None, values: Any, draws: Any) -> Any:
    p = _periods(context, "whitewasher")
    t = np.arange(p)
    cheats = (values < params.below)[..., None] & np.ones(p, bool)
    renew = cheats & (t % params.every == 0) & (t > 0)
    return _orders(np.where(cheats, params.effort, 1.0), renew, np.zeros(cheats.shape))


class RingParams(StrictModel):
    """Buy fake ratings for the ring's other members."""

    fakes: float = Field(1.0, ge=0, le=50, description="fake ratings bought per period (capped at max_fakes)")
    effort: float = Field(1.0, ge=0, le=1, description="effort every period")


def _ring(context: MarketContext, params: RingParams, state: None, values: Any, draws: Any) -> Any:
    p = _periods(context, "fake_review_ring")
    shape = np.shape(values) + (p,)
    return _orders(np.full(shape, params.effort), np.zeros(shape, bool),
                   np.full(shape, min(params.fakes, context.config.max_fakes)))


AGENTS = [
    AgentType(name="honest", version=1, summary="reputation market: full effort, one identity, no fake ratings",
              act=_honest),
    AgentType(name="milker", version=1, summary="reputation market: build a record, then cut quality",
              act=_milk, params_model=MilkerParams),
    AgentType(name="whitewasher", version=1, summary="reputation market: low types cheat and re-enter under new names",
              act=_whitewash, params_model=WhitewasherParams),
    AgentType(name="fake_review_ring", version=1, summary="reputation market: buy fake ratings for ring partners",
              act=_ring, params_model=RingParams),
]

FAMILIES = [
    Family("milking", "milker", (Param("warmup"), Param("cut"), Param("above")),
           "build a record at full effort, then cut quality while the reputation lasts",
           "forget old ratings (decay < 1) so the displayed reputation follows current quality",
           starts=({"warmup": 0.7, "cut": 0.0, "above": 0.5},)),
    Family("whitewashing", "whitewasher", (Param("below"), Param("effort"), Param("every", 1, 10, "int")),
           "low types cheat and re-enter under a new identity once the record is bad",
           "make newcomers pay their dues: a prior mean below the average, or a fee per identity",
           starts=({"below": 0.8, "effort": 0.0, "every": 1},)),
    Family("fake_review_ring", "fake_review_ring", (Param("fakes", 0.0, 5.0), Param("effort")),
           "buy fake positive ratings for the ring's other members (alone: for one's own listing)",
           "count verified purchases only (unverified_weight = 0)", starts=({"fakes": 1.0, "effort": 1.0},)),
]


# --- metrics ------------------------------------------------------------------------------------------


def _per_market(cell: Any) -> dict[str, Any]:
    """(T, B) per-market sums of one cell's games, played by the engine's round loop."""
    from mecharena.sim.loop import play

    episode = cell.episode()
    config = episode.context.config
    rows: dict[str, list] = {k: [] for k in ("listings", "buyer", "welfare", "trades", "quality", "error", "profit")}
    for record in play(episode, cell.rounds):
        game = play_game(config, record.values, record.bids, record.priority)
        listed = game.valid[..., None] & np.ones(config.periods, bool)
        rows["listings"].append(listed.sum(axis=(1, 2)).astype(float))
        rows["buyer"].append(game.buyer.sum(axis=1))
        rows["welfare"].append(game.surplus.sum(axis=1))
        rows["trades"].append(game.sold.sum(axis=(1, 2)).astype(float))
        rows["quality"].append(np.where(game.sold, game.quality, 0.0).sum(axis=(1, 2)))
        rows["error"].append(np.where(listed, np.abs(game.shown - game.quality), 0.0).sum(axis=(1, 2)))
        rows["profit"].append(record.utility.sum(axis=1))
    return {k: np.stack(v) for k, v in rows.items()}


def market_metrics(cell: Any) -> dict[str, dict[str, Any]]:
    """Buyer welfare, quality delivered and reputation accuracy of a cell, with 95% intervals over markets.

    Per listing and period: ``buyer_welfare`` (buyers' surplus against their outside options),
    ``welfare`` (trade surplus of buyers and sellers), ``trades`` (share of periods with a sale) and
    ``seller_profit`` (net of fees, with the future value). ``quality``: mean quality per trade.
    ``reputation_error``: mean |displayed reputation - quality the listing delivers that period|.
    """
    from mecharena.metrics.summary import mean_ci, ratio_ci

    data = _per_market(cell)
    per = np.maximum(data["listings"], 1.0)
    return {"buyer_welfare": mean_ci(data["buyer"] / per), "welfare": mean_ci(data["welfare"] / per),
            "trades": mean_ci(data["trades"] / per), "seller_profit": mean_ci(data["profit"] / per),
            "quality": ratio_ci(data["quality"], data["trades"]),
            "reputation_error": ratio_ci(data["error"], data["listings"])}


# --- the before/after table -----------------------------------------------------------------------------

#: (family, deviators) rows of the table: a lone fake-rating buyer reviews itself, a pair reviews each other.
ATTACKS: tuple[tuple[str, int], ...] = (("milking", 1), ("whitewashing", 1), ("fake_review_ring", 1),
                                         ("fake_review_ring", 2))
COSTS = ("welfare", "buyer_welfare", "trades", "seller_profit")


def _cell(rule: str, sellers: int, **fields: Any) -> Any:
    from mecharena.metrics.harness import Cell

    return Cell(mechanism=NAME, config=RULES[rule], population=f"honest:{sellers}", **fields)


def exploitability_table(rules: tuple[str, ...] = tuple(RULES), attacks: tuple[tuple[str, int], ...] = ATTACKS, *,
                         sellers: int = 4, budget: int = 24, markets: int = 300, rounds: int = 2,
                         eval_markets: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Fuzz every attack under every rule, and measure what each rule costs honest sellers and buyers.

    Args:
        rules: names in :data:`RULES`; the cost of each ``repaired*`` rule is measured against each other rule.
        attacks: (family, deviators) pairs fuzzed against ``sellers`` honest sellers.
        budget, markets, rounds, eval_markets, seed: as :func:`mecharena.fuzz.search.fuzz`; the
            exploitability is the best deviation's gain re-evaluated on a fresh seed, per deviating
            seller and game, with its 95% interval.

    Returns:
        ``{"exploits": {rule: {"family/K": {"exploitability", "fresh", "best"}}}, "metrics": {rule:
        market_metrics of the honest population}, "costs": {"repaired - average": {metric: paired difference}},
        "settings": {...}}``. Metrics are played on ``eval_markets`` markets of one game each, the
        same draws for every rule, so the differences are paired market by market.
    """
    from mecharena.fuzz.search import fuzz
    from mecharena.metrics.summary import mean_ci

    exploits: dict[str, dict[str, Any]] = {}
    per_market: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    for rule in rules:
        target = _cell(rule, sellers)
        exploits[rule] = {}
        for family, deviators in attacks:
            found = fuzz(target, families=[family], deviators=deviators, budget=budget, seed=seed, markets=markets,
                         rounds=rounds, eval_markets=eval_markets)
            exploits[rule][f"{family}/{deviators}"] = {
                "exploitability": found.exploitability, "fresh": found.fresh.as_dict(),
                "best": dict(found.best.deviation.params)}
        honest = _cell(rule, sellers, markets=eval_markets, rounds=1, seed=seed + 1)
        per_market[rule] = _per_market(honest)
        metrics[rule] = market_metrics(honest)
    repaired = [r for r in rules if r.startswith("repaired")]
    costs = {f"{rule} - {base}": {name: mean_ci(_unit(per_market[rule], name) - _unit(per_market[base], name))
                                  for name in COSTS}
             for rule in repaired for base in rules if base not in repaired}
    return {"exploits": exploits, "metrics": metrics, "costs": costs,
            "settings": {"sellers": sellers, "budget": budget, "markets": markets, "rounds": rounds,
                         "eval_markets": eval_markets, "seed": seed, "rules": {r: RULES[r] for r in rules}}}


def _unit(data: dict[str, Any], name: str) -> Any:
    column = {"welfare": "welfare", "buyer_welfare": "buyer", "trades": "trades", "seller_profit": "profit"}[name]
    return data[column] / np.maximum(data["listings"], 1.0)


def _ci(stat: dict[str, Any], digits: int = 3) -> str:
    lo, hi = stat["ci95"]
    return f"{stat['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(table: dict[str, Any]) -> str:
    """The tables of docs/usecases.md from :func:`exploitability_table`'s result."""
    rules = list(table["exploits"])
    lines = ["| attack (deviators) | " + " | ".join(rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for key in table["exploits"][rules[0]]:
        family, k = key.split("/")
        lines.append(f"| `{family}` ({k}) | " + " | ".join(_ci(table["exploits"][r][key]["exploitability"])
                                                          for r in rules) + " |")
    lines += ["", "| honest sellers, per listing and period | " + " | ".join(rules) + " |",
              "|---" * (len(rules) + 1) + "|"]
    names = {"welfare": "trade surplus (welfare)", "buyer_welfare": "buyer welfare", "trades": "trades",
             "quality": "quality per trade", "reputation_error": "reputation error (mean abs. r - q)",
             "seller_profit": "seller profit (with future value, net of fees)"}
    for name, label in names.items():
        lines.append(f"| {label} | " + " | ".join(_ci(table["metrics"][r][name]) for r in rules) + " |")
    pairs = list(table["costs"])
    lines += ["", "| cost of the repair (paired, honest sellers) | " + " | ".join(f"`{p}`" for p in pairs) + " |",
              "|---" * (len(pairs) + 1) + "|"]
    for name in COSTS:
        lines.append(f"| {names[name]} | " + " | ".join(_ci(table["costs"][p][name], 4) for p in pairs) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the tables of docs/usecases.md: ``python examples/plugins/reputation.py [--budget 24] ...``."""
    from mecharena import plugins

    parser = argparse.ArgumentParser(description="exploitability of the reputation rules, before and after repair")
    parser.add_argument("--budget", type=int, default=24, help="fuzzing evaluations per attack and rule")
    parser.add_argument("--markets", type=int, default=300, help="markets per search evaluation")
    parser.add_argument("--rounds", type=int, default=2, help="games per market in the search")
    parser.add_argument("--eval-markets", type=int, default=2000, help="markets of the fresh evaluation")
    parser.add_argument("--sellers", type=int, default=4, help="sellers per market")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    plugins.load(str(Path(__file__).resolve()))
    table = exploitability_table(sellers=args.sellers, budget=args.budget, markets=args.markets, rounds=args.rounds,
                                 eval_markets=args.eval_markets, seed=args.seed)
    sys.stdout.write(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
