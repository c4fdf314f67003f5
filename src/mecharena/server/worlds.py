"""The worlds the network shells serve (:mod:`mecharena.server.shell`): what each one's reset, actions,
observations and state are.

* :data:`DESIGNER`: :class:`~mecharena.designer.env.DesignerEnv`, the referee. A reset takes ``seed``,
  ``stage`` and ``population``; a step takes a :class:`~mecharena.designer.action.MechanismAction`
  (strict: no ``"0.3"`` for 0.3); the observation's ``metadata`` holds the reward components.
* :data:`NEGOTIATION`: :class:`~mecharena.negotiation.env.NegotiationEnv`, the learner's lab against
  scripted archetypes. A reset takes ``seed``, ``task``, ``judge`` and ``opponents`` and builds a fresh
  environment; a step takes any negotiation action as one flat object (``kind`` plus that kind's
  fields), parsed into the typed action, so a bad field gets the message it gets everywhere else; the
  observation's ``metadata`` holds the step's events and every lab's values.
* :data:`ARENA`: the sealed-bid arena (:class:`~mecharena.sim.parallel.ArenaParallelEnv`) with the
  learner in seat ``bidder_0`` and scripted opponents in the others (:class:`ArenaSeat`). A reset
  takes ``seed`` and ``arena`` (an :class:`~mecharena.sim.parallel.ArenaConfig`); a step takes a
  :class:`~mecharena.sim.parallel.BidAction` (bid, enter, messages); the reward is the seat's utility.
* :data:`REFEREE`: the referee on the arena's own loop (:class:`RefereeSession`). A reset takes ``seed`` and
  ``settings`` (:class:`~mecharena.designer.arena.Settings`); a step takes
  :class:`~mecharena.designer.arena.Rules`; the observation's ``metadata`` holds the reward components.

:func:`designer_app`, :func:`arena_app`, :func:`referee_app` and :func:`negotiation_app` serve one world each
(``mecharena serve`` mounts the other three under the designer's app, :mod:`mecharena.server.app`).
"""

from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, model_validator

from mecharena.core.config import Seed, StrictModel, explain
from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.designer import arena
from mecharena.designer.action import MechanismAction
from mecharena.designer.arena import Rules, Settings
from mecharena.negotiation.action import MODELS, parse_action
from mecharena.negotiation.scenario import TASKS, check_task
from mecharena.server.shell import (DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, World, action_parser, openenv_app,
                                    openenv_types)
from mecharena.sim.parallel import ONE_SEAT, ArenaConfig, ArenaParallelEnv, BidAction

# --- the designer -----------------------------------------------------------------------------------


class ResetRequest(StrictModel):
    """A designer reset (``POST /api/sessions`` and ``.../reset``, the WebSocket ``reset`` message)."""

    seed: Seed | None = Field(None, description="seed of the episode, in [0, 2^63 - 1]; none: fresh entropy")
    stage: int | None = Field(None, ge=1, le=5, description="curriculum stage; none: keep the current one")
    population: Seed | None = Field(None, description="population seed to play, in [0, 2^40) (2^40 and up are the "
                                                      "held-out benchmark's); none: drawn from seed")


def _typed_action(action: type, model: type[StrictModel], name: str) -> type:
    """``model`` as OpenEnv's typed action ``name``: strict (JSON from the network: no "0.3" for 0.3, no true
    for 1.0), one error naming field, value and range, and ``typed()`` the plain ``model``."""
    from pydantic_core import PydanticCustomError

    class Typed(action, model):
        model_config = ConfigDict(strict=True)

        @model_validator(mode="wrap")
        @classmethod
        def _explained(cls, data: Any, handler: Any) -> Any:
            # One error whose message names field, value and range, with nothing in it that
            # cannot be JSON-encoded (openenv sends ``errors()`` back over the socket).
            try:
                return handler(data)
            except ValidationError as exc:
                raise PydanticCustomError("invalid_action", explain(model, exc).replace("{", "{{")
                                          .replace("}", "}}")) from None

        def typed(self) -> StrictModel:
            return model.model_construct(**{field: getattr(self, field) for field in model.model_fields})

    return type(name, (Typed,), {"__doc__": f"A {model.__name__} as OpenEnv's typed action (``metadata`` is ignored).",
                                 "__module__": __name__})


