"""AI-agent service marketplace: customers post tasks, service agents propose, payment waits in escrow,
disputes go to refund or audit, and strikes carry across rounds.

After Microsoft's Magentic Marketplace (Bansal et al. 2025, *Magentic Marketplace: an open-source
environment for studying agentic markets*): customers' assistants hand tasks to service agents, and
the customers studied took the first acceptable proposal far more often than the best one
(first-proposal bias), so answering fast beat answering well.

Every seat is a service agent. Its value ``theta`` (clipped to [0, 1]) is its certified skill: the
quality it delivers at full effort, shown to customers (use persistent values,
``uniform:persistent=true``, for skills that last the episode). Each round:

* **Tasks.** ``tasks`` customers arrive per market, each with a value v per unit of quality
  (uniform on [0, 1], hashed from the market's draws, :mod:`mecharena.mechanisms.draws`). The
  platform posts the price ``rate`` per unit of certified skill, so agent i's proposal costs
  ``rate theta_i`` and a customer posts her task when ``v >= rate``.
* **Actions.** A bid > 0 proposes for every task of the round (0: sits out). Declared action fields:
  ``quality`` (effort e in [0, 1], default 1: it delivers ``q = e theta``, which the customer sees
  only after paying), ``haste`` (the share of its preparation time it skips: its proposal arrives
  after ``(1 - haste) d``, d uniform on [0, 1] hashed per agent and round) and ``fakes`` (tasks it
  buys from its rivals through sock-puppet customer accounts, ``account_cost`` each, spread evenly
  over the rivals listed, and disputes whatever they deliver).
* **Choice.** A customer takes the first proposal to arrive with probability ``first_bias`` (the
  bias), otherwise the best (highest skill; ties by priority). Suspended agents cannot propose.
* **Escrow and disputes.** The price goes into escrow and is released to the agent unless a dispute
  is upheld. A customer disputes when the quality falls short of the promise by more than
  ``notice`` (``e < 1 - notice``: smaller shortfalls go unnoticed). ``resolution = "refund"``
  refunds every dispute unexamined; ``"audit"`` sends it to an auditor who sees the true effort:
  upheld (e < 1) it is refunded, the agent pays ``penalty`` and the fee; rejected, the disputer
  pays the fee (``audit_fee``, loser pays). The platform also audits a share ``audit_rate`` of
  the undisputed tasks unasked (a shortfall found: refund and penalty). Each refunded task is a
  strike on the agent; ``suspend_after`` strikes (0: never) suspend it for the rest of the episode.

Utility = released payments - effort cost ``effort_cost q`` per task delivered - penalties and fees
paid - sock puppets' unrefunded payments and their accounts' cost. The outcome: ``allocation`` =
-(tasks delivered), ``receipts`` = released escrow, ``payments`` = penalties, fees and the puppets'
unrefunded payments; the customers' net payments are ``good`` (money from outside the seats), so
revenue is the platform's take: fees + penalties - ``audit_cost`` per audit. ``welfare`` = the
customers' value ``v q`` of the real tasks - every delivery's effort cost - accounts and audits;
``max_welfare`` = every task served at full effort by the most skilled agent, ``sum_k max(0, v_k -
c) max_i theta_i``.

State (per seat): ``strikes`` and ``tasks`` (real tasks won so far). Events (per seat): ``won``
(real tasks won), ``refunded`` (its tasks refunded, puppets' included), ``fakes`` (puppet tasks it
bought), ``customer`` (the surplus ``v q - price + refund`` of the customers it served),
``suspended`` and ``delay`` (its proposal's arrival time).

Known results (tests/mechanisms/test_service.py): honest agents split the tasks evenly under first
choice and the most skilled wins them all under best choice; with ``haste = 1`` an agent wins every
task the first choice decides (first-proposal bias); a shortfall under ``notice`` pays
``effort_cost (1 - e) theta`` per task unless audits find it (expected cost ``audit_rate (rate
theta + penalty)``); under ``refund``, fake disputes cost only the accounts and strike rivals out;
under ``audit`` a full delivery's dispute is rejected and the disputer pays the price and the fee.

Not promised: truthfulness (full effort is not dominant), IR, efficiency.
"""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.draws import seat_key, seat_keys, uniform, uniforms
from mecharena.mechanisms.schema import ActionField, StateField

