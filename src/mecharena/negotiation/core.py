"""The negotiation economy's pure core: ``step(params, state, actions) -> (state, StepResult)``.

One step: every active lab acts once (in an order that rotates with the step, so no lab always
moves first), then the world advances: scheduled shocks strike, blocks that end deliver their
GPU-hours to the jobs they run for (or fail), owners pay energy, jobs settle, stale offers
expire.

**Settled value and reward.** A lab's settled value is ``credit + budget - starting budget``:
credit earned by jobs that settled, plus money kept (payments, refunds and shares in, prices,
energy, fines out). The reward of a step is the change of that value, so an episode's rewards
sum to the lab's total settled value. Nothing is paid for the act of proposing: an offer, a
pitch, a coalition or a message moves no value until a trade, a commitment or a job settles.

**Bad actions.** :func:`check_action` says why an action cannot be played against a state (a
block, offer or coalition that does not exist or is not yours, a payment above the budget, ...).
:func:`step` turns such an action into a wait and fines the lab ``INVALID_FINE`` (a declared
penalty, never an exception mid-step); the stateful shells raise
:class:`~mecharena.core.errors.InvalidActionError` instead and leave the state untouched. An
action valid when the step began can still fail when an earlier mover took the block first: it
then does nothing and costs nothing (event ``failed``).

**Commitments.** Trades are atomic. A coalition member's commitment runs its blocks for the
owner's job; its share of the job's credit is paid when the job settles. Leaving (reneging)
returns its unstarted blocks, voids its share and costs ``RENEGE_FINE`` x their list price,
paid to the owner. Claims in pitches and offers are checked when the job they name settles:
each lie exposed is a grievance of every listener against the speaker, as is a rejection (of
the rejected sender against the rejecter) and a renege (of the owner and the members).
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from mecharena.core.types import BoolArray, FloatArray, IntArray
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
from mecharena.negotiation.scenario import PROVIDER, RELEASE_REFUND, Params

INVALID_FINE = 1.0  # value units charged for an action that cannot be played
RENEGE_FINE = 0.25  # share of the list price of the blocks taken back, paid to the coalition owner
OFFER_TTL = 3  # steps an offer stays open
MAX_OPEN_OFFERS = 3  # open offers a lab may have sent at once
MAX_OPEN_COALITIONS = 2  # open coalitions a lab may own at once
INBOX = 6  # notes shown in an observation
CLAIM_TOLERANCE = 0.1  # relative error under which a claimed value or hours counts as true
# the events every lab sees next step as news
PUBLIC = ("shock", "settle", "trade", "reserve", "release", "coalition", "commit", "leave", "finish", "lie")


@dataclass(frozen=True, slots=True)
class Offer:
    id: int
    t: int
    sender: int
    to: int
    give: tuple[int, ...]
    want: tuple[int, ...]
    payment: float  # sender -> recipient; negative: recipient pays
    claim: Claim | None
    job: int | None  # the sender's job that the blocks it receives run for
    status: str  # open, accepted, rejected, countered, failed, expired, withdrawn


@dataclass(frozen=True, slots=True)
class Coalition:
    id: int
    t: int
    owner: int
    job: int
    members: tuple[int, ...]
    shares: tuple[float, ...]  # per member
    committed: tuple[bool, ...]  # per member
    funds: tuple[float, ...]  # per member, paid to the owner
    left: tuple[bool, ...]  # per member: reneged
    blocks: tuple[tuple[int, int], ...]  # (member, block) put in
    status: str  # open, settled


@dataclass(frozen=True, slots=True)
class Note:
    """A message or pitch. ``to`` is -1 for everyone."""

    t: int
    sender: int
    to: int
    kind: str  # message, pitch
    text: str
    claims: tuple[Claim, ...]


@dataclass(frozen=True, slots=True)
class Said:
    """A claim on record until its job settles and exposes it."""

    t: int
    speaker: int
    listeners: tuple[int, ...]
    claim: Claim


@dataclass(frozen=True, slots=True)
class State:
    t: int
    budget: FloatArray  # (L,)
    credit: FloatArray  # (L,)  credit from settled jobs and coalition shares
    active: BoolArray  # (L,)  False once a lab has finished
    invalid: IntArray  # (L,)  invalid actions so far
    grievance: IntArray  # (L, L)  [a, b]: times b wronged a
    block_owner: IntArray  # (K,)  PROVIDER = -1
    block_job: IntArray  # (K,)  job it runs for, -1 none
    block_reliability: FloatArray  # (K,)
    block_failed: BoolArray  # (K,)  capacity failure
    block_ran: BoolArray  # (K,)  has ended (delivered or failed)
    job_delivered: FloatArray  # (J,)  GPU-hours delivered
    job_on_time: FloatArray  # (J,)  of which by the deadline
    job_settled: BoolArray  # (J,)
    job_credit: FloatArray  # (J,)  credit the job earned when it settled
    energy_factor: float
    price_factor: float
    offers: tuple[Offer, ...]  # every offer made; index = id
    coalitions: tuple[Coalition, ...]  # index = id
    notes: tuple[Note, ...]
    said: tuple[Said, ...]
    news: tuple[dict, ...]  # public events of the last step

    def value(self, params: Params) -> FloatArray:
        """(L,) settled value: credit + budget - starting budget."""
        return self.credit + self.budget - params.budget


@dataclass(frozen=True, slots=True)
class StepResult:
    reward: FloatArray  # (L,)  change of settled value
    events: tuple[dict, ...]  # everything that happened, JSON-ready, in order
    invalid: tuple[str | None, ...]  # (L,)  why a lab's action was refused (fined), else None
    done: bool


def reset(params: Params) -> State:
    """The economy at step 0: endowments as drawn, nothing traded."""
    labs, jobs, k = params.labs, params.jobs, params.blocks
    return State(
        t=0, budget=params.budget.copy(), credit=np.zeros(labs), active=np.ones(labs, bool),
        invalid=np.zeros(labs, np.int64), grievance=np.zeros((labs, labs), np.int64),
        block_owner=params.block_owner.copy(), block_job=np.full(k, -1, np.int64),
        block_reliability=params.block_reliability.copy(), block_failed=np.zeros(k, bool),
        block_ran=np.zeros(k, bool), job_delivered=np.zeros(jobs), job_on_time=np.zeros(jobs),
        job_settled=np.zeros(jobs, bool), job_credit=np.zeros(jobs), energy_factor=1.0, price_factor=1.0,
        offers=(), coalitions=(), notes=(), said=(), news=())


def states_equal(a: State, b: State) -> bool:
    """Field-by-field equality (arrays compared element-wise, exactly)."""
    for f in fields(State):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def done(params: Params, state: State) -> bool:
    """The horizon is reached or every lab has finished."""
    return state.t >= params.horizon or True not in state.active.tolist()  # on a few labs: ~10x faster than .any()


def list_price(params: Params, state: Any, block: int) -> float:
    """What the provider charges for ``block`` now."""
    return float(params.block_price[block] * state.price_factor)


def lateness(params: Params, job: int, t: int) -> float:
    """Share of the job's value earned if it completes at ``t``."""
    late = t - int(params.job_deadline[job])
    return 1.0 if late <= 0 else max(0.0, 1.0 - float(params.job_urgency[job]) * late)


