"""The OpenEnv shell of the negotiation economy: :class:`~mecharena.negotiation.env.NegotiationEnv` (the
learner's seat against scripted archetypes) as an ``openenv`` ``Environment``.

* :func:`openenv_types` builds ``NegotiateAction`` (one flat model: ``kind`` plus every action's
  fields, all optional; it is parsed into the typed action, so a bad field gets the same message
  naming field, value and what is allowed as everywhere else), ``NegotiateObservation`` (the
  observation dict's keys plus ``reward``, ``done`` and ``metadata``: the step's events and every
  lab's values), ``NegotiateState`` and ``NegotiationEnvironment``.
* :func:`build_app` serves it with OpenEnv's ``create_app`` (WebSocket ``/ws`` sessions, ``/health``,
  ``/schema``, stateless ``/reset``): ``{"type": "reset", "data": {"seed": 3, "task":
  "market_round", "judge": true}}``, then ``{"type": "step", "data": {"kind": "reserve", "block": 2}}``.

Bad actions raise :class:`~mecharena.core.errors.ConfigError` (malformed) or
:class:`~mecharena.core.errors.InvalidActionError` (impossible now) before the episode changes;
over the WebSocket both come back as an ``EXECUTION_ERROR`` carrying the message, and the session
goes on. A reset is validated whole (seed, task, judge, opponents) and built aside before it
replaces the running episode, so a refused reset leaves that episode and its ``state`` as they were.

``openenv`` (which imports gradio) is imported only inside these functions, never when this module
is imported.
"""

import uuid
from functools import cache
from typing import Any

from mecharena.core.config import check_seed, shown_value
from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.negotiation.action import MODELS, parse_action
from mecharena.negotiation.env import NegotiationEnv
from mecharena.negotiation.scenario import TASKS, check_task

ENV_NAME = "mecharena-negotiation"
ACTION_FIELDS = sorted({name for model in MODELS.values() for name in model.model_fields} - {"kind"})