VERSION = 1
DELAY, CHOICE, AUDIT, VALUE = 0, 1, 2, 3  # streams of the hashed draws; task k uses CHOICE + 3k, AUDIT + 3k, VALUE + 3k


class ServiceConfig(MechanismConfig):
    """Config of the service marketplace: the price, the customers' choice and the dispute rules."""

    rate: float = Field(0.5, ge=0, le=1, description="posted price per unit of an agent's certified skill")
    effort_cost: float = Field(0.3, ge=0, le=1, description="agent's cost per unit of quality delivered")
    tasks: int = Field(2, ge=1, le=100, description="tasks posted per market and round")
    first_bias: float = Field(1.0, ge=0, le=1, description="share of customers who take the first proposal, not the best")
    resolution: Literal["refund", "audit"] = Field("refund", description="disputes refunded unexamined, or audited")
    audit_fee: float = Field(0.0, ge=0, le=10, description="fee of an audited dispute, paid by the side it finds against")
    penalty: float = Field(0.0, ge=0, le=10, description="paid by an agent an audit finds short")
    audit_rate: float = Field(0.0, ge=0, le=1, description="share of undisputed tasks the platform audits unasked")
    audit_cost: float = Field(0.02, ge=0, le=10, description="the platform's cost of one audit")
    notice: float = Field(0.2, ge=0, le=1, description="shortfall (share of the promise) customers do not notice")
    suspend_after: float = Field(0.0, ge=0, le=1e6, description="strikes that suspend an agent (0: never)")
    account_cost: float = Field(0.01, ge=0, le=10, description="cost of one sock-puppet customer account")
    max_fakes: float = Field(5.0, ge=0, le=1000, description="most puppet tasks an agent may buy per round")


STATE = (
    StateField("strikes", description="refunded tasks counted against the agent"),
    StateField("tasks", description="real tasks won so far"),
)
ACTIONS = (
    ActionField("quality", 0.0, 1.0, 1.0, description="effort: the share of its skill it delivers"),
    ActionField("haste", 0.0, 1.0, 0.0, description="share of its preparation time skipped (1: answers at once)"),
    ActionField("fakes", 0.0, 1000.0, 0.0, description="tasks bought from rivals through puppets, then disputed"),
)


def properties(config: ServiceConfig) -> frozenset[str]:
    """Revenue is fees and penalties less audits: never negative when no audit can cost anything."""
    audits = config.audit_cost > 0 and (config.audit_rate > 0 or config.resolution == "audit")
    return frozenset() if audits else frozenset({"weak_budget_balance"})


def market_spec(config: ServiceConfig, n: int) -> MarketSpec:
    return MarketSpec(action_high=1.0, action_rule="each bid must be in [0, 1] (> 0: proposes for every task)")


def truthful(config: ServiceConfig, values: Any, spec: MarketSpec) -> Any:
    """The honest plan: propose whenever the posted price covers the cost (full effort, no haste, no puppets)."""
    return np.full(np.shape(values), float(config.rate >= config.effort_cost))


def _suspended(config: ServiceConfig, strikes: Any) -> Any:
    return (config.suspend_after > 0) & (strikes >= config.suspend_after)


