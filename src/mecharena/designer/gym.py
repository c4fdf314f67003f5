"""The referee environment as a Gymnasium env: ``gymnasium.make("mecharena/Designer-v1", stage=3)``.

A thin shell over the pure core (:mod:`mecharena.designer.core`), one episode at a time. The
action is a dict of arrays (:func:`action_space`); the observation is the core's flat vector
(:func:`observation_bounds` gives its range, column by column). An episode lasts
``core.HORIZON`` steps and ends by truncation: nothing in the market terminates it.

Seeding follows Gymnasium's contract: ``reset(seed=s)`` seeds ``self.np_random``, which draws
the episode seed; the population seed comes from the episode seed (or from ``population``). The
same seed and actions give a bit-identical trajectory, and the same one as :class:`DesignerEnv`
(the JSON shell) reset with the episode seed that ``reset`` reports in ``info``.

``import mecharena`` registers ``mecharena/Designer-v1`` (by name: this module loads on the first
``make``). :class:`FlatActions` gives it one Box action for libraries that take no Dict actions
(Stable-Baselines3, RLlib).

>>> env = DesignerGymEnv(stage=2)
>>> obs, info = env.reset(seed=0)
>>> obs.shape == (core.OBSERVATION_WIDTH,) and obs in env.observation_space
True
>>> action = from_action(MechanismAction(rule="vcg", reserve=0.1, competing_bids=True))
>>> obs, reward, terminated, truncated, info = env.step(action)
>>> 0.0 <= reward <= 1.0, terminated, truncated, sorted(info)
(True, False, False, ['fairness', 'participation', 'stability', 'welfare'])
"""

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.types import FloatArray
from mecharena.designer import core
from mecharena.designer.action import (
    COALITIONS,
    FLAGS,
    MAX_PENALTY,
    MAX_RESERVE,
    MECHANISM_WIDTH,
    PENALTIES,
    RULES,
    MechanismAction,
)
from mecharena.designer.env import population_seeds
from mecharena.designer.population import check_stage, sample, training_seed

ENV_ID = "mecharena/Designer-v1"
ACTION_KEYS = ("rule", "reserve", "flags", "penalties", "coalition")
_FLAT_SIZES = (len(RULES), 1, len(FLAGS), len(PENALTIES), len(COALITIONS))  # FlatActions' columns, by key
_FLAT_SPLITS = np.cumsum(_FLAT_SIZES)[:-1]
FLAT_WIDTH = sum(_FLAT_SIZES)
EPISODE_SEEDS = 1 << 31  # episode seeds are drawn from [0, EPISODE_SEEDS), as DesignerEnv does
# No bid reaches 2 value units: values lie in [0, 1), adaptive bidders bid at most 1.15 v, a budget
# exploiter at most 1.5 v + 0.1, a shill at most 10% over the real bid it aims under, and a
# revealed reserve (at most 1) only lifts bids to it. Prices are bids, so the same bound holds.
MAX_BID = 2.0
# Per round (core.FEATURES): (low, high).
FEATURE_BOUNDS = {
    "welfare": (0.0, 1.0), "fairness": (0.0, 1.0), "participation": (0.0, 1.0), "stability": (0.0, 1.0),
    "price_mean": (0.0, MAX_BID), "price_spread": (0.0, MAX_BID), "dropouts": (0.0, 1.0), "collusion": (0.0, 1.0),
    "sold": (0.0, 1.0), "bid_mean": (0.0, MAX_BID), "bid_spread": (0.0, MAX_BID / 2), "top_gap": (0.0, 1.0),
    "entry": (0.0, 1.0),
}
# Over the window (core.PROXIES). The least-squares slope of prices in [0, P] over consecutive
# rounds is at most P in size (two rounds), so the trend (slope x WINDOW) is within WINDOW x P.
PROXY_BOUNDS = {
    "bid_mean": (0.0, MAX_BID), "bid_spread": (0.0, MAX_BID / 2), "top_gap": (0.0, 1.0),
    "rotation_entropy": (0.0, 1.0), "dropout_rate": (0.0, 1.0), "budget_exhaustion": (0.0, 1.0),
    "price_trend": (-core.WINDOW * MAX_BID, core.WINDOW * MAX_BID), "collusion_rate": (0.0, 1.0),
}


