"""Token incentives: epoch-based contribution mining, as a mecharena plug-in (see docs/plugins.md).

**The scheme** (``token_rewards``; one round is one epoch). Every identity (seat) submits a
contribution ``x >= 0`` (units of liquidity, compute, data...) as its bid; its private value is
its unit cost ``c`` of contributing. The scheme counts ``min(x, cap)`` (``cap`` 0: no cap), turns it
into a weight

* ``linear``: ``w = x``; ``sqrt``: ``w = sqrt(x)`` (the concave weighting of quadratic funding,
  Buterin, Hitzig and Weyl 2019, *Management Science* 65(11)); ``quadratic``: ``w = x^2`` (a pure
  size premium);
* times a stake boost ``1 + stake_weight * x`` (larger positions earn a higher rate, as in
  stake-boosted liquidity mining),

and pays the posted ``rate`` per unit of weight out of the epoch's ``emission``. When the claims
``rate * W`` exceed the emission the ``ordering`` rule rations them: ``fifo`` serves claims in
arrival order (order times; without times, by the seeded priority) until the emission runs out,
so whoever is first in line is paid in full; ``batch`` pays every claim the same share
``emission / (rate * W)``, so arrival order does not matter (a frequent batch auction in the sense
of Budish, Cramton and Shim 2015, *QJE* 130(4)). Each identity that contributes pays the
``identity_cost`` (a deposit that is burnt, a proof-of-personhood fee).

**Mapping to the engine's Outcome.** Contributors are sellers of their contribution:
``allocation = -x`` (units given up), ``receipts`` = reward, ``payments`` = identity cost, value gain
``-c x``, so ``utility = reward - c x - identity_cost``. The protocol values useful contribution at
``unit_value`` per unit up to its ``target`` (liquidity beyond the depth users need is idle):
``welfare = unit_value * min(X, target) - sum c x`` (rewards and fees are transfers), and
``max_welfare = max(unit_value - min c, 0) * target`` (the cheapest identity fills the target).
Costs are linear, so an agent's gains add up over its identities: the record declares
``additive_values`` and the loop merges a sybil's identities by summing their utilities.

**Vesting and clawback** (the mechanism keeps state across epochs). A share ``vesting`` of each
reward is not paid but escrowed on the identity (state field ``escrow``, money held on its behalf).
Each later epoch in which the identity contributes, ``1 / vest_epochs`` of its escrow is released
to it (geometric vesting); an identity that contributes less than ``min_stay`` in an epoch (0: nothing
at all) has left, and its whole escrow is clawed back (forfeited to the treasury, never paid). An identity may unlock early
(action field ``unlock`` = 1): it receives its escrow less the ``early_unlock_fee`` share, which is
forfeited. The step reports ``deposited``, ``released`` and ``forfeited`` per identity, and the
checker holds it to ``escrow' = escrow + deposited - released - forfeited``. Receipts are what is
paid out this epoch (the unvested part of the reward plus what vests), so revenue stays the cash
flow of the epoch and escrow is the protocol's obligation. With ``vesting`` 0 (the default) the
escrow stays empty and every epoch is what the one-round kernel gave, bit for bit.

**Known results** (the honest contributor takes the posted rate as given; ``U[0, 1]`` costs):

* while the emission does not bind, an identity's reward ``rate * w(x)`` does not depend on
  anyone else, so the price-taking contribution is a dominant strategy: with linear weights, no
  cap and no identity cost it contributes its capacity ``k`` iff ``c <= rate`` (expected
  ``n k rate`` in all); with sqrt weights it contributes ``x*(c) = min(k, (rate / 2c)^2)`` (the
  first-order condition ``rate / (2 sqrt x) = c``), expected ``rate - rate^2/4`` per agent for k = 1;
* splitting a contribution ``x`` over m identities multiplies its sqrt weight by ``sqrt(m)``
  (the sybil attack on quadratic funding), and under a binding per-identity cap each extra
  identity earns exactly what the first does, so an identity cost cannot tell a farmer from an
  honest contributor there; with sqrt weights the m-th identity adds at most
  ``rate sqrt(k) (sqrt(m) - 1)/(m - 1) <= 0.4142 rate sqrt(k)``, so an identity cost above that
  closes splitting, at the price of contributors whose surplus is below the cost staying out;
* a stake boost (or quadratic weight) is convex in size, so whales that pool their contributions
  in one identity earn more than apart; concave (sqrt) weights make pooling lose;
* under ``fifo`` an order placed ahead of the queue is never rationed; under ``batch`` it gains
  nothing.

Load it with ``mecharena --plugin examples/plugins/token_incentive.py COMMAND ...``;
``use_case_table()`` reproduces the before/after table of docs/usecases.md, ``vesting_table()`` the one on
vesting and clawback.
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.agents import AgentType, MarketContext
from mecharena.agents.base import Action, require_mechanism
from mecharena.core.config import StrictModel
from mecharena.fuzz.families import Family, Param
from mecharena.mechanisms import Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.base import MarketSpec
from mecharena.mechanisms.schema import ActionField, StateField

VERSION = 2
WEIGHTINGS = ("linear", "sqrt", "quadratic")


# --- the mechanism -----------------------------------------------------------------------------

class TokenRewardsConfig(MechanismConfig):
    """Config of one epoch of contribution mining."""

    emission: float = Field(3.0, gt=0, description="tokens the epoch can pay out at most")
    rate: float = Field(0.5, gt=0, description="posted reward per unit of weight")
    cap: float = Field(0.0, ge=0, description="per-identity cap on the contribution that counts (0: no cap)")
    weighting: Literal["linear", "sqrt", "quadratic"] = Field(
        "linear", description="weight of a counted contribution x: x, sqrt(x) or x^2")
    stake_weight: float = Field(0.0, ge=0, description="stake boost: the weight is multiplied by 1 + stake_weight * x")
    identity_cost: float = Field(0.0, ge=0, description="fee each contributing identity pays (burnt)")
    ordering: Literal["fifo", "batch"] = Field(
        "fifo", description="rationing when claims exceed the emission: arrival order, or pro rata")
    unit_value: float = Field(1.0, ge=0, description="value of a unit of useful contribution to the protocol")
    target: float = Field(3.0, gt=0, description="contribution the protocol can use; more is idle")
    vesting: float = Field(0.0, ge=0, le=1, description="share of each reward escrowed instead of paid (0: none)")
    vest_epochs: int = Field(4, ge=1, le=1000,
                             description="a staying identity is paid 1/vest_epochs of its escrow each epoch")
    early_unlock_fee: float = Field(0.5, ge=0, le=1, description="share of the escrow forfeited by an early unlock")
    min_stay: float = Field(0.0, ge=0, description="least contribution an epoch counts as staying, for vesting "
                                                   "(0: any contribution > 0)")


def weight(config: TokenRewardsConfig, x: Any) -> Any:
    """Reward weight of contributions ``x`` (any shape): boosted weighting of the capped contribution."""
    counted = np.minimum(x, config.cap) if config.cap > 0 else np.asarray(x, dtype=float)
    g = {"linear": counted, "sqrt": np.sqrt(counted), "quadratic": counted**2}[config.weighting]
    return g * (1.0 + config.stake_weight * counted)


def properties(config: TokenRewardsConfig) -> frozenset[str]:
    """No promise holds for every market: rewards are a subsidy (revenue < 0), and a rationed
    contributor (claims above the emission) can end below zero."""
    return frozenset()


def market_spec(config: TokenRewardsConfig, n_agents: int) -> MarketSpec:
    """One contribution per identity; no upper bound (capacity is the agent's, not the scheme's)."""
    return MarketSpec(action_rule="each contribution must be finite and >= 0")


STATE = (StateField("escrow", held=True, description="unvested rewards held for the identity"),)
ACTIONS = (ActionField("unlock", 0, 1, 0, integer=True,
                       description="1: take the escrow now, less the early-unlock fee (the rest is forfeited)"),)


def step(config: TokenRewardsConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """B epochs at once from the escrow ``state['escrow']`` (B, N); values, bids, priorities, order times
    and ``actions['unlock']`` are (B, N)."""
    outcome = _epoch(config, values, bids, priority, times)
    escrow, unlock = state["escrow"], actions["unlock"] > 0
    stays = outcome.participated & (-outcome.allocation >= config.min_stay)
    released = np.where(unlock, (1.0 - config.early_unlock_fee) * escrow, np.where(stays, escrow / config.vest_epochs,
                                                                                    0.0))
    forfeited = np.where(unlock, config.early_unlock_fee * escrow, np.where(stays, 0.0, escrow))
    deposited = config.vesting * outcome.receipts
    paid = outcome.receipts - deposited + released
    gains = values * outcome.allocation  # -c x, exactly as the epoch computed it
    outcome = finish(outcome.allocation, outcome.payments, paid, gains, outcome.valid, outcome.participated,
                     outcome.max_welfare, outcome.welfare)
    new = {"escrow": escrow - released - forfeited + deposited}
    return new, outcome, {"deposited": deposited, "released": released, "forfeited": forfeited}


def step_reference(config: TokenRewardsConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One epoch of one market in plain Python: the test oracle of :func:`step`."""
    out = epoch_reference(config, values, bids, priority, times)
    rows = []
    for e, unlock, part, given, reward in zip(state["escrow"], actions["unlock"], out["participated"],
                                              out["allocation"], out["receipts"], strict=True):
        stays = part and -given >= config.min_stay
        if unlock:
            released, forfeited = (1.0 - config.early_unlock_fee) * e, config.early_unlock_fee * e
        else:
            released, forfeited = (e / config.vest_epochs, 0.0) if stays else (0.0, e)
        deposited = config.vesting * reward
        rows.append((e - released - forfeited + deposited, deposited, released, forfeited, reward - deposited + released))
    escrow, deposited, released, forfeited, paid = (list(column) for column in zip(*rows, strict=True))
    gains = [v * a for v, a in zip(values, out["allocation"], strict=True)]
    outcome = scalar_outcome(gains, out["allocation"], out["payments"], paid, out["valid"], out["participated"],
                             out["max_welfare"], out["welfare"])
    return {"escrow": escrow}, outcome, {"deposited": deposited, "released": released, "forfeited": forfeited}