def _designer_models(action: type, observation: type, state: type) -> tuple[type, type, type]:
    DesignAction = _typed_action(action, MechanismAction, "DesignAction")

    class DesignObservation(observation):
        """What the designer sees; ``metadata`` holds the step's reward components."""

        model_config = ConfigDict(extra="allow")  # the env's observation may grow keys

        stage: int = Field(1, description="curriculum stage")
        step: int = Field(0, description="steps taken in this episode")
        horizon: int = Field(0, description="steps in an episode")
        supply: int = Field(0, description="units for sale in each round")
        mechanism: dict[str, Any] = Field(default_factory=dict, description="the MechanismAction in force")
        window: dict[str, Any] = Field(default_factory=dict,
                                       description='recent rounds: {"features": names, "rounds": oldest first}')
        proxies: dict[str, float] = Field(default_factory=dict, description="what a market operator can measure")
        vector: list[float] = Field(default_factory=list, description="all of it, flat: (OBSERVATION_WIDTH,)")

    class DesignState(state):
        """Episode bookkeeping (``/state``, the WebSocket ``state`` message)."""

        stage: int = Field(1, description="curriculum stage")
        done: bool = Field(False, description="the episode reached its horizon")

    return DesignAction, DesignObservation, DesignState


def _design_start(env: Any, request: ResetRequest, defaults: ResetRequest) -> tuple[Any, dict[str, Any]]:
    from mecharena.designer.env import DesignerEnv

    env = env if env is not None else DesignerEnv(stage=request.stage or defaults.stage or 1)
    return env, env.reset(seed=request.seed, stage=request.stage, population=request.population)


DESIGNER = World(
    name="mecharena-designer", title="mecharena designer (OpenEnv)",
    description="Mechanism designer: choose auction rules, reserve, information and penalties each step; markets of "
                "strategic agents respond; the reward scores the outcome.",
    reset_model=ResetRequest, models=_designer_models, start=_design_start,
    state=lambda env, defaults: {"stage": env.stage if env is not None else defaults.stage or 1},
    parse=action_parser(MechanismAction), metadata=lambda info: {k: float(v) for k, v in info.items()})


def designer_app(max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 stage: int = 1) -> Any:
    """The designer's OpenEnv routes and HTTP sessions (a session that names no stage plays ``stage``)."""
    return openenv_app(DESIGNER, max_sessions, idle_timeout, stage=stage)


def seed_or_fresh(seed: int | None) -> int:
    """``seed``, or one drawn from fresh entropy (a reset that names none)."""
    return int(np.random.default_rng().integers(0, 1 << 31)) if seed is None else seed


# --- the sealed-bid arena ---------------------------------------------------------------------------

SEAT_FIELDS = ("value", "time", "price", "allocation", "payment", "fine", "utility", "received")


class ArenaReset(StrictModel):
    """An arena reset: the learner plays ``bidder_0``; the arena's ``opponents`` script every other seat."""

    seed: Seed | None = Field(None, description="seed of the episode, in [0, 2^63 - 1]; none: fresh entropy")
    arena: ArenaConfig | None = Field(None, description="the rules (mechanism, config, n_agents, rounds, values, "
                                                        "information, enforcement, channels, opponents); none: "
                                                        "keep the current ones")