def observation_bounds() -> tuple[FloatArray, FloatArray]:
    """(low, high), each (OBSERVATION_WIDTH,): the range of every column of the observation.

    The mechanism columns (one-hots, reserve, flags, penalties / 3) and the context (stage
    one-hot, supply / 3, progress) lie in [0, 1]; the window and proxy columns as in
    ``FEATURE_BOUNDS`` and ``PROXY_BOUNDS``.

    Raises:
        KeyError: the core observes a feature or proxy that has no bounds here.
    """
    unit = [(0.0, 1.0)]
    columns = (unit * MECHANISM_WIDTH + [FEATURE_BOUNDS[f] for f in core.FEATURES] * core.WINDOW
               + [PROXY_BOUNDS[p] for p in core.PROXIES] + unit * len(core.CONTEXT))
    low, high = np.array(columns, np.float64).T
    return low.copy(), high.copy()


def action_space() -> spaces.Dict:
    """The designer's action: every field of :class:`MechanismAction`, the reserve absolute."""
    return spaces.Dict({
        "rule": spaces.Discrete(len(RULES)),
        "reserve": spaces.Box(0.0, MAX_RESERVE, (1,), np.float64),
        "flags": spaces.MultiBinary(len(FLAGS)),
        "penalties": spaces.Box(0.0, MAX_PENALTY, (len(PENALTIES),), np.float64),
        "coalition": spaces.Discrete(len(COALITIONS)),
    })


def to_mechanism(action: Mapping[str, Any]) -> core.Mechanism:
    """The core's mechanism (E = 1) for an action of :func:`action_space`.

    Raises:
        ConfigError: a key missing or unknown, or a value of the wrong shape or out of range
            (the message names the key and what it allows; nothing is clipped).
    """
    checked = _check(action)
    return core.Mechanism(rule=np.array([checked["rule"]], np.int64), reserve=checked["reserve"].copy(),
                          flags=checked["flags"][None, :], penalties=checked["penalties"][None, :],
                          coalition=np.array([checked["coalition"]], np.int64))


def to_action(action: Mapping[str, Any]) -> MechanismAction:
    """The :class:`MechanismAction` for an action of :func:`action_space` (for logs and the JSON shell).

    Raises:
        ConfigError: as :func:`to_mechanism`.
    """
    checked = _check(action)
    penalties = dict(zip(PENALTIES, checked["penalties"].tolist(), strict=True))
    flags = dict(zip(FLAGS, checked["flags"].tolist(), strict=True))
    return MechanismAction(rule=RULES[checked["rule"]], reserve=float(checked["reserve"][0]),
                           coalition=COALITIONS[checked["coalition"]], **flags, **penalties)


def from_action(action: MechanismAction, current_reserve: float = 0.0) -> dict[str, Any]:
    """The action of :func:`action_space` that plays ``action``, the inverse of :func:`to_action`.

    Args:
        action: a validated action.
        current_reserve: the reserve in force, which a relative ``reserve_change`` (or no reserve
            at all) moves or keeps; the Gymnasium action always sets the reserve absolutely.
    """
    return {
        "rule": np.int64(RULES.index(action.rule)),
        "reserve": np.array([action.resolved_reserve(current_reserve)], np.float64),
        "flags": np.array([getattr(action, f) for f in FLAGS], np.int8),
        "penalties": np.array([getattr(action, p) for p in PENALTIES], np.float64),
        "coalition": np.int64(COALITIONS.index(action.coalition)),
    }


def _check(action: Any) -> dict[str, Any]:
    """The action's fields as (int, array, bool array, array, int), or :class:`ConfigError`."""
    if not isinstance(action, Mapping):
        raise ConfigError(f"action must be a dict with keys {', '.join(ACTION_KEYS)}, got {type(action).__name__}")
    missing = [k for k in ACTION_KEYS if k not in action]
    if missing:
        raise ConfigError(f"action is missing {', '.join(missing)}; an action has keys {', '.join(ACTION_KEYS)}")
    unknown = [str(k) for k in action if k not in ACTION_KEYS]
    if unknown:
        raise ConfigError(f"unknown action key {', '.join(map(repr, unknown))}; allowed: {', '.join(ACTION_KEYS)}")
    return {
        "rule": _index("rule", action["rule"], RULES),
        "reserve": _box("reserve", action["reserve"], 1, MAX_RESERVE),
        "flags": _binary("flags", action["flags"], FLAGS),
        "penalties": _box("penalties", action["penalties"], len(PENALTIES), MAX_PENALTY),
        "coalition": _index("coalition", action["coalition"], COALITIONS),
    }