def _epoch(config: TokenRewardsConfig, values: Any, bids: Any, priority: Any, times: Any = None):
    """The epoch's rewards as if nothing vested: B epochs at once; every array is (B, N): unit costs,
    contributions, priorities, order times."""
    b = bids.shape[0]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0)
        if times is not None:
            valid &= np.isfinite(times) & (times >= 0) & (times <= 1)
    x = np.where(valid, bids, 0.0)
    part = x > 0
    claim = config.rate * weight(config, x)
    if config.ordering == "batch":
        total = claim.sum(axis=1, keepdims=True)
        share = np.where(total > config.emission, config.emission / np.where(total > 0, total, 1.0), 1.0)
        reward = claim * share
    else:
        arrival = 1.0 - priority if times is None else np.where(valid, times, 1.0)
        order = np.lexsort((-priority, arrival), axis=1)  # earliest first; ties: higher priority
        rows = np.arange(b)[:, None]
        queued = claim[rows, order]
        before = np.cumsum(queued, axis=1) - queued
        paid = np.clip(config.emission - before, 0.0, queued)
        reward = np.empty_like(paid)
        reward[rows, order] = paid
    fees = config.identity_cost * part
    gains = -values * x
    useful = np.minimum(x.sum(axis=1), config.target)
    welfare = config.unit_value * useful + gains.sum(axis=1)
    max_welfare = np.maximum(config.unit_value - values.min(axis=1), 0.0) * config.target
    return finish(-x, fees, reward, gains, valid, part, max_welfare=max_welfare, welfare=welfare)


