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

:func:`designer_app` and :func:`negotiation_app` serve one world each (``mecharena serve`` mounts the
second under the first, :mod:`mecharena.server.app`).
"""

from typing import Any

from pydantic import ConfigDict, Field, ValidationError, model_validator

from mecharena.core.config import Seed, StrictModel, explain
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.designer.action import MechanismAction
from mecharena.negotiation.action import MODELS, parse_action
from mecharena.negotiation.scenario import TASKS, check_task
from mecharena.server.shell import World, openenv_app, openenv_types, parse

# --- the designer -----------------------------------------------------------------------------------


class ResetRequest(StrictModel):
    """A designer reset (``POST /api/sessions`` and ``.../reset``, the WebSocket ``reset`` message)."""

    seed: Seed | None = Field(None, description="seed of the episode, in [0, 2^63 - 1]; none: fresh entropy")
    stage: int | None = Field(None, ge=1, le=5, description="curriculum stage; none: keep the current one")
    population: Seed | None = Field(None, description="population seed to play, in [0, 2^40) (2^40 and up are the "
                                                      "held-out benchmark's); none: drawn from seed")


def _designer_models(action: type, observation: type, state: type) -> tuple[type, type, type]:
    from pydantic_core import PydanticCustomError

    class DesignAction(action, MechanismAction):
        """A :class:`MechanismAction` as OpenEnv's typed action (``metadata`` is ignored)."""

        model_config = ConfigDict(strict=True)  # JSON from the network: no "0.3" for 0.3, no true for 1.0

        @model_validator(mode="wrap")
        @classmethod
        def _explained(cls, data: Any, handler: Any) -> Any:
            # One error whose message names field, value and range, with nothing in it that
            # cannot be JSON-encoded (openenv sends ``errors()`` back over the socket).
            try:
                return handler(data)
            except ValidationError as exc:
                raise PydanticCustomError("invalid_action", explain(MechanismAction, exc).replace("{", "{{")
                                          .replace("}", "}}")) from None

        def typed(self) -> MechanismAction:
            fields = MechanismAction.model_fields
            return MechanismAction.model_construct(**{name: getattr(self, name) for name in fields})

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


def _design_action(data: Any) -> MechanismAction:
    return data if isinstance(data, MechanismAction) else parse(MechanismAction, data, where="action")


DESIGNER = World(
    name="mecharena-designer", title="mecharena designer (OpenEnv)",
    description="Mechanism designer: choose auction rules, reserve, information and penalties each step; markets of "
                "strategic agents respond; the reward scores the outcome.",
    reset_model=ResetRequest, models=_designer_models, start=_design_start,
    state=lambda env, defaults: {"stage": env.stage if env is not None else defaults.stage or 1},
    parse=_design_action, metadata=lambda info: {k: float(v) for k, v in info.items()})


def designer_app(max_sessions: int, idle_timeout: float, stage: int = 1) -> Any:
    """The designer's OpenEnv routes and HTTP sessions (a session that names no stage plays ``stage``)."""
    return openenv_app(DESIGNER, max_sessions, idle_timeout, stage=stage)


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


def negotiation_app(task: str = "single_trade", *, judge: bool = False, max_sessions: int = 64,
                    idle_timeout: float = 300.0) -> Any:
    """The negotiation economy's OpenEnv routes and HTTP sessions (a reset that names no task plays ``task``).

    Raises:
        UnknownIdError: an unknown task. ConfigError: ``max_sessions`` < 1, or ``judge`` not a bool.
    """
    return openenv_app(NEGOTIATION, max_sessions, idle_timeout, task=check_task(task), judge=judge)


def negotiation_environment() -> Any:
    """The negotiation economy's ``openenv`` ``Environment`` subclass, for a server that mounts several
    environments (its keyword arguments: ``task``, ``judge``)."""
    return openenv_types(NEGOTIATION).Environment
