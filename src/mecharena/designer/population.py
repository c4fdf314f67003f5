"""Hidden populations of the referee environment, stage by stage, and the held-out benchmark.

A population is the episode's :class:`Params`: how many seats, how many units are for sale, each
seat's hidden type and private parameters. The designer never sees any of it. Types (the arena's
adversaries, in the compact form the referee kernel runs):

========  =====================================================================================
truthful  naive: bids its value in every format (pays it in first-price formats)
shader    adaptive: its bid / value moves toward the format's Bayes-Nash bid, faster the more the
          market reveals (for uniform values, the arena's ``agents.bne`` curve: (n-1)/n of the value
          in first price, v - integral G / G(v) in k-unit pay-as-bid; the value where truthful
          bidding is dominant; Krishna, *Auction Theory*, 2nd ed., ch. 2 and 13)
cartel    bid-rotation ring: the member with the highest value bids, the others submit phony bids
          (or cover bids when near-zero bids are fined); in first-price formats the ring holds only
          while it can police defection (winner identities or bids revealed); in second-price
          formats it is self-enforcing (Marshall and Marx, 2007, *J. Econ. Theory* 133)
dropout   strategic entrant with an outside option: exits when its running utility (fines
          included) falls below it, re-enters now and then; a withdrawal fine keeps it in but
          deters re-entry
budget    budget-constrained exploiter: overbids where others' bids set its price, exits when
          its budget is spent
shill     the seller's false-name bidder: bids just under the lowest winning real bid where a
          losing bid sets the price; not a real buyer
========  =====================================================================================

Stages (curriculum): 1 truthful; 2 multi-item and information policy (shaders, shills);
3 reserve vs dropout tension (thin markets, dropouts, rings); 4 transparency enables cartels;
5 every type in Dirichlet-sampled shares, budget exploiters included.

Training draws population seeds below ``HELD_OUT_BASE``; the held-out benchmark is the
``HELD_OUT_SIZE`` seeds from it, refused by :func:`training_seed`.
"""

from dataclasses import dataclass

import numba
import numpy as np

from mecharena.core.config import shown_value
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import hash_uniform
from mecharena.core.types import FloatArray, IntArray

TRUTHFUL, SHADER, CARTEL, DROPOUT, BUDGET, SHILL = range(6)
KINDS = ("truthful", "shader", "cartel", "dropout", "budget", "shill")
EMPTY = -1
SEATS = 12  # maximum seats per market
STAGES = (1, 2, 3, 4, 5)
HELD_OUT_BASE = 1 << 40
HELD_OUT_SIZE = 20
NO_BUDGET = 1e9


@dataclass(frozen=True, slots=True)
class Params:
    """Everything fixed within an episode (hidden from the designer)."""

    stage: IntArray  # (E,)
    units: IntArray  # (E,)  k, units for sale each round (known to the operator)
    kind: IntArray  # (E, SEATS)  int8 type per seat, EMPTY where unused
    shading: FloatArray  # (E, SEATS)  initial bid multiplier
    outside: FloatArray  # (E, SEATS)  outside option (dropout)
    budget: FloatArray  # (E, SEATS)  spending limit over the episode (budget)
    ring_gain: FloatArray  # (E,)  per-member gain the ring expects from colluding
    shill_gain: FloatArray  # (E,)  gain the seller expects from a shill bid
    seed: IntArray  # (E,)  uint64 key of the episode's random stream


def check_stage(stage: int) -> int:
    """``stage`` as an int in 1..5, or :class:`ConfigError`."""
    if isinstance(stage, bool) or not isinstance(stage, int | np.integer) or stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(map(str, STAGES))}, got {stage!r}")
    return int(stage)


def training_seed(seed: int, name: str = "population") -> int:
    """``seed`` if it may be used in training, else :class:`ConfigError` (held-out range or not a seed).

    >>> training_seed(2**40)
    Traceback (most recent call last):
    ...
    mecharena.core.errors.ConfigError: population must be an integer in [0, 2^40) (2^40 and up are the held-out \
benchmark's), got 1099511627776
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < HELD_OUT_BASE:
        raise ConfigError(f"{name} must be an integer in [0, 2^40) (2^40 and up are the held-out benchmark's), "
                          f"got {shown_value(seed)}")
    return int(seed)


def held_out_seeds() -> list[int]:
    """The held-out benchmark's population seeds (the same for every stage)."""
    return [HELD_OUT_BASE + i for i in range(HELD_OUT_SIZE)]


@numba.njit(cache=True, inline="always")
def _draw(key, stage, j):
    return hash_uniform(key, stage, j, 17)


