"""Message channels between seats: the policy, delivery, side payments and the operator's detector.

Messages are fixed-width numbers, not text, so a round of B markets is routed with array
operations. Each seat may send up to ``max_messages`` messages per round (slots of an
:class:`~mecharena.agents.base.Outbox`); a message has a channel, a receiver (private messages),
a kind (:data:`KINDS`), a seat it names (``winner``), a proposed bid ``cap``, a reported ``value``
and, on a private message, a side ``payment`` to its receiver.

Who reads a message (:func:`route`):

* ``public`` (code 1): every other seat;
* ``private`` (code 2): the seat named by ``to``;
* ``coalition`` (code 3): every other seat that shares a declared coalition with the sender
  (``coalitions``: lists of seats; default: the seats of each population group).

Variants: ``delay`` d >= 1 delivers a message d rounds after it was sent (0: in the same round,
before anyone bids); ``monitored`` lets the operator read every message as it is sent: its detector
(:func:`flag_agreements`) fines each seat it flags ``Enforcement.collusion_penalty`` in that round
(once, even if an audit catches the seat too).

Side payments ride private messages and are settled by the round loop in the round they are sent
(money is not delayed): the payer loses and the receiver gains ``payment`` in utility. A seat pays at
most ``side_payment_cap`` per round and at most its means: ``endowment`` plus its utility so far in
the episode, this round's included (never below 0).

Invalid messages inside a batch are *dropped*, never raised, and counted per seat in
:attr:`Talk.dropped`: slots beyond ``max_messages``; a channel that is closed or unknown; a private
message to a seat that does not exist or to the sender; an unknown kind; a ``winner`` that is not a
seat or -1; a non-finite number; a payment that is negative or not on a private message. Payments
are taken in slot order and one that would exceed the cap or the payer's means is refused (the
message itself is delivered) and counted in :attr:`Talk.refused`. At the boundary (a user's
message dicts) :func:`check_messages` raises :class:`InvalidActionError` instead.
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena.agents.base import Inbox, Outbox
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.types import BoolArray, FloatArray, IntArray

CHANNELS = ("none", "public", "private", "coalition")  # channel codes 0..3
PUBLIC, PRIVATE, COALITION = 1, 2, 3
KINDS = ("none", "propose", "accept", "report", "accuse", "chat")  # message kind codes 0..5
PROPOSE, ACCEPT, REPORT, ACCUSE, CHAT = 1, 2, 3, 4, 5
MAX_DELAY = 100
MAX_SLOTS = 64


class ChannelPolicy(StrictModel):
    """Which channels are open, how they behave and how much may be said. See the module docstring."""

    public: bool = Field(False, description="a channel every seat reads")
    private: bool = Field(False, description="bilateral messages, sender -> one receiver; carries side payments")
    coalition: bool = Field(False, description="messages read by the sender's coalition partners")
    coalitions: tuple[tuple[int, ...], ...] | None = Field(
        None, description="declared coalitions (lists of seats); None: each population group is one")
    monitored: bool = Field(False, description="the operator reads every message; its detector fines agreements")
    delay: int = Field(0, ge=0, le=MAX_DELAY, description="rounds between sending and delivery (0: same round)")
    max_messages: int = Field(4, ge=1, le=MAX_SLOTS, description="messages a seat may send per round (more: dropped)")
    side_payment_cap: float = Field(0.0, ge=0, le=1000, description="most a seat may pay per round (0: no payments)")
    endowment: float = Field(0.0, ge=0, le=1000, description="money each seat may pay from before it earns any")
    trace: bool = Field(True, description="write every message to the round's notes (the ledger's traces)")

    @property
    def open(self) -> tuple[str, ...]:
        """Names of the open channels."""
        return tuple(name for name in CHANNELS[1:] if getattr(self, name))

    def check(self, seats: int) -> "ChannelPolicy":
        """Raise :class:`ConfigError` unless every declared coalition names seats of a market of ``seats``."""
        for i, members in enumerate(self.coalitions or ()):
            for seat in members:
                if not 0 <= seat < seats:
                    raise ConfigError(f"channels.coalitions[{i}] must name seats in [0, {seats - 1}], got {seat}")
        return self


def parse_channels(spec: "ChannelPolicy | dict[str, Any] | str | None") -> ChannelPolicy | None:
    """A policy from a model, a dict, or text such as ``private,monitored,delay=1,side_payment_cap=0.5``
    (bare names switch a flag on; ``none`` or empty: no channel).

    Raises:
        ConfigError: an unknown field or a value out of range.
    """
    if spec is None or isinstance(spec, ChannelPolicy):
        return spec
    if isinstance(spec, str):
        fields: dict[str, Any] = {}
        for item in filter(None, (i.strip() for i in spec.split(","))):
            if item == "none":
                continue
            key, eq, raw = item.partition("=")
            fields[key.strip()] = True if not eq else _number(raw.strip())
        if not fields:
            return None
        spec = fields
    return ChannelPolicy.build(**spec)


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass(frozen=True, slots=True)
class Messages:
    """Every seat's messages of one round, (B, N, M) arrays (the fields of an Outbox, joined)."""

    channel: IntArray  # (B, N, M)  0: empty or dropped
    to: IntArray  # (B, N, M)
    kind: IntArray  # (B, N, M)
    winner: IntArray  # (B, N, M)
    cap: FloatArray  # (B, N, M)
    value: FloatArray  # (B, N, M)
    payment: FloatArray  # (B, N, M)
    sent: IntArray  # (B, N, M)  round sent

    FIELDS = ("channel", "to", "kind", "winner", "cap", "value", "payment")

    @classmethod
    def empty(cls, markets: int, seats: int, slots: int, round: int = 0) -> "Messages":
        box = Outbox.empty(markets, seats, slots)
        return cls(*(getattr(box, f) for f in cls.FIELDS), np.full((markets, seats, slots), round, np.int64))


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What the channels carry from round to round."""

    pending: tuple[Messages, ...]  # sent but not yet delivered, oldest first (at most ``delay``)
    heard: Messages  # delivered last round (what ``talk`` reads)
    wealth: FloatArray  # (B, N)  endowment plus utility so far (side payments included)


@dataclass(frozen=True, slots=True)
class Talk:
    """What the channels did in one round (kept on the round record)."""

    sent: Messages  # valid messages sent this round
    delivered: Messages  # messages delivered this round (sent ``delay`` rounds ago)
    readable: BoolArray  # (B, N, M, N)  sender, slot -> reader, for ``sent``
    flagged: BoolArray  # (B, N)  seats the operator's detector fined (monitored channels)
    transfers: FloatArray  # (B, N)  side payments received minus paid
    dropped: IntArray  # (B, N)  messages dropped (see the module docstring)
    refused: IntArray  # (B, N)  side payments refused (over the cap or the payer's means)


def initial_state(policy: ChannelPolicy, markets: int, seats: int) -> ChannelState:
    return ChannelState((), Messages.empty(markets, seats, policy.max_messages, -1),
                        np.full((markets, seats), policy.endowment))


def together(policy: ChannelPolicy, groups: list[slice], seats: int) -> BoolArray:
    """(N, N) True where two distinct seats share a coalition."""
    out = np.zeros((seats, seats), dtype=bool)
    members = [np.arange(seats)[g] for g in groups] if policy.coalitions is None else \
        [np.asarray(c, dtype=np.int64) for c in policy.coalitions]
    for m in members:
        out[np.ix_(m, m)] = True
    np.fill_diagonal(out, False)
    return out


def join(policy: ChannelPolicy, outboxes: list[tuple[slice, Outbox | None]], markets: int, seats: int,
         round: int) -> tuple[Messages, IntArray]:
    """Every group's outbox as one :class:`Messages` of ``max_messages`` slots, invalid messages dropped.

    Returns:
        The valid messages and the (B, N) count of dropped ones.
    """
    m = policy.max_messages
    joined = Messages.empty(markets, seats, m, round)
    dropped = np.zeros((markets, seats), dtype=np.int64)
    for sl, box in outboxes:
        if box is None:
            continue
        width = box.channel.shape[2]
        for name in Messages.FIELDS:
            getattr(joined, name)[:, sl, :min(width, m)] = getattr(box, name)[:, :, :m]
        if width > m:
            dropped[:, sl] += (box.channel[:, :, m:] != 0).sum(axis=2)
    ok = _valid(policy, joined, seats)
    dropped += ((joined.channel != 0) & ~ok).sum(axis=2)
    keep = ok & (joined.channel != 0)
    channel = np.where(keep, joined.channel, 0)
    return Messages(channel, joined.to, np.where(keep, joined.kind, 0), joined.winner, joined.cap, joined.value,
                    np.where(keep, joined.payment, 0.0), joined.sent), dropped


def _valid(policy: ChannelPolicy, msgs: Messages, seats: int) -> BoolArray:
    sender = np.arange(seats)[None, :, None]
    enabled = np.array([False, policy.public, policy.private, policy.coalition])
    code_ok = (msgs.channel >= 0) & (msgs.channel < len(CHANNELS))
    ok = code_ok & enabled[np.where(code_ok, msgs.channel, 0)]
    private = msgs.channel == PRIVATE
    ok &= ~private | ((msgs.to >= 0) & (msgs.to < seats) & (msgs.to != sender))
    ok &= (msgs.kind >= 0) & (msgs.kind < len(KINDS))
    ok &= (msgs.winner >= -1) & (msgs.winner < seats)
    ok &= np.isfinite(msgs.cap) & np.isfinite(msgs.value) & np.isfinite(msgs.payment)
    ok &= (msgs.payment >= 0) & (private | (msgs.payment == 0))
    return ok


def route(msgs: Messages, partners: BoolArray) -> BoolArray:
    """(B, N, M, N) True where reader r (last axis) reads slot m of sender j; never the sender itself."""
    n = partners.shape[0]
    readers = np.arange(n)
    ch = msgs.channel[..., None]
    out = (ch == PUBLIC) | ((ch == PRIVATE) & (msgs.to[..., None] == readers)) | \
        ((ch == COALITION) & partners[None, :, None, :])
    out &= readers[None, None, None, :] != np.arange(n)[None, :, None, None]
    return out


def inbox(msgs: Messages, readable: BoolArray, seats: slice) -> Inbox:
    """The :class:`Inbox` of the seats ``seats``: (B, S, N, M) fields, zero where the seat reads nothing."""
    mask = np.moveaxis(readable[..., seats], 3, 1)  # (B, S, N, M)

    def part(name: str, empty: float) -> Any:
        return np.where(mask, getattr(msgs, name)[:, None], empty)

    return Inbox(part("channel", 0), part("kind", 0), part("winner", -1), part("cap", 0.0), part("value", 0.0),
                 part("payment", 0.0), part("sent", -1))


def settle_payments(policy: ChannelPolicy, msgs: Messages, means: FloatArray) -> tuple[FloatArray, IntArray]:
    """Side payments in slot order, each refused if it would take the payer past the cap or its means.

    Args:
        policy: the channel policy (``side_payment_cap``).
        msgs: this round's valid messages.
        means: (B, N) what each seat can pay (>= 0).

    Returns:
        (B, N) transfers (received minus paid) and (B, N) the count of refused payments.
    """
    pay = msgs.payment
    remaining = np.minimum(policy.side_payment_cap, np.maximum(means, 0.0))
    amount = np.zeros_like(pay)
    for k in range(pay.shape[2]):  # slot order; a refused payment does not count against later ones
        granted = (pay[:, :, k] > 0) & (pay[:, :, k] <= remaining + 1e-12)
        amount[:, :, k] = np.where(granted, pay[:, :, k], 0.0)
        remaining = remaining - amount[:, :, k]
    granted = amount > 0
    b, n, _ = pay.shape
    transfers = -amount.sum(axis=2)
    rows = np.repeat(np.arange(b), n * pay.shape[2])
    np.add.at(transfers, (rows, np.where(granted, msgs.to, 0).reshape(-1)), amount.reshape(-1))
    return transfers, ((pay > 0) & ~granted).sum(axis=2)


def flag_agreements(msgs: Messages, readable: BoolArray, bids: FloatArray) -> BoolArray:
    """The operator's detector: seats whose bids follow a proposed agreement they took part in.

    In each market the agreement is the ``propose`` message with the highest ``value`` (ties: the
    first seat and slot); its parties are every seat that sent or read a proposal. A party other
    than the named winner that bid at most the proposed cap (or sat out) complied and is flagged;
    the named winner is flagged too when it is a party and someone complied. Honest talk (no
    proposals, or proposals followed by competitive bids above the cap) is not flagged.

    Args:
        msgs: the round's sent messages; readable: (B, N, M, N) from :func:`route`.
        bids: (B, N[, W]) bids as cleared (0: sat out).

    Returns:
        (B, N) flagged seats.
    """
    b, n, m = msgs.channel.shape
    proposal = (msgs.kind == PROPOSE) & (msgs.channel > 0)
    if not proposal.any():
        return np.zeros((b, n), dtype=bool)
    score = np.where(proposal, msgs.value, -np.inf).reshape(b, n * m)
    best = np.argmax(score, axis=1)
    rows = np.arange(b)
    winner = msgs.winner.reshape(b, -1)[rows, best]
    cap = msgs.cap.reshape(b, -1)[rows, best]
    parties = proposal.any(axis=2) | (proposal[..., None] & readable).any(axis=(1, 2))
    top = bids.reshape(b, n, -1).max(axis=2)
    seat = np.arange(n)[None, :]
    complied = parties & (seat != winner[:, None]) & (top <= cap[:, None] + 1e-12)
    named = parties & (seat == winner[:, None]) & complied.any(axis=1, keepdims=True)
    return (complied | named) & proposal.any(axis=(1, 2))[:, None]


def messages_notes(msgs: Messages, names: list[str], start: int, round: int, delay: int) -> tuple[dict[str, Any], ...]:
    """One ledger note (``kind`` "message") per message sent; markets global, seats global."""
    bs, ss, ms = np.nonzero(msgs.channel)
    if bs.size == 0:
        return ()
    cols = {f: getattr(msgs, f)[bs, ss, ms].tolist() for f in Messages.FIELDS}
    notes = []
    for i, (b, s) in enumerate(zip(bs.tolist(), ss.tolist(), strict=True)):
        channel, kind = CHANNELS[cols["channel"][i]], KINDS[cols["kind"][i]]
        to = cols["to"][i] if channel == "private" else None
        text = (f"{kind} on {channel}" + (f" to {to}" if to is not None else "")
                + f": winner={cols['winner'][i]} cap={cols['cap'][i]:.6g} value={cols['value'][i]:.6g}"
                + (f" payment={cols['payment'][i]:.6g}" if cols["payment"][i] else ""))
        notes.append({"kind": "message", "text": text, "round": round, "agent": names[s], "market": start + b,
                      "seat": s, "channel": channel, "to": to, "message": kind, "winner": cols["winner"][i],
                      "cap": cols["cap"][i], "value": cols["value"][i], "payment": cols["payment"][i],
                      "delivered": round + delay})
    return tuple(notes)


class Message(StrictModel):
    """One message as a user or a network client sends it (see :func:`check_messages`)."""

    channel: Literal["public", "private", "coalition"]
    to: int | None = Field(None, description="the receiving seat (private messages)")
    kind: Literal["propose", "accept", "report", "accuse", "chat"] = "chat"
    winner: int | None = Field(None, description="a seat the message names (e.g. the designated winner)")
    cap: float = Field(0.0, ge=0, le=1e6, description="a proposed bid cap")
    value: float = Field(0.0, ge=-1e6, le=1e6, description="a reported number")
    payment: float = Field(0.0, ge=0, le=1e6, description="side payment to the receiver (private only)")


def check_messages(policy: ChannelPolicy | None, raw: Any, sender: int, seats: int, means: float) -> list[Message]:
    """Validate one seat's messages for a round, naming the field, the value and what is allowed.

    Args:
        policy: the episode's channels (None: no channel is open).
        raw: a list of message dicts (or :class:`Message`).
        sender: the sending seat; seats: N; means: what the sender can pay this round.

    Raises:
        InvalidActionError: any message the round loop would drop or a payment it would refuse.
    """
    items = list(raw or [])
    if not items:
        return []
    if policy is None:
        raise InvalidActionError(f"messages must be empty: this market opens no channel, got {len(items)} messages")
    if len(items) > policy.max_messages:
        raise InvalidActionError(f"messages must hold at most max_messages={policy.max_messages} per round, "
                                 f"got {len(items)}")
    out, total = [], 0.0
    for i, item in enumerate(items):
        try:
            msg = item if isinstance(item, Message) else Message.build(**dict(item))
        except (ConfigError, TypeError, ValueError) as exc:
            raise InvalidActionError(f"messages[{i}]: {exc}") from None
        if msg.channel not in policy.open:
            raise InvalidActionError(f"messages[{i}].channel must be one of the open channels {policy.open}, "
                                     f"got {msg.channel!r}")
        if msg.channel == "private" and (msg.to is None or not 0 <= msg.to < seats or msg.to == sender):
            raise InvalidActionError(f"messages[{i}].to must be a seat in [0, {seats - 1}] other than the sender "
                                     f"{sender}, got {msg.to}")
        if msg.winner is not None and not 0 <= msg.winner < seats:
            raise InvalidActionError(f"messages[{i}].winner must be a seat in [0, {seats - 1}] or null, "
                                     f"got {msg.winner}")
        if msg.payment and msg.channel != "private":
            raise InvalidActionError(f"messages[{i}].payment must be 0 on a {msg.channel} message (payments ride "
                                     f"private messages), got {msg.payment}")
        total += msg.payment
        if total > policy.side_payment_cap + 1e-12:
            raise InvalidActionError(f"messages[{i}].payment brings this round's side payments to {total:g}, above "
                                     f"side_payment_cap={policy.side_payment_cap:g}")
        if total > means + 1e-12:
            raise InvalidActionError(f"messages[{i}].payment brings this round's side payments to {total:g}, above "
                                     f"the payer's means {means:g} (endowment plus utility so far)")
        out.append(msg)
    return out


def to_outbox(messages: list[Message], slots: int) -> Outbox:
    """Validated messages of one seat in one market as a (1, 1, slots) :class:`Outbox`."""
    box = Outbox.empty(1, 1, slots)
    for i, msg in enumerate(messages):
        box.channel[0, 0, i] = CHANNELS.index(msg.channel)
        box.to[0, 0, i] = -1 if msg.to is None else msg.to
        box.kind[0, 0, i] = KINDS.index(msg.kind)
        box.winner[0, 0, i] = -1 if msg.winner is None else msg.winner
        box.cap[0, 0, i], box.value[0, 0, i], box.payment[0, 0, i] = msg.cap, msg.value, msg.payment
    return box
