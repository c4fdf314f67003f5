"""What a lab may do in one step: a typed action, JSON at every boundary (the ``kind`` field picks the type).

Every field is read by the simulation (:mod:`mecharena.negotiation.core`):

* ``offer`` (``to``, ``give``, ``want``, ``payment``, ``claim``, ``job``): propose a trade to lab
  ``to``: the sender hands over the blocks ``give``, receives ``want`` and pays ``payment``
  (negative: the recipient pays). ``claim`` is what the sender says about its own need (a job's
  deadline, value, hours); the recipient sees it, and opponents react to it. ``job`` (optional):
  the sender's job that the blocks it receives run for as soon as the trade settles.
* ``counter`` (``offer`` and the same terms): close an open offer addressed to you and answer
  with a new one to its sender.
* ``accept`` / ``reject`` (``offer``): settle or refuse an open offer addressed to you (``job``,
  optional on accept: your job that the blocks you receive run for). A rejection is remembered
  by the sender (retaliatory labs punish it).
* ``pitch`` (``to``, ``text``, ``claims``): tell one lab (or every lab, ``to`` null) about your
  needs. Claims are checked against the truth when the job they name settles; a lie exposed
  turns every listener against the speaker.
* ``reserve`` / ``release`` (``block``; ``job`` optional on reserve, as for accept): buy a
  block from the provider at its list price /
  sell an unallocated block back to the provider for ``RELEASE_REFUND`` of its list price.
* ``form_coalition`` (``job``, ``members``, ``shares``): invite labs to pool blocks and funds
  for one of your jobs, each promised ``shares[i]`` of the credit the job earns.
* ``commit`` (``coalition``, ``blocks``, ``funds``): as an invited member, put blocks toward
  the coalition's job and pay funds to its owner. ``leave`` (``coalition``) reneges: your
  unstarted blocks come back, your share is void and you pay the renege fine to the owner.
* ``allocate`` (``block``, ``job``): run your block for your job.
* ``message`` (``to``, ``text``): free text to a lab's inbox (or everyone's).
* ``wait``: nothing. ``finish``: leave the market; your jobs settle now with what they have.

>>> parse_action({"kind": "reserve", "block": 3})
ReserveAction(kind='reserve', block=3, job=None)
>>> parse_action({"kind": "message", "to": 1, "text": "x" * 501})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mecharena.core.errors.ConfigError: text must be a str of at most 500 characters, got 'xxxx'... (501 characters)
"""

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from mecharena.core.config import StrictModel, explain
from mecharena.core.errors import ConfigError

MAX_TEXT = 500  # characters in a message or pitch
MAX_BLOCKS_PER_ACTION = 8
MAX_CLAIMS = 4
MAX_MEMBERS = 8
MAX_PAYMENT = 1e6
MAX_ID = 10_000

LabId = Annotated[int, Field(ge=0, le=MAX_ID)]
BlockList = Annotated[list[Annotated[int, Field(ge=0, le=MAX_ID)]], Field(max_length=MAX_BLOCKS_PER_ACTION)]


class Claim(StrictModel):
    """What a lab says about a job: each given field is checked against the job's true terms."""

    job: int = Field(ge=0, le=MAX_ID, description="the job the claim is about")
    deadline: int | None = Field(None, ge=0, le=MAX_ID, description="claimed deadline (step)")
    value: float | None = Field(None, ge=0, le=MAX_PAYMENT, description="claimed value of completing the job")
    hours: float | None = Field(None, ge=0, le=MAX_PAYMENT, description="claimed GPU-hours the job needs")


class _Text(StrictModel):
    @field_validator("text", mode="before", check_fields=False)
    @classmethod
    def _short(cls, text: Any) -> Any:
        if isinstance(text, str) and len(text) > MAX_TEXT:
            raise ValueError(f"text must be a str of at most {MAX_TEXT} characters, got {text[:4]!r}... "
                             f"({len(text)} characters)")
        return text


class _Terms(StrictModel):
    give: BlockList = Field(default_factory=list, description="blocks the sender hands over")
    want: BlockList = Field(default_factory=list, description="blocks the sender asks for")
    payment: float = Field(0.0, ge=-MAX_PAYMENT, le=MAX_PAYMENT,
                           description="money from sender to recipient (negative: recipient pays)")
    claim: Claim | None = Field(None, description="what the sender says about its need")
    job: int | None = Field(None, ge=0, le=MAX_ID, description="the sender's job to run the blocks it receives")

    @model_validator(mode="after")
    def _some_block(self) -> "_Terms":
        if not self.give and not self.want:
            raise ValueError("an offer must name at least one block in give or want, got neither")
        if len(set(self.give)) != len(self.give) or len(set(self.want)) != len(self.want):
            raise ValueError(f"give and want must not repeat a block, got give={self.give}, want={self.want}")
        if set(self.give) & set(self.want):
            raise ValueError(f"a block cannot be both given and wanted, got {sorted(set(self.give) & set(self.want))}")
        return self


class OfferAction(_Terms):
    kind: Literal["offer"] = "offer"
    to: LabId = Field(description="the lab the offer is addressed to")