@numba.njit(cache=True)
def _populate(stage, seeds, units, kind, shading, outside, budget, ring_gain, shill_gain):
    """Fill row e of the outputs with the population of ``seeds[e]``: draws are hashes of (seed, stage, j)."""
    for e in range(seeds.size):
        key = np.uint64(seeds[e])
        n = 0
        ring = 0
        if stage == 1:
            n = 3 + int(_draw(key, stage, 0) * 6)
            units[e] = 1
            for i in range(n):
                kind[e, i] = TRUTHFUL
        elif stage == 2 or stage == 4:
            n = (4 + int(_draw(key, stage, 0) * 7)) if stage == 2 else (5 + int(_draw(key, stage, 0) * 6))
            units[e] = 1 + int(_draw(key, stage, 1) * (3 if stage == 2 else 2))
            if stage == 4 and _draw(key, stage, 2) < 0.6:
                ring = 2 + int(_draw(key, stage, 3) * 3)
            # naive share: arcsine (Beta(1/2, 1/2)) at stage 2, Beta(1, 2) at stage 4
            share = (1.0 - np.cos(np.pi * _draw(key, stage, 4))) / 2.0 if stage == 2 else 1.0 - np.sqrt(1.0 - _draw(key, stage, 4))
            for i in range(n):
                kind[e, i] = CARTEL if i < ring else (TRUTHFUL if _draw(key, stage, 10 + i) < share else SHADER)
            if stage == 2 and _draw(key, stage, 5) < 0.5:
                kind[e, n] = SHILL
                n += 1
        elif stage == 3:
            n = 3 + int(_draw(key, stage, 0) * 5)
            units[e] = 1 + int(_draw(key, stage, 1) * 2)
            if _draw(key, stage, 2) < 0.6:
                ring = 2 + int(_draw(key, stage, 3) * 2)
            n = max(n, ring + 1)
            for i in range(n):
                kind[e, i] = CARTEL if i < ring else (DROPOUT if _draw(key, stage, 10 + i) < 0.7 else TRUTHFUL)
        else:
            n = 5 + int(_draw(key, stage, 0) * (SEATS - 5))
            units[e] = 1 + int(_draw(key, stage, 1) * 3)
            weights = np.zeros(5)  # Dirichlet(1, ..., 1) shares: normalised exponentials
            for t in range(5):
                weights[t] = -np.log(1.0 - _draw(key, stage, 2 + t))
            weights /= weights.sum()
            rings = 0
            for i in range(n):
                u = _draw(key, stage, 10 + i)
                t = 0
                acc = weights[0]
                while u >= acc and t < 4:
                    t += 1
                    acc += weights[t]
                kind[e, i] = t
                rings += t == CARTEL
            if rings == 1:  # a ring of one is no ring
                for i in range(n):
                    if kind[e, i] == CARTEL:
                        kind[e, i] = SHADER
            if _draw(key, stage, 7) < 0.3 and n < SEATS:
                kind[e, n] = SHILL
                n += 1
        for i in range(n):
            shading[e, i] = 0.5 + 0.4 * _draw(key, stage, 30 + i)
            if kind[e, i] == DROPOUT:  # the others have none (0): they stay whatever they earn
                outside[e, i] = 0.06 * _draw(key, stage, 50 + i)
            if kind[e, i] == BUDGET:
                budget[e, i] = 0.5 + 1.5 * _draw(key, stage, 70 + i)
        ring_gain[e] = 0.01 + 0.29 * _draw(key, stage, 8)
        shill_gain[e] = 0.02 + 0.13 * _draw(key, stage, 9)


def sample(stage: int, seeds: list[int] | IntArray, episodes: list[int] | IntArray | None = None) -> Params:
    """One population per seed for ``stage`` (E = len(seeds)); a seed always gives the same population.

    ``episodes`` (default all 0) key the episode's draws (values, audits, ties) apart from the
    population: the same population can be replayed on fresh markets.

    Raises:
        ConfigError: an unknown stage or a negative seed.
    """
    stage = check_stage(stage)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    episodes = np.zeros(seeds.size, np.int64) if episodes is None else np.asarray(episodes, np.int64).reshape(-1)
    if (seeds < 0).any() or (episodes < 0).any() or episodes.size != seeds.size:
        raise ConfigError(f"population and episode seeds must be >= 0 and as many, got {seeds} and {episodes}")
    e = seeds.size
    out = {
        "units": np.zeros(e, np.int64), "kind": np.full((e, SEATS), EMPTY, np.int8),
        "shading": np.ones((e, SEATS)), "outside": np.zeros((e, SEATS)),
        "budget": np.full((e, SEATS), NO_BUDGET), "ring_gain": np.zeros(e), "shill_gain": np.zeros(e),
    }
    _populate(stage, seeds, *out.values())
    return Params(np.full(e, stage, np.int64), seed=_episode_keys(seeds, stage, episodes), **out)


@numba.njit(cache=True)
def _episode_keys(seeds, stage, episodes):
    keys = np.empty(seeds.size, np.uint64)
    for e in range(seeds.size):
        high = hash_uniform(np.uint64(seeds[e]), stage, episodes[e], 23)
        low = hash_uniform(np.uint64(seeds[e]), stage, episodes[e], 29)
        keys[e] = (np.uint64(high * 4294967296.0) << np.uint64(32)) ^ np.uint64(low * 4294967296.0)
    return keys


def describe(params: Params, row: int) -> dict[str, object]:
    """A population in words (for reports and the oracle's table; never shown to the designer)."""
    kinds = [KINDS[k] for k in params.kind[row] if k != EMPTY]
    return {"stage": int(params.stage[row]), "units": int(params.units[row]),
            "types": {k: kinds.count(k) for k in KINDS if k in kinds}}