def step(config: ServiceConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """One round of every market; see the module docstring."""
    b, n = bids.shape
    c, rate = config.effort_cost, config.rate
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0) & (bids <= 1)
    suspended = _suspended(config, state["strikes"])
    listed = valid & (bids > 0) & ~suspended
    theta = np.clip(values, 0.0, 1.0)
    effort = actions["quality"]
    price = rate * theta
    short, noticed = effort < 1.0, effort < 1.0 - config.notice
    keys = seat_keys(priority)
    delay = (1.0 - actions["haste"]) * uniforms(keys, DELAY)
    rows = np.arange(b)
    first = np.lexsort((-priority, np.where(listed, delay, np.inf)), axis=-1)[:, 0]
    best = np.lexsort((-priority, -np.where(listed, theta, -1.0)), axis=-1)[:, 0]
    anyone = listed.any(axis=1)
    market = keys[:, 0]
    won, value, audited = np.zeros((b, n)), np.zeros((b, n)), np.zeros((b, n))
    max_welfare = np.zeros(b)
    for k in range(config.tasks):
        v = uniforms(market, VALUE + 3 * k)
        winner = np.where(uniforms(market, CHOICE + 3 * k) < config.first_bias, first, best)
        served = (anyone & (v >= rate)).astype(float)
        np.add.at(won, (rows, winner), served)
        np.add.at(value, (rows, winner), served * v)
        np.add.at(audited, (rows, winner), served * (uniforms(market, AUDIT + 3 * k) < config.audit_rate))
        max_welfare += np.maximum(0.0, v - c) * theta.max(axis=1)
    fakes = np.where(listed, np.minimum(actions["fakes"], config.max_fakes), 0.0)
    rivals = listed.sum(axis=1, keepdims=True) - listed
    sent = np.where(rivals > 0, fakes / np.maximum(rivals, 1), 0.0)  # (B, N) puppet tasks to each listed rival
    load = np.where(listed, sent.sum(axis=1, keepdims=True) - sent, 0.0)  # puppet tasks each agent receives
    fakes = np.where(rivals > 0, fakes, 0.0)
    audit = config.resolution == "audit"
    found = np.where(noticed, 0.0, audited * short)  # the unasked audits' findings (undisputed tasks)
    disputed = np.where(noticed, won, 0.0)
    upheld = load * short if audit else load  # puppet disputes refunded
    refunded = disputed + found + upheld
    penalized = (disputed + upheld if audit else 0.0) + found
    losses = disputed + upheld if audit else 0.0  # audited disputes the agent lost: it pays the fee
    rejected = np.where(listed & ~short, price + config.audit_fee, 0.0) if audit else np.zeros((b, n))
    puppets = sent * (rejected.sum(axis=1, keepdims=True) - rejected)  # price and fee of puppets' rejected disputes
    delivered = won + load
    cost = c * effort * theta * delivered + config.account_cost * fakes
    receipts = price * (delivered - refunded)
    payments = config.penalty * penalized + config.audit_fee * losses + puppets
    audits = (np.where(noticed, 0.0, audited) + (disputed + load if audit else 0.0)).sum(axis=1)
    strikes = state["strikes"] + refunded
    customer = value * effort * theta - price * (won - disputed - found)
    good = (price * (won - disputed - found)).sum(axis=1) - config.audit_cost * audits
    welfare = (value * effort * theta).sum(axis=1) - cost.sum(axis=1) - config.audit_cost * audits
    outcome = finish(-delivered, payments, receipts, -cost, valid, listed, max_welfare, welfare, good)
    new_state = {"strikes": strikes, "tasks": state["tasks"] + won}
    return new_state, outcome, {"won": won, "refunded": refunded, "fakes": fakes, "customer": customer,
                                "suspended": suspended.astype(float), "delay": np.where(listed, delay, 0.0)}