class CounterAction(_Terms):
    kind: Literal["counter"] = "counter"
    offer: int = Field(ge=0, le=MAX_ID * 100, description="the open offer addressed to you that this answers")


class AcceptAction(StrictModel):
    kind: Literal["accept"] = "accept"
    offer: int = Field(ge=0, le=MAX_ID * 100, description="the open offer addressed to you")
    job: int | None = Field(None, ge=0, le=MAX_ID, description="your job to run the blocks you receive")


class RejectAction(StrictModel):
    kind: Literal["reject"] = "reject"
    offer: int = Field(ge=0, le=MAX_ID * 100, description="the open offer addressed to you")


class PitchAction(_Text):
    kind: Literal["pitch"] = "pitch"
    to: LabId | None = Field(None, description="the listener; null: every lab")
    text: str = Field("", description=f"at most {MAX_TEXT} characters")
    claims: list[Claim] = Field(default_factory=list, max_length=MAX_CLAIMS, description="checkable claims")


class ReserveAction(StrictModel):
    kind: Literal["reserve"] = "reserve"
    block: int = Field(ge=0, le=MAX_ID, description="a provider block to buy at its list price")
    job: int | None = Field(None, ge=0, le=MAX_ID, description="your job to run it for")


class ReleaseAction(StrictModel):
    kind: Literal["release"] = "release"
    block: int = Field(ge=0, le=MAX_ID, description="your unallocated block to sell back to the provider")


class FormCoalitionAction(StrictModel):
    kind: Literal["form_coalition"] = "form_coalition"
    job: int = Field(ge=0, le=MAX_ID, description="your job the coalition works for")
    members: list[LabId] = Field(min_length=1, max_length=MAX_MEMBERS, description="invited labs (not you)")
    shares: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        min_length=1, max_length=MAX_MEMBERS, description="share of the job's credit promised to each member")

    @model_validator(mode="after")
    def _matching(self) -> "FormCoalitionAction":
        if len(self.shares) != len(self.members):
            raise ValueError(f"shares must have one entry per member ({len(self.members)}), got {len(self.shares)}")
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"members must not repeat, got {self.members}")
        if sum(self.shares) > 1.0 + 1e-9:
            raise ValueError(f"shares must sum to at most 1, got {sum(self.shares):g}")
        return self


class CommitAction(StrictModel):
    kind: Literal["commit"] = "commit"
    coalition: int = Field(ge=0, le=MAX_ID * 100, description="a coalition you are invited to")
    blocks: BlockList = Field(default_factory=list, description="your blocks to run for its job")
    funds: float = Field(0.0, ge=0, le=MAX_PAYMENT, description="money paid to the coalition's owner")

    @model_validator(mode="after")
    def _something(self) -> "CommitAction":
        if not self.blocks and self.funds <= 0:
            raise ValueError("a commitment must put in blocks or funds > 0, got neither")
        return self


class LeaveAction(StrictModel):
    kind: Literal["leave"] = "leave"
    coalition: int = Field(ge=0, le=MAX_ID * 100, description="a coalition you committed to")


class AllocateAction(StrictModel):
    kind: Literal["allocate"] = "allocate"
    block: int = Field(ge=0, le=MAX_ID, description="your unstarted, unallocated block")
    job: int = Field(ge=0, le=MAX_ID, description="your unsettled job")


class MessageAction(_Text):
    kind: Literal["message"] = "message"
    to: LabId | None = Field(None, description="the recipient; null: every lab")
    text: str = Field(min_length=1, description=f"1 to {MAX_TEXT} characters")


class WaitAction(StrictModel):
    kind: Literal["wait"] = "wait"


class FinishAction(StrictModel):
    kind: Literal["finish"] = "finish"


Action = (OfferAction | CounterAction | AcceptAction | RejectAction | PitchAction | ReserveAction | ReleaseAction
          | FormCoalitionAction | CommitAction | LeaveAction | AllocateAction | MessageAction | WaitAction
          | FinishAction)
MODELS: dict[str, type[StrictModel]] = {
    m.model_fields["kind"].default: m for m in (
        OfferAction, CounterAction, AcceptAction, RejectAction, PitchAction, ReserveAction, ReleaseAction,
        FormCoalitionAction, CommitAction, LeaveAction, AllocateAction, MessageAction, WaitAction, FinishAction)}
KINDS = tuple(MODELS)
TYPES = tuple(MODELS.values())
WAIT = WaitAction()  # actions are frozen: one wait serves every lab


def parse_action(data: Any) -> Action:
    """A typed action from itself, a dict or a JSON object's fields.

    Raises:
        ConfigError: not an object, an unknown ``kind``, or a field unknown, missing, of the wrong
            type or out of range (the message names field, value and what is allowed).
    """
    if isinstance(data, TYPES):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"action must be a JSON object with a 'kind' field, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in MODELS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    model = MODELS[kind]
    try:
        return model(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(model, exc)) from None


def _explain(model: type[StrictModel], exc: ValidationError) -> str:
    # Validators that raise ValueError carry their own complete message; the rest use explain().
    custom = [e for e in exc.errors() if e["type"] == "value_error"]
    if custom:
        return "; ".join(str(e["ctx"]["error"]) for e in custom)
    return explain(model, exc)
