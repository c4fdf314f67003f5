"""Stateful shells over the pure core: one episode (:class:`DesignerEnv`, JSON in and out) and
E episodes in one batch with automatic reset (:class:`VectorDesignerEnv`, arrays in and out).

Populations for training come from a seeded stream of population seeds below the held-out range
(:mod:`mecharena.designer.population`); pass ``population=`` to play a given one. A held-out
(benchmark) population is refused unless the caller says it evaluates (``held_out=True``), so no
training path can play one by accident.
"""

from typing import Any

import numpy as np

from mecharena.core.config import MAX_SEED, shown_value
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.types import BoolArray, FloatArray
from mecharena.designer import core
from mecharena.designer.action import MechanismAction
from mecharena.designer.curriculum import Curriculum
from mecharena.designer.population import HELD_OUT_BASE, KINDS, Params, check_stage, sample, training_seed

MAX_EPISODES = 1 << 20


def parse_action(action: Any) -> MechanismAction:
    """A :class:`MechanismAction` from itself or a dict, or :class:`ConfigError` naming the field."""
    if isinstance(action, MechanismAction):
        return action
    if not isinstance(action, dict):
        raise ConfigError(f"action must be a MechanismAction or a JSON object, got {type(action).__name__}")
    return MechanismAction.build(**action)


def population_seeds(seed: int, count: int) -> list[int]:
    """``count`` training population seeds drawn from ``seed`` (never in the held-out range)."""
    return [int(s) for s in np.random.default_rng([seed, 7]).integers(0, HELD_OUT_BASE, count)]


def observation_dict(params: Params, state: core.State, mechanism: MechanismAction, row: int = 0) -> dict[str, Any]:
    """What the designer sees of episode ``row``, as JSON-ready Python values."""
    vector = core.observation_vectors(state, params)[row]
    filled = int(state.filled[row])
    rounds = core.ordered_window(state)[row, core.WINDOW - filled:]
    proxies = vector[core.PROXY_COLUMN: core.PROXY_COLUMN + len(core.PROXIES)]
    return {
        "stage": int(params.stage[row]), "step": int(state.step[row]), "horizon": core.HORIZON,
        "supply": int(params.units[row]),
        "mechanism": mechanism.model_dump(),
        "window": {"features": list(core.FEATURES), "rounds": rounds.round(6).tolist()},
        "proxies": dict(zip(core.PROXIES, proxies.round(6).tolist(), strict=True)),
        "vector": vector.round(6).tolist(),  # JSON: six decimals are plenty and halve the payload
    }


class DesignerEnv:
    """One referee episode. ``reset`` then ``step`` until ``done``.

    >>> env = DesignerEnv(stage=2)
    >>> obs = env.reset(seed=0)
    >>> obs, reward, done, info = env.step({"rule": "vcg", "competing_bids": True})
    >>> 0.0 <= reward <= 1.0 and sorted(info)
    ['fairness', 'participation', 'reward', 'stability', 'welfare']
    """

    def __init__(self, stage: int = 1, *, population: int | None = None, held_out: bool = False) -> None:
        self.stage = check_stage(stage)
        self.held_out = held_out
        self.population = None if population is None else self._population(population)
        self.params: Params | None = None
        self.state: core.State | None = None
        self.mechanism = MechanismAction()

    def reset(self, seed: int | None = None, stage: int | None = None, population: int | None = None) -> dict:
        """Start an episode: a population (``population``, or one drawn from ``seed``) and its markets.

        Raises:
            ConfigError: a bad stage or seed, or a held-out population on an env made without
                ``held_out=True`` (checked before anything changes).
        """
        stage = self.stage if stage is None else check_stage(stage)
        seed = int(np.random.default_rng().integers(0, 1 << 31)) if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2^63 - 1], got {shown_value(seed)}")
        population = None if population is None else self._population(population)
        self.stage = stage
        chosen = population if population is not None else self.population
        chosen = population_seeds(seed, 1)[0] if chosen is None else chosen
        self.params = sample(self.stage, [chosen], [seed])
        self.state = core.reset(self.params)
        self.mechanism = MechanismAction()
        return self.observation()

    def _population(self, population: Any) -> int:
        if self.held_out:
            if isinstance(population, bool) or not isinstance(population, int | np.integer) or not \
                    0 <= population <= MAX_SEED:
                raise ConfigError(f"population must be an integer in [0, 2^63 - 1], got {shown_value(population)}")
            return int(population)
        return training_seed(population)

    def observation(self) -> dict:
        self._require()
        return observation_dict(self.params, self.state, self.mechanism)

    def vector(self) -> FloatArray:
        """(OBSERVATION_WIDTH,) the flat observation."""
        self._require()
        return core.observation_vectors(self.state, self.params)[0]

    @property
    def done(self) -> bool:
        return self.state is not None and bool(self.state.step[0] >= core.HORIZON)

    def step(self, action: MechanismAction | dict) -> tuple[dict, float, bool, dict[str, float]]:
        """Play one step. The action is validated before anything changes.

        Raises:
            ConfigError: an invalid action (the message names the field).
            InvalidActionError: no episode started, or the episode is over.
        """
        action = parse_action(action)
        self._require()
        if self.done:
            raise InvalidActionError("the episode is over; call reset()")
        reward, components = self.step_mechanism(action)
        info = dict(zip(core.COMPONENTS, components.tolist(), strict=True)) | {"reward": reward}
        return self.observation(), reward, self.done, info

    def step_mechanism(self, action: MechanismAction) -> tuple[float, FloatArray]:
        """The step without building the observation: (reward, components)."""
        mechanism = core.Mechanism.from_actions([action], self.state.mechanism[:, core.RESERVE_COLUMN])
        self.state, result = core.step(self.params, self.state, mechanism)
        self.mechanism = action.model_copy(update={"reserve": float(mechanism.reserve[0]), "reserve_change": None})
        return float(result.reward[0]), result.components[0]

    def hidden(self) -> dict[str, Any]:
        """The population behind the episode (for tests and reports; never part of the observation)."""
        self._require()
        kinds = [KINDS[k] for k in self.params.kind[0] if k >= 0]
        return {"units": int(self.params.units[0]), "types": kinds}

    def _require(self) -> None:
        if self.state is None:
            raise InvalidActionError("no episode: call reset() first")


