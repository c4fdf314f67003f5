"""Errors, array aliases, seeding, configs and registries. Depends on nothing in the package."""

from mecharena.core.errors import ConfigError, InvalidActionError, MechArenaError, UnknownIdError

__all__ = ["ConfigError", "InvalidActionError", "MechArenaError", "UnknownIdError"]
