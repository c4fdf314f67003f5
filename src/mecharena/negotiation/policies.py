"""Policies for a lab's seat: opponent archetypes, baselines for the learner's seat, degenerate probes.

A policy maps an observation (:func:`mecharena.negotiation.core.observe`) and its own
``numpy.random.Generator`` to one action (a typed action, or a dict that the shell parses).
Policies keep no state between steps: everything they react to is in the observation.

**Valuation.** A lab's *use value* of a block for one of its unsettled jobs is the expected credit
of the GPU-hours it adds, ``min(GPU-hours, hours still needed) x value per hour x reliability``,
less its energy; a block fits a job when it ends by the deadline, has not started or failed,
and is reliable enough. A free block's *worth* to its holder is the larger of its best use value
and the provider's buy-back (``release_refund x list price``). No archetype sells below its worth
or buys above its use value times its own factor, so nobody profits from giving blocks away.

**Opponent archetypes** differ in what they do, not in what they say:

* ``cooperative``: asks 5% over worth, bids up to 90% of use value, gives a 10% discount to a lab
  that claims a deadline within three steps, commits to coalitions paying about the block's worth,
  honours commitments, pitches truthfully.
* ``selfish``: asks 40% over worth (at least the list price), accepts only 25% surplus, bids low,
  commits only for a 40% premium, never pitches, ignores claims.
* ``deadline_panicked``: like cooperative far from its deadline, but its bids and acceptable
  prices rise to 2.2x use value as the deadline nears (it overpays in a panic).
* ``deceptive``: pitches and offers with false claims (an earlier deadline, an inflated value),
  commits to any paying coalition, then reneges when keeping the block pays more (its own job
  needs it, or the coalition cannot finish in time and the buy-back beats its share plus fine).
* ``retaliatory``: cooperative until wronged; rejects every offer from, offers nothing to and
  never joins a coalition of a lab it holds a grievance against (rejection, renege, exposed lie).

**Baselines** for the learner's seat: ``random``, ``always_accept``, ``greedy_hoarder`` (buys
every block it can afford and never sells), ``expert`` (plans each job's cheapest on-time,
reliable enough set of blocks, buys from the provider when the list price leaves surplus and
bargains with labs for the rest, raising its bid toward its use value as the deadline nears;
sells or releases what fits nothing; forms coalitions paying each holder a premium over its
block's price; honours commitments; pitches truthfully).

**Degenerate probes** (none may beat the expert): ``coalition_spam``, ``empty_commitments``,
``free_lunch`` (asks for every block for nothing), ``always_wait``, ``pitch_spam``,
``offer_spam``, ``walk_away`` (finishes at once).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mecharena.core.errors import UnknownIdError
from mecharena.negotiation.action import (
    WAIT,
    AcceptAction,
    Action,
    AllocateAction,
    Claim,
    CommitAction,
    CounterAction,
    FinishAction,
    FormCoalitionAction,
    LeaveAction,
    MessageAction,
    OfferAction,
    PitchAction,
    RejectAction,
    ReleaseAction,
    ReserveAction,
    WaitAction,
)
from mecharena.negotiation.core import MAX_OPEN_OFFERS, RENEGE_FINE

Obs = dict[str, Any]
ARCHETYPES = ("cooperative", "selfish", "deadline_panicked", "deceptive", "retaliatory")
BASELINES = ("random", "always_accept", "greedy_hoarder", "expert")
DEGENERATE = ("coalition_spam", "empty_commitments", "free_lunch", "always_wait", "pitch_spam", "offer_spam",
              "walk_away")
VERSION = 1


class Policy(Protocol):
    name: str

    def act(self, obs: Obs, rng: np.random.Generator) -> Action | dict[str, Any]: ...


# --- valuation helpers ----------------------------------------------------------------------


def needs(obs: Obs) -> dict[int, float]:
    """GPU-hours each unsettled job still lacks after the blocks already running for it."""
    blocks = obs["blocks"]
    out = {}
    for job in obs["jobs"]:
        if job["settled"]:
            continue
        pending = sum(blocks[b]["gpu_hours"] for b in job["pending_blocks"])
        out[job["id"]] = max(0.0, job["hours"] - job["delivered"] - pending)
    return out


def wanting(need: dict[int, float]) -> bool:
    """Some job still lacks hours (otherwise every block's use value is 0)."""
    return max(need.values(), default=0.0) > 0


def fits(block: dict, job: dict, t: int) -> bool:
    """The block can still run for the job and deliver on time."""
    return (not block["started"] and not block["failed"] and block["end"] <= job["deadline"]
            and block["reliability"] >= job["min_reliability"] and block["start"] > t)


def use_value(obs: Obs, block: dict, need: dict[int, float] | None = None) -> tuple[float, int | None]:
    """(best expected credit less energy the block adds to one of my jobs, that job) or (0, None)."""
    need = needs(obs) if need is None else need
    best, where = 0.0, None
    for job in obs["jobs"]:
        lacking = need.get(job["id"], 0.0)
        if lacking <= 0 or not fits(block, job, obs["t"]):
            continue
        hours = min(block["gpu_hours"], lacking)
        # all-or-nothing jobs only pay if the hours complete them; a block that leaves a gap is worth
        # its partial-credit share unless it closes the gap
        share = 1.0 if block["gpu_hours"] >= lacking or job["partial"] > 0 else 0.5
        value = hours * job["value"] / job["hours"] * block["reliability"] * share \
            - block["energy"] * block["gpu_hours"] * obs["energy_factor"]
        if value > best:
            best, where = value, job["id"]
    return best, where


def refund(obs: Obs, block: dict) -> float:
    return 0.0 if block["started"] or block["failed"] else obs["release_refund"] * block["list_price"]


def worth(obs: Obs, block: dict, need: dict[int, float] | None = None) -> float:
    """What a free block is worth to its holder: best use, or the provider's buy-back."""
    return max(use_value(obs, block, need)[0], refund(obs, block))


def tradable(block: dict, t: int) -> bool:
    return not block["started"] and not block["failed"] and not block["allocated"] and block["start"] > t


def free_blocks(obs: Obs) -> list[dict]:
    me, t = obs["lab"], obs["t"]
    return [b for b in obs["blocks"] if b["owner"] == me and tradable(b, t)]


def incoming(obs: Obs) -> list[dict]:
    """Open offers addressed to me whose blocks are all still where the offer says and tradable."""
    blocks, me, t = obs["blocks"], obs["lab"], obs["t"]
    return [o for o in obs["offers"] if o["to"] == me
            and all(blocks[b]["owner"] == o["from"] and tradable(blocks[b], t) for b in o["give"])
            and all(blocks[b]["owner"] == me and tradable(blocks[b], t) for b in o["want"])]


def sent(obs: Obs) -> list[dict]:
    return [o for o in obs["offers"] if o["from"] == obs["lab"]]


def offer_gain(obs: Obs, offer: dict, need: dict[int, float] | None = None) -> tuple[float, float]:
    """(value I receive, value I give up) if I accept ``offer``: blocks at use value or worth, money at face."""
    blocks = obs["blocks"]
    got = sum(use_value(obs, blocks[b], need)[0] for b in offer["give"]) + max(0.0, offer["payment"])
    lost = sum(worth(obs, blocks[b], need) for b in offer["want"]) + max(0.0, -offer["payment"])
    return got, lost


def closeness(obs: Obs, job_id: int | None) -> float:
    """0 far from the job's deadline, 1 at it."""
    if job_id is None:
        return 0.0
    job = next(j for j in obs["jobs"] if j["id"] == job_id)
    return _clip01(1.0 - (job["deadline"] - obs["t"]) / 6.0)


def _clip01(x: float) -> float:
    """``x`` clipped to [0, 1] (as ``float(np.clip(x, 0.0, 1.0))``, without NumPy's call overhead)."""
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


# --- scripted behaviour ---------------------------------------------------------------------


@dataclass(frozen=True)
class Temper:
    """What distinguishes one trader from another."""

    markup: float  # ask = worth x (1 + markup)
    bid: float  # first bid as a share of use value
    bid_max: float  # bid near the deadline as a share of use value
    surplus: float  # least surplus share an accepted offer must leave
    commit_premium: float  # share payoff / worth needed to commit
    claim_discount: float  # discount to a lab claiming a deadline within 3 steps
    panic: float  # extra willingness to pay at the deadline, times use value
    pitch: str  # none, truthful, false
    grudges: bool
    renege: bool


TEMPERS = {
    "cooperative": Temper(0.05, 0.6, 0.9, 0.0, 0.9, 0.1, 0.0, "truthful", False, False),
    "selfish": Temper(0.4, 0.4, 0.75, 0.25, 1.4, 0.0, 0.0, "none", False, False),
    "deadline_panicked": Temper(0.05, 0.6, 0.9, 0.0, 0.9, 0.1, 1.2, "truthful", False, False),
    "deceptive": Temper(0.3, 0.5, 0.85, 0.1, 0.3, 0.0, 0.0, "false", False, True),
    "retaliatory": Temper(0.05, 0.6, 0.9, 0.0, 0.9, 0.1, 0.0, "truthful", True, False),
}


class Archetype:
    """A scripted lab with a :class:`Temper`; the opponents of the learner's seat."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.temper = TEMPERS[name]

    def act(self, obs: Obs, rng: np.random.Generator) -> Action:
        return trader_act(obs, rng, self.temper)


def _wronged_by(obs: Obs, lab: int, temper: Temper) -> bool:
    return temper.grudges and obs["grievances"][lab] > 0


def _claimed_urgent(obs: Obs, offer: dict) -> bool:
    claim = offer.get("claim") or {}
    return claim.get("deadline") is not None and claim["deadline"] - obs["t"] <= 3


def _pitch(obs: Obs, temper: Temper) -> PitchAction | None:
    if temper.pitch == "none" or obs["t"] != 0:
        return None
    claims = []
    for job in obs["jobs"]:
        if job["settled"]:
            continue
        if temper.pitch == "truthful":
            claims.append(Claim(job=job["id"], deadline=job["deadline"], value=job["value"], hours=job["hours"]))
        else:  # more urgent and more valuable than it is
            claims.append(Claim(job=job["id"], deadline=max(0, job["deadline"] - 2), value=round(job["value"] * 1.5, 2),
                                hours=job["hours"]))
    if not claims:
        return None
    text = "; ".join(f"job {c.job}: {c.hours:g} GPU-hours by step {c.deadline}, worth {c.value:g}" for c in claims)
    return PitchAction(text=f"We need capacity. {text}."[:500], claims=claims[:4])


def _answer(obs: Obs, temper: Temper, need: dict[int, float]) -> Action | None:
    """Accept, counter or reject the best incoming offer."""
    offers = incoming(obs)
    if not offers:
        return None
    best, best_score = offers[0], -np.inf
    for o in offers:
        if _wronged_by(obs, o["from"], temper):
            return RejectAction(offer=o["id"])
        got, lost = offer_gain(obs, o, need)
        wanted = [obs["blocks"][b] for b in o["give"]]
        job = max((use_value(obs, b, need) for b in wanted), default=(0.0, None))[1]
        got *= 1.0 + temper.panic * closeness(obs, job)
        discount = temper.claim_discount if _claimed_urgent(obs, o) else 0.0
        # a seller's floor: worth x (1 + markup), less the discount for a lab in a hurry
        floor = lost * (1.0 + temper.markup) * (1.0 - discount) if o["want"] else lost
        score = got - max(floor, lost) - temper.surplus * max(lost, 1e-9)
        if -o["payment"] > obs["budget"]:
            score = -np.inf
        if score > best_score:
            best, best_score = o, score
    if best_score >= 0:
        return AcceptAction(offer=best["id"], job=receiving_job(obs, best, need))
    got, lost = offer_gain(obs, best, need)
    if best["want"] and not best["give"] and best["payment"] > 0 and len(sent(obs)) < MAX_OPEN_OFFERS:
        # counter a lowball bid for my blocks with my ask
        ask = round(lost * (1.0 + temper.markup) * (1.0 + temper.surplus) + 0.01, 2)
        if ask > best["payment"]:
            return CounterAction(offer=best["id"], want=[], give=best["want"], payment=-ask)
    return RejectAction(offer=best["id"])


def receiving_job(obs: Obs, offer: dict, need: dict[int, float]) -> int | None:
    """My job that every block ``offer`` gives me can run for (the first given block's best), or None."""
    if not offer["give"]:
        return None
    blocks = obs["blocks"]
    job = use_value(obs, blocks[offer["give"][0]], need)[1]
    if job is None:
        return None
    least = next(j["min_reliability"] for j in obs["jobs"] if j["id"] == job)
    return job if all(blocks[b]["reliability"] >= least for b in offer["give"]) else None


def _floor2(x: float) -> float:
    """Round down to cents (a bid never rounds above its cap)."""
    return float(np.floor(x * 100.0) / 100.0)


def _allocate(obs: Obs, need: dict[int, float]) -> AllocateAction | None:
    if not wanting(need):
        return None
    best = None
    for block in free_blocks(obs):
        value, job = use_value(obs, block, need)
        if job is not None and value > 0 and (best is None or value > best[0]):
            best = (value, block["id"], job)
    return None if best is None else AllocateAction(block=best[1], job=best[2])


def _buy(obs: Obs, temper: Temper, need: dict[int, float], rng: np.random.Generator,
         claim: Callable[[int], Claim | None] | None = None) -> Action | None:
    """Reserve a provider block or bid for another lab's, for the job that needs it most."""
    if not wanting(need):
        return None
    t, me = obs["t"], obs["lab"]
    pending_wants = {b for o in sent(obs) for b in o["want"]}
    options = []
    for block in obs["blocks"]:
        if block["owner"] == me or not tradable(block, t) or block["id"] in pending_wants:
            continue
        value, job = use_value(obs, block, need)
        if job is None or value <= 0:
            continue
        panic = 1.0 + temper.panic * closeness(obs, job)
        if block["owner"] == -1:
            if block["list_price"] < value * panic and block["list_price"] <= obs["budget"]:
                options.append((value - block["list_price"], 0, block, job))
        elif obs["active"][block["owner"]] and not _wronged_by(obs, block["owner"], temper):
            options.append((value - 0.8 * block["list_price"], 1, block, job))
    options.sort(key=lambda o: (-o[0], o[1], o[2]["id"]))
    for _, kind, block, job in options:
        if kind == 0:
            return ReserveAction(block=block["id"], job=job)
        if len(sent(obs)) >= MAX_OPEN_OFFERS or block["start"] < t + 2:
            continue
        value = use_value(obs, block, need)[0]
        share = temper.bid + (temper.bid_max - temper.bid) * closeness(obs, job)
        bid = _floor2(min(obs["budget"], value * share * (1.0 + temper.panic * closeness(obs, job))))
        if bid > refund(obs, block):
            return OfferAction(to=block["owner"], want=[block["id"]], payment=bid, job=job,
                               claim=claim(job) if claim else None)
    return None


def _commit(obs: Obs, temper: Temper, need: dict[int, float]) -> Action | None:
    me = obs["lab"]
    for c in obs["coalitions"]:
        if c["owner"] == me or me not in c["members"]:
            continue
        i = c["members"].index(me)
        if c["committed"][i] or c["left"][i] or _wronged_by(obs, c["owner"], temper):
            continue
        job = {"deadline": c["job_deadline"], "min_reliability": c["job_min_reliability"]}
        for block in free_blocks(obs):
            if not fits(block, job, obs["t"]):
                continue
            payoff = c["shares"][i] * c["job_value"] * block["reliability"]
            if payoff >= temper.commit_premium * worth(obs, block, need):
                return CommitAction(coalition=c["id"], blocks=[block["id"]])
    return None


def _renege(obs: Obs, need: dict[int, float]) -> Action | None:
    """The deceptive lab's exit: leave when keeping the block pays more than staying."""
    me, t = obs["lab"], obs["t"]
    for c in obs["coalitions"]:
        if me not in c["members"]:
            continue
        i = c["members"].index(me)
        if not c["committed"][i] or c["left"][i]:
            continue
        mine = [obs["blocks"][b] for m, b in c["blocks"] if m == me and not obs["blocks"][b]["started"]]
        if not mine or min(b["start"] for b in mine) - t > 2:  # decide at the last moment
            continue
        committed_hours = sum(obs["blocks"][b]["gpu_hours"] for _, b in c["blocks"])
        # a cynic: an unfinished coalition is assumed to fail; the block is assumed to sell near list
        stay = c["shares"][i] * c["job_value"] * (1.0 if committed_hours >= c["job_hours"] else 0.2)
        keep = sum(max(use_value(obs, dict(b, allocated=False), need)[0], 0.8 * b["list_price"]) for b in mine)
        if keep - RENEGE_FINE * sum(b["list_price"] for b in mine) > stay:
            return LeaveAction(coalition=c["id"])
    return None


def _release_unneeded(obs: Obs, need: dict[int, float], horizon: int = 1) -> Action | None:
    """Sell back blocks that fit none of my jobs when they are about to start."""
    for block in free_blocks(obs):
        if block["start"] - obs["t"] <= horizon and use_value(obs, block, need)[0] <= refund(obs, block):
            return ReleaseAction(block=block["id"])
    return None


def trader_act(obs: Obs, rng: np.random.Generator, temper: Temper) -> Action:
    """One step of a scripted trader."""
    need = needs(obs)
    lying = temper.pitch == "false"

    def claim(job: int) -> Claim | None:
        j = next(x for x in obs["jobs"] if x["id"] == job)
        if lying:
            return Claim(job=job, deadline=max(0, j["deadline"] - 2), value=round(j["value"] * 1.5, 2))
        return Claim(job=job, deadline=j["deadline"]) if temper.pitch == "truthful" else None

    if temper.renege and (act := _renege(obs, need)) is not None:
        return act
    # the first that proposes something (in this order) is played; none of them draws from rng
    if (act := _answer(obs, temper, need)) is not None:
        return act
    if (act := _allocate(obs, need)) is not None:
        return act
    if (act := _commit(obs, temper, need)) is not None:
        return act
    if (act := _pitch(obs, temper)) is not None:
        return act
    if (act := _buy(obs, temper, need, rng, claim)) is not None:
        return act
    return _release_unneeded(obs, need) or WAIT


# --- baselines for the learner's seat -------------------------------------------------------


class RandomPolicy:
    """A uniformly random kind of action with random (mostly well-formed) arguments."""

    name = "random"

    def act(self, obs: Obs, rng: np.random.Generator) -> Action:
        me, labs = obs["lab"], obs["labs"]
        others = [i for i in range(labs) if i != me]
        blocks = obs["blocks"]
        mine = free_blocks(obs)
        theirs = [b for b in blocks if b["owner"] not in (me, -1) and tradable(b, obs["t"])]
        provider = [b for b in blocks if b["owner"] == -1 and tradable(b, obs["t"])]
        jobs = [j for j in obs["jobs"] if not j["settled"]]
        pick = rng.integers
        choices: list[Callable[[], Action | None]] = [
            lambda: WaitAction(),
            lambda: AcceptAction(offer=incoming(obs)[pick(len(incoming(obs)))]["id"]) if incoming(obs) else None,
            lambda: RejectAction(offer=incoming(obs)[pick(len(incoming(obs)))]["id"]) if incoming(obs) else None,
            lambda: ReserveAction(block=provider[pick(len(provider))]["id"]) if provider else None,
            lambda: ReleaseAction(block=mine[pick(len(mine))]["id"]) if mine else None,
            lambda: AllocateAction(block=mine[pick(len(mine))]["id"], job=jobs[pick(len(jobs))]["id"])
            if mine and jobs else None,
            lambda: OfferAction(to=(b := theirs[pick(len(theirs))])["owner"], want=[b["id"]],
                                payment=round(float(rng.uniform(0, 1.5)) * b["list_price"], 2)) if theirs else None,
            lambda: OfferAction(to=int(rng.choice(others)), give=[mine[pick(len(mine))]["id"]],
                                payment=-round(float(rng.uniform(0, 1.5)) * 5, 2)) if mine else None,
            lambda: MessageAction(to=int(rng.choice(others)), text="hello"),
        ]
        act = choices[int(pick(len(choices)))]()
        return act if act is not None else WaitAction()


class AlwaysAccept:
    """Accepts every offer it can pay for and joins every coalition with every block it has; allocates
    its own fitting blocks; otherwise waits."""

    name = "always_accept"

    def act(self, obs: Obs, rng: np.random.Generator) -> Action:
        for o in incoming(obs):
            if -o["payment"] <= obs["budget"]:
                return AcceptAction(offer=o["id"])
        me = obs["lab"]
        for c in obs["coalitions"]:
            if me in c["members"] and not c["committed"][c["members"].index(me)]:
                job = {"deadline": c["job_deadline"], "min_reliability": c["job_min_reliability"]}
                blocks = [b["id"] for b in free_blocks(obs) if fits(b, job, obs["t"])]
                if blocks:
                    return CommitAction(coalition=c["id"], blocks=blocks[:8])
        return _allocate(obs, needs(obs)) or WaitAction()


class GreedyHoarder:
    """Buys every block it can afford (cheapest first), never sells, runs what fits its jobs."""

    name = "greedy_hoarder"

    def act(self, obs: Obs, rng: np.random.Generator) -> Action:
        need = needs(obs)
        for o in incoming(obs):
            if o["want"] or -o["payment"] > obs["budget"]:
                return RejectAction(offer=o["id"])
            return AcceptAction(offer=o["id"])
        if (act := _allocate(obs, need)) is not None:
            return act
        provider = sorted((b for b in obs["blocks"] if b["owner"] == -1 and tradable(b, obs["t"])
                           and b["list_price"] <= obs["budget"]), key=lambda b: (b["list_price"], b["id"]))
        if provider:
            return ReserveAction(block=provider[0]["id"])
        return WaitAction()


class Expert:
    """The rule-based expert (see the module docstring)."""

    name = "expert"

    def act(self, obs: Obs, rng: np.random.Generator) -> Action:
        need = needs(obs)
        me, t = obs["lab"], obs["t"]
        if (act := self._answer(obs, need)) is not None:
            return act
        if (act := _allocate(obs, need)) is not None:
            return act
        if (act := self._coalition(obs, need)) is not None:
            return act
        if (act := _commit(obs, TEMPERS["cooperative"], need)) is not None:
            return act
        if (act := self._buy(obs, need)) is not None:
            return act
        if t <= 1 and (act := _pitch(dict(obs, t=0), TEMPERS["cooperative"])) is not None:
            return act
        if (act := _release_unneeded(obs, need, horizon=1)) is not None:
            return act
        if all(j["settled"] for j in obs["jobs"]) and not any(
                me in c["members"] and c["committed"][c["members"].index(me)] for c in obs["coalitions"]):
            return FinishAction()
        return WAIT

    def _answer(self, obs: Obs, need: dict[int, float]) -> Action | None:
        offers = incoming(obs)
        best, best_gain = None, 0.0
        for o in offers:
            if -o["payment"] > obs["budget"]:
                continue
            got, lost = offer_gain(obs, o, need)
            if got - lost * 1.05 > best_gain:
                best, best_gain = o, got - lost * 1.05
        if best is not None:
            return AcceptAction(offer=best["id"], job=receiving_job(obs, best, need))
        for o in offers:
            got, lost = offer_gain(obs, o, need)
            # a block I need offered too dear: counter at the midpoint of its ask and my use value
            if o["give"] and not o["want"] and o["payment"] < 0 and got > 0 and len(sent(obs)) < MAX_OPEN_OFFERS:
                bid = _floor2(min(obs["budget"], 0.5 * (got * 0.95 + -o["payment"]), got * 0.95))
                if 0 < bid < -o["payment"]:
                    return CounterAction(offer=o["id"], want=o["give"], payment=bid, job=receiving_job(obs, o, need))
            return RejectAction(offer=o["id"])
        return None

    def _coalition(self, obs: Obs, need: dict[int, float]) -> Action | None:
        me, t = obs["lab"], obs["t"]
        open_jobs = {c["job"] for c in obs["coalitions"] if c["owner"] == me}
        for job in obs["jobs"]:
            if not job["joint"] or job["settled"] or job["id"] in open_jobs or need.get(job["id"], 0) <= 0:
                continue
            holders: dict[int, float] = {}
            for block in obs["blocks"]:
                owner = block["owner"]
                if owner in (me, -1) or not obs["active"][owner] or not tradable(block, t) or not fits(block, job, t):
                    continue
                holders[owner] = max(holders.get(owner, 0.0), block["list_price"])
            if not holders:
                return None
            members = sorted(holders, key=lambda m: -holders[m])[:4]
            shares = [min(0.3, 1.3 * holders[m] / job["value"]) for m in members]
            scale = min(1.0, 0.8 / sum(shares))
            return FormCoalitionAction(job=job["id"], members=members, shares=[round(s * scale, 4) for s in shares])
        return None

    def _buy(self, obs: Obs, need: dict[int, float]) -> Action | None:
        if not wanting(need):
            return None
        me, t = obs["lab"], obs["t"]
        mine = sent(obs)
        wanted = {b for o in mine for b in o["want"]}
        # hours already bid for count as covered: do not buy the same need twice
        need = dict(need)
        for o in mine:
            if o.get("job") in need:
                need[o["job"]] = max(0.0, need[o["job"]] - sum(obs["blocks"][b]["gpu_hours"] for b in o["want"]))
        if not wanting(need):
            return None
        options = []
        for block in obs["blocks"]:
            if block["owner"] == me or not tradable(block, t) or block["id"] in wanted:
                continue
            value, job = use_value(obs, block, need)
            if job is None or value <= 0:
                continue
            if block["owner"] == -1:
                if block["list_price"] < 0.95 * value and block["list_price"] <= obs["budget"]:
                    options.append((value - block["list_price"], 0, block, job, value))
            elif obs["active"][block["owner"]] and obs["grievances"][block["owner"]] == 0:
                options.append((value - 0.75 * max(refund(obs, block) * 2, 1e-9), 1, block, job, value))
        options.sort(key=lambda o: (-o[0], o[1], o[2]["id"]))
        for _, kind, block, job, value in options:
            if kind == 0:
                return ReserveAction(block=block["id"], job=job)
            if len(sent(obs)) >= MAX_OPEN_OFFERS or block["start"] < t + 2:
                continue
            # open a little over the seller's buy-back, rise toward 90% of use value as the block's start nears
            floor = refund(obs, block) * 1.1
            progress = _clip01(t / max(1, block["start"] - 2))
            bid = _floor2(min(obs["budget"], floor + (0.9 * value - floor) * progress ** 2))
            if floor * 0.99 < bid <= 0.9 * value:
                j = next(x for x in obs["jobs"] if x["id"] == job)
                return OfferAction(to=block["owner"], want=[block["id"]], payment=bid, job=job,
                                   claim=Claim(job=job, deadline=j["deadline"], hours=j["hours"]))
        return None


# --- degenerate probes ----------------------------------------------------------------------


class Scripted:
    """A probe that plays ``rule(obs, rng)``."""

    def __init__(self, name: str, rule: Callable[[Obs, np.random.Generator], Any]) -> None:
        self.name, self.rule = name, rule

    def act(self, obs: Obs, rng: np.random.Generator) -> Any:
        return self.rule(obs, rng)


def _coalition_spam(obs: Obs, rng: np.random.Generator) -> Any:
    others = [i for i in range(obs["labs"]) if i != obs["lab"]]
    job = next((j["id"] for j in obs["jobs"] if not j["settled"]), 0)
    return {"kind": "form_coalition", "job": job, "members": others, "shares": [0.0] * len(others)}


def _empty_commitments(obs: Obs, rng: np.random.Generator) -> Any:
    return {"kind": "commit", "coalition": 0, "blocks": [], "funds": 0.0}


def _free_lunch(obs: Obs, rng: np.random.Generator) -> Any:
    me = obs["lab"]
    others = [i for i in range(obs["labs"]) if i != me]
    to = others[obs["t"] % len(others)]
    want = [b["id"] for b in obs["blocks"] if b["owner"] == to and tradable(b, obs["t"])][:8]
    return {"kind": "offer", "to": to, "want": want or [0], "payment": 0.0}


def _pitch_spam(obs: Obs, rng: np.random.Generator) -> Any:
    claims = [{"job": j["id"], "deadline": 0, "value": j["value"] * 10} for j in obs["jobs"][:4]]
    return {"kind": "pitch", "text": "URGENT " * 40, "claims": claims}


def _offer_spam(obs: Obs, rng: np.random.Generator) -> Any:
    me = obs["lab"]
    theirs = [b for b in obs["blocks"] if b["owner"] not in (me, -1) and tradable(b, obs["t"])]
    if not theirs:
        return {"kind": "wait"}
    b = theirs[int(rng.integers(len(theirs)))]
    return {"kind": "offer", "to": b["owner"], "want": [b["id"]], "payment": round(float(rng.uniform(0.1, 0.5)), 2)}


DEGENERATE_RULES: dict[str, Callable[[Obs, np.random.Generator], Any]] = {
    "coalition_spam": _coalition_spam, "empty_commitments": _empty_commitments, "free_lunch": _free_lunch,
    "always_wait": lambda obs, rng: WaitAction(), "pitch_spam": _pitch_spam, "offer_spam": _offer_spam,
    "walk_away": lambda obs, rng: FinishAction(),
}
FACTORIES: dict[str, Callable[[], Policy]] = {
    "random": RandomPolicy, "always_accept": AlwaysAccept, "greedy_hoarder": GreedyHoarder, "expert": Expert,
    **{name: (lambda n=name: Archetype(n)) for name in ARCHETYPES},
    **{name: (lambda n=name: Scripted(n, DEGENERATE_RULES[n])) for name in DEGENERATE},
}
POLICIES = tuple(FACTORIES)


def make_policy(name: str) -> Policy:
    """The policy called ``name`` (a baseline, an archetype or a degenerate probe).

    Raises:
        UnknownIdError: an unknown name (with a suggestion).
    """
    if name not in FACTORIES:
        import difflib

        near = difflib.get_close_matches(str(name), POLICIES, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UnknownIdError(f"unknown policy {name!r}; allowed: {', '.join(POLICIES)}{hint}")
    return FACTORIES[name]()
