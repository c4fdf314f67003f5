"""Scoring a deviation with common random numbers.

A deviation replaces K agents of the target population with a family's agent type: the first K,
or the K after the first ``after`` (a seller deviator in a two-sided market comes after the buyers). Its
gain is the deviators' average utility per agent and round with the deviation minus the same
agents' average without it, market by market, on the *same* seed: the same values (for the seats
the deviation leaves in place), priorities, audits and draws of everyone else, so the paired
difference has far less variance than two independent runs. Markets are the independent units of
the 95% interval (mean +- 1.96 s / sqrt(B)).
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena import agents
from mecharena.agents.population import with_prior
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.fuzz.families import FAMILIES
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import Z95
from mecharena.sim.loop import play


@dataclass(frozen=True, slots=True)
class Deviation:
    """A family, its parameters and how many agents deviate together."""

    family: str
    params: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs
    deviators: int = 1
    after: int = 0  # agents that keep their place before the deviators

    @property
    def agent_spec(self) -> str:
        return FAMILIES.get(self.family).agent_spec(dict(self.params))

    def as_dict(self) -> dict[str, Any]:
        out = {"family": self.family, "params": dict(self.params), "deviators": self.deviators,
               "agent": self.agent_spec}
        return out | ({"after": self.after} if self.after else {})


@dataclass(frozen=True, slots=True)
class Gain:
    """The deviators' gain per agent and round, with its 95% interval over markets."""

    mean: float
    lo: float
    hi: float
    frequency: float  # share of markets where the deviators gained
    baseline: float  # their utility per agent and round without the deviation
    welfare: float  # welfare per agent and round without the deviation (for severity)
    markets: int
    rounds: int
    seed: int

    @property
    def half(self) -> float:
        return (self.hi - self.lo) / 2

    @property
    def text(self) -> str:
        """``+mean [+lo, +hi]``."""
        return f"{self.mean:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]"

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": [self.lo, self.hi], "frequency": self.frequency,
                "baseline": self.baseline, "markets": self.markets, "rounds": self.rounds, "seed": self.seed}


def deviated_population(spec: str, seed: int, deviators: int, agent_spec: str, after: int = 0) -> str:
    """The population spec with ``deviators`` agents, after the first ``after``, replaced by ``agent_spec``;
    a deviator keeps its group's own value prior (a deviation changes how a member plays, not its values).

    Raises:
        ConfigError: fewer agents than after + deviators, or fewer than one deviator.
    """
    population = agents.population(spec, seed)
    total = sum(g.count for g in population.groups)
    if not 1 <= deviators <= total - after:
        raise ConfigError(f"deviators must be in [1, {total - after}] (the agents of {population.spec!r}"
                          f"{f' after the first {after}' if after else ''}), got {deviators}")
    parts, position, block = [], 0, []  # block: the deviators' (own prior, count) in order, equal priors merged
    for g in population.groups:  # each group keeps its own place (its draws are keyed by it)
        kept_before = min(max(after - position, 0), g.count)
        kept_after = min(max(position + g.count - after - deviators, 0), g.count)
        if kept_before:
            parts.append(f"{g.label}:{kept_before}")
        if g.count - kept_before - kept_after:
            if block and block[-1][0] == g.values:
                block[-1][1] += g.count - kept_before - kept_after
            else:
                block.append([g.values, g.count - kept_before - kept_after])
        if position <= after + deviators <= position + g.count:
            parts += [f"{with_prior(agent_spec, prior)}:{count}" for prior, count in block]
            block = []
        if kept_after:
            parts.append(f"{g.label}:{kept_after}")
        position += g.count
    return ",".join(parts)


def agent_seats(owner: np.ndarray, count: int) -> np.ndarray:
    """The own seats of the first ``count`` economic agents."""
    return np.flatnonzero(owner == np.arange(owner.size))[:count]