class ArenaSeat:
    """Seat ``bidder_0`` of an :class:`~mecharena.sim.parallel.ArenaParallelEnv` whose other seats are
    scripted: one learner's episode, JSON in and out.

    The observation names the parallel env's vector (``value``, ``time``, then what the market
    revealed last round: ``price``, ``allocation``, ``payment``, ``fine``, ``utility``, ``received``,
    ``winners``, ``bids``, ``quantiles``; -1 where hidden or before the first round) and carries the
    vector itself; the reward is the seat's utility in the round; ``info`` holds its messages.

    Raises:
        ConfigError: the arena's opponents leave a seat other than ``bidder_0`` unscripted.
    """

    def __init__(self, config: ArenaConfig):
        self.config = config
        self.env = ArenaParallelEnv(config)
        learners = len(self.env.possible_agents)
        if learners != 1:
            raise ConfigError(f"arena.opponents must script every seat but bidder_0 (n_agents - 1 = "
                              f"{config.n_agents - 1}), got {config.n_agents - learners} scripted seats "
                              f"({config.opponents!r})")
        self.seed: int | None = None

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        self.seed = seed_or_fresh(seed)
        observations, _ = self.env.reset(seed=self.seed)
        return self._observe(observations["bidder_0"])

    @property
    def done(self) -> bool:
        return self.env.state is not None and not self.env.agents

    def step(self, action: BidAction) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        """One round (:class:`InvalidActionError` once the episode is over, or for messages the channels refuse)."""
        if self.done:
            raise InvalidActionError("the episode is over: send a reset")
        observations, rewards, _, truncations, infos = self.env.step({"bidder_0": action.model_dump()})
        return self._observe(observations["bidder_0"]), rewards["bidder_0"], truncations["bidder_0"], infos["bidder_0"]

    def _observe(self, vector: np.ndarray) -> dict[str, Any]:
        n, own = self.config.n_agents, len(SEAT_FIELDS)
        values = vector.astype(float).tolist()
        return {"mechanism": self.config.mechanism, "round": int(self.env.state.round), "rounds": self.config.rounds,
                **dict(zip(SEAT_FIELDS, values[:own], strict=True)), "winners": values[own:own + n],
                "bids": values[own + n:own + 2 * n], "quantiles": values[own + 2 * n:], "vector": values}


def _arena_models(action: type, observation: type, state: type) -> tuple[type, type, type]:
    class ArenaObservation(observation):
        """What ``bidder_0`` sees (see :class:`ArenaSeat`); ``metadata`` holds its messages."""

        model_config = ConfigDict(extra="allow")

        mechanism: str = Field("second_price", description="the mechanism's id")
        round: int = Field(0, description="rounds played")
        rounds: int = Field(0, description="rounds in an episode")
        value: float = Field(0.0, description="the seat's value this round")
        vector: list[float] = Field(default_factory=list, description="the parallel env's observation, flat")

    class ArenaState(state):
        mechanism: str = Field("second_price")
        seed: int | None = Field(None)
        done: bool = Field(False)

    return _typed_action(action, BidAction, "ArenaAction"), ArenaObservation, ArenaState


def _arena_start(env: Any, request: ArenaReset, defaults: ArenaReset) -> tuple[Any, dict[str, Any]]:
    config = request.arena or (env.config if env is not None else defaults.arena or ONE_SEAT)
    try:
        fresh = ArenaSeat(config)
    except UnknownIdError as exc:  # an unknown mechanism or opponent: a bad field, not a missing route
        raise ConfigError(f"arena: {exc}") from None
    return fresh, fresh.reset(request.seed)


def _arena_state(env: Any, defaults: ArenaReset) -> dict[str, Any]:
    if env is None:
        return {"mechanism": (defaults.arena or ONE_SEAT).mechanism, "seed": None}
    return {"mechanism": env.config.mechanism, "seed": env.seed}


ARENA = World(
    name="mecharena-arena", title="mecharena sealed-bid arena (OpenEnv)",
    description="A sealed-bid market: the learner bids in one seat against scripted opponents, round after round, "
                "under fixed rules (mechanism, information, enforcement, channels); the reward is its utility.",
    reset_model=ArenaReset, models=_arena_models, start=_arena_start, state=_arena_state,
    parse=action_parser(BidAction))


def arena_app(max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
              arena: ArenaConfig = ONE_SEAT) -> Any:
    """The arena's OpenEnv routes and HTTP sessions (a session that names no rules plays ``arena``).

    Raises:
        ConfigError: ``max_sessions`` < 1, or ``arena`` leaves a seat other than ``bidder_0`` unscripted.
    """
    ArenaSeat(arena)  # the default rules are checked before the first session
    return openenv_app(ARENA, max_sessions, idle_timeout, arena=arena)


# --- the referee on the arena's loop ---------------------------------------------------------------


class RefereeReset(StrictModel):
    """A reset of the referee on the arena's loop: an episode key and, optionally, new settings."""

    seed: Seed | None = Field(None, description="the episode key, in [0, 2^63 - 1]; none: fresh entropy")
    settings: Settings | None = Field(None, description="mechanisms on offer, populations, markets, rounds, horizon "
                                                        "(designer.arena.Settings); none: keep the current ones")


