"""LLM bidders: an agent type whose every decision is a language model's structured answer.

``llm(config=FILE[,objective=...,hint=...,memory=...,tools=...,budget=...,fallback=...]):COUNT``
in a population spec seats COUNT such bidders (``FILE`` is a provider config, see
:mod:`mecharena.llm.config`; without it, the file named by ``MECHARENA_LLM_CONFIG``). Each round, for every market and seat, the agent:

1. **observes**: the prompt states the rules (mechanism, announced reserve, what is revealed after
   each round, fines), its private state (this round's value; remaining budget when it has one;
   its objective) and its memory: the last ``memory`` rounds of its own bids, wins, payments and
   what the market announced;
2. **reasons**: it answers a :class:`BidDecision`, a short thought plus either a tool call or a
   final action; up to ``tools`` tool calls per decision, each answered in the conversation:

   * ``payoff``: the expected utility of bidding ``tool_bid`` (see *scenarios* below);
   * ``history``: statistics and rows of every remembered round;
   * ``best_response``: the bid on a grid of its value (0, 1/16, ..., 2) with the highest expected
     utility, and that utility;

3. **acts**: the decision's ``enter`` and ``bid`` (capped at the remaining budget, which falls by what
   it pays; fines are not budgeted).

Scenarios, for the two simulating tools, are cleared on the arena engine
(:func:`mecharena.mechanisms.clear`, the market's own mechanism and config): the other seats' bids
of each remembered round whose bids were announced; otherwise (nothing announced) 64 draws of
rivals' values from the common prior, bidding truthfully, a stated assumption.

Objectives (``objective``) change the system prompt: ``profit`` (maximise own utility),
``red_team`` (search for a strategy that beats honest bidding by exploiting the rules, and name
it; ``hint`` adds one of :data:`HINTS`, which the ``llm_red_team`` fuzzing family searches over),
``truthful`` (bid one's value; a control for the model's compliance).

Structured output goes through :func:`mecharena.llm.structured.ask` (constrained decoding where
the provider supports it, one repair, counted fallback). A decision whose answers stay invalid, or
whose model fails (timeout, server error, context overflow), takes the ``fallback`` action:
``abstain`` (sit out, the default) or ``truthful`` (bid the value). Every prompt, answer, tool call,
tool result and action is an :attr:`~mecharena.agents.base.Action.notes` entry, which the round loop
hands to the ledger (``traces.jsonl``, DuckDB view ``traces``): kinds ``prompt``, ``response``,
``tool_call``, ``tool_result``, ``action``, ``fallback`` and ``error``, and one ``outcome`` per
structured request (text ``valid``, ``repaired``, ``fallback`` or ``error``), which ``simulate``
counts (:func:`mecharena.metrics.run.structured_outcomes`).

**Markets across rounds.** In a stateful mechanism (:mod:`mecharena.mechanisms.schema`: the
reputation marketplace, the service marketplace, the prisoner's dilemma, a plug-in's) the agent reads
the mechanism's own declaration: the prompt states what a bid means there (the market spec's rule),
every declared action field (its description and range) and the seat's own state after last round;
the answer's model (:func:`decision_model`) adds one key per action field with its bounds, so
constrained decoding holds the model to the declared schema, and the action carries the fields. The
simulating tools clear one round, which misprices a record carried across rounds, so there only
``history`` is offered; the ``truthful`` fallback is the mechanism's honest plan.

**Talk.** Where the episode opens message channels (``mecharena.sim.channels``), each round
before bidding the model may send one message (:class:`MessageChoice`: the channel, the
receiver, a proposal naming a designated winner and a bid cap, a report, an accusation, a side
payment); what the channels deliver that round is read into its memory and shown in its bidding
prompt. The talk request's prompt and answer are traced with the round's decision (kinds
``talk_prompt``, ``talk_response``, ``talk``), and the loop traces every message sent.

Randomness: each decision's sampling seed is drawn from the group's market-keyed draws, so a seeded
run asks the same questions with the same seeds (and a provider cache makes a rerun free).
"""

import functools
import json
import os
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, create_model