def epoch_reference(config: TokenRewardsConfig, values: list, bids: list, priority: list, times: Any = None) -> dict:
    """One epoch's rewards as if nothing vested, in plain Python: the oracle of :func:`_epoch`."""
    n = len(bids)
    valid = [is_valid_number(x) and (times is None or is_valid_number(times[i], 0.0, 1.0)) for i, x in enumerate(bids)]
    x = [bids[i] if valid[i] else 0.0 for i in range(n)]
    claims = [config.rate * float(weight(config, xi)) for xi in x]
    if config.ordering == "batch":
        total = sum(claims)
        share = config.emission / total if total > config.emission else 1.0
        rewards = [c * share for c in claims]
    else:
        def arrival(i: int) -> float:
            return 1.0 - priority[i] if times is None else (times[i] if valid[i] else 1.0)
        rewards, left = [0.0] * n, config.emission
        for i in sorted(range(n), key=lambda i: (arrival(i), -priority[i])):
            rewards[i] = min(max(left, 0.0), claims[i])
            left -= claims[i]
    gains = [-values[i] * x[i] for i in range(n)]
    welfare = config.unit_value * min(sum(x), config.target) + sum(gains)
    return scalar_outcome(gains, [-xi for xi in x], [config.identity_cost * (xi > 0) for xi in x], rewards, valid,
                          [xi > 0 for xi in x], max_welfare=max(config.unit_value - min(values), 0.0) * config.target,
                          welfare=welfare)