class RefereeSession:
    """One episode of the referee on the arena's loop (:mod:`mecharena.designer.arena`), JSON in and out:
    a step takes :class:`~mecharena.designer.arena.Rules`; the observation names the last round's
    features and the rules in force and carries the flat vector; ``info`` holds the reward's components.

    Raises:
        ConfigError: settings the referee refuses (see :func:`~mecharena.designer.arena.make_params`).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        try:
            self.params = arena.make_params(settings)
        except UnknownIdError as exc:  # an unknown mechanism or agent type: a bad field, not a missing route
            raise ConfigError(f"settings: {exc}") from None
        self.state: arena.State | None = None

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        self.state = arena.reset(self.params, seed_or_fresh(seed))
        return self._observe()

    def step(self, rules: Rules) -> tuple[dict[str, Any], float, bool, dict[str, float]]:
        """One step (:class:`InvalidActionError` once the episode is over; ConfigError for rules not on offer)."""
        self.state, result = arena.step(self.params, self.state, rules)
        return self._observe(), result.reward, result.done, result.components

    def _observe(self) -> dict[str, Any]:
        vector = arena.observation(self.params, self.state)
        return {"key": self.state.key, "step": self.state.step, "horizon": self.settings.horizon,
                "population": self.state.population,
                "rules": None if self.state.rules is None else self.state.rules.model_dump(),
                "features": dict(zip(arena.FEATURES, vector[:len(arena.FEATURES)].tolist(), strict=True)),
                "vector": vector.tolist()}


def _referee_models(action: type, observation: type, state: type) -> tuple[type, type, type]:
    class RefereeObservation(observation):
        """What the designer sees (see :class:`RefereeSession`); ``metadata`` holds the reward's components."""

        model_config = ConfigDict(extra="allow")

        key: int = Field(0, description="the episode key")
        step: int = Field(0, description="steps taken in this episode")
        horizon: int = Field(0, description="steps in an episode")
        population: str = Field("", description="the episode's agents")
        rules: dict[str, Any] | None = Field(None, description="the Rules in force (none before the first step)")
        features: dict[str, float] = Field(default_factory=dict, description="the last round, averaged over markets")
        vector: list[float] = Field(default_factory=list, description="features and rules, flat")

    class RefereeState(state):
        key: int | None = Field(None, description="the episode key")
        done: bool = Field(False)

    return _typed_action(action, Rules, "RefereeAction"), RefereeObservation, RefereeState


def _referee_start(env: Any, request: RefereeReset, defaults: RefereeReset) -> tuple[Any, dict[str, Any]]:
    settings = request.settings or (env.settings if env is not None else defaults.settings or Settings())
    fresh = env if env is not None and settings == env.settings else RefereeSession(settings)
    return fresh, fresh.reset(request.seed)


REFEREE = World(
    name="mecharena-referee", title="mecharena referee on the arena (OpenEnv)",
    description="Mechanism designer over the arena's own agents: each step set the rules (any offered mechanism and "
                "its config, information shown, fines and audits) of a batch of markets; the reward scores welfare, "
                "fairness, participation and stability.",
    reset_model=RefereeReset, models=_referee_models, start=_referee_start,
    state=lambda env, defaults: {"key": None if env is None or env.state is None else env.state.key},
    parse=action_parser(Rules), metadata=lambda info: {k: float(v) for k, v in info.items()})


def referee_app(max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                settings: Settings | None = None) -> Any:
    """The referee-on-the-arena's OpenEnv routes and HTTP sessions (a session that names no settings plays
    ``settings``, default: the built-in ones).

    Raises:
        ConfigError: ``max_sessions`` < 1, or ``settings`` the referee refuses.
    """
    settings = settings or Settings()
    RefereeSession(settings)  # the default settings are checked before the first session
    return openenv_app(REFEREE, max_sessions, idle_timeout, settings=settings)


# --- the negotiation economy ------------------------------------------------------------------------


class NegotiationReset(StrictModel):
    """A negotiation reset: a fresh environment, built aside before it replaces the running one."""

    seed: Seed | None = Field(None, description="seed of the episode, in [0, 2^63 - 1]; none: fresh entropy")
    task: str | None = Field(None, min_length=1, max_length=64,
                             description="one of " + ", ".join(TASKS) + "; none: keep the current one")
    judge: bool | None = Field(None, description="score pitches with the judge; none: keep the current setting")
    opponents: list[str] | None = Field(None, max_length=64, description="an archetype per other lab; none: drawn "
                                                                         "from the seed")