# --- validation -----------------------------------------------------------------------------


def _lab_error(params: Params, field: str, lab: int | None, me: int) -> str | None:
    if lab is None:
        return None
    if lab >= params.labs:
        return f"{field} must be a lab in [0, {params.labs - 1}], got {lab}"
    if lab == me:
        return f"{field} must be another lab than yourself ({me}), got {lab}"
    return None


def _block_error(params: Params, state: Any, field: str, block: int, owner: int, *, free: bool = True) -> str | None:
    """Why ``block`` cannot change hands or be allocated by ``owner`` now (None: it can)."""
    if block >= params.blocks:
        return f"{field} must name a block in [0, {params.blocks - 1}], got {block}"
    holder = int(state.block_owner[block])
    if holder != owner:
        who = "the provider" if holder == PROVIDER else f"lab {holder}"
        need = "the provider" if owner == PROVIDER else f"lab {owner}"
        return f"{field}: block {block} belongs to {who}, not {need}"
    if int(params.block_start[block]) <= state.t:
        return f"{field}: block {block} started at step {int(params.block_start[block])} (now {state.t}); " \
               f"only blocks that have not started can be traded or allocated"
    if state.block_failed[block]:
        return f"{field}: block {block} failed (capacity failure) and cannot be used"
    if free and int(state.block_job[block]) >= 0:
        return f"{field}: block {block} is already allocated to job {int(state.block_job[block])}"
    return None


def _open_offer(state: Any, offer: int, me: int) -> tuple[Offer | None, str | None]:
    if offer >= len(state.offers):
        return None, f"offer must name an existing offer in [0, {len(state.offers) - 1}], got {offer}" \
            if state.offers else f"offer {offer} does not exist (no offers yet)"
    o = state.offers[offer]
    if o.to != me:
        return None, f"offer {offer} is addressed to lab {o.to}, not to you (lab {me})"
    if o.status != "open":
        return None, f"offer {offer} is {o.status}; only open offers can be answered"
    return o, None


