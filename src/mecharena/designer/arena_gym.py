"""The referee on the arena's loop as a Gymnasium env: ``gymnasium.make("mecharena/ArenaReferee-v0")``.

A thin shell over :mod:`mecharena.designer.arena`, one episode at a time. The action is discrete
(``MultiDiscrete``, :func:`~mecharena.designer.arena.action_sizes`): a mechanism with its grid of
config fields, each information flag, each fine and the audit level, which Stable-Baselines3 and
RLlib take as they are. ``reset(seed=s)`` seeds ``self.np_random``, which draws the episode key
(reported in ``info``); the same key and actions give the same episode bit for bit. An episode lasts
``horizon`` steps and ends by truncation. Plug-in mechanisms are offered by name once loaded
(``mecharena.plugins.activate``).

>>> env = ArenaRefereeGymEnv(settings={"populations": ["truthful:3"], "mechanisms": ["second_price"]})
>>> obs, info = env.reset(seed=0)
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample() * 0)
>>> reward, sorted(info)
(1.0, ['fairness', 'participation', 'stability', 'welfare'])
"""

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from mecharena.core.errors import InvalidActionError
from mecharena.core.types import FloatArray
from mecharena.designer import arena

ENV_ID = "mecharena/ArenaReferee-v0"
EPISODE_KEYS = 1 << 31


def observation_bounds(params: arena.Params) -> tuple[FloatArray, FloatArray]:
    """(low, high) of every column of :func:`arena.observation`: the components, the reward and the shares
    in [0, 1]; revenue unbounded (a mechanism may pay out); fines and bid ratios at least 0; the rules vector
    in [0, 1] but for the grid fields, within their grids and [0, 1]."""
    bounded = {"revenue": (-np.inf, np.inf), "fines": (0.0, np.inf), "bid_ratio": (0.0, np.inf)}
    columns = [bounded.get(f, (0.0, 1.0)) for f in arena.FEATURES]
    columns += [(0.0, 1.0)] * len(params.mechanisms)
    columns += [(min(0.0, *grid), max(1.0, *grid)) for grid in params.settings.grid.values()]
    columns += [(0.0, 1.0)] * (len(arena.FLAGS) + len(arena.PENALTIES) + 1)
    low, high = np.array(columns, np.float64).T
    return low.copy(), high.copy()


class ArenaRefereeGymEnv(gymnasium.Env[FloatArray, np.ndarray]):
    """One referee episode over the arena's agents. ``settings``: a :class:`arena.Settings` or its dict."""

    def __init__(self, settings: arena.Settings | dict[str, Any] | None = None) -> None:
        self.params = arena.make_params(settings)
        self.action_space = spaces.MultiDiscrete(arena.action_sizes(self.params))
        low, high = observation_bounds(self.params)
        self.observation_space = spaces.Box(low, high, dtype=np.float64)
        self.state: arena.State | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[FloatArray, dict[str, Any]]:
        super().reset(seed=seed)
        key = int(self.np_random.integers(EPISODE_KEYS))
        self.state = arena.reset(self.params, key)
        return arena.observation(self.params, self.state), {"key": key, "population": self.state.population}

    def step(self, action: Any) -> tuple[FloatArray, float, bool, bool, dict[str, float]]:
        """Play the rules of ``action``.

        Raises:
            InvalidActionError: an action of the wrong shape or out of range, or a step before ``reset``
                or after the episode's end.
        """
        if self.state is None:
            raise InvalidActionError("call reset() before step()")
        rules = arena.rules_of(self.params, action)
        self.state, result = arena.step(self.params, self.state, rules)
        return arena.observation(self.params, self.state), result.reward, False, result.done, result.components

    def rules(self, action: Any) -> arena.Rules:
        """The :class:`arena.Rules` an action plays (for logs)."""
        return arena.rules_of(self.params, action)
