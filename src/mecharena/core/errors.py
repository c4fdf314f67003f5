"""One error hierarchy for every boundary of the arena.

Messages name the field, the bad value and what is allowed, e.g.
``reserve_price must be >= 0, got -5.0``.
"""


class MechArenaError(Exception):
    """Root of every error the arena raises on purpose."""


class ConfigError(MechArenaError, ValueError):
    """A configuration field is missing, of the wrong type or out of range."""


class UnknownIdError(MechArenaError, KeyError):
    """A mechanism, agent or other registry id does not exist."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class InvalidActionError(MechArenaError, ValueError):
    """Bids or other actions have the wrong shape or values outside the allowed range."""
