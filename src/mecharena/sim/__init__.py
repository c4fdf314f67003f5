"""The round loop."""

from mecharena.sim.simulate import Trace, simulate

__all__ = ["Trace", "simulate"]
