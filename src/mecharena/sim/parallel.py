"""The sealed-bid arena as a PettingZoo ``ParallelEnv``: each learning seat is an agent.

One market (B = 1) of ``n_agents`` seats plays ``rounds`` rounds of a one-sided sealed-bid mechanism
under fixed rules (:class:`ArenaConfig`: mechanism id and config, value distribution, information
policy, enforcement, optional message channels). Seats ``0 .. n - m - 1`` are the agents
``bidder_0`` ... ; the last m seats may be scripted opponents from a population spec
(``opponents="talking_cartel:3"``). Every round is one :func:`mecharena.sim.loop.play_round`.

Spaces (N = n_agents):

* observation: ``Box(-1, inf, (8 + 2N + 5,), float32)``: the seat's value this round, the round's
  fraction of the horizon, then what the market revealed last round (-1 where hidden or before the
  first round): clearing price, the seat's own allocation, payment, fine and utility, whether each
  seat won (N), each seat's bid (N), the bid quantiles (5), and the side payments the seat received;
* action: ``Box([0, 0], [2 * value high, 1], (2,), float32)``: a bid and an enter flag (>= 0.5:
  bid; otherwise sit out). An agent may instead pass ``{"bid": b, "enter": true, "messages": [...]}``
  to talk too (messages: dicts of :class:`mecharena.sim.channels.Message`); a missing action sits out.

Reward: the seat's utility in the round (net of fines, side payments included). After ``rounds``
rounds every agent is truncated. Bad input raises at the boundary, before the round is played:
:class:`ConfigError` for the config, :class:`InvalidActionError` (naming field, value and what is
allowed) for a bid that is negative or not finite, or a message the channels would drop or a
payment they would refuse.

>>> env = ArenaParallelEnv(ArenaConfig(n_agents=3, rounds=2))
>>> obs, infos = env.reset(seed=0)
>>> sorted(obs), obs["bidder_0"].shape == env.observation_space("bidder_0").shape
(['bidder_0', 'bidder_1', 'bidder_2'], True)
"""

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pydantic import Field, ValidationError

from mecharena import agents, mechanisms
from mecharena.agents.base import Action, AgentType, Inbox, NoParams, Outbox
from mecharena.agents.population import Group, Population
from mecharena.core.config import StrictModel, explain
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.channels import CHANNELS, KINDS, ChannelPolicy, check_messages, to_outbox
from mecharena.sim.loop import QUANTILES, Episode, LoopState, initial_state, make_episode, play_round, round_values
from mecharena.sim.seat import SeatedParallelEnv

MAX_SEATS = 64
OWN = 8  # value, time, price, allocation, payment, fine, utility, received


class ArenaConfig(StrictModel):
    """The fixed rules of an arena episode."""

    mechanism: str = "second_price"
    config: dict[str, Any] = Field(default_factory=dict)
    n_agents: int = Field(3, ge=1, le=MAX_SEATS, description="seats in the market, scripted opponents included")
    rounds: int = Field(20, ge=1, le=100_000, description="rounds per episode")
    values: str = "uniform"
    information: InformationPolicy = InformationPolicy()
    enforcement: Enforcement = Enforcement()
    channels: ChannelPolicy | None = None
    opponents: str | None = Field(None, description="population spec of scripted opponents on the last seats")


#: One learner (``bidder_0``) against two truthful bidders in second price: the single-seat shells' default.
ONE_SEAT = ArenaConfig(n_agents=3, rounds=20, opponents="truthful:2")


class BidAction(StrictModel):
    """One agent's action as a dict."""

    bid: float = Field(0.0, ge=0, description="the bid")
    enter: bool = True
    messages: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Orders:
    """The learning seats' orders for the coming round (the external group's state)."""

    bids: np.ndarray  # (1, S)
    enter: np.ndarray  # (1, S)
    outbox: Outbox | None
    inbox: Inbox | None = None


