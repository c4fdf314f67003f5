"""Incentive fuzzing: deviation families, common-random-number scoring, search, exploitability."""

from mecharena.fuzz.families import FAMILIES, Family, Param
from mecharena.fuzz.score import Deviation, Gain, Scorer, deviated_population
from mecharena.fuzz.search import FuzzResult, Trial, fuzz

__all__ = ["FAMILIES", "Deviation", "Family", "FuzzResult", "Gain", "Param", "Scorer", "Trial",
           "deviated_population", "fuzz"]
