"""The round loop and what drives it."""

from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.loop import Episode, LoopState, RoundRecord, initial_state, make_episode, play, play_round
from mecharena.sim.simulate import Trace, simulate, trace

__all__ = ["Enforcement", "Episode", "InformationPolicy", "LoopState", "RoundRecord", "Trace", "initial_state",
           "make_episode", "play", "play_round", "simulate", "trace"]
