"""Mechanism Arena: an incentive wind tunnel for economic mechanisms.

The engine (``mecharena.mechanisms``) is the deterministic source of truth for who wins and
who pays; ``mecharena.agents`` supplies bidding policies, ``mecharena.sim`` drives repeated
markets and ``mecharena.metrics`` summarises them.
"""

from importlib.metadata import PackageNotFoundError, version

import gymnasium

try:  # the installed distribution's version: pyproject.toml is its one source
    __version__ = version("mecharena")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
del PackageNotFoundError, version

#: Gymnasium envs, registered by name on import: ``gymnasium.make`` loads the module on first use.
ENVS = {"mecharena/Designer-v1": "mecharena.designer.gym:DesignerGymEnv",
        "mecharena/ArenaReferee-v0": "mecharena.designer.arena_gym:ArenaRefereeGymEnv",
        "mecharena/Arena-v0": "mecharena.sim.seat:arena_env",
        "mecharena/Negotiation-v0": "mecharena.sim.seat:negotiation_env"}
for _id, _entry in ENVS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry)
del _id, _entry