# --- the honest contribution (shared by every agent type) ----------------------------------------

def best_contribution(config: TokenRewardsConfig, costs: Any, capacity: float, identities: int = 1) -> Any:
    """The price-taking contribution (B, A) of agents with unit costs ``costs`` (B, A) and capacity ``capacity``
    that split it equally over ``identities`` identities: the ``x`` in [0, capacity] maximizing
    ``rate * m * w(x/m) - c x - m * identity_cost`` (0 when nothing beats staying out).

    Candidates: a grid of 64 steps, the capacity, the point where every identity reaches the cap, and the
    sqrt weighting's first-order point ``m rate^2 / (4 c^2)`` (exact without a stake boost).
    """
    m = identities
    costs = np.asarray(costs, dtype=float)
    grid = capacity * np.arange(65) / 64
    extra = [m * config.cap] if 0 < m * config.cap < capacity else []
    candidates = np.broadcast_to(np.concatenate([grid, extra]), costs.shape + (65 + len(extra),))
    if config.weighting == "sqrt":
        with np.errstate(divide="ignore"):
            foc = np.minimum(m * config.rate**2 / (4 * costs**2), capacity)
        candidates = np.concatenate([candidates, foc[..., None]], axis=-1)
    c = costs[..., None]
    score = config.rate * m * weight(config, candidates / m) - c * candidates - m * config.identity_cost * (candidates > 0)
    best = np.take_along_axis(candidates, np.argmax(score, axis=-1)[..., None], axis=-1)[..., 0]
    return np.where(np.max(score, axis=-1) > 0, best, 0.0)


def truthful(config: TokenRewardsConfig, values: Any, spec: Any) -> Any:
    """The honest contribution of a unit-capacity contributor (what the checker plays)."""
    return best_contribution(config, values, 1.0)


MECHANISM = Mechanism(
    name="token_rewards", version=VERSION,
    summary="epoch contribution mining: posted rate per weighted unit from a capped emission",
    config_model=TokenRewardsConfig, kernel=None, reference=None, properties=properties,
    market_spec=market_spec, truthful=truthful, uses_times=True, merges_identities=True, additive_values=True,
    examples=({}, {"ordering": "batch", "weighting": "sqrt", "identity_cost": 0.2},
              {"cap": 0.5, "stake_weight": 1.0, "emission": 1.0}, {"weighting": "quadratic", "emission": 0.5},
              {"vesting": 0.5, "vest_epochs": 3, "early_unlock_fee": 0.25},
              {"vesting": 0.5, "min_stay": 0.5, "early_unlock_fee": 1.0}),
    doc=__doc__, state=STATE, actions=ACTIONS, step=step, step_reference=step_reference,
)