@cache
def openenv_types() -> Any:
    """The OpenEnv types of the negotiation environment (imports openenv on first call)."""
    from types import SimpleNamespace

    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
    from pydantic import ConfigDict, Field

    from mecharena import __version__

    class NegotiateAction(Action):
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

    missing = set(ACTION_FIELDS) - set(NegotiateAction.model_fields)
    if missing:  # the flat model must carry every typed action's fields
        raise RuntimeError(f"NegotiateAction lacks fields {sorted(missing)}")

    class NegotiateObservation(Observation):
        """What the learner's lab sees (see ``core.observe``); ``metadata`` holds the step's events."""

        model_config = ConfigDict(extra="allow")

        lab: int = Field(0, description="the learner's lab")
        task: str = Field("single_trade", description="one of " + ", ".join(TASKS))
        t: int = Field(0, description="current step")
        horizon: int = Field(0, description="steps in an episode")
        budget: float = Field(0.0, description="money left")
        value: float = Field(0.0, description="settled value so far (the sum of rewards)")

    class NegotiateState(State):
        task: str = Field("single_trade")
        seed: int | None = Field(None)
        done: bool = Field(False)

    class NegotiationEnvironment(Environment[NegotiateAction, NegotiateObservation, NegotiateState]):
        """One session's :class:`NegotiationEnv` (the learner's seat)."""

        SUPPORTS_CONCURRENT_SESSIONS = True  # each session owns its env and its generators

        def __init__(self, task: str = "single_trade", judge: bool = False):
            super().__init__()
            self._task, self._judge = check_task(task), _check_judge(judge)
            self._env: NegotiationEnv | None = None
            self._episode_id: str | None = None
            self._seed: int | None = None
            self._steps = 0

        def reset(self, seed: int | None = None, episode_id: str | None = None, task: str | None = None,
                  judge: bool | None = None, opponents: list[str] | None = None, **kwargs: Any):
            """Start an episode; nothing changes unless the whole reset is valid.

            Raises:
                ConfigError: an unknown field, a bad seed, task, judge flag or opponent list.
            """
            if kwargs:
                raise ConfigError(f"unknown reset field(s) {sorted(map(str, kwargs))}; allowed: seed, episode_id, "
                                  f"task, judge, opponents")
            if seed is not None:
                check_seed(seed)
            if episode_id is not None and not (isinstance(episode_id, str) and 0 < len(episode_id) <= 255):
                raise ConfigError(f"episode_id must be a string of 1 to 255 characters, got {shown_value(episode_id)}")
            if opponents is not None and not (isinstance(opponents, list) and len(opponents) <= 64
                                              and all(isinstance(o, str) for o in opponents)):
                raise ConfigError(f"opponents must be a list of archetype names, got {shown_value(opponents)}")
            try:
                chosen = self._task if task is None else check_task(task if isinstance(task, str) else repr(task))
            except UnknownIdError as exc:
                raise ConfigError(f"task: {exc}") from None
            env = NegotiationEnv(chosen, opponents=opponents, judge=self._judge if judge is None else _check_judge(judge))
            try:
                observation = env.reset(seed=seed)  # builds the opponents: an unknown archetype fails here
            except UnknownIdError as exc:
                raise ConfigError(f"opponents: {exc}") from None
            self._task, self._judge, self._env = chosen, env.judge, env
            self._seed = self._env.transcript[0]["seed"]
            self._episode_id = episode_id or uuid.uuid4().hex
            self._steps = 0
            return NegotiateObservation.model_construct(**observation, reward=None, done=False, metadata={})

        def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any):
            """One step of the learner's lab.

            Raises:
                ConfigError: a malformed action. InvalidActionError: impossible now, or no episode.
            """
            if self._env is None:
                raise InvalidActionError("no episode: send a reset first")
            typed = action.typed() if isinstance(action, NegotiateAction) else parse_action(action)
            observation, reward, done, info = self._env.step(typed)
            self._steps += 1
            return NegotiateObservation.model_construct(**observation, reward=reward, done=done, metadata=info)

        async def reset_async(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any):
            return self.reset(seed=seed, episode_id=episode_id, **kwargs)

        async def step_async(self, action: Any, timeout_s: float | None = None, **kwargs: Any):
            return self.step(action, timeout_s=timeout_s, **kwargs)

        @property
        def state(self) -> NegotiateState:
            return NegotiateState(episode_id=self._episode_id, step_count=self._steps, task=self._task,
                                  seed=self._seed, done=bool(self._env is not None and self._env.done))

        def get_metadata(self) -> EnvironmentMetadata:
            return EnvironmentMetadata(
                name=ENV_NAME, version=__version__, author="mecharena",
                description="Scarce-GPU bargaining: a lab trades, pools and schedules GPU blocks for its jobs "
                            "against scripted opponent archetypes; the reward is settled economic value.")

        def close(self) -> None:
            self._env = None

    return SimpleNamespace(NegotiateAction=NegotiateAction, NegotiateObservation=NegotiateObservation,
                           NegotiateState=NegotiateState, NegotiationEnvironment=NegotiationEnvironment)


def _check_judge(judge: Any) -> bool:
    if not isinstance(judge, bool):
        raise ConfigError(f"judge must be true or false, got {shown_value(judge)}")
    return judge


def environment_class() -> Any:
    """The ``openenv`` ``Environment`` subclass, for a server that mounts several environments."""
    return openenv_types().NegotiationEnvironment


def build_app(task: str = "single_trade", *, judge: bool = False, max_sessions: int = 64) -> Any:
    """A FastAPI app serving the environment with OpenEnv's ``create_app``.

    Raises:
        UnknownIdError: an unknown task. ConfigError: ``max_sessions`` < 1.
    """
    import functools

    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.types import ConcurrencyConfig

    check_task(task)
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ConfigError(f"max_sessions must be an integer >= 1, got {max_sessions!r}")
    types = openenv_types()
    app = create_app(functools.partial(types.NegotiationEnvironment, task=task, judge=judge), types.NegotiateAction,
                     types.NegotiateObservation, env_name=ENV_NAME, state_cls=types.NegotiateState,
                     concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions))
    app.title = "mecharena negotiation (OpenEnv)"
    return app