def _act(context, params, state: _Orders, values, draws) -> Action:
    return Action(bids=state.bids, enter=state.enter)


def _talk(context, params, state: _Orders, values, inbox, draws) -> Outbox | None:
    return state.outbox


def _hear(context, params, state: _Orders, values, inbox, draws) -> _Orders:
    return replace(state, inbox=inbox)


EXTERNAL = AgentType(name="external", version=1, summary="bids handed in from outside (the ParallelEnv's agents)",
                     act=_act, talk=_talk, hear=_hear)


def _build(config: ArenaConfig, seed: int) -> tuple[Episode, int]:
    """The episode for ``seed`` and the number of learning seats."""
    mechanism = mechanisms.get(config.mechanism)
    groups: list[Group] = []
    scripted = 0
    if config.opponents:
        opponents = agents.population(config.opponents, seed)
        scripted = opponents.size
        if scripted >= config.n_agents:
            raise ConfigError(f"opponents must leave at least one of the n_agents={config.n_agents} seats to the "
                              f"agents, got {scripted} scripted seats ({config.opponents!r})")
        learners = config.n_agents - scripted
        groups = [replace(g, start=g.start + learners) for g in opponents.groups]
    learners = config.n_agents - scripted
    population = Population((Group(EXTERNAL, NoParams(), learners, 0, 1), *groups))
    episode = make_episode(mechanism, config.config, population, markets=1, seed=seed,
                           values=agents.parse_distribution(config.values), information=config.information,
                           enforcement=config.enforcement, channels=config.channels)
    spec = episode.context.spec
    if spec.value_width or spec.orders_per_agent or spec.sellers is not None:
        raise ConfigError(f"mechanism must be a one-sided sealed-bid auction with one bid per seat, "
                          f"got {config.mechanism}")
    return episode, learners