def step_reference(config: ServiceConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python, task by task and agent by agent."""
    n, c, rate, audit = len(bids), config.effort_cost, config.rate, config.resolution == "audit"
    valid = [is_valid_number(x, 0.0, 1.0) for x in bids]
    suspended = [config.suspend_after > 0 and s >= config.suspend_after for s in state["strikes"]]
    listed = [valid[i] and bids[i] > 0 and not suspended[i] for i in range(n)]
    theta = [min(max(x, 0.0), 1.0) for x in values]
    effort = actions["quality"]
    price = [rate * t for t in theta]
    short = [e < 1.0 for e in effort]
    noticed = [e < 1.0 - config.notice for e in effort]
    keys = [seat_key(p) for p in priority]
    delay = [(1.0 - actions["haste"][i]) * uniform(keys[i], DELAY) for i in range(n)]
    on = [i for i in range(n) if listed[i]]
    first = min(on, key=lambda i: (delay[i], -priority[i])) if on else None
    best = min(on, key=lambda i: (-theta[i], -priority[i])) if on else None
    won, value, audited = [0.0] * n, [0.0] * n, [0.0] * n
    max_welfare = 0.0
    for k in range(config.tasks):
        v = uniform(keys[0], VALUE + 3 * k)
        winner = first if uniform(keys[0], CHOICE + 3 * k) < config.first_bias else best
        if winner is not None and v >= rate:
            won[winner] += 1.0
            value[winner] += v
            audited[winner] += float(uniform(keys[0], AUDIT + 3 * k) < config.audit_rate)
        max_welfare += max(0.0, v - c) * max(theta)
    fakes = [min(actions["fakes"][i], config.max_fakes) if listed[i] and len(on) > 1 else 0.0 for i in range(n)]
    load = [0.0] * n  # puppet tasks each agent receives
    puppets = [0.0] * n  # what each puppeteer pays for rejected disputes
    for i in on:
        for j in on:
            if j != i and fakes[i] > 0:
                sent = fakes[i] / (len(on) - 1)
                load[j] += sent
                if audit and not short[j]:
                    puppets[i] += sent * (price[j] + config.audit_fee)
    gains, payments, receipts, allocation, events = [], [], [], [], {name: [] for name in EVENTS}
    welfare, good, audits = 0.0, 0.0, 0.0
    strikes, tasks = [], []
    for i in range(n):
        disputed = won[i] if noticed[i] else 0.0
        found = 0.0 if noticed[i] else audited[i] * short[i]
        upheld = load[i] * short[i] if audit else load[i]
        refunded = disputed + found + upheld
        penalized = (disputed + upheld if audit else 0.0) + found
        cost = c * effort[i] * theta[i] * (won[i] + load[i]) + config.account_cost * fakes[i]
        gains.append(-cost)
        receipts.append(price[i] * (won[i] + load[i] - refunded))
        payments.append(config.penalty * penalized + config.audit_fee * (disputed + upheld if audit else 0.0)
                        + puppets[i])
        allocation.append(-(won[i] + load[i]))
        audits += (0.0 if noticed[i] else audited[i]) + (disputed + load[i] if audit else 0.0)
        paid = price[i] * (won[i] - disputed - found)
        good += paid
        welfare += value[i] * effort[i] * theta[i] - cost
        strikes.append(state["strikes"][i] + refunded)
        tasks.append(state["tasks"][i] + won[i])
        for name, x in (("won", won[i]), ("refunded", refunded), ("fakes", fakes[i]),
                        ("customer", value[i] * effort[i] * theta[i] - paid), ("suspended", float(suspended[i])),
                        ("delay", delay[i] if listed[i] else 0.0)):
            events[name].append(float(x))
    welfare -= config.audit_cost * audits
    good -= config.audit_cost * audits
    outcome = scalar_outcome(gains, allocation, payments, receipts, valid, listed, max_welfare=max_welfare,
                             welfare=welfare, good=good)
    return {"strikes": strikes, "tasks": tasks}, outcome, events


EVENTS = ("won", "refunded", "fakes", "customer", "suspended", "delay")
#: The designs compared in docs/usecases.md. LAUNCH is the config's defaults with three strikes: customers take
#: the first proposal, disputes are refunded unexamined.
LAUNCH: dict[str, Any] = {"suspend_after": 3.0}
#: The platform collects the proposals and shows the best first: the first-proposal bias has nothing to act on.
RANKED: dict[str, Any] = {**LAUNCH, "first_bias": 0.0}
#: Disputes go to an auditor, the loser pays the fee: a full delivery's dispute is rejected.
AUDITED: dict[str, Any] = {**LAUNCH, "resolution": "audit", "audit_fee": 0.1, "penalty": 0.2}
#: Both fixes: ranked proposals and audited disputes; the shortfalls customers do not notice still pay.
RANKED_AUDITED: dict[str, Any] = {**AUDITED, "first_bias": 0.0}
#: The repair: both fixes and unasked audits of a share of the tasks (expected cost of a shortfall
#: ``audit_rate (rate theta + penalty)``, above its saving ``effort_cost notice theta``).
REPAIRED: dict[str, Any] = {**RANKED_AUDITED, "audit_rate": 0.3}
DESIGNS: dict[str, dict[str, Any]] = {"launch": LAUNCH, "ranked": RANKED, "audited": AUDITED,
                                      "ranked_audited": RANKED_AUDITED, "repaired": REPAIRED}

MECHANISM = Mechanism(
    name="service", version=VERSION,
    summary="AI-agent service marketplace: agents propose for posted tasks, escrow, disputes refunded or audited, "
            "strikes across rounds",
    config_model=ServiceConfig, kernel=None, reference=None, properties=properties, market_spec=market_spec,
    truthful=truthful, examples=(LAUNCH, RANKED, AUDITED, REPAIRED, {"first_bias": 0.5, "tasks": 3, "notice": 0.0,
                                                                   "audit_rate": 0.5, "penalty": 0.3}),
    doc=__doc__, state=STATE, actions=ACTIONS, step=step, step_reference=step_reference,
)
