"""The three tasks and their seeded economies: labs, private jobs, GPU blocks and shocks (the step's params).

Economics of a scenario:

* A **job** needs ``hours`` GPU-hours delivered by blocks that end by its ``deadline`` and whose
  reliability is at least ``min_reliability``. Completed on time it earns ``value``; completed
  ``d`` steps late it earns ``value x max(0, 1 - urgency x d)``; never completed it earns
  ``value x partial x delivered / hours`` (``partial`` is the job's partial-credit rate).
* A **block** is ``count`` GPUs for ``duration`` steps from ``start``: ``count x duration``
  GPU-hours. It runs for the job it is allocated to and delivers all its hours when it ends,
  if it does not fail (it fails when its pre-drawn ``draw`` >= its reliability at that moment).
  Its owner pays energy: ``energy x GPU-hours x`` the energy price factor.
* The **provider** sells its blocks at ``price x`` the price factor and buys unallocated blocks
  back at ``RELEASE_REFUND`` of that. Job values per GPU-hour (1.6 to 2.6) exceed list prices
  (0.9 to 1.3) plus energy, so a block that fits a job is worth buying at list, a block that
  fits nothing is a loss, and trading a block to the lab whose job it fits creates surplus.
* Endowments are mismatched on purpose: a job's best-fitting block usually belongs to someone
  else, so gains come from trade (and, in the coalition market, from pooling).

Tasks, in rising difficulty:

* ``single_trade``: two labs; the learner's job fits a block the other lab does not need, while
  the provider's fitting block is dear. One good trade is the whole game.
* ``market_round``: four labs, one or two jobs each, a provider, one shock.
* ``coalition_market``: six labs (the learner and one lab of each opponent archetype); the
  learner holds a consortium job larger than its budget can buy, whose fitting blocks are spread
  over the other labs; two or three shocks.

>>> p = make_params("single_trade", seed=0)
>>> p.labs, p.horizon, int((p.job_owner == 0).sum())
(2, 8, 1)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.core.seeding import generator
from mecharena.core.types import BoolArray, FloatArray, IntArray

TASKS = ("single_trade", "market_round", "coalition_market")
Task = Literal["single_trade", "market_round", "coalition_market"]
SHOCKS = ("capacity_failure", "energy_spike", "reliability_drop", "demand_surge")
PROVIDER = -1
RELEASE_REFUND = 0.5
VERSION = 1


@dataclass(frozen=True, slots=True)
class Shock:
    """A market event at the end of ``step``: ``block`` (or -1) names its target."""

    step: int
    kind: str  # one of SHOCKS
    block: int
    magnitude: float  # failure: unused; energy/demand: price factor multiplier; reliability: drop


@dataclass(frozen=True, slots=True)
class Params:
    """One episode's economy, fixed for the episode."""

    task: str
    seed: int
    horizon: int
    budget: FloatArray  # (L,)  starting budgets
    job_owner: IntArray  # (J,)
    job_hours: FloatArray  # (J,)  GPU-hours needed
    job_deadline: IntArray  # (J,)  step by which the hours must be delivered
    job_value: FloatArray  # (J,)  credit for completing on time
    job_urgency: FloatArray  # (J,)  share of value lost per step late
    job_min_rel: FloatArray  # (J,)  least reliability of a block that may run for it
    job_partial: FloatArray  # (J,)  partial-credit rate if never completed
    job_joint: BoolArray  # (J,)  consortium job: public terms, too big for its owner alone
    block_start: IntArray  # (K,)
    block_duration: IntArray  # (K,)
    block_count: IntArray  # (K,)  GPUs
    block_reliability: FloatArray  # (K,)  at reset
    block_energy: FloatArray  # (K,)  energy cost per GPU-hour at energy factor 1
    block_price: FloatArray  # (K,)  provider's list price of the whole block at price factor 1
    block_owner: IntArray  # (K,)  at reset; PROVIDER = -1
    block_draw: FloatArray  # (K,)  the block fails iff draw >= reliability when it ends
    shocks: tuple[Shock, ...]  # in step order
    # derived from the fields above once, not per read (the step and the observations read them per block)
    labs: int = field(init=False, repr=False, compare=False)  # L, labs
    jobs: int = field(init=False, repr=False, compare=False)  # J, jobs
    blocks: int = field(init=False, repr=False, compare=False)  # K, blocks
    block_hours: FloatArray = field(init=False, repr=False, compare=False)  # (K,)  GPU-hours: count x duration
    block_end: IntArray = field(init=False, repr=False, compare=False)  # (K,)  the step at which each block delivers

    def __post_init__(self) -> None:
        derived = {"labs": int(self.budget.size), "jobs": int(self.job_owner.size), "blocks": int(self.block_start.size),
                   "block_hours": (self.block_count * self.block_duration).astype(float),
                   "block_end": self.block_start + self.block_duration}
        for name, value in derived.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    labs: int
    horizon: int
    jobs: tuple[int, int]  # (least, most) regular jobs per lab
    extra_provider: int  # provider blocks beyond the fitting ones
    decoys: int  # lab-owned blocks that fit no job
    shocks: tuple[int, int]
    joint: bool