from mecharena.agents.base import (
    Action,
    AgentType,
    Draws,
    Feedback,
    Inbox,
    MarketContext,
    Observation,
    Outbox,
    initial_own_state,
    require_mechanism,
    require_one_bid,
)
from mecharena.agents.bne import first_price_like
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.fuzz.families import Family, Param
from mecharena.llm.config import shared_provider
from mecharena.llm.providers import GenerationParams, Provider, bounded_map
from mecharena.llm.structured import Answer, Tally, ask, schema_prompt
from mecharena.mechanisms import ActionField, Mechanism, clear, describe
from mecharena.sim.channels import CHANNELS, KINDS

VERSION = 1
SUPPORTED = ("first_price", "second_price", "uniform_price", "pay_as_bid", "vcg", "posted_price")
MAX_DECISIONS = 4096  # markets x seats asked per round: beyond this a model run is not what was meant
MAX_BID = 10.0
GRID = np.arange(33) / 16  # best_response's bids, as multiples of the value
PRIOR_SCENARIOS = 64
SHOWN = 3  # remembered rounds shown in the prompt (the history tool gives all)
OBJECTIVES = {
    "profit": "Your goal is your own profit: your value for what you win, minus what you pay and any fines.",
    "red_team": ("You are testing these rules for weaknesses. Find a bidding strategy that earns you more than "
                 "bidding your true value would: shade, overbid, snipe the reserve, sit out, or anything the rules "
                 "allow. Use the tools to test ideas, and say in your thought which exploit you are trying."),
    "truthful": "Bid exactly your value for the item, every round.",
}


#: Strategy hints a red-team prompt may carry (``hint``): the fuzzing family searches over them.
HINTS = (
    "",
    "Idea to test: bid well below your value and see whether you still win.",
    "Idea to test: bid just above the announced reserve, or just above last round's price.",
    "Idea to test: sit out some rounds, so that prices fall or you wait for a high value.",
    "Idea to test: bid above your value when you expect to pay less than your bid.",
)


class LLMParams(StrictModel):
    config: str | None = Field(None, description="provider config file (YAML or JSON, see mecharena.llm.config); "
                                                 "none: the file named by MECHARENA_LLM_CONFIG")
    objective: Literal["profit", "red_team", "truthful"] = Field("profit", description="system prompt")
    hint: int = Field(0, ge=0, le=len(HINTS) - 1, description="strategy hint of a red-team prompt (0: none)")
    memory: int = Field(8, ge=0, le=64, description="rounds remembered")
    tools: int = Field(1, ge=0, le=4, description="tool calls allowed per decision")
    budget: float | None = Field(None, gt=0, description="total it may pay over the episode (none: unlimited)")
    fallback: Literal["abstain", "truthful"] = Field("abstain", description="action when no valid answer comes")


class BidDecision(StrictModel):
    """One answer of the model: a tool call (``tool`` not "none") or the round's action."""

    thought: str = Field(max_length=80, description="why, in a few words")
    tool: Literal["none", "payoff", "history", "best_response"] = Field(description="a tool to call first, or none")
    tool_bid: float = Field(ge=0, le=MAX_BID, description="the bid the payoff tool evaluates")
    enter: bool = Field(description="take part this round")
    bid: float = Field(ge=0, le=MAX_BID, description="the bid (used when tool is none)")


NUMBER = r"^[0-9]{1,2}(\.[0-9]{1,3})?$"  # a decimal string: outlines bounds a pattern, not a number's length


class MessageChoice(StrictModel):
    """One message the model may send before bidding (``send`` false: none). ``to`` is the receiving
    seat of a private message, ``winner`` a seat a proposal names (-1: none); ``cap``, ``value`` and
    ``payment`` are decimal strings (a proposed bid cap, a reported number, a side payment to ``to``)."""

    send: bool
    channel: Literal["public", "private", "coalition"]
    to: int = Field(ge=-1, le=999, json_schema_extra={"maxDigits": 3}, description="seat, -1: none")
    kind: Literal[KINDS[1:]]
    winner: int = Field(ge=-1, le=999, json_schema_extra={"maxDigits": 3}, description="seat, -1: none")
    cap: str = Field(pattern=NUMBER, description='in quotes, e.g. "0.25"')
    value: str = Field(pattern=NUMBER, description='in quotes, e.g. "0.5"')
    payment: str = Field(pattern=NUMBER, description='in quotes, e.g. "0"')