# --- agent types -------------------------------------------------------------------------------

def _require(context: MarketContext, agent: str) -> None:
    require_mechanism(context, agent, ("token_rewards",), reason="plays a contribution-mining epoch")


class ContributorParams(StrictModel):
    """An honest contributor."""

    capacity: float = Field(1.0, gt=0, le=100, description="most it can contribute per epoch")


def contributor_act(context: MarketContext, params: ContributorParams, state: None, values: Any, draws: Any):
    """Contribute where the posted marginal reward covers the unit cost, from one identity."""
    _require(context, "contributor")
    return best_contribution(context.config, values, params.capacity)


class SybilParams(StrictModel):
    """A farmer splitting its contribution over false-name identities."""

    capacity: float = Field(1.0, gt=0, le=100, description="most it can contribute per epoch (all identities)")
    m: int = Field(2, ge=2, le=16, description="identities (its own seat and m - 1 false names)")


def sybil_act(context: MarketContext, params: SybilParams, state: None, values: Any, draws: Any):
    """The best total contribution when split equally over m identities; every identity bids its share."""
    _require(context, "sybil_farmer")
    own = values[:, :: params.m]  # false names carry the owner's cost
    total = best_contribution(context.config, own, params.capacity, params.m)
    return np.repeat(total / params.m, params.m, axis=1)


class WhaleParams(StrictModel):
    """Whales that coordinate: every whale of the group in a market is one coalition."""

    capacity: float = Field(4.0, gt=0, le=100, description="most each whale can contribute per epoch")
    pool: float = Field(1.0, ge=0, le=1, description="share of each member's contribution delegated to the pool")


def whale_act(context: MarketContext, params: WhaleParams, state: None, values: Any, draws: Any):
    """Each member decides as an honest contributor, then delegates ``pool`` of its contribution to the
    coalition's pool identity (its first contributing member, by seat: not chosen by cost, so pooling
    does not shift cost to the cheapest member in expectation), which contributes for all of them."""
    _require(context, "whale")
    own = best_contribution(context.config, values, params.capacity)
    delegated = params.pool * own
    contributing = own > 0
    first = np.argmax(contributing, axis=1)
    pool_seat = np.zeros(own.shape, dtype=bool)
    pool_seat[np.arange(own.shape[0]), first] = contributing.any(axis=1)
    return np.where(pool_seat, own - delegated + delegated.sum(axis=1, keepdims=True), own - delegated)


class FrontRunnerParams(StrictModel):
    """A front-runner: contributes honestly, but places its order ahead of the queue."""

    capacity: float = Field(1.0, gt=0, le=100, description="most it can contribute per epoch")
    time: float = Field(0.0, ge=0, le=1, description="its order time (0: ahead of every order of the epoch)")


def front_runner_act(context: MarketContext, params: FrontRunnerParams, state: None, values: Any, draws: Any):
    """The honest contribution, timed at ``time``: it sees the pending orders (others arrive uniformly over
    the epoch) and pays for priority; under ``batch`` ordering the time changes nothing."""
    _require(context, "front_runner")
    bids = best_contribution(context.config, values, params.capacity)
    return Action(bids=bids, times=np.full(bids.shape, params.time))


class MercenaryParams(StrictModel):
    """A contributor that takes its escrow with it when it leaves."""

    capacity: float = Field(1.0, gt=0, le=100, description="most it can contribute per epoch")


def mercenary_act(context: MarketContext, params: MercenaryParams, state: None, values: Any, draws: Any):
    """The honest contribution; in an epoch where that is nothing (it leaves), it unlocks its escrow first:
    losing the early-unlock fee beats the clawback of all of it."""
    _require(context, "mercenary")
    bids = best_contribution(context.config, values, params.capacity)
    return Action(bids=bids, fields={"unlock": (bids == 0).astype(float)})