def _index(key: str, value: Any, names: tuple[str, ...]) -> int:
    is_int = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    is_int |= isinstance(value, np.ndarray) and value.shape == () and np.issubdtype(value.dtype, np.integer)
    if not is_int or not 0 <= int(value) < len(names):
        listed = ", ".join(f"{i} {n}" for i, n in enumerate(names))
        raise ConfigError(f"{key} must be an integer in [0, {len(names) - 1}] ({listed}), got {_show(value)}")
    return int(value)


def _box(key: str, value: Any, size: int, high: float) -> FloatArray:
    array = _numbers(value)
    if array is None or array.shape != (size,) or not np.isfinite(array).all() \
            or (array < 0).any() or (array > high).any():
        raise ConfigError(f"{key} must be {size} finite number{'s' if size > 1 else ''} in [0, {high:g}] "
                          f"(shape ({size},)), got {_show(value)}")
    return array.astype(np.float64)


def _binary(key: str, value: Any, names: tuple[str, ...]) -> np.ndarray:
    array = _numbers(value)
    if array is None or array.shape != (len(names),) or not ((array == 0) | (array == 1)).all():
        raise ConfigError(f"{key} must be {len(names)} values in {{0, 1}} ({', '.join(names)}), got {_show(value)}")
    return array.astype(bool)


def _numbers(value: Any) -> np.ndarray | None:
    """``value`` as a numeric (or bool) array, or None where it is not one."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return array if array.dtype.kind in "biuf" else None


def _show(value: Any) -> str:
    return repr(value.tolist()) if isinstance(value, np.ndarray | np.generic) else repr(value)


def _check_population(population: Any) -> int | None:
    # A training shell: the held-out benchmark's populations are refused (designer.evaluate plays them).
    return None if population is None else training_seed(population)


class DesignerGymEnv(gymnasium.Env[FloatArray, dict[str, Any]]):
    """One referee episode behind Gymnasium's API (see the module docstring).

    Args:
        stage: the curriculum stage, 1..5, of every episode unless ``reset`` options say otherwise.
        population: play this population seed in every episode (default: one drawn per episode
            from the episode seed, as :class:`DesignerEnv` does).
        render_mode: None or ``"ansi"`` (``render`` returns the last step as text).

    Raises:
        ConfigError: an unknown stage, a population seed outside [0, 2^40) (2^40 and up are the held-out
            benchmark's) or an unknown render mode.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 (Gymnasium's class attribute)

    def __init__(self, stage: int = 1, population: int | None = None, render_mode: str | None = None) -> None:
        self.stage = check_stage(stage)
        self.population = _check_population(population)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        low, high = observation_bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float64)
        self.action_space = action_space()
        self.params = None
        self.state: core.State | None = None
        self.last: tuple[core.Mechanism, float, dict[str, float]] | None = None  # the last step, for render

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[FloatArray, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds ``np_random``, which draws the episode seed (None: continue its stream).
            options: ``{"stage": int, "population": int}``, either key optional, for this episode.

        Returns:
            The first observation (OBSERVATION_WIDTH,) and ``{"stage", "population", "episode_seed"}``.

        Raises:
            ConfigError: unknown options or invalid values (before anything changes).
        """
        options = {} if options is None else options
        unknown = sorted(str(k) for k in set(options) - {"stage", "population"})
        if unknown:
            raise ConfigError(f"unknown reset option {', '.join(map(repr, unknown))}; allowed: 'stage', 'population'")
        stage = check_stage(options.get("stage", self.stage))
        population = _check_population(options.get("population", self.population))
        super().reset(seed=seed)
        episode = int(self.np_random.integers(0, EPISODE_SEEDS))
        population = population_seeds(episode, 1)[0] if population is None else population
        self.params = sample(stage, [population], [episode])
        self.state = core.reset(self.params)
        self.last = None
        return self._observation(), {"stage": stage, "population": population, "episode_seed": episode}

    def step(self, action: Mapping[str, Any]) -> tuple[FloatArray, float, bool, bool, dict[str, float]]:
        """Play one designer step under ``action``; the action is validated before anything changes.

        Returns:
            (observation (OBSERVATION_WIDTH,), reward in [0, 1], terminated (always False),
            truncated (the HORIZON-th step), the reward components by name).

        Raises:
            ConfigError: an action outside :attr:`action_space` (the message names the key).
            InvalidActionError: no episode started, or it is over (reset first).
        """
        mechanism = to_mechanism(action)
        if self.state is None:
            raise InvalidActionError("no episode: call reset() first")
        if self.state.step[0] >= core.HORIZON:
            raise InvalidActionError(f"the episode is over (truncated after {core.HORIZON} steps); call reset()")
        self.state, result = core.step(self.params, self.state, mechanism)
        reward = float(result.reward[0])
        components = dict(zip(core.COMPONENTS, result.components[0].tolist(), strict=True))
        self.last = (mechanism, reward, components)
        truncated = bool(self.state.step[0] >= core.HORIZON)
        return self._observation(), reward, False, truncated, dict(components)

    def render(self) -> str | None:
        """In ``"ansi"`` mode, the last step as text: mechanism, reward and its components."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; make the env with render_mode='ansi'")
            return None
        if self.state is None:
            return "no episode: call reset()"
        head = f"stage {int(self.params.stage[0])}, step {int(self.state.step[0])}/{core.HORIZON}"
        if self.last is None:
            return f"{head}: no step yet"
        mechanism, reward, components = self.last
        flags = [f for f, on in zip(FLAGS, mechanism.flags[0], strict=True) if on]
        penalties = ", ".join(f"{p} {x:.3g}" for p, x in zip(PENALTIES, mechanism.penalties[0], strict=True))
        return (f"{head}\n"
                f"mechanism: {RULES[mechanism.rule[0]]}, reserve {mechanism.reserve[0]:.3f}, "
                f"reveals {', '.join(flags) or 'nothing'}, {penalties}, coalition {COALITIONS[mechanism.coalition[0]]}\n"
                f"reward {reward:.4f} = " + " x ".join(f"{c} {x:.4f}" for c, x in components.items()))

    def _observation(self) -> FloatArray:
        return core.observation_vectors(self.state, self.params)[0]