def _negotiation_models(action: type, observation: type, state: type) -> tuple[type, type, type]:
    class NegotiateAction(action):
        """Any negotiation action, flat: ``kind`` and that kind's fields (the others left out)."""

        kind: str = Field(description="one of " + ", ".join(MODELS))
        to: Any = None
        give: Any = None
        want: Any = None
        payment: Any = None
        claim: Any = None
        job: Any = None
        offer: Any = None
        text: Any = None
        claims: Any = None
        block: Any = None
        members: Any = None
        shares: Any = None
        coalition: Any = None
        blocks: Any = None
        funds: Any = None

        def typed(self) -> Any:
            """The typed action (raises :class:`ConfigError` naming the field)."""
            fields = {name: getattr(self, name) for name in self.model_fields_set if name != "metadata"}
            return parse_action({"kind": self.kind, **fields})

    missing = {name for model in MODELS.values() for name in model.model_fields} - set(NegotiateAction.model_fields)
    if missing:  # the flat model must carry every typed action's fields
        raise RuntimeError(f"NegotiateAction lacks fields {sorted(missing)}")

    class NegotiateObservation(observation):
        """What the learner's lab sees (see ``core.observe``); ``metadata`` holds the step's events."""

        model_config = ConfigDict(extra="allow")

        lab: int = Field(0, description="the learner's lab")
        task: str = Field("single_trade", description="one of " + ", ".join(TASKS))
        t: int = Field(0, description="current step")
        horizon: int = Field(0, description="steps in an episode")
        budget: float = Field(0.0, description="money left")
        value: float = Field(0.0, description="settled value so far (the sum of rewards)")

    class NegotiateState(state):
        task: str = Field("single_trade")
        seed: int | None = Field(None)
        done: bool = Field(False)

    return NegotiateAction, NegotiateObservation, NegotiateState


def _negotiation_start(env: Any, request: NegotiationReset,
                       defaults: NegotiationReset) -> tuple[Any, dict[str, Any]]:
    from mecharena.negotiation.env import NegotiationEnv

    def current(name: str, default: Any) -> Any:
        value = getattr(request, name)
        return value if value is not None else getattr(env, name) if env is not None else default

    try:
        task = check_task(current("task", defaults.task or "single_trade"))
    except UnknownIdError as exc:
        raise ConfigError(f"task: {exc}") from None
    fresh = NegotiationEnv(task, opponents=request.opponents, judge=current("judge", bool(defaults.judge)))
    try:
        return fresh, fresh.reset(seed=request.seed)  # builds the opponents: an unknown archetype fails here
    except UnknownIdError as exc:
        raise ConfigError(f"opponents: {exc}") from None


def _negotiation_state(env: Any, defaults: NegotiationReset) -> dict[str, Any]:
    if env is None:
        return {"task": defaults.task or "single_trade", "seed": None}
    return {"task": env.task, "seed": env.transcript[0]["seed"]}


NEGOTIATION = World(
    name="mecharena-negotiation", title="mecharena negotiation (OpenEnv)",
    description="Scarce-GPU bargaining: a lab trades, pools and schedules GPU blocks for its jobs against scripted "
                "opponent archetypes; the reward is settled economic value.",
    reset_model=NegotiationReset, models=_negotiation_models, start=_negotiation_start, state=_negotiation_state,
    parse=parse_action)


def negotiation_app(task: str = "single_trade", *, judge: bool = False, max_sessions: int = DEFAULT_MAX_SESSIONS,
                    idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> Any:
    """The negotiation economy's OpenEnv routes and HTTP sessions (a reset that names no task plays ``task``).

    Raises:
        UnknownIdError: an unknown task. ConfigError: ``max_sessions`` < 1, or ``judge`` not a bool.
    """
    return openenv_app(NEGOTIATION, max_sessions, idle_timeout, task=check_task(task), judge=judge)


def negotiation_environment() -> Any:
    """The negotiation economy's ``openenv`` ``Environment`` subclass, for a server that mounts several
    environments (its keyword arguments: ``task``, ``judge``)."""
    return openenv_types(NEGOTIATION).Environment