class ArenaParallelEnv(SeatedParallelEnv):
    """Every learning seat of a sealed-bid market as a PettingZoo agent."""

    metadata: ClassVar[dict[str, Any]] = {"name": "mecharena_arena_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: ArenaConfig | dict[str, Any] | None = None) -> None:
        if not isinstance(config, ArenaConfig):
            config = ArenaConfig.build(**(config or {}))
        self.config = config
        episode, learners = _build(config, 0)  # validates everything once
        n = config.n_agents
        self.possible_agents = [f"bidder_{i}" for i in range(learners)]
        self.agents: list[str] = []
        high = float(episode.context.values.high) * 2
        width = OWN + 2 * n + len(QUANTILES)
        self.set_spaces(lambda: spaces.Box(-1.0, np.inf, (width,), np.float32),
                        lambda: spaces.Box(np.zeros(2, np.float32), np.array([high, 1.0], np.float32), (2,), np.float32))
        self.episode: Episode | None = None
        self.state: LoopState | None = None

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.episode, self._learners = _build(self.config, self.episode_seed(seed))
        self.state = initial_state(self.episode)
        self.agents = list(self.possible_agents)
        self._values = round_values(self.episode, 0)
        self._last = None
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def _means(self, seat: int) -> float:
        carried = self.state.channels
        return 0.0 if carried is None else float(max(carried.wealth[0, seat], 0.0))

    def _parse(self, agent: str, raw: Any) -> tuple[float, bool, list]:
        """(bid, enter, messages) of one agent's action, or InvalidActionError."""
        seat = int(agent.split("_")[1])
        if raw is None:
            return 0.0, False, []
        if isinstance(raw, dict):
            try:
                action = BidAction(**raw)
            except ValidationError as exc:
                raise InvalidActionError(f"{agent}: {explain(BidAction, exc)}") from None
            messages = check_messages(self.config.channels, action.messages, seat, self.config.n_agents,
                                      self._means(seat))
            return action.bid, action.enter, messages
        vector = np.asarray(raw, dtype=np.float64).reshape(-1)
        if vector.shape != (2,):
            raise InvalidActionError(f"{agent}: action must be a (bid, enter) vector of shape (2,), got shape "
                                     f"{np.asarray(raw).shape}")
        if not np.isfinite(vector).all() or vector[0] < 0:
            raise InvalidActionError(f"{agent}: bid must be a finite number >= 0, got {float(vector[0])!r}")
        return float(vector[0]), bool(vector[1] >= 0.5), []

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        s = self._learners
        bids, enter = np.zeros((1, s)), np.zeros((1, s), dtype=bool)
        policy = self.config.channels
        outbox = None if policy is None else Outbox.empty(1, s, policy.max_messages)
        for agent in self.agents:  # validate every action before playing any
            seat = int(agent.split("_")[1])
            bids[0, seat], enter[0, seat], messages = self._parse(agent, actions.get(agent))
            if messages:
                box = to_outbox(messages, policy.max_messages)
                for name in ("channel", "to", "kind", "winner", "cap", "value", "payment"):
                    getattr(outbox, name)[0, seat] = getattr(box, name)[0, 0]
        orders = _Orders(bids, enter, outbox)
        state = replace(self.state, agents=(orders, *self.state.agents[1:]))
        self.state, record = play_round(self.episode, state)
        self._last = record
        done = self.state.round >= self.config.rounds
        if not done:
            self._values = round_values(self.episode, self.state.round)
        live = list(self.agents)
        obs = {a: self._observe(a) for a in live}
        rewards = {a: float(record.utility[0, int(a.split("_")[1])]) for a in live}
        terminations = {a: False for a in live}
        truncations = {a: bool(done) for a in live}
        infos = {a: self._info(a) for a in live}
        self.agents = [] if done else live
        return obs, rewards, terminations, truncations, infos

    def _observe(self, agent: str) -> np.ndarray:
        seat, n = int(agent.split("_")[1]), self.config.n_agents
        out = np.full(OWN + 2 * n + len(QUANTILES), -1.0)
        out[0] = self._values[0, seat]
        out[1] = self.state.round / self.config.rounds
        record = self._last
        if record is not None:
            o, obs = record.outcome, record.observation
            out[2:7] = (obs.price[0], o.allocation[0, seat], o.payments[0, seat] - o.receipts[0, seat],
                        record.penalties[0, seat], record.utility[0, seat])
            out[7] = 0.0 if record.talk is None else max(record.talk.transfers[0, seat], 0.0)
            if obs.winners is not None:
                out[OWN:OWN + n] = obs.winners[0]
            if obs.bids is not None:
                out[OWN + n:OWN + 2 * n] = obs.bids[0]
            if obs.bid_quantiles is not None:
                out[OWN + 2 * n:] = obs.bid_quantiles[0]
        return np.nan_to_num(np.maximum(out, -1.0), nan=-1.0).astype(np.float32)

    def _info(self, agent: str) -> dict[str, Any]:
        if self.config.channels is None:
            return {}
        seat = int(agent.split("_")[1])
        inbox = self.state.agents[0].inbox
        if inbox is None:
            return {"messages": []}
        senders, slots = np.nonzero(inbox.channel[0, seat])
        return {"messages": [
            {"from": int(j), "channel": CHANNELS[int(inbox.channel[0, seat, j, m])],
             "kind": KINDS[int(inbox.kind[0, seat, j, m])], "winner": int(inbox.winner[0, seat, j, m]),
             "cap": float(inbox.cap[0, seat, j, m]), "value": float(inbox.value[0, seat, j, m]),
             "payment": float(inbox.payment[0, seat, j, m]), "sent": int(inbox.sent[0, seat, j, m])}
            for j, m in zip(senders.tolist(), slots.tolist(), strict=True)]}


def parallel_env(config: ArenaConfig | dict[str, Any] | None = None) -> ArenaParallelEnv:
    """PettingZoo-style constructor."""
    return ArenaParallelEnv(config)