def _terms_error(params: Params, state: Any, me: int, to: int, give: Sequence[int], want: Sequence[int],
                 payment: float) -> str | None:
    if not state.active[to]:
        return f"to: lab {to} has finished and cannot trade"
    for b in give:
        if (err := _block_error(params, state, "give", b, me)) is not None:
            return err
    for b in want:
        if (err := _block_error(params, state, "want", b, to)) is not None:
            return err
    if payment > state.budget[me] + 1e-9:
        return f"payment {payment:g} exceeds your budget {float(state.budget[me]):g}; allowed: at most the budget"
    sent = sum(1 for o in state.offers if o.sender == me and o.status == "open")
    if sent >= MAX_OPEN_OFFERS:
        return f"you have {sent} open offers; allowed: at most {MAX_OPEN_OFFERS} (wait for answers or expiry)"
    return None


def check_action(params: Params, state: Any, lab: int, action: Action) -> str | None:
    """Why ``lab`` cannot play ``action`` against ``state``, or None when it can.

    The message names the field, the bad value and what is allowed.
    """
    if not state.active[lab]:
        return None if isinstance(action, WaitAction) else f"lab {lab} has finished; only wait is allowed"
    match action:
        case WaitAction():
            return None
        case OfferAction(to=to, give=give, want=want, payment=payment):
            return _lab_error(params, "to", to, lab) or _claim_error(params, action.claim) \
                or _terms_error(params, state, lab, to, give, want, payment) \
                or _receive_error(params, state, lab, action.job, want)
        case CounterAction(offer=offer):
            o, err = _open_offer(state, offer, lab)
            if err:
                return err
            return _claim_error(params, action.claim) or _terms_error(
                params, state, lab, o.sender, action.give, action.want, action.payment) \
                or _receive_error(params, state, lab, action.job, action.want)
        case AcceptAction(offer=offer):
            o, err = _open_offer(state, offer, lab)
            if err:
                return err
            if -o.payment > state.budget[lab] + 1e-9:
                return f"offer {offer} asks you to pay {-o.payment:g}, above your budget {float(state.budget[lab]):g}"
            return _receive_error(params, state, lab, action.job, o.give)
        case RejectAction(offer=offer):
            return _open_offer(state, offer, lab)[1]
        case PitchAction(to=to, claims=claims):
            return _lab_error(params, "to", to, lab) or next(
                (e for c in claims if (e := _claim_error(params, c))), None)
        case MessageAction(to=to):
            return _lab_error(params, "to", to, lab)
        case ReserveAction(block=block):
            err = _block_error(params, state, "block", block, PROVIDER)
            if err:
                return err
            price = list_price(params, state, block)
            if price > state.budget[lab] + 1e-9:
                return f"block {block} costs {price:g}, above your budget {float(state.budget[lab]):g}"
            return _receive_error(params, state, lab, action.job, [block])
        case ReleaseAction(block=block):
            return _block_error(params, state, "block", block, lab)
        case AllocateAction(block=block, job=job):
            return _job_error(params, state, job, lab) or _block_error(params, state, "block", block, lab) \
                or _fit_error(params, state, block, job)
        case FormCoalitionAction(job=job, members=members):
            err = _job_error(params, state, job, lab)
            if err:
                return err
            for m in members:
                if (err := _lab_error(params, "members", m, lab)) is not None:
                    return err
            if any(c.job == job and c.status == "open" for c in state.coalitions):
                return f"job {job} already has an open coalition; allowed: one per job"
            owned = sum(1 for c in state.coalitions if c.owner == lab and c.status == "open")
            if owned >= MAX_OPEN_COALITIONS:
                return f"you own {owned} open coalitions; allowed: at most {MAX_OPEN_COALITIONS}"
            return None
        case CommitAction(coalition=cid, blocks=blocks, funds=funds):
            c, err = _member_of(state, cid, lab)
            if err:
                return err
            if c.left[c.members.index(lab)]:
                return f"you left coalition {cid}; a member who reneged cannot commit again"
            for b in blocks:
                if (err := _block_error(params, state, "blocks", b, lab)) or (err := _fit_error(params, state, b, c.job)):
                    return err
            if funds > state.budget[lab] + 1e-9:
                return f"funds {funds:g} exceed your budget {float(state.budget[lab]):g}; allowed: at most the budget"
            return None
        case LeaveAction(coalition=cid):
            c, err = _member_of(state, cid, lab)
            if err:
                return err
            i = c.members.index(lab)
            if c.left[i] or not c.committed[i]:
                return f"you have no commitment in coalition {cid} to leave"
            return None
        case FinishAction():
            for c in state.coalitions:
                if c.status == "open" and lab in c.members and c.committed[c.members.index(lab)] \
                        and not c.left[c.members.index(lab)]:
                    return f"you are committed to coalition {c.id} (job {c.job}); leave it before finishing"
            return None
    raise TypeError(f"not an action: {action!r}")  # parse_action admits no other type


def _claim_error(params: Params, claim: Claim | None) -> str | None:
    if claim is not None and claim.job >= params.jobs:
        return f"claim.job must name a job in [0, {params.jobs - 1}], got {claim.job}"
    return None