SPECS = {
    "single_trade": TaskSpec(labs=2, horizon=8, jobs=(1, 1), extra_provider=1, decoys=1, shocks=(0, 0), joint=False),
    "market_round": TaskSpec(labs=4, horizon=12, jobs=(1, 2), extra_provider=3, decoys=2, shocks=(1, 1), joint=False),
    "coalition_market": TaskSpec(labs=6, horizon=16, jobs=(1, 1), extra_provider=3, decoys=2, shocks=(2, 3),
                                 joint=True),
}
SHAPES = ((2, 1), (2, 2), (4, 1), (2, 3), (4, 2), (4, 3), (8, 2))  # (count, duration) of a block
MIN_RELIABILITY = (0.0, 0.85, 0.9)  # a job's least block reliability, one drawn per job
PARTIAL = (0.0, 0.3, 0.6)  # a job's partial-credit rate, one drawn per job


def check_task(task: str) -> str:
    """``task`` itself, or :class:`UnknownIdError` naming the tasks."""
    if task not in SPECS:
        import difflib

        near = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UnknownIdError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}{hint}")
    return task


def _pick(integers: Callable[[int, int], Any], options: tuple[float, ...]) -> float:
    """One of ``options``, uniformly, by an ``integers`` index: the draw ``rng.choice(options)`` makes (NumPy 2),
    without its conversion of ``options`` to an array (tests/negotiation/test_golden.py pins the economies)."""
    return options[int(integers(0, len(options)))]


def _count(integers: Callable[[int, int], Any], least: int, most: int) -> int:
    """``integers(least, most + 1)``; a range of one value draws nothing from the generator, so it is not called."""
    return least if least == most else int(integers(least, most + 1))


def _total(values: list[float]) -> float:
    """``np.sum(values)``: NumPy adds fewer than 8 numbers left to right, as ``sum`` does (longer arrays pairwise)."""
    return float(sum(values)) if len(values) < 8 else float(np.sum(values))