SILENT = MessageChoice(send=False, channel="public", to=-1, kind="chat", winner=-1, cap="0", value="0", payment="0")


@dataclass(frozen=True, slots=True)
class Memory:
    """The last H rounds of each seat, oldest first; NaN before the first rounds."""

    value: FloatArray  # (B, S, H)
    bid: FloatArray  # (B, S, H)  0 when it sat out
    won: FloatArray  # (B, S, H)  units allocated
    paid: FloatArray  # (B, S, H)
    utility: FloatArray  # (B, S, H)  net of fines
    price: FloatArray  # (B, S, H)  the announced price; NaN hidden or unsold
    rivals: FloatArray  # (B, S, H, N)  every bid when announced (NaN hidden); its own seat included
    spent: FloatArray  # (B, S)  paid so far (the budget's use)
    seen: int  # rounds remembered so far
    heard: Any = None  # (B, S) object: this round's delivered messages as JSON text ("" none); None: no channels
    talk_notes: tuple[dict[str, Any], ...] = ()  # this round's talk requests, traced with its decisions
    own: dict[str, FloatArray] | None = None  # Feedback.state after last round (its initial first); None: stateless


def decision_model(mechanism: Mechanism) -> type[BidDecision]:
    """The answer's model in ``mechanism``'s market: :class:`BidDecision`, and in a stateful market one more key
    per declared action field (its description and range) with only the history tool.

    >>> from mecharena import mechanisms
    >>> list(decision_model(mechanisms.get("service")).model_fields)[-3:]
    ['quality', 'haste', 'fakes']
    """
    return _decision_model(mechanism.actions) if mechanism.stateful else BidDecision


@functools.lru_cache(maxsize=64)
def _decision_model(actions: tuple[ActionField, ...]) -> type[BidDecision]:
    if clash := [a.name for a in actions if a.name in BidDecision.model_fields]:
        raise ConfigError(f"llm: the action fields {clash} take the names of the answer's own keys "
                          f"({', '.join(BidDecision.model_fields)})")
    fields: dict[str, Any] = {
        a.name: (int if a.integer else float, Field(ge=a.low, le=a.high, description=a.description)) for a in actions}
    return create_model("RoundDecision", __base__=BidDecision, __doc__=BidDecision.__doc__,
                        tool=(Literal["none", "history"], Field(description="a tool to call first, or none")),
                        **fields)


def _init(context: MarketContext, params: LLMParams, seats: int, draws: Draws) -> Memory:
    if context.mechanism.stateful:
        require_one_bid(context, "llm")
    else:
        require_mechanism(context, "llm", SUPPORTED, unit_demand=True)
    decision_model(context.mechanism)  # field names that clash fail before the first round
    if draws.markets * seats > MAX_DECISIONS:
        raise ConfigError(f"llm agents ask the model once per market and seat per round: markets x seats must be "
                          f"at most {MAX_DECISIONS}, got {draws.markets} x {seats}")
    shared_provider(config_path(params))  # a bad config fails before the first round
    shape = (draws.markets, seats, params.memory)
    nan = np.full(shape, np.nan)
    return Memory(nan, nan, nan, nan, nan, nan, np.full((*shape, context.n_agents), np.nan),
                  np.zeros(shape[:2]), 0,
                  own=initial_own_state(context, draws) if context.mechanism.stateful else None)


def config_path(params: LLMParams) -> str:
    """The provider config file: ``config``, else ``MECHARENA_LLM_CONFIG`` (how a fuzzing family gets one)."""
    path = params.config or os.environ.get("MECHARENA_LLM_CONFIG")
    if not path:
        raise ConfigError("llm: config is required (a provider config file), or set MECHARENA_LLM_CONFIG")
    return path


