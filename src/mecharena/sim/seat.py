"""The generic PettingZoo shells: what every ``ParallelEnv`` of the package shares, and one agent of one as a
Gymnasium env.

:class:`SeatedParallelEnv` holds the parts the sealed-bid arena's and the negotiation economy's
``ParallelEnv`` have in common: one space object per agent kept for the env's life (PettingZoo seeds
and compares them), and episode seeds (``reset(seed=s)`` plays episode ``s``; ``reset()`` the next
episode of the last seed's stream).

A ``ParallelEnv`` whose other seats play themselves (scripted opponents) has exactly one agent; this
shell hands that agent's spaces, observations, rewards and flags to any single-agent library
(Stable-Baselines3, RLlib, CleanRL) unchanged. Seeding follows the parallel env: ``reset(seed=s)``
replays episode ``s``; ``reset()`` draws the next episode from the last seed's stream.

Registered on ``import mecharena``:

* ``mecharena/Arena-v0``: one seat (``bidder_0``) of the sealed-bid arena against scripted opponents,
  :func:`arena_env` (keyword ``config``: an :class:`~mecharena.sim.parallel.ArenaConfig` or its fields;
  default :data:`~mecharena.sim.parallel.ONE_SEAT`, second price against two truthful bidders);
* ``mecharena/Negotiation-v0``: lab 0 of the negotiation economy against scripted archetypes,
  :func:`negotiation_env` (keywords ``task`` and ``opponents``, one archetype per other lab; default the
  archetypes :func:`~mecharena.negotiation.env.draw_opponents` draws for episode 0), with the
  parallel env's ``MultiDiscrete`` actions and flat observations.

>>> import gymnasium, mecharena
>>> env = gymnasium.make("mecharena/Arena-v0", config={"mechanism": "first_price", "rounds": 3,
...                                                    "opponents": "truthful:2"})
>>> obs, info = env.reset(seed=0)
>>> obs.shape == env.observation_space.shape, env.action_space.shape
(True, (2,))
"""

from typing import Any, ClassVar

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from mecharena.core.errors import ConfigError


class SeatedParallelEnv(ParallelEnv):
    """A ``ParallelEnv`` whose agents' spaces are fixed at construction (:meth:`set_spaces`) and whose episodes
    are numbered by seed (:meth:`episode_seed`)."""

    def set_spaces(self, observation: Any, action: Any) -> None:
        """One space object per agent of ``possible_agents``: ``observation()`` and ``action()`` build them."""
        self._observation_spaces = {a: observation() for a in self.possible_agents}
        self._action_spaces = {a: action() for a in self.possible_agents}
        self._seeds = np.random.default_rng()

    def observation_space(self, agent: str) -> Any:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self._action_spaces[agent]

    def episode_seed(self, seed: int | None) -> int:
        """The seed of the episode a reset starts: ``seed`` itself, which also restarts the stream that a reset
        without a seed draws the next one from."""
        if seed is None:
            return int(self._seeds.integers(0, 1 << 31))
        self._seeds = np.random.default_rng(seed)
        return int(seed)


class SeatEnv(gymnasium.Env):
    """The one agent of ``parallel`` as a Gymnasium env.

    Raises:
        ConfigError: ``parallel`` has more than one agent (script the others) or none.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, parallel: ParallelEnv) -> None:
        agents = list(parallel.possible_agents)
        if len(agents) != 1:
            raise ConfigError(f"a single-learner env needs a parallel env with exactly one agent (script the "
                              f"others), got {len(agents)}: {agents[:8]}")
        self.parallel, self.agent = parallel, agents[0]
        self.observation_space = parallel.observation_space(self.agent)
        self.action_space = parallel.action_space(self.agent)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        observations, infos = self.parallel.reset(seed=seed, options=options)
        return observations[self.agent], infos[self.agent]

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        observations, rewards, terminations, truncations, infos = self.parallel.step({self.agent: action})
        a = self.agent
        return observations[a], float(rewards[a]), bool(terminations[a]), bool(truncations[a]), infos[a]


def arena_env(config: Any = None) -> SeatEnv:
    """Seat ``bidder_0`` of the sealed-bid arena (``config``: an ``ArenaConfig``, its fields as a dict, or None
    for ``ONE_SEAT``); its opponents must script every other seat.

    Raises:
        ConfigError: an invalid config, or opponents that leave more than one seat unscripted.
    """
    from mecharena.sim.parallel import ONE_SEAT, ArenaParallelEnv

    return SeatEnv(ArenaParallelEnv(ONE_SEAT if config is None else config))


def negotiation_env(task: str = "single_trade", opponents: list[str] | None = None) -> SeatEnv:
    """Lab 0 of a negotiation ``task`` against ``opponents`` (one archetype or baseline name per other lab).

    Raises:
        UnknownIdError: an unknown task or opponent. ConfigError: the wrong number of opponents.
    """
    from mecharena.negotiation.env import draw_opponents
    from mecharena.negotiation.parallel import NegotiationParallelEnv
    from mecharena.negotiation.scenario import SPECS, check_task

    labs = SPECS[check_task(task)].labs
    names = draw_opponents(task, 0, labs) if opponents is None else list(opponents)
    if len(names) != labs - 1:
        raise ConfigError(f"opponents must name {labs - 1} archetypes for task {task!r} (one per other lab), "
                          f"got {len(names)}")
    return SeatEnv(NegotiationParallelEnv(task, scripted=dict(enumerate(names, start=1))))