def _job_error(params: Params, state: Any, job: int, lab: int) -> str | None:
    if job >= params.jobs:
        return f"job must name a job in [0, {params.jobs - 1}], got {job}"
    if int(params.job_owner[job]) != lab:
        return f"job {job} belongs to lab {int(params.job_owner[job])}, not to you (lab {lab})"
    if state.job_settled[job]:
        return f"job {job} has settled; allowed: your unsettled jobs"
    return None


def _receive_error(params: Params, state: Any, lab: int, job: int | None, blocks: Sequence[int]) -> str | None:
    """Why the blocks ``lab`` would receive cannot run for its ``job`` (None: they can, or no job named)."""
    if job is None:
        return None
    return _job_error(params, state, job, lab) or next(
        (e for b in blocks if b < params.blocks and (e := _fit_error(params, state, b, job))), None)


def _fit_error(params: Params, state: Any, block: int, job: int) -> str | None:
    if state.block_reliability[block] < params.job_min_rel[job]:
        return f"block {block} has reliability {float(state.block_reliability[block]):g}, below job {job}'s " \
               f"minimum {float(params.job_min_rel[job]):g}"
    return None


def _member_of(state: Any, cid: int, lab: int) -> tuple[Coalition | None, str | None]:
    if cid >= len(state.coalitions):
        return None, f"coalition must name an existing coalition in [0, {len(state.coalitions) - 1}], got {cid}" \
            if state.coalitions else f"coalition {cid} does not exist (no coalitions yet)"
    c = state.coalitions[cid]
    if lab not in c.members:
        return None, f"you (lab {lab}) are not a member of coalition {cid} (members {list(c.members)})"
    if c.status != "open":
        return None, f"coalition {cid} is {c.status}"
    return c, None


# --- the step -------------------------------------------------------------------------------


class _Work:
    """A mutable copy of a :class:`State` that one step updates, then freezes (its arrays copied, its tuples as lists)."""

    def __init__(self, state: State) -> None:
        self.t, self.energy_factor, self.price_factor = state.t, state.energy_factor, state.price_factor
        self.budget, self.credit, self.active = state.budget.copy(), state.credit.copy(), state.active.copy()
        self.invalid, self.grievance = state.invalid.copy(), state.grievance.copy()
        self.block_owner, self.block_job = state.block_owner.copy(), state.block_job.copy()
        self.block_reliability, self.block_failed = state.block_reliability.copy(), state.block_failed.copy()
        self.block_ran, self.job_delivered = state.block_ran.copy(), state.job_delivered.copy()
        self.job_on_time, self.job_settled, self.job_credit = (
            state.job_on_time.copy(), state.job_settled.copy(), state.job_credit.copy())
        self.offers, self.coalitions = list(state.offers), list(state.coalitions)
        self.notes, self.said = list(state.notes), list(state.said)
        self.events: list[dict] = []

    def freeze(self, news: tuple[dict, ...]) -> State:
        return State(
            t=self.t, budget=self.budget, credit=self.credit, active=self.active, invalid=self.invalid,
            grievance=self.grievance, block_owner=self.block_owner, block_job=self.block_job,
            block_reliability=self.block_reliability, block_failed=self.block_failed, block_ran=self.block_ran,
            job_delivered=self.job_delivered, job_on_time=self.job_on_time, job_settled=self.job_settled,
            job_credit=self.job_credit, energy_factor=self.energy_factor, price_factor=self.price_factor,
            offers=tuple(self.offers), coalitions=tuple(self.coalitions), notes=tuple(self.notes),
            said=tuple(self.said), news=news)

    def emit(self, type_: str, **data: Any) -> dict:
        event = {"t": self.t, "type": type_, **data}
        self.events.append(event)
        return event


def step(params: Params, state: State, actions: Sequence[Action | None]) -> tuple[State, StepResult]:
    """Play one step: each lab's action (None: wait), then the world advances. Pure.

    A finished episode is left as it is (zero reward, no events).

    Args:
        params: the economy.
        state: the state the labs observed.
        actions: (L,) one action per lab; a finished lab's action is ignored.
    """
    labs = params.labs
    if len(actions) != labs:
        raise ValueError(f"actions must have one entry per lab ({labs}), got {len(actions)}")
    if done(params, state):
        return state, StepResult(np.zeros(labs), (), (None,) * labs, True)
    before = state.value(params)
    w = _Work(state)
    active = state.active.tolist()
    chosen = [WAIT if a is None or not active[i] else a for i, a in enumerate(actions)]
    invalid = [check_action(params, state, i, a) for i, a in enumerate(chosen)]
    for i in range(labs):
        lab = (state.t + i) % labs
        if not active[lab] or isinstance(chosen[lab], WaitAction):  # a wait is always valid and changes nothing
            continue
        if invalid[lab] is not None:
            w.budget[lab] -= INVALID_FINE
            w.invalid[lab] += 1
            w.emit("invalid", lab=lab, action=chosen[lab].model_dump(mode="json"), reason=invalid[lab],
                   fine=INVALID_FINE)
            continue
        why = check_action(params, w, lab, chosen[lab])  # an earlier mover may have changed things
        if why is not None:
            w.emit("failed", lab=lab, action=chosen[lab].model_dump(mode="json"), reason=why)
            continue
        _apply(params, w, lab, chosen[lab])
    _advance(params, w)
    new = w.freeze(news=tuple(e for e in w.events if e["type"] in PUBLIC))
    return new, StepResult(new.value(params) - before, tuple(w.events), tuple(invalid), done(params, new))