class VectorDesignerEnv:
    """E episodes in one batch; a finished episode restarts with the next training population.

    Observations are (E, OBSERVATION_WIDTH) arrays; actions a :class:`core.Mechanism` (arrays, the
    fast path) or a list of E :class:`MechanismAction`. With a :class:`Curriculum`, finished
    episodes' mean rewards are recorded and new populations come from its current stage.
    """

    def __init__(self, episodes: int, stage: int = 1, *, seed: int = 0, curriculum: Curriculum | None = None) -> None:
        if not isinstance(episodes, int) or not 1 <= episodes <= MAX_EPISODES:
            raise ConfigError(f"episodes must be an integer in [1, {MAX_EPISODES}], got {episodes!r}")
        self.episodes, self.seed, self.curriculum = episodes, seed, curriculum
        self.stage = curriculum.stage if curriculum else check_stage(stage)
        self.started = 0

    def _populations(self, count: int) -> Params:
        seeds = population_seeds(self.seed + self.started, count)
        episodes = list(range(self.started, self.started + count))
        self.started += count
        return sample(self.stage, seeds, episodes)

    def reset(self, seed: int | None = None) -> FloatArray:
        if seed is not None:
            self.seed = seed
        self.started = 0
        self.params = self._populations(self.episodes)
        self.state = core.reset(self.params)
        self.returns = np.zeros(self.episodes)
        return core.observation_vectors(self.state, self.params)

    def step(self, actions: core.Mechanism | list[MechanismAction]) -> tuple[FloatArray, FloatArray, BoolArray, dict]:
        """Step every episode; episodes that finish are reset (their last observation is in info)."""
        mechanism = actions if isinstance(actions, core.Mechanism) else core.Mechanism.from_actions(
            [parse_action(a) for a in actions], self.state.mechanism[:, core.RESERVE_COLUMN])
        if mechanism.rule.shape != (self.episodes,):
            raise ConfigError(f"expected {self.episodes} actions, got {mechanism.rule.shape[0]}")
        result = core.advance(self.params, self.state, mechanism)  # the env owns its state
        self.returns += result.reward
        info = {"components": result.components}
        done = result.done
        if done.any():
            rows = np.flatnonzero(done)
            info["final_observation"] = core.observation_vectors(self.state, self.params)[rows]
            info["episode_reward"] = self.returns[rows] / core.HORIZON
            if self.curriculum is not None:
                info["promoted"] = self.curriculum.record(info["episode_reward"])
                self.stage = self.curriculum.stage
            self.returns[rows] = 0.0
            fresh = self._populations(rows.size)
            start = core.reset(fresh)
            self.params = Params(*(_put(getattr(self.params, f), rows, getattr(fresh, f)) for f in Params.__slots__))
            self.state = core.State(*(_put(getattr(self.state, f), rows, getattr(start, f))
                                      for f in core.State.__slots__))
        return core.observation_vectors(self.state, self.params), result.reward, done, info


def _put(array: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = array.copy()
    out[rows] = values
    return out