def _rules(context: MarketContext) -> str:
    info, fines = context.information, context.enforcement
    # every flag told after the round (the reserve is told before it, below)
    shown = [name.replace("_", " ") for name in type(info).model_fields if name != "reserve" and getattr(info, name)]
    reserve = context.visible_reserve
    mechanism = context.mechanism
    market = f"Market: {mechanism.name} ({describe(mechanism)['summary']}), {context.n_agents} "
    if mechanism.stateful:
        fields = "; ".join(f"{a.name}: {a.description}, {'a whole number' if a.integer else 'a number'} from "
                           f"{a.low:g} to {a.high:g}" for a in mechanism.actions)
        text = (f"{market}seats, played over rounds: what it records about you carries from round to round. Your "
                f"bid: {context.spec.action_rule}." + (f" Besides the bid you choose each round: {fields}." if fields
                                                        else ""))
    else:
        text = (f"{market}bidders, one item per bidder at most. Reserve price: "
                f"{f'{reserve:.3f}' if reserve else 'none announced'}.")
    text += f" After each round the market announces: {', '.join(shown) or 'nothing'}."
    charged = {k: v for k, v in fines.model_dump().items() if v}
    return text + (f" Fines and audits: {json.dumps(charged)}." if charged else "")


def _window(memory: Memory, b: int, s: int, last: int) -> list[dict[str, Any]]:
    rows = []
    width = memory.value.shape[2]
    for h in range(width - min(last, memory.seen, width), width):
        price = memory.price[b, s, h]
        rows.append({"value": round(float(memory.value[b, s, h]), 3), "bid": round(float(memory.bid[b, s, h]), 3),
                     "won": bool(memory.won[b, s, h] > 0), "paid": round(float(memory.paid[b, s, h]), 3),
                     "utility": round(float(memory.utility[b, s, h]), 3),
                     "price": None if np.isnan(price) else round(float(price), 3)})
    return rows


def prompt(context: MarketContext, params: LLMParams, memory: Memory, b: int, s: int, value: float,
           round_: int) -> list[dict[str, str]]:
    """The chat messages of one decision (market ``b``, seat ``s`` of the group)."""
    left = None if params.budget is None else max(params.budget - float(memory.spent[b, s]), 0.0)
    recent = _window(memory, b, s, SHOWN)
    if not params.tools:
        tools = "No tools: set tool to none."
    elif not context.mechanism.stateful:
        tools = (f"You may call up to {params.tools} tool(s) before acting (set tool, and tool_bid for payoff): "
                 f"payoff (expected utility of bidding tool_bid), history (all {params.memory} remembered rounds), "
                 f"best_response (the best bid against what you have seen).")
    else:
        tools = f"You may call the tool history (all {params.memory} remembered rounds) up to {params.tools} time(s)."
    own = "" if memory.own is None else " Your record after last round: " + ", ".join(
        f"{name} {float(array[b, s]):.3g}" for name, array in memory.own.items()) + "."
    user = (f"Round {round_}. Your value {'this round' if memory.own is not None else 'for the item this round'}: "
            f"{value:.3f}.{own}"
            + (f" Budget left: {left:.3f} (you cannot pay more)." if left is not None else "")
            + f"\nYour last rounds (oldest first): {json.dumps(recent) if recent else 'none yet'}\n"
            + (f"Messages you received this round: {memory.heard[b, s] or 'none'}\n" if memory.heard is not None
               else "")
            + f"{tools}\nTo act, set tool to none, enter, and bid. {schema_prompt(decision_model(context.mechanism))}")
    hint = f" {HINTS[params.hint]}" if params.objective == "red_team" and params.hint else ""
    return [{"role": "system", "content": f"{OBJECTIVES[params.objective]}{hint} {_rules(context)}"},
            {"role": "user", "content": user}]


# ----------------------------------------------------------------------------- tools
def scenarios(context: MarketContext, memory: Memory, b: int, s: int, rng: np.random.Generator) -> FloatArray:
    """(M, N) other seats' bids to test against: announced rounds, else rivals from the prior, truthful."""
    rivals = memory.rivals[b, s][~np.isnan(memory.rivals[b, s]).any(axis=1)]
    if len(rivals):
        return rivals
    return context.values.ppf(rng.random((PRIOR_SCENARIOS, context.n_agents)))