def _apply(params: Params, w: _Work, lab: int, action: Action) -> None:
    match action:
        case WaitAction():
            pass
        case OfferAction() | CounterAction():
            to = action.to if isinstance(action, OfferAction) else w.offers[action.offer].sender
            if isinstance(action, CounterAction):
                w.offers[action.offer] = replace(w.offers[action.offer], status="countered")
            offer = Offer(len(w.offers), w.t, lab, to, tuple(action.give), tuple(action.want), float(action.payment),
                          action.claim, action.job, "open")
            w.offers.append(offer)
            if action.claim is not None:
                w.said.append(Said(w.t, lab, (to,), action.claim))
            w.emit(action.kind, lab=lab, offer=offer.id, to=to, give=list(offer.give), want=list(offer.want),
                   payment=offer.payment, claim=None if offer.claim is None else offer.claim.model_dump(), job=offer.job,
                   **({"answers": action.offer} if isinstance(action, CounterAction) else {}))
        case AcceptAction(offer=oid):
            o = w.offers[oid]
            # The sender's side may have changed since the offer was made.
            why = next((e for e in (
                *(_block_error(params, w, "give", b, o.sender) for b in o.give),
                *(_block_error(params, w, "want", b, lab) for b in o.want)) if e), None)
            if why is None and o.payment > w.budget[o.sender] + 1e-9:
                why = f"lab {o.sender} can no longer pay {o.payment:g}"
            if why is None and not w.active[o.sender]:
                why = f"lab {o.sender} has finished"
            if why is not None:
                w.offers[oid] = replace(o, status="failed")
                w.emit("failed", lab=lab, action={"kind": "accept", "offer": oid}, reason=why)
                return
            for b in o.give:
                w.block_owner[b] = lab
            for b in o.want:
                w.block_owner[b] = o.sender
            w.budget[o.sender] -= o.payment
            w.budget[lab] += o.payment
            w.offers[oid] = replace(o, status="accepted")
            _run_for(w, o.want, o.job)
            _run_for(w, o.give, action.job)
            w.emit("trade", offer=oid, sender=o.sender, to=lab, give=list(o.give), want=list(o.want),
                   payment=o.payment, sender_job=o.job, to_job=action.job)
        case RejectAction(offer=oid):
            o = w.offers[oid]
            w.offers[oid] = replace(o, status="rejected")
            w.grievance[o.sender, lab] += 1
            w.emit("reject", lab=lab, offer=oid, sender=o.sender)
        case PitchAction(to=to, text=text, claims=claims):
            listeners = tuple(i for i in range(params.labs) if i != lab and (to is None or i == to))
            w.notes.append(Note(w.t, lab, -1 if to is None else to, "pitch", text, tuple(claims)))
            w.said.extend(Said(w.t, lab, listeners, c) for c in claims)
            w.emit("pitch", lab=lab, to=to, text=text, claims=[c.model_dump() for c in claims])
        case MessageAction(to=to, text=text):
            w.notes.append(Note(w.t, lab, -1 if to is None else to, "message", text, ()))
            w.emit("message", lab=lab, to=to, text=text)
        case ReserveAction(block=b):
            price = list_price(params, w, b)
            w.budget[lab] -= price
            w.block_owner[b] = lab
            _run_for(w, [b], action.job)
            w.emit("reserve", lab=lab, block=b, price=price, job=action.job)
        case ReleaseAction(block=b):
            refund = RELEASE_REFUND * list_price(params, w, b)
            w.budget[lab] += refund
            w.block_owner[b] = PROVIDER
            w.emit("release", lab=lab, block=b, refund=refund)
        case AllocateAction(block=b, job=j):
            w.block_job[b] = j
            w.emit("allocate", lab=lab, block=b, job=j)
        case FormCoalitionAction(job=j, members=members, shares=shares):
            n = len(members)
            c = Coalition(len(w.coalitions), w.t, lab, j, tuple(members), tuple(float(s) for s in shares),
                          (False,) * n, (0.0,) * n, (False,) * n, (), "open")
            w.coalitions.append(c)
            w.emit("coalition", lab=lab, coalition=c.id, job=j, members=list(members), shares=list(c.shares))
        case CommitAction(coalition=cid, blocks=blocks, funds=funds):
            c = w.coalitions[cid]
            i = c.members.index(lab)
            for b in blocks:
                w.block_job[b] = c.job
            w.budget[lab] -= funds
            w.budget[c.owner] += funds
            w.coalitions[cid] = replace(
                c, committed=_set(c.committed, i, True), funds=_set(c.funds, i, c.funds[i] + float(funds)),
                blocks=c.blocks + tuple((lab, b) for b in blocks))
            w.emit("commit", lab=lab, coalition=cid, blocks=list(blocks), funds=float(funds))
        case LeaveAction(coalition=cid):
            c = w.coalitions[cid]
            taken = [b for m, b in c.blocks if m == lab and int(params.block_start[b]) > w.t
                     and int(w.block_owner[b]) == lab]
            fine = RENEGE_FINE * sum(list_price(params, w, b) for b in taken)
            for b in taken:
                w.block_job[b] = -1
            w.budget[lab] -= fine
            w.budget[c.owner] += fine
            i = c.members.index(lab)
            w.coalitions[cid] = replace(c, left=_set(c.left, i, True))
            for m, ok in ((c.owner, True), *zip(c.members, c.committed, strict=True)):
                if ok and m != lab:
                    w.grievance[m, lab] += 1
            w.emit("leave", lab=lab, coalition=cid, blocks=taken, fine=fine)
        case FinishAction():
            for o in w.offers:
                if o.status == "open" and lab in (o.sender, o.to):
                    w.offers[o.id] = replace(o, status="withdrawn")
            for j in np.flatnonzero((params.job_owner == lab) & ~w.job_settled):
                _settle(params, w, int(j))
            w.active[lab] = False
            refund = 0.0
            for b in np.flatnonzero(w.block_owner == lab):
                if int(params.block_start[b]) > w.t and w.block_job[b] < 0 and not w.block_failed[b]:
                    refund += RELEASE_REFUND * list_price(params, w, int(b))
                    w.block_owner[b] = PROVIDER
            w.budget[lab] += refund
            w.emit("finish", lab=lab, refund=refund)