AGENTS = [
    AgentType(name="contributor", version=VERSION, summary="honest contributor at the posted rate, one identity",
              act=contributor_act, params_model=ContributorParams),
    AgentType(name="sybil_farmer", version=VERSION, summary="splits its contribution over m identities",
              act=sybil_act, params_model=SybilParams, identities=lambda params: params.m),
    AgentType(name="whale", version=VERSION, summary="large contributors pooling in one identity",
              act=whale_act, params_model=WhaleParams),
    AgentType(name="front_runner", version=VERSION, summary="honest contribution placed ahead of the queue",
              act=front_runner_act, params_model=FrontRunnerParams),
    AgentType(name="mercenary", version=VERSION, summary="honest contributor that unlocks its escrow before leaving",
              act=mercenary_act, params_model=MercenaryParams),
]

# The deviators keep the contributor's capacity: a deviation changes strategy, never the type.
FAMILIES = [
    Family("sybil_split", "sybil_farmer", (Param("m", 2, 8, "int"),),
           "split the contribution over m identities to multiply concave weight or bypass a per-identity cap",
           "an identity cost above the extra weight one more identity earns (sqrt weights: 0.414 rate), "
           "and no binding per-identity cap", fixed={"capacity": 1.0}),
    Family("whale_pool", "whale", (Param("pool", 0.0, 1.0),),
           "coalition pools its contributions in one identity to earn a size premium",
           "concave (sqrt) or linear weights without a stake boost", coalition=True,
           fixed={"capacity": 1.0}, starts=({"pool": 1.0},)),
    Family("front_run", "front_runner", (Param("time", 0.0, 0.5),),
           "place the order ahead of the queue when claims are rationed in arrival order",
           "batch ordering: claims are rationed pro rata, whatever their time", fixed={"capacity": 1.0}),
]


# --- use-case metrics and the before/after table -------------------------------------------------

#: The scheme as launched, the anti-whale fix, and the repair (docs/usecases.md, "Token incentives").
DESIGNS = {
    "launch": {"stake_weight": 1.0},
    "sqrt weights": {"weighting": "sqrt"},
    "repaired": {"weighting": "sqrt", "identity_cost": 0.21, "ordering": "batch"},
}
#: (family, deviators) the table fuzzes.
ATTACKS = (("sybil_split", 1), ("whale_pool", 2), ("front_run", 1))


def _mean_ci(x: Any) -> dict[str, Any]:
    from mecharena.metrics.summary import mean_ci
    return mean_ci(np.asarray(x, dtype=float))