def make_params(task: str, seed: int) -> Params:
    """The economy of episode ``seed`` of ``task`` (same arguments, same economy, bit for bit).

    Raises:
        UnknownIdError: an unknown task.
        ConfigError: a negative or non-integer seed.
    """
    spec = SPECS[check_task(task)]
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    rng = generator(int(seed), ("negotiation", task, VERSION))
    integers, uniform = rng.integers, rng.uniform  # scalar draws; ``uniform`` returns a float
    horizon, labs = spec.horizon, spec.labs
    jobs: list[tuple] = []  # (owner, hours, deadline, value per hour, urgency, min_rel, partial, joint)
    blocks: list[list] = []  # [owner, start, duration, count, reliability, energy, price per hour]

    def block(owner: int, count: int, duration: int, latest_end: int, reliability: float) -> list:
        # at least three steps of bargaining before any block starts
        start = int(integers(3, max(4, latest_end - duration + 1)))
        energy = uniform(0.05, 0.15)
        row = [owner, start, duration, count, reliability, energy, uniform(0.9, 1.3)]
        blocks.append(row)
        return row

    for lab in range(labs):
        for _ in range(_count(integers, *spec.jobs)):
            count, duration = SHAPES[int(integers(0, len(SHAPES)))]
            deadline = int(integers(min(horizon, duration + 4), horizon + 1))
            min_rel = _pick(integers, MIN_RELIABILITY)
            vph = uniform(1.6, 2.6)
            urgency = uniform(0.15, 0.5)
            jobs.append((lab, float(count * duration), deadline, vph, urgency, min_rel, _pick(integers, PARTIAL), False))
            # Its fitting block: usually someone else's (gains from trade), sometimes the provider's.
            if task == "single_trade":
                owner = 1 if lab == 0 else lab
            else:
                roll = rng.random()
                owner = PROVIDER if roll < 0.25 else lab if roll < 0.4 else \
                    int((lab + integers(1, labs)) % labs)
            block(owner, count, duration, deadline, min(0.99, max(min_rel, 0.8) + uniform(0.03, 0.1)))
    if spec.joint:
        # The learner's consortium contract: three blocks' worth, one fitting block at each of three other labs.
        deadline = horizon - 2
        parts = [SHAPES[int(integers(3, len(SHAPES)))] for _ in range(3)]
        jobs.append((0, float(sum(c * d for c, d in parts)), deadline, uniform(2.2, 2.8), 0.5, 0.85, 0.5, True))
        holders = rng.permutation(np.arange(1, labs))[:3]
        for (count, duration), holder in zip(parts, holders, strict=True):
            block(int(holder), count, duration, deadline, uniform(0.9, 0.98))
    for _ in range(spec.extra_provider):
        count, duration = SHAPES[int(integers(0, len(SHAPES)))]
        block(PROVIDER, count, duration, horizon, uniform(0.8, 0.98))
    for _ in range(spec.decoys):  # late or shaky: fits little
        count, duration = SHAPES[int(integers(0, 3))]
        block(int(integers(0, labs)), count, duration, horizon, uniform(0.7, 0.85))
    if task == "single_trade":
        # The provider's alternative for the learner's job: fits, but is priced above the job's value.
        _, need_hours, need_deadline, need_vph = jobs[0][:4]
        count, duration = next((c, d) for c, d in SHAPES if c * d == need_hours)
        alt = block(PROVIDER, count, duration, need_deadline, 0.95)
        alt[6] = need_vph * uniform(1.05, 1.25)

    order = rng.permutation(len(blocks)).tolist()  # block ids say nothing about who they fit
    k = len(order)
    owners, starts, durations, counts, reliability, energy, pph = zip(*[blocks[i] for i in order], strict=True)
    job_owner, job_hours, deadlines, vph, urgency, min_rel, partial, joint = zip(*jobs, strict=True)
    block_count, block_duration = np.array(counts, np.int64), np.array(durations, np.int64)
    job_value = (np.array(job_hours) * np.array(vph)).round(2)
    values = job_value.tolist()
    extra = uniform(4.0, 10.0, labs).tolist()  # one draw per lab, in lab order
    budget = np.array([round(float(0.7 * _total([v for v, o, j in zip(values, job_owner, joint, strict=True)
                                                       if o == lab and not j]) + extra[lab]), 2)
                       for lab in range(labs)])
    shocks = []
    for _ in range(_count(integers, *spec.shocks)):
        kind = SHOCKS[int(integers(0, len(SHOCKS)))]
        step = int(integers(2, horizon - 2))
        magnitude = {"capacity_failure": 1.0, "energy_spike": 2.0, "reliability_drop": 0.25,
                     "demand_surge": 1.5}[kind]
        shocks.append(Shock(step, kind, int(integers(0, k)) if kind in ("capacity_failure", "reliability_drop")
                            else -1, magnitude))
    shocks.sort(key=lambda s: (s.step, SHOCKS.index(s.kind), s.block))
    return Params(
        task=task, seed=int(seed), horizon=horizon, budget=budget,
        job_owner=np.array(job_owner, np.int64), job_hours=np.array(job_hours),
        job_deadline=np.array(deadlines, np.int64), job_value=job_value,
        job_urgency=np.array(urgency).round(3), job_min_rel=np.array(min_rel), job_partial=np.array(partial),
        job_joint=np.array(joint, bool),
        block_start=np.array(starts, np.int64), block_duration=block_duration, block_count=block_count,
        block_reliability=np.array(reliability).round(3), block_energy=np.array(energy).round(3),
        block_price=((block_count * block_duration).astype(float) * np.array(pph)).round(2),
        block_owner=np.array(owners, np.int64), block_draw=rng.random(k), shocks=tuple(shocks))