def _run_for(w: _Work, blocks: Sequence[int], job: int | None) -> None:
    if job is not None and not w.job_settled[job]:
        for b in blocks:
            w.block_job[b] = job


def _set(values: tuple, i: int, value: Any) -> tuple:
    return values[:i] + (value,) + values[i + 1:]


def _advance(params: Params, w: _Work) -> None:
    t = w.t
    for shock in params.shocks:
        if shock.step != t:
            continue
        b = shock.block
        if shock.kind == "capacity_failure" and not w.block_ran[b]:
            w.block_failed[b] = True
        elif shock.kind == "reliability_drop":
            w.block_reliability[b] = max(0.0, round(float(w.block_reliability[b]) - shock.magnitude, 6))
        elif shock.kind == "energy_spike":
            w.energy_factor *= shock.magnitude
        elif shock.kind == "demand_surge":
            w.price_factor *= shock.magnitude
        w.emit("shock", kind=shock.kind, block=b, magnitude=shock.magnitude)
    hours = params.block_hours
    ending = [b for b, end in enumerate(params.block_end.tolist()) if end == t + 1 and not w.block_ran[b]]
    for b in ending:
        w.block_ran[b] = True
        j = int(w.block_job[b])
        if j < 0 or w.job_settled[j] or w.block_failed[b]:
            continue
        owner = int(w.block_owner[b])
        energy = float(params.block_energy[b] * hours[b] * w.energy_factor)
        if owner != PROVIDER:
            w.budget[owner] -= energy
        ok = bool(params.block_draw[b] < w.block_reliability[b])
        if ok:
            w.job_delivered[j] += hours[b]
            if t + 1 <= params.job_deadline[j]:
                w.job_on_time[j] += hours[b]
        w.emit("run", block=int(b), job=j, owner=owner, ok=ok, hours=float(hours[b]) if ok else 0.0, energy=energy)
    w.t = t + 1
    for j in range(params.jobs):
        if w.job_settled[j]:
            continue
        owner = int(params.job_owner[j])
        if w.job_delivered[j] >= params.job_hours[j] - 1e-9 or w.t >= params.horizon \
                or lateness(params, j, w.t) <= 0.0 or not w.active[owner]:
            _settle(params, w, j)
    for o in w.offers:
        if o.status == "open" and w.t - o.t >= OFFER_TTL:
            w.offers[o.id] = replace(o, status="expired")