def token_metrics(cell: Any) -> dict[str, dict[str, Any]]:
    """Play ``cell`` (a :class:`mecharena.metrics.harness.Cell` of ``token_rewards``) and measure the use case.

    Per market and epoch, 95% intervals over markets:

    * ``useful``: contribution the protocol can use, ``min(X, target)``; ``reward``: tokens paid out or owed
      (paid plus the change of the escrow: vested rewards count when earned, clawbacks when forfeited);
    * ``reward_efficiency``: ``unit_value * useful / reward`` over all markets and epochs (value bought per
      token; a ratio of sums, with the interval of the ratio);
    * ``welfare``: ``unit_value * useful - costs``; ``participation``: share of agents contributing;
    * ``sybil_share``: share of the reward paid to false-name identities;
    * ``gini`` and ``top_share``: concentration of the episode's rewards over economic agents
      (identities merged into their owner), per market.
    """
    from mecharena.metrics.summary import ratio_ci
    from mecharena.sim.loop import play

    episode = cell.episode()
    config, owner = episode.context.config, episode.owner
    n = owner.size
    is_owner = owner == np.arange(n)
    to_owner = np.zeros((n, n))
    to_owner[np.arange(n), owner] = 1.0
    rows: dict[str, list[Any]] = {k: [] for k in ("useful", "reward", "welfare", "participation", "sybil")}
    earned = np.zeros((cell.markets, int(is_owner.sum())))
    for record in play(episode, cell.rounds):
        out = record.outcome
        reward = out.receipts.sum(axis=1)
        owed = (record.next_state["escrow"] - record.state["escrow"]).sum(axis=1) if record.state else 0.0
        rows["useful"].append(np.minimum(-out.allocation.sum(axis=1), config.target))
        rows["reward"].append(reward + owed)
        rows["welfare"].append(out.welfare)
        rows["participation"].append(((out.participated.astype(float) @ to_owner)[:, is_owner] > 0).mean(axis=1))
        rows["sybil"].append(np.where(reward > 0, out.receipts[:, ~is_owner].sum(axis=1) / np.where(reward > 0,
                                                                                                        reward, 1), 0))
        earned += (out.receipts @ to_owner)[:, is_owner]
    data = {k: np.stack(v) for k, v in rows.items()}
    x = np.sort(earned, axis=1)
    total = x.sum(axis=1)
    ranks = np.arange(1, x.shape[1] + 1)
    has = total > 0
    gini = (2 * (ranks * x[has]).sum(axis=1) / (x.shape[1] * total[has])) - (x.shape[1] + 1) / x.shape[1]
    return {
        "useful": _mean_ci(data["useful"]),
        "reward": _mean_ci(data["reward"]),
        "reward_efficiency": ratio_ci(config.unit_value * data["useful"], data["reward"]),
        "welfare": _mean_ci(data["welfare"]),
        "participation": _mean_ci(data["participation"]),
        "sybil_share": _mean_ci(data["sybil"]),
        "gini": _mean_ci(gini[None, :]),
        "top_share": _mean_ci((x[has, -1] / total[has])[None, :]),
    }


def use_case_table(seed: int = 0, *, budget: int = 8, markets: int = 200, rounds: int = 2,
                   eval_markets: int = 2000, metric_markets: int = 4000) -> tuple[list[dict[str, Any]], str]:
    """Exploitability of each design before and after the repair, and what the repair costs.

    For each design of :data:`DESIGNS`, fuzz each family of :data:`ATTACKS` against ``contributor:6``
    (exploitability: the best deviation's gain per deviating agent and epoch, re-evaluated on a fresh
    seed, 95% interval) and measure the honest population (welfare, useful contribution, reward paid,
    reward efficiency) and a mixed one (``contributor:3,whale:2,sybil_farmer(m=4):1``: concentration of
    rewards and the sybils' share). Needs this file loaded as a plug-in.

    Returns:
        One dict per design, and the Markdown table of docs/usecases.md.
    """
    from mecharena.fuzz.search import fuzz
    from mecharena.metrics.harness import Cell

    def cell(config: dict[str, Any], population: str) -> Any:
        return Cell(mechanism="token_rewards", config=config, population=population, markets=metric_markets,
                    rounds=rounds, seed=seed)

    results = []
    for design, config in DESIGNS.items():
        row: dict[str, Any] = {"design": design, "config": config}
        for family, deviators in ATTACKS:
            found = fuzz(cell(config, "contributor:6"), families=[family], deviators=deviators, budget=budget,
                         markets=markets, rounds=rounds, eval_markets=eval_markets, seed=seed)
            row[family] = {**found.exploitability, "best": dict(found.best.deviation.params)}
        row["honest"] = token_metrics(cell(config, "contributor:6"))
        row["mixed"] = token_metrics(cell(config, "contributor:3,whale:2,sybil_farmer(m=4):1"))
        results.append(row)

    def ci(m: dict[str, Any], digits: int = 3) -> str:
        lo, hi = m["ci95"]
        return f"{m['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    head = ("| design | config | sybil_split (K=1) | whale_pool (K=2) | front_run (K=1) | welfare | useful | "
            "reward paid | reward efficiency | participation | reward Gini (mixed) | sybil share (mixed) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        h, mixed = r["honest"], r["mixed"]
        config = " ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['design']} | {config} | " + " | ".join(ci(r[f]) for f, _ in ATTACKS) + " | "
                     + " | ".join(ci(h[k]) for k in ("welfare", "useful", "reward", "reward_efficiency",
                                                      "participation"))
                     + f" | {ci(mixed['gini'])} | {ci(mixed['sybil_share'])} |")
    return results, "\n".join(lines)