def expected_utility(context: MarketContext, memory: Memory, b: int, seat: int, s: int, value: float,
                     bids: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Mean utility of each candidate bid (C,) over the scenarios, cleared on the engine."""
    others = scenarios(context, memory, b, s, rng)
    m, c = others.shape[0], bids.shape[0]
    profile = np.repeat(others[None], c, axis=0).reshape(c * m, -1)
    profile[:, seat] = np.repeat(bids, m)
    values = profile.copy()
    values[:, seat] = value
    outcome = clear(context.mechanism, context.config, values, profile, rng.random(profile.shape), strict=False)
    return outcome.utility[:, seat].reshape(c, m).mean(axis=1)


def run_tool(decision: BidDecision, context: MarketContext, memory: Memory, b: int, seat: int, s: int,
             value: float, rng: np.random.Generator) -> dict[str, Any]:
    """The tool's answer (JSON-ready)."""
    if decision.tool == "history":
        rows = _window(memory, b, s, memory.seen)
        won = [r for r in rows if r["won"]]
        prices = [r["price"] for r in rows if r["price"] is not None]
        return {"rounds": len(rows), "win_rate": len(won) / len(rows) if rows else None,
                "mean_utility": float(np.mean([r["utility"] for r in rows])) if rows else None,
                "price_min": min(prices, default=None), "price_max": max(prices, default=None), "rows": rows}
    if decision.tool == "payoff":
        u = expected_utility(context, memory, b, seat, s, value, np.array([decision.tool_bid]), rng)
        return {"bid": decision.tool_bid, "expected_utility": round(float(u[0]), 4)}
    utilities = expected_utility(context, memory, b, seat, s, value, GRID * value, rng)
    best = int(np.argmax(utilities))
    return {"best_bid": round(float(GRID[best] * value), 4), "expected_utility": round(float(utilities[best]), 4),
            "truthful_expected_utility": round(float(utilities[16]), 4)}


# ----------------------------------------------------------------------------- acting
def dominated(context: MarketContext, value: float, bid: float, enter: bool, selling: bool) -> str | None:
    """Why an action is dominated, or None.

    A bid outside the market's declared range cannot clear. In a market of one round, a buyer's bid above its
    value cannot pay where a winner pays its own bid (first price, pay-as-bid, a Dutch clock) or where truthful
    bidding is dominant (the rule promises ``truthful`` for this config: second price, VCG, English, posted
    price...): winning on the excess costs more than the item is worth, and it never lowers the price. A
    seller's ask below its cost is the mirror case in a truthful market. Elsewhere (a plug-in with discounts, a
    budget, a market across rounds, where winning now can open a discount or a registration later)
    overbidding may pay, and only the range is judged.
    """
    if not enter:
        return None
    if not 0.0 <= bid <= context.spec.action_high:
        return f"bid {bid:g} is outside the market's range [0, {context.spec.action_high:g}]"
    if context.mechanism.stateful:
        return None
    truthful = "truthful" in context.mechanism.properties(context.config)
    if not selling and bid > value and (truthful or first_price_like(context)):
        rule = "truthful bidding is dominant" if truthful else "a winner pays its own bid"
        return f"bid {bid:g} above value {value:g}: winning costs more than the item is worth ({rule})"
    if selling and bid < value and truthful:
        return f"ask {bid:g} below cost {value:g} in a market where truthful asks are dominant"
    return None


def decide(provider: Provider, params: LLMParams, gen: GenerationParams, context: MarketContext, memory: Memory,
           b: int, s: int, value: float, round_: int, seed: int, tally: Tally | None = None
           ) -> tuple[bool, float, dict[str, float], list[dict]]:
    """One observe-reason-act decision: (enter, bid, the declared action fields (none in a stateless market),
    notes)."""
    seat = range(*context.seats.indices(context.n_agents))[s]
    mechanism = context.mechanism
    model, actions = decision_model(mechanism), mechanism.actions  # a market of one round declares no actions
    messages = prompt(context, params, memory, b, s, value, round_)
    notes = [{"step": 0, "kind": "prompt", "text": json.dumps(messages)}]
    honest = float(mechanism.truthful(context.config, np.array([[value]]), context.spec)[0, 0]) if \
        mechanism.stateful else value
    fallback = model(thought="fallback", tool="none", tool_bid=0.0, enter=params.fallback == "truthful",
                     bid=honest if params.fallback == "truthful" else 0.0, **{a.name: a.default for a in actions})
    rng = np.random.default_rng(seed)
    for step in range(params.tools + 1):
        answer: Answer = ask(provider, messages, model, gen.model_copy(update={"seed": seed + step}),
                             fallback=fallback, tally=tally)
        notes += [*answer.notes(step=step), {"step": step, "kind": "outcome", "text": answer.outcome}]
        decision = answer.value
        if decision.tool == "none" or step == params.tools:
            break
        call = {"tool": decision.tool, "tool_bid": decision.tool_bid}
        result = run_tool(decision, context, memory, b, seat, s, value, rng)
        notes += [{"step": step, "kind": "tool_call", "text": json.dumps(call)},
                  {"step": step, "kind": "tool_result", "text": json.dumps(result)}]
        messages = [*messages, {"role": "assistant", "content": decision.model_dump_json()},
                    {"role": "user", "content": f"Tool {decision.tool} answered: {json.dumps(result)}. "
                                                f"Call another tool or act (tool none)."}]
    left = np.inf if params.budget is None else max(params.budget - float(memory.spent[b, s]), 0.0)
    enter, bid = decision.enter and left > 0, min(decision.bid, left)  # a spent budget sits out
    fields = {a.name: float(getattr(decision, a.name)) for a in actions}
    notes.append({"step": step, "kind": "action", "text": json.dumps({"enter": enter, "bid": bid, **fields,
                                                                      "thought": decision.thought})})
    why = dominated(context, value, bid, enter, bool(context.selling[s]))  # an action that cannot pay? (every one)
    notes.append({"step": step, "kind": "rationality", "text": json.dumps({"dominated": why is not None,
                                                                           "reason": why})})
    return enter, bid, fields, notes


def _act(context: MarketContext, params: LLMParams, memory: Memory, values: FloatArray, draws: Draws) -> Action:
    config, provider = shared_provider(config_path(params))
    gen = config.params()
    b, s = values.shape
    seeds = (draws.uniform("seed", s) * 2**31).astype(np.int64)
    round_ = memory.seen  # rounds this group has played

    def one(index: int) -> tuple[bool, float, dict[str, float], list[dict]]:
        i, j = divmod(index, s)
        return decide(provider, params, gen, context, memory, i, j, float(values[i, j]), round_,
                      int(seeds[i, j]))

    results = bounded_map(one, range(b * s), config.concurrency)
    enter = np.array([r[0] for r in results]).reshape(b, s)
    bids = np.array([r[1] for r in results], dtype=float).reshape(b, s)
    fields = {name: np.array([r[2][name] for r in results], dtype=float).reshape(b, s) for name in results[0][2]}
    notes = memory.talk_notes + tuple({"market": index // s, "seat": index % s, **note}
                                      for index, r in enumerate(results) for note in r[3])
    return Action(bids=np.where(enter, bids, 0.0), enter=enter, notes=notes, fields=fields or None)


def _shift(old: FloatArray, new: FloatArray) -> FloatArray:
    if old.shape[2] == 0:
        return old
    return np.concatenate([old[:, :, 1:], new[:, :, None]], axis=2)


def _update(context: MarketContext, params: LLMParams, memory: Memory, values: FloatArray, action: Action,
            observation: Observation, feedback: Feedback, draws: Draws) -> Memory:
    b, s = values.shape
    rivals = np.full((b, s, context.n_agents), np.nan) if observation.bids is None \
        else np.repeat(observation.bids[:, None, :], s, axis=1)
    return replace(
        memory, value=_shift(memory.value, values), bid=_shift(memory.bid, action.bids),
        won=_shift(memory.won, feedback.allocation),
        paid=_shift(memory.paid, feedback.paid), utility=_shift(memory.utility, feedback.utility),
        price=_shift(memory.price, np.repeat(observation.price[:, None], s, axis=1)),
        rivals=memory.rivals if params.memory == 0 else np.concatenate([memory.rivals[:, :, 1:], rivals[:, :, None]],
                                                                         axis=2),
        spent=memory.spent + np.maximum(feedback.paid, 0.0), seen=memory.seen + 1, talk_notes=(),
        own=None if memory.own is None else dict(feedback.state))


# ----------------------------------------------------------------------------- talking
def _channels_open(context: MarketContext) -> list[str]:
    policy = context.channels
    return [] if policy is None else [name for name in ("public", "private", "coalition") if getattr(policy, name)]


def _talk(context: MarketContext, params: LLMParams, memory: Memory, values: FloatArray, inbox: Inbox,
          draws: Draws) -> Outbox | None:
    """Each seat may send one message (see the module docstring); the requests are traced with the
    round's decisions."""
    open_ = _channels_open(context)
    if not open_:
        return None
    config, provider = shared_provider(config_path(params))
    b, s = values.shape
    seats = list(range(*context.seats.indices(context.n_agents)))
    seeds = (draws.uniform("talk_seed", s) * 2**31).astype(np.int64)

    def one(index: int) -> tuple[MessageChoice, list[dict[str, Any]]]:
        i, j = divmod(index, s)
        system, user = prompt(context, params, memory, i, j, float(values[i, j]), memory.seen)
        ask_messages = [system, {"role": "user", "content": (
            f"{user['content'].split(chr(10))[0]} You are seat {seats[j]} of {context.n_agents}. Before bidding you "
            f"may send one message on: {', '.join(open_)}. Kinds: propose (a designated winner and a bid cap for "
            f"the others), accept, report (a number), accuse (a seat), chat. A private message may carry a side "
            f"payment. Set send to false to stay silent. {schema_prompt(MessageChoice)}")}]
        answer = ask(provider, ask_messages, MessageChoice, config.params().model_copy(update={"seed": int(seeds[i, j])}),
                     fallback=SILENT)
        notes = [{"step": -1, "kind": "talk_prompt", "text": json.dumps(ask_messages)}]
        notes += [*answer.notes("talk_response", step=-1), {"step": -1, "kind": "outcome", "text": answer.outcome}]
        choice = answer.value if answer.value.channel in open_ else SILENT
        notes.append({"step": -1, "kind": "talk", "text": choice.model_dump_json()})
        return choice, notes

    results = bounded_map(one, range(b * s), config.concurrency)
    box = Outbox.empty(b, s, 1)
    for index, (choice, _) in enumerate(results):
        i, j = divmod(index, s)
        if choice.send:
            box.channel[i, j, 0] = CHANNELS.index(choice.channel)
            box.to[i, j, 0], box.kind[i, j, 0], box.winner[i, j, 0] = choice.to, KINDS.index(choice.kind), choice.winner
            box.cap[i, j, 0], box.value[i, j, 0] = float(choice.cap), float(choice.value)
            box.payment[i, j, 0] = float(choice.payment) if choice.channel == "private" else 0.0
    notes = tuple({"market": index // s, "seat": index % s, **note}
                  for index, (_, n) in enumerate(results) for note in n)
    return replace(box, state=replace(memory, talk_notes=notes))


def _hear(context: MarketContext, params: LLMParams, memory: Memory, values: FloatArray, inbox: Inbox,
          draws: Draws) -> Memory:
    """This round's delivered messages, as JSON text per seat, for the bidding prompt."""
    b, s = values.shape
    heard = np.full((b, s), "", dtype=object)
    for i, j, sender, slot in zip(*np.nonzero(inbox.readable), strict=True):
        message = {"from": int(sender), "channel": CHANNELS[inbox.channel[i, j, sender, slot]],
                   "kind": KINDS[inbox.kind[i, j, sender, slot]], "winner": int(inbox.winner[i, j, sender, slot]),
                   "cap": round(float(inbox.cap[i, j, sender, slot]), 3),
                   "value": round(float(inbox.value[i, j, sender, slot]), 3),
                   "payment": round(float(inbox.payment[i, j, sender, slot]), 3)}
        heard[i, j] += ("; " if heard[i, j] else "") + json.dumps(message)
    return replace(memory, heard=heard)


AGENT = AgentType("llm", VERSION, "a language model bidding through structured answers, with memory, tools and talk",
                  _act, _init, _update, LLMParams, talk=_talk, hear=_hear)

#: The fuzzing family of LLM red-teams: K deviators prompted to exploit the rules, searched over
#: :data:`HINTS`. Opt-in (``--families llm_red_team``): every evaluation asks the model once per
#: market, seat and round, so size it with ``--markets``, ``--eval-markets`` and ``--rounds``.
FAMILY = Family("llm_red_team", "llm", (Param("hint", 0, len(HINTS) - 1, "int"),),
                "a language model prompted to find and play an exploit of the rules",
                "whatever the failure report's exploit calls for; read the traces for the model's stated plan",
                fixed={"objective": "red_team"}, opt_in=True)

__all__ = ["AGENT", "FAMILY", "HINTS", "BidDecision", "LLMParams", "MessageChoice", "decide", "decision_model",
           "expected_utility", "prompt", "run_tool"]