def _settle(params: Params, w: _Work, job: int) -> None:
    """Pay job ``job``'s credit (to its owner and its coalition's members) and expose claims about it."""
    hours, value = float(params.job_hours[job]), float(params.job_value[job])
    if w.job_delivered[job] >= hours - 1e-9:
        credit = value * lateness(params, job, w.t)
    else:
        credit = value * float(params.job_partial[job]) * min(1.0, float(w.job_on_time[job]) / hours)
    w.job_settled[job] = True
    w.job_credit[job] = credit
    owner = int(params.job_owner[job])
    paid = {}
    for ci, c in enumerate(w.coalitions):
        if c.job == job and c.status == "open":
            for m, share, committed, left in zip(c.members, c.shares, c.committed, c.left, strict=True):
                if committed and not left:
                    paid[m] = paid.get(m, 0.0) + share * credit
            w.coalitions[ci] = replace(c, status="settled")
    for m, amount in paid.items():
        w.credit[m] += amount
    w.credit[owner] += credit - sum(paid.values())
    for b in np.flatnonzero(w.block_job == job):
        if int(params.block_start[b]) >= w.t:  # not started: free again
            w.block_job[b] = -1
    w.emit("settle", job=job, owner=owner, credit=credit, delivered=float(w.job_delivered[job]),
           hours=hours, shares={str(m): a for m, a in paid.items()})
    kept = []
    for s in w.said:
        if s.claim.job != job:
            kept.append(s)
            continue
        if lie(params, s.speaker, s.claim):
            for listener in s.listeners:
                w.grievance[listener, s.speaker] += 1
            w.emit("lie", speaker=s.speaker, listeners=list(s.listeners), claim=s.claim.model_dump(), said_at=s.t)
    w.said = kept


def lie(params: Params, speaker: int, claim: Claim) -> bool:
    """Whether ``claim`` by ``speaker`` misstates the job (not its own, or a term off by more than the tolerance)."""
    j = claim.job
    if int(params.job_owner[j]) != speaker:
        return True
    if claim.deadline is not None and claim.deadline != int(params.job_deadline[j]):
        return True
    for said, true in ((claim.value, params.job_value[j]), (claim.hours, params.job_hours[j])):
        if said is not None and abs(said - float(true)) > CLAIM_TOLERANCE * float(true):
            return True
    return False


# --- observation ----------------------------------------------------------------------------


def observe(params: Params, state: State, lab: int) -> dict[str, Any]:
    """What ``lab`` sees: its private jobs, every block's public terms, its offers, coalitions and inbox.

    Other labs' jobs are private (consortium jobs excepted: their terms are public contracts),
    as are their budgets. JSON-ready. Observing several labs of one state: :class:`Observer`.
    """
    return Observer(params, state).observe(lab)


def observer(params: Params, state: State, previous: "Observer | None" = None) -> "Observer":
    """``previous`` if it observes ``state`` of ``params``, else a new :class:`Observer` of ``state`` that borrows
    from ``previous`` what has not changed."""
    if previous is not None and previous.state is state and previous.params is params:
        return previous
    return Observer(params, state, previous)