#: Vesting designs (docs/usecases.md, "Vesting and clawback"). Each caps the counted contribution at the
#: contributor's capacity, so that a searched policy cannot gain by being larger than the type it replaces.
VESTING = {
    "no vesting": {"cap": 1.0},
    "vesting": {"cap": 1.0, "vesting": 0.5},
    "free unlock": {"cap": 1.0, "vesting": 0.5, "early_unlock_fee": 0.0},
    "repaired": {"cap": 1.0, "vesting": 0.5, "min_stay": 1.0, "early_unlock_fee": 1.0},
}
VESTING_EPOCHS = 8


def vesting_table(seed: int = 0, *, designs: tuple[str, ...] = tuple(VESTING), generations: int = 40,
                  markets: int = 300, eval_markets: int = 2000, metric_markets: int = 4000
                  ) -> tuple[list[dict[str, Any]], str]:
    """What a strategic contributor extracts from each vesting design, and what it costs the protocol.

    For each design of :data:`VESTING`, the repeated-game policy search (told nothing about vesting; it
    sees its own escrow and may unlock) finds one contributor's best policy against ``contributor:6`` over
    :data:`VESTING_EPOCHS` epochs: its gain per epoch over contributing as the posted rate says, on a fresh
    seed, and what it does. The protocol is measured (:func:`token_metrics`) with honest contributors and
    with all six playing the found policy. Needs this file loaded as a plug-in.

    Returns:
        One dict per design, and the Markdown of docs/usecases.md (the table, then what each found policy does).
    """
    from mecharena.fuzz.policy_search import policy_search
    from mecharena.metrics.harness import Cell
    from mecharena.metrics.summary import ci_table

    rows = []
    for design in designs:
        target = Cell(mechanism="token_rewards", config=VESTING[design], population="contributor:6",
                      rounds=VESTING_EPOCHS, markets=metric_markets, seed=seed)
        found = policy_search(target, seed=seed, generations=generations, markets=markets, eval_markets=eval_markets)
        everyone = target.model_copy(update={"population": f"{found.deviation.agent_spec}:6"})
        rows.append({"design": design, "config": VESTING[design], "spec": found.deviation.agent_spec,
                     "gain": {"mean": found.fresh.mean, "ci95": [found.fresh.lo, found.fresh.hi]},
                     "does": found.description, "honest": token_metrics(target), "everyone": token_metrics(everyone)})
    by = {r["design"]: r for r in rows}
    columns = {"gain": "gain found (per epoch)", "honest reward": "reward (honest)",
               "honest reward_efficiency": "reward efficiency (honest)", "everyone useful": "useful (all play it)",
               "everyone reward": "reward (all play it)", "everyone reward_efficiency": "reward efficiency (all play it)"}

    def stat(column: str, design: str) -> dict[str, Any]:
        if column == "gain":
            return by[design]["gain"]
        population, metric = column.split()
        return by[design][population][metric]

    labels = {d: f"{d} ({' '.join(f'{k}={v:g}' for k, v in VESTING[d].items())})" for d in designs}
    lines = ci_table("design", columns, labels, stat)
    lines += ["", *(f"* {d}: {by[d]['does']}" for d in designs)]
    return rows, "\n".join(lines)


if __name__ == "__main__":  # python examples/plugins/token_incentive.py [SEED] [vesting]: print a table
    import sys

    from mecharena import plugins

    plugins.load(__file__)
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    print(vesting_table(seed)[1] if sys.argv[2:] == ["vesting"] else use_case_table(seed)[1])