def _member_utility(cell: Cell, count: int, after: int = 0) -> tuple[FloatArray, FloatArray]:
    """(B, count) the utility per round of each of ``count`` agents after the first ``after``, and (B,)
    welfare per agent and round."""
    episode = cell.episode()
    seats = agent_seats(episode.owner, after + count)[after:]
    agents_n = int((episode.owner == np.arange(episode.owner.size)).sum())
    total = np.zeros((cell.markets, count))
    welfare = np.zeros(cell.markets)
    for record in play(episode, cell.rounds):
        total += record.utility[:, seats]
        welfare += record.welfare
    return total / cell.rounds, welfare / (agents_n * cell.rounds)


def gain_of(diff: FloatArray, baseline: float, welfare: float, rounds: int, seed: int) -> Gain:
    """The :class:`Gain` of (B,) per-market differences: their mean with its 95% interval over markets."""
    mean = float(diff.mean())
    half = Z95 * float(diff.std(ddof=1)) / math.sqrt(diff.size) if diff.size > 1 else 0.0
    return Gain(mean, mean - half, mean + half, float((diff > 1e-12).mean()), baseline, welfare, diff.size, rounds,
                seed)


class Scorer:
    """Scores deviations against one target, remembering the baseline runs it has played."""

    def __init__(self, target: Cell) -> None:
        """Raises ConfigError / UnknownIdError when ``target`` is not a playable cell."""
        self.target = target
        self.two_sided = target.episode().context.spec.sellers is not None  # validates the target
        self._baselines: dict[tuple[int, int, int, int, int], tuple[FloatArray, FloatArray]] = {}

    def baseline(self, seed: int, markets: int, rounds: int, count: int, after: int = 0
                 ) -> tuple[FloatArray, FloatArray]:
        """(B, count) each agent's utility per round without a deviation, and (B,) welfare per agent and round."""
        key = (seed, markets, rounds, count, after)
        if key not in self._baselines:
            self._baselines[key] = _member_utility(
                replace_cell(self.target, seed=seed, markets=markets, rounds=rounds), count, after)
        return self._baselines[key]

    def member_gains(self, deviation: Deviation, *, seed: int, markets: int, rounds: int) -> FloatArray:
        """(B, K) each deviator's gain per round, market by market, against the target population's own policy
        on common random numbers.

        Raises:
            ConfigError / UnknownIdError: the deviation cannot be played in this market.
        """
        spec = deviated_population(self.target.population, seed, deviation.deviators, deviation.agent_spec,
                                   deviation.after)
        deviated = replace_cell(self.target, seed=seed, markets=markets, rounds=rounds, population=spec)
        base, _ = self.baseline(seed, markets, rounds, deviation.deviators, deviation.after)
        return _member_utility(deviated, deviation.deviators, deviation.after)[0] - base

    def score(self, deviation: Deviation, *, seed: int, markets: int, rounds: int) -> Gain:
        """The deviation's gain per agent and round against the target population's own policy, on common random
        numbers.

        Raises:
            ConfigError / UnknownIdError: the deviation cannot be played in this market.
        """
        diff = self.member_gains(deviation, seed=seed, markets=markets, rounds=rounds).mean(axis=1)
        return self.as_gain(diff, deviation, seed=seed, rounds=rounds)

    def as_gain(self, diff: FloatArray, deviation: Deviation, *, seed: int, rounds: int) -> Gain:
        """The :class:`Gain` of (B,) per-market gains of ``deviation`` played on ``seed`` (its baseline is cached)."""
        base, welfare = self.baseline(seed, diff.size, rounds, deviation.deviators, deviation.after)
        return gain_of(diff, float(base.mean()), float(welfare.mean()), rounds, seed)


def replace_cell(cell: Cell, **fields: Any) -> Cell:
    """A copy of ``cell`` with ``fields`` changed (validated)."""
    return Cell.model_validate({**cell.model_dump(), **fields})