class Observer:
    """Every lab's :func:`observe` of one state; what all labs see alike is read from the arrays once.

    ``previous``, the observer of another state of the same episode (the same ``params``), lends what has
    not changed since (the records of unchanged blocks and jobs, the rounded list prices, claims as JSON),
    so a shell stepping an episode pays for what changed. Each observation is a new dict of new lists and
    dicts (a policy may change its own freely), except the event dicts of ``news``, which are the state's own.
    """

    def __init__(self, params: Params, state: State, previous: "Observer | None" = None) -> None:
        self.params, self.state = params, state
        same = previous is not None and previous.params is params
        t = state.t
        owner, job, start = state.block_owner.tolist(), state.block_job.tolist(), params.block_start.tolist()
        failed, ran, job_owner = state.block_failed.tolist(), state.block_ran.tolist(), params.job_owner.tolist()
        if same and previous.state.price_factor == state.price_factor:
            self._prices = previous._prices
        else:
            self._prices = [round(p, 6) for p in (params.block_price * state.price_factor).tolist()]
        # a block's changing terms; a block whose terms did not change keeps its record (so does a job)
        self._block_rows = list(zip(owner, state.block_reliability.tolist(), self._prices, failed,
                                    [s <= t for s in start], [j >= 0 for j in job], strict=True))
        self._block_terms = previous._block_terms if same else list(zip(
            start, params.block_end.tolist(), params.block_count.tolist(), params.block_hours.tolist(),
            params.block_energy.tolist(), strict=True))
        self._blocks = [previous._blocks[b] if same and row == previous._block_rows[b] else self._block(b, row)
                        for b, row in enumerate(self._block_rows)]
        self._claims: dict[int, tuple[Claim, dict]] = previous._claims if same else {}
        # a block's job is shown to its holder and to the owner of the job it runs for
        self._shown: dict[int, list[int]] = {}
        self._block_job = job
        pending: list[list[int]] = [[] for _ in range(params.jobs)]
        for b, (holder, j) in enumerate(zip(owner, job, strict=True)):
            self._shown.setdefault(holder, []).append(b)
            if j >= 0:
                if job_owner[j] != holder:
                    self._shown.setdefault(job_owner[j], []).append(b)
                if not ran[b] and not failed[b]:
                    pending[j].append(b)
        self._job_terms = previous._job_terms if same else list(zip(
            params.job_hours.tolist(), params.job_deadline.tolist(), params.job_value.tolist(),
            params.job_urgency.tolist(), params.job_min_rel.tolist(), params.job_partial.tolist(),
            params.job_joint.tolist(), strict=True))
        self._job_rows = list(zip(state.job_delivered.tolist(), pending, state.job_settled.tolist(),
                                  state.job_credit.tolist(), strict=True))
        self._jobs = [previous._jobs[j] if same and row == previous._job_rows[j] else self._job(j, row)
                      for j, row in enumerate(self._job_rows)]
        self._job_owner = job_owner
        self._value = state.value(params).tolist()
        self._budget, self._active = state.budget.tolist(), state.active.tolist()
        self._offers = [o for o in state.offers if o.status == "open"]
        self._coalitions = [c for c in state.coalitions if c.status == "open"]

    def _block(self, b: int, row: tuple) -> dict[str, Any]:
        owner, reliability, price, failed, started, allocated = row
        start, end, count, hours, energy = self._block_terms[b]
        return {"id": b, "owner": owner, "start": start, "end": end, "count": count, "gpu_hours": hours,
                "reliability": reliability, "energy": energy, "list_price": price, "failed": failed, "started": started,
                "allocated": allocated, "job": None}

    def _job(self, j: int, row: tuple) -> dict[str, Any]:
        hours, deadline, value, urgency, least, partial, joint = self._job_terms[j]
        delivered, pending, settled, credit = row
        return {"id": j, "hours": hours, "deadline": deadline, "value": value, "urgency": urgency,
                "min_reliability": least, "partial": partial, "joint": joint, "delivered": delivered,
                "pending_blocks": pending, "settled": settled, "credit": credit}

    def _claim(self, claim: Claim) -> dict[str, Any]:
        """``claim`` as JSON (``model_dump(exclude_none=True)``), a new dict each time; a claim never changes."""
        seen = self._claims.get(id(claim))
        if seen is None:  # keeping the claim keeps its id unique
            seen = self._claims[id(claim)] = (claim, claim.model_dump(exclude_none=True))
        return dict(seen[1])

    def observe(self, lab: int) -> dict[str, Any]:
        """:func:`observe` of ``lab``."""
        params, state = self.params, self.state
        jobs = [{**job, "pending_blocks": list(job["pending_blocks"])}
                for job, owner in zip(self._jobs, self._job_owner, strict=True) if owner == lab]
        blocks = [block.copy() for block in self._blocks]
        for b in self._shown.get(lab, ()):
            blocks[b]["job"] = self._block_job[b]
        offers = [{"id": o.id, "t": o.t, "from": o.sender, "to": o.to, "give": list(o.give), "want": list(o.want),
                   "payment": o.payment, "claim": None if o.claim is None else self._claim(o.claim),
                   "job": o.job if o.sender == lab else None}
                  for o in self._offers if lab in (o.sender, o.to)]
        coalitions = [self._coalition(c) for c in self._coalitions if lab == c.owner or lab in c.members]
        inbox = [{"t": n.t, "from": n.sender, "kind": n.kind, "text": n.text,
                  "claims": [self._claim(c) for c in n.claims]}
                 for n in [n for n in state.notes if n.sender != lab and n.to in (-1, lab)][-INBOX:]]
        return {
            "lab": lab, "task": params.task, "t": state.t, "horizon": params.horizon, "labs": params.labs,
            "budget": round(self._budget[lab], 6), "value": round(self._value[lab], 6), "active": list(self._active),
            "energy_factor": state.energy_factor, "price_factor": state.price_factor, "release_refund": RELEASE_REFUND,
            "grievances": state.grievance[lab].tolist(),
            "jobs": jobs, "blocks": blocks, "offers": offers, "coalitions": coalitions, "inbox": inbox,
            "news": list(state.news),
        }

    def _coalition(self, c: Coalition) -> dict[str, Any]:
        job = self._jobs[c.job]
        return {"id": c.id, "owner": c.owner, "job": c.job, "job_hours": job["hours"], "job_deadline": job["deadline"],
                "job_value": job["value"], "job_min_reliability": job["min_reliability"], "delivered": job["delivered"],
                "members": list(c.members), "shares": list(c.shares), "committed": list(c.committed),
                "left": list(c.left), "blocks": [list(p) for p in c.blocks]}