class FlatActions(gymnasium.ActionWrapper):
    """The designer's Dict action as one Box in [-1, 1]^W, for Stable-Baselines3 and RLlib.

    Columns, in order: one score per rule and per coalition policy (the highest plays), one per
    flag (positive: on), the reserve and each penalty mapped affinely from [-1, 1] onto [0, high].
    Every Dict action is reachable (:func:`flatten_action` gives its vector), so the wrapped env
    loses no mechanism; out-of-range or non-finite vectors raise :class:`ConfigError` as Dict ones do.

    >>> env = FlatActions(gymnasium.make(ENV_ID, stage=2))
    >>> env.action_space.shape == (FLAT_WIDTH,)
    True
    >>> to_action(env.action(flatten_action(from_action(MechanismAction(rule="vcg", reserve=0.3))))).rule
    'vcg'
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.action_space = spaces.Box(-1.0, 1.0, (FLAT_WIDTH,), np.float32)

    def action(self, action: Any) -> dict[str, Any]:
        """The Dict action a flat vector plays.

        Raises:
            ConfigError: not (FLAT_WIDTH,) finite numbers in [-1, 1].
        """
        flat = _numbers(action)
        if flat is None or flat.shape != (FLAT_WIDTH,) or not np.isfinite(flat).all() or (np.abs(flat) > 1).any():
            raise ConfigError(f"a flat action must be {FLAT_WIDTH} finite numbers in [-1, 1], got {_show(action)}")
        rule, reserve, flags, penalties, coalition = np.split(flat.astype(np.float64), _FLAT_SPLITS)
        return {"rule": np.int64(np.argmax(rule)), "reserve": (reserve + 1) / 2 * MAX_RESERVE,
                "flags": (flags > 0).astype(np.int8), "penalties": (penalties + 1) / 2 * MAX_PENALTY,
                "coalition": np.int64(np.argmax(coalition))}


def flatten_action(action: Mapping[str, Any]) -> FloatArray:
    """(FLAT_WIDTH,) the vector :class:`FlatActions` plays as ``action`` (a Dict action).

    Raises:
        ConfigError: as :func:`to_mechanism`.
    """
    checked = _check(action)
    return np.concatenate([np.where(np.arange(len(RULES)) == checked["rule"], 1.0, -1.0),
                           checked["reserve"] / MAX_RESERVE * 2 - 1, np.where(checked["flags"], 1.0, -1.0),
                           checked["penalties"] / MAX_PENALTY * 2 - 1,
                           np.where(np.arange(len(COALITIONS)) == checked["coalition"], 1.0, -1.0)])
