"""Designer policies: baselines, the full-information oracle and a learned contextual bandit.

Every policy maps a batch of flat observations (E, OBSERVATION_WIDTH) to a
:class:`~mecharena.designer.core.Mechanism`; :meth:`Policy.act` does one JSON observation.

* ``random``: every field uniform over its range.
* ``greedy``: a hand rule on the operator-visible proxies (supply -> a multi-unit rule; the
  collusion signal -> a pay-your-bid rule with identities and bids hidden and a collusion fine;
  tight top gaps -> a shill fine with bids hidden; exits -> a lower reserve).
* ``constant``: one mechanism for the whole stage (the best one is found by :func:`search_constant`
  over the whole action grid, :data:`GRID`, on training populations).
* ``oracle``: knows the population; plays the best of its arms for it (the menu and the grid
  search's best constants for the stage), chosen by simulating that very population on independent
  markets (the upper bound; needs the hidden params).
* ``learned``: a contextual bandit. Q(observation, arm) = ridge regression on observation
  features, one linear model per rule in force, fitted to the mean reward that each menu arm earns
  over the next ``LOOKAHEAD`` steps from states visited by an exploring policy (two rounds: random
  arms, then the first model with exploration). It acts greedily on Q.
"""

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray, IntArray
from mecharena.designer import core
from mecharena.designer.action import (COALITIONS, FLAGS, MAX_PENALTY, MECHANISM_WIDTH, PENALTIES, RULES,
                                       MechanismAction)
from mecharena.designer.env import population_seeds
from mecharena.designer.population import Params, check_stage, sample
from mecharena.designer.search import halve_and_climb

INFORMATION = {"quiet": {"clearing_price": False}, "price": {}, "quantiles": {"bid_distribution": True},
               "open": {"competing_bids": True, "winner_identity": True, "bid_distribution": True}}
ENFORCEMENT = {
    "none": {}, "shill": {"shill_penalty": 3.0},
    "confirmed": {"collusion_penalty": 3.0, "coalition": "penalize_confirmed"},
    "suspected": {"collusion_penalty": 3.0, "coalition": "penalize_suspected"},
    "restrict": {"collusion_penalty": 3.0, "coalition": "restrict"},
    "shill+confirmed": {"shill_penalty": 3.0, "collusion_penalty": 3.0, "coalition": "penalize_confirmed"},
    "withdrawal": {"withdrawal_penalty": 2.0},
}
RESERVES = (0.0, 0.1, 0.25)
# The action grid the audit searches for the best constant: every rule x these reserves x both
# values of every flag x these levels of every penalty x every coalition policy.
GRID: dict[str, tuple[Any, ...]] = {
    "rule": RULES, "reserve": (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
    **{flag: (False, True) for flag in FLAGS}, **{penalty: (0.0, 1.0, 2.0, 3.0) for penalty in PENALTIES},
    "coalition": COALITIONS}
GRID_SIZE = math.prod(len(values) for values in GRID.values())
TOP = 16  # grid mechanisms the search hands on to the oracle and the learned designer as extra arms
LOOKAHEAD = 3
POLICIES = ("random", "greedy", "constant:FILE", "oracle", "learned", "learned:FILE")


def menu() -> list[tuple[str, MechanismAction]]:
    """The discrete menu of the oracle and the learned designer (420 mechanisms, all on :data:`GRID`)."""
    return [(f"{rule}/r={reserve}/{info}/{enforce}",
             MechanismAction(rule=rule, reserve=reserve, **INFORMATION[info], **ENFORCEMENT[enforce]))
            for rule, reserve, info, enforce in itertools.product(RULES, RESERVES, INFORMATION, ENFORCEMENT)]


def stack(actions: list[MechanismAction]) -> core.Mechanism:
    """Absolute-reserve actions as one Mechanism (E = len(actions))."""
    return core.Mechanism.from_actions(actions, np.zeros(len(actions)))


def take(mechanism: core.Mechanism, rows: IntArray) -> core.Mechanism:
    return core.Mechanism(*(getattr(mechanism, f)[rows] for f in core.Mechanism.__slots__))


def action_of(mechanism: core.Mechanism, row: int) -> MechanismAction:
    """Row ``row`` of a Mechanism as a MechanismAction (absolute reserve)."""
    return MechanismAction(
        rule=RULES[mechanism.rule[row]], reserve=float(mechanism.reserve[row]),
        **{f: bool(mechanism.flags[row, j]) for j, f in enumerate(FLAGS)},
        shill_penalty=float(mechanism.penalties[row, 0]), withdrawal_penalty=float(mechanism.penalties[row, 1]),
        collusion_penalty=float(mechanism.penalties[row, 2]), coalition=COALITIONS[mechanism.coalition[row]])


class Policy:
    """A designer. ``begin`` is called with the hidden params at each batch of episode starts
    (only the oracle may use them); ``decide`` maps observations to mechanisms."""

    name = "policy"

    def begin(self, params: Params) -> None:  # most policies need nothing
        """Episodes (re)start with these populations."""

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        raise NotImplementedError

    def act(self, observation: dict[str, Any]) -> MechanismAction:
        """The mechanism for one JSON observation (``observation["vector"]``)."""
        return action_of(self.decide(_vector(observation)), 0)

    def notes(self) -> list[dict[str, Any]]:
        """How the last :meth:`decide` went, for traces: JSON-ready dicts with the batch ``row``,
        ``kind`` and ``text`` (an LLM designer's prompts and answers; none for the others)."""
        return []

    def explain(self, observation: dict[str, Any]) -> list[str]:
        """Why this policy picks what :meth:`act` picks for ``observation``, in a few lines."""
        _vector(observation)
        return [self.__doc__.strip().splitlines()[0] if self.__doc__ else self.name]


def _vector(observation: dict[str, Any]) -> FloatArray:
    """(1, OBSERVATION_WIDTH) from a JSON observation, or :class:`ConfigError`."""
    vector = np.asarray(observation.get("vector", ()), dtype=float)
    if vector.shape != (core.OBSERVATION_WIDTH,) or not np.isfinite(vector).all():
        raise ConfigError(f"observation.vector must be {core.OBSERVATION_WIDTH} finite numbers, got {vector.size}")
    return vector[None, :]


def _column(name: str) -> int:
    return core.PROXY_COLUMN + core.PROXIES.index(name)


SUPPLY = core.PROXY_COLUMN + len(core.PROXIES) + core.CONTEXT.index("supply")
PROGRESS = core.PROXY_COLUMN + len(core.PROXIES) + core.CONTEXT.index("progress")


class RandomPolicy(Policy):
    """Every field drawn uniformly over its range, whatever the market shows."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng([seed, 11])

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        e, rng = vectors.shape[0], self.rng
        return core.Mechanism(rule=rng.integers(0, len(RULES), e), reserve=rng.uniform(0, 1, e),
                              flags=rng.random((e, len(FLAGS))) < 0.5, penalties=rng.uniform(0, MAX_PENALTY, (e, 3)),
                              coalition=rng.integers(0, len(COALITIONS), e))


class GreedyPolicy(Policy):
    """The hand rule in the module docstring."""

    name = "greedy"

    @staticmethod
    def signals(vectors: FloatArray) -> dict[str, np.ndarray]:
        """The proxies' verdicts the rule acts on, each (E,) bool."""
        return {"collusion": vectors[:, _column("collusion_rate")] > 0.1,
                "shill": (vectors[:, _column("top_gap")] < 0.06) & (vectors[:, PROGRESS] > 0),
                "exits": vectors[:, _column("dropout_rate")] > 0.01,
                "multi": vectors[:, SUPPLY] > 0.5}

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        e = vectors.shape[0]
        s = self.signals(vectors)
        collusion, shill, exits, multi = s["collusion"], s["shill"], s["exits"], s["multi"]
        rule = np.where(collusion, RULES.index("pay_as_bid"), np.where(multi, RULES.index("vcg"),
                                                                       RULES.index("second_price")))
        current = vectors[:, core.RESERVE_COLUMN]
        reserve = np.clip(current + np.where(exits, -0.05, np.where(collusion, 0.05, 0.0)), 0.0, 0.3)
        flags = np.zeros((e, len(FLAGS)), bool)
        flags[:, FLAGS.index("reveal_reserve")] = True
        flags[:, FLAGS.index("clearing_price")] = True
        flags[:, FLAGS.index("competing_bids")] = ~collusion & ~shill
        flags[:, FLAGS.index("bid_distribution")] = ~shill
        penalties = np.zeros((e, 3))
        penalties[:, 0] = np.where(shill, MAX_PENALTY, 0.0)
        penalties[:, 2] = np.where(collusion, MAX_PENALTY, 0.0)
        coalition = np.where(collusion, COALITIONS.index("penalize_suspected"), COALITIONS.index("allow"))
        return core.Mechanism(rule, reserve, flags, penalties, coalition)

    def explain(self, observation: dict[str, Any]) -> list[str]:
        vector = _vector(observation)
        fired = {name: bool(v[0]) for name, v in self.signals(vector).items()}
        p = dict(zip(core.PROXIES, vector[0, core.PROXY_COLUMN: core.PROXY_COLUMN + len(core.PROXIES)], strict=True))
        return [
            f"collusion signal in {p['collusion_rate']:.0%} of recent rounds (> 10%: {fired['collusion']}): "
            + ("pay-as-bid, identities and bids hidden, suspected collusion fined" if fired["collusion"]
               else "a truthful rule"),
            f"gap between the last winning and first losing bid {p['top_gap']:.3f} (< 0.06: {fired['shill']}): "
            + ("shill fine, bids hidden" if fired["shill"] else "bids revealed so learners converge"),
            f"exits per round {p['dropout_rate']:.3f} (> 0.01: {fired['exits']}): "
            + ("reserve down 0.05" if fired["exits"] else "reserve up 0.05 against the ring" if fired["collusion"]
               else "reserve kept"),
            "several units for sale: VCG" if fired["multi"] else "one unit for sale: second price",
        ]


class ConstantPolicy(Policy):
    """One mechanism whatever the market shows."""

    def __init__(self, action: MechanismAction, name: str = "constant") -> None:
        self.action, self.name = action, name
        self.one = stack([action])

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        return take(self.one, np.zeros(vectors.shape[0], np.int64))

    @classmethod
    def load(cls, path: str | Path) -> "ConstantPolicy":
        """From a JSON file holding a MechanismAction (or ``{"action": {...}}`` as search writes)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"constant policy file {path}: {exc}") from None
        data = data.get("action", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"constant policy file {path}: expected a JSON object, got {type(data).__name__}")
        return cls(MechanismAction.build(**data), f"constant:{path}")


def rollout(policy: Policy, params: Params, state: core.State | None = None,
            steps: int = core.HORIZON) -> tuple[FloatArray, FloatArray]:
    """Play ``policy`` on every episode of ``params`` (from ``state`` or the start) for ``steps``.

    Returns:
        (E,) mean reward per step and (E, 4) mean components.
    """
    state = core.reset(params) if state is None else state
    policy.begin(params)
    total = np.zeros(params.units.size)
    components = np.zeros((params.units.size, len(core.COMPONENTS)))
    for _ in range(steps):
        state, result = core.step(params, state, policy.decide(core.observation_vectors(state, params)))
        total += result.reward
        components += result.components
    return total / steps, components / steps


def _replicate(params: Params, times: int) -> Params:
    """Each population ``times`` times in a row (population-major)."""
    return Params(*(np.repeat(getattr(params, f), times, axis=0) for f in Params.__slots__))


def _arm_values(params: Params, state: core.State | None, steps: int, chunk: int = 32_768,
                arms: core.Mechanism | None = None) -> FloatArray:
    """(E, A) mean reward of every arm (default: the menu) played for ``steps`` from ``state`` (or the start)."""
    arms = stack([a for _, a in menu()]) if arms is None else arms
    e, a = params.units.size, arms.rule.size
    out = np.zeros((e, a))
    per = max(1, chunk // a)
    for lo in range(0, e, per):
        rows = np.arange(lo, min(lo + per, e))
        wide = _replicate(params_rows(params, rows), a)
        now = core.reset(wide) if state is None else core.State(
            *(np.repeat(getattr(state, f)[rows], a, axis=0) for f in core.State.__slots__))
        every = take(arms, np.tile(np.arange(a), rows.size))
        for _ in range(steps):
            result = core.advance(wide, now, every)  # ``now`` is this function's own copy
            out[rows] += result.reward.reshape(rows.size, a) / steps
    return out


def params_rows(params: Params, rows: IntArray) -> Params:
    """The episodes ``rows`` of ``params``."""
    return Params(*(getattr(params, f)[rows] for f in Params.__slots__))


def grid_action(point: tuple[int, ...]) -> MechanismAction:
    """The mechanism at ``point`` (one index per field of :data:`GRID`)."""
    return MechanismAction(**{field: values[i] for (field, values), i in zip(GRID.items(), point, strict=True)})


def grid_point(action: MechanismAction) -> tuple[int, ...]:
    """The grid indices of ``action`` (an absolute reserve on the grid, penalties at grid levels)."""
    return tuple(values.index(getattr(action, field)) for field, values in GRID.items())


def grid_name(action: MechanismAction) -> str:
    """A short name: rule, reserve, what is shown, the fines and the coalition policy."""
    shown = [f for f in FLAGS if getattr(action, f)]
    fines = [f"{p.removesuffix('_penalty')}={getattr(action, p):g}" for p in PENALTIES if getattr(action, p)]
    return "/".join([action.rule, f"r={action.reserve:g}", "shown:" + (",".join(shown) or "nothing"),
                     "fines:" + (",".join(fines) or "none"), action.coalition])


def search_constant(stage: int, *, populations: int = 512, seed: int = 0, candidates: int = 4096) -> dict[str, Any]:
    """The constant mechanism with the highest mean reward over ``populations`` training populations,
    searched over the whole action grid (:data:`GRID`, every rule x reserve x information flags x
    penalty levels x coalition policy), not only the menu.

    Successive halving, then steepest ascent (:func:`~mecharena.designer.search.halve_and_climb`),
    from the menu and ``candidates`` grid points drawn at random, every rung on the same populations
    (common random numbers). The winner's ``mean`` is in sample (``audit`` scores it on held-out ones),
    and ``sampled`` is the best before the ascent.

    Raises:
        ConfigError: ``populations`` below 16 or ``candidates`` outside [0, GRID_SIZE].
    """
    if populations < 16:
        raise ConfigError(f"populations must be >= 16, got {populations}")
    if not 0 <= candidates <= GRID_SIZE:
        raise ConfigError(f"candidates must be between 0 and {GRID_SIZE} (the grid's size), got {candidates}")
    params = sample(check_stage(stage), population_seeds(seed, populations), list(range(populations)))
    sizes = [len(values) for values in GRID.values()]
    drawn = generator(seed, ("designer-audit", stage)).choice(GRID_SIZE, size=candidates, replace=False)
    pool = {tuple(int(i) for i in np.unravel_index(flat, sizes)) for flat in drawn} | {
        grid_point(action) for _, action in menu()}

    def means(points: list[tuple[int, ...]], rows: int) -> FloatArray:
        arms = stack([grid_action(point) for point in points])
        return _arm_values(params_rows(params, np.arange(rows)), None, core.HORIZON, arms=arms).mean(axis=0)

    best, sampled, scored = halve_and_climb(tuple(sizes), pool, means, populations)
    action = grid_action(best)
    return {"stage": stage, "name": grid_name(action), "action": action.model_dump(), "mean": scored[best],
            "populations": populations, "seed": seed, "candidates": candidates,
            "evaluated": len(pool | set(scored)), "grid": GRID_SIZE,
            "sampled": {"name": grid_name(grid_action(sampled)), "mean": scored[sampled]},
            "top": [{"name": grid_name(grid_action(point)), "action": grid_action(point).model_dump(),
                     "mean": scored[point]} for point in sorted(scored, key=scored.__getitem__, reverse=True)[:TOP]]}


def arms_with(found: dict[str, Any]) -> list[tuple[str, MechanismAction]]:
    """The arms of the oracle and the learned designer: the menu, then the grid's best constants
    in ``found`` (a :func:`search_constant` result) that the menu lacks."""
    arms = menu()
    known = {grid_point(action) for _, action in arms}
    for entry in found["top"]:
        action = MechanismAction(**entry["action"])
        if grid_point(action) not in known:
            known.add(grid_point(action))
            arms.append((entry["name"], action))
    return arms


def stage_arms(stage: int, *, seed: int = 0, populations: int = 512) -> list[tuple[str, MechanismAction]]:
    """:func:`arms_with` the grid search of ``stage`` on ``populations`` training populations."""
    return arms_with(search_constant(stage, populations=max(16, populations), seed=seed,
                                     candidates=min(GRID_SIZE, 8 * populations)))


class OraclePolicy(Policy):
    """Full information: per population, the arm (default: of the menu) that does best on
    ``trials`` independent episodes of that very population (selection and evaluation never share
    markets)."""

    name = "oracle"

    def __init__(self, trials: int = 2, arms: list[tuple[str, MechanismAction]] | None = None) -> None:
        self.trials = trials
        self.arms = stack([a for _, a in (menu() if arms is None else arms)])
        self.choice: core.Mechanism | None = None

    def begin(self, params: Params) -> None:
        e = params.units.size
        values = np.zeros((e, self.arms.rule.size))
        for trial in range(self.trials):
            # fresh market keys: the episode key hashed with the trial, never the evaluated one
            keyed = Params(*(getattr(params, f) for f in Params.__slots__[:-1]),
                           seed=params.seed ^ np.uint64(0xA5A5_0000_0000_0000 + trial + 1))
            values += _arm_values(keyed, None, core.HORIZON, arms=self.arms)
        self.choice = take(self.arms, values.argmax(axis=1))

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        if self.choice is None or self.choice.rule.size != vectors.shape[0]:
            raise ConfigError("the oracle needs the hidden population: it runs only in evaluation")
        return self.choice


def features(vectors: FloatArray) -> FloatArray:
    """(E, D) the learned designer's features: mechanism in force, recent window means, proxies, context."""
    e = vectors.shape[0]
    width = len(core.FEATURES)
    window = vectors[:, MECHANISM_WIDTH: core.PROXY_COLUMN].reshape(e, core.WINDOW, width)
    recent = window[:, -8:].mean(axis=1)
    rest = vectors[:, core.PROXY_COLUMN:]
    return np.concatenate([np.ones((e, 1)), vectors[:, :MECHANISM_WIDTH], recent, rest], axis=1)


@dataclass(frozen=True, slots=True)
class Bandit:
    """Q(x, arm) = x @ weights[rule in force, :, arm] on standardised features, over ``arms``."""

    mean: FloatArray  # (D,)
    scale: FloatArray  # (D,)
    weights: FloatArray  # (RULES, D, A)
    arms: list[tuple[str, MechanismAction]]  # (A,)  name and mechanism

    def values(self, vectors: FloatArray) -> FloatArray:
        """(E, A) predicted mean reward of each arm over the next LOOKAHEAD steps."""
        x = (features(vectors) - self.mean) / self.scale
        rule = vectors[:, :len(RULES)].argmax(axis=1)
        return np.einsum("ed,eda->ea", x, self.weights[rule])

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, mean=self.mean, scale=self.scale, weights=self.weights,
                            names=np.array([n for n, _ in self.arms]),
                            actions=np.array([a.model_dump_json() for _, a in self.arms]))

    @classmethod
    def load(cls, path: str | Path) -> "Bandit":
        try:
            with np.load(path) as data:
                if "actions" not in data.files:
                    raise ConfigError("written before models stored their arms: retrain it with "
                                      "`mecharena designer train`")
                arms = [(str(n), MechanismAction.build(**json.loads(str(a))))
                        for n, a in zip(data["names"], data["actions"], strict=True)]
                return cls(data["mean"], data["scale"], data["weights"], arms)
        except ConfigError as exc:
            raise ConfigError(f"learned model {path}: {exc}") from None
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"learned model {path}: {exc}") from None


def _fit(x: FloatArray, rules: IntArray, y: FloatArray, candidates: list[tuple[str, MechanismAction]],
         ridge: float = 1.0, support: float = 0.005) -> Bandit:
    """Ridge fit on the ``candidates`` (y's columns) that are best for at least ``support`` of the
    rows (fewer arms, less winner's curse in the argmax)."""
    counts = np.bincount(y.argmax(axis=1), minlength=y.shape[1])
    arms = np.flatnonzero(counts >= max(1, support * y.shape[0]))
    y = y[:, arms]
    mean = x.mean(axis=0)
    mean[0] = 0.0
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    weights = np.zeros((len(RULES), x.shape[1], y.shape[1]))
    for r in range(len(RULES)):
        rows = rules == r
        if rows.sum() < 8:  # too few states under this rule: fall back to all of them
            rows = np.ones_like(rows)
        zr = z[rows]
        weights[r] = np.linalg.solve(zr.T @ zr + ridge * np.eye(z.shape[1]), zr.T @ y[rows])
    return Bandit(mean, scale, weights, [candidates[i] for i in arms])


class LearnedPolicy(Policy):
    """Greedy on the bandit's Q, keeping the mechanism in force unless another arm is predicted
    to beat it by more than ``margin`` (deterring an adversary hides it: do not flip straight back)."""

    name = "learned"

    def __init__(self, bandit: Bandit, margin: float = 0.01) -> None:
        self.bandit, self.margin = bandit, margin
        self.arms = stack([a for _, a in bandit.arms])
        self.vectors = self.arms.vectors()

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        q = self.bandit.values(vectors)
        best = q.argmax(axis=1)
        same = (np.abs(vectors[:, None, :MECHANISM_WIDTH] - self.vectors[None]) < 1e-9).all(axis=2)
        current = same.argmax(axis=1)
        keep = same.any(axis=1) & (q[np.arange(q.shape[0]), current] >= q.max(axis=1) - self.margin)
        return take(self.arms, np.where(keep, current, best))

    def explain(self, observation: dict[str, Any], top: int = 3) -> list[str]:
        q = self.bandit.values(_vector(observation))[0]
        names = [name for name, _ in self.bandit.arms]
        best = np.argsort(-q)[:top]
        return [f"predicted mean reward over the next {LOOKAHEAD} steps: " + "; ".join(
            f"{names[i]} {q[i]:.3f}" for i in best)]


def _visit(params: Params, behaviour: Policy, explore: float, rng: np.random.Generator,
           arms: core.Mechanism) -> tuple[list, list]:
    """States along an episode under ``behaviour`` with ``explore`` chance of a random arm per step."""
    state = core.reset(params)
    states, vectors = [], []
    for _ in range(core.HORIZON - 1):
        v = core.observation_vectors(state, params)
        states.append(state)
        vectors.append(v)
        chosen = behaviour.decide(v)
        wild = rng.random(v.shape[0]) < explore
        random_arm = take(arms, rng.integers(0, arms.rule.size, v.shape[0]))
        chosen = core.Mechanism(*(np.where(wild.reshape((-1,) + (1,) * (getattr(chosen, f).ndim - 1)),
                                           getattr(random_arm, f), getattr(chosen, f))
                                  for f in core.Mechanism.__slots__))
        state, _ = core.step(params, state, chosen)
    return states, vectors


def train_learned(stage: int, *, populations: int = 1024, states: int = 3, seed: int = 0, rounds: int = 2,
                  arms: list[tuple[str, MechanismAction]] | None = None) -> Bandit:
    """Fit the contextual bandit for ``stage`` on training populations (see the module docstring).

    Args:
        populations: training populations per round.
        states: states sampled per episode (uniformly over its steps) as regression rows.
        rounds: 1: states from random arms; 2: then from the first model, 30% exploration.
        arms: the candidate arms (default :func:`stage_arms` on half the populations: the menu and
            the grid's best constants for the stage).
    """
    stage = check_stage(stage)
    candidates = stage_arms(stage, seed=seed, populations=populations // 2) if arms is None else arms
    every = stack([a for _, a in candidates])
    rng = np.random.default_rng([seed, stage, 5])
    xs, rules, ys = [], [], []
    bandit = None
    for round_ in range(rounds):
        params = sample(stage, population_seeds(seed + 1000 * round_, populations),
                        [seed * 7 + round_] * populations)
        behaviour = LearnedPolicy(bandit) if bandit is not None else _RandomArm(rng, every)
        visited, vectors = _visit(params, behaviour, 0.3 if bandit is not None else 1.0, rng, every)
        steps = rng.integers(0, len(visited), (states, populations))
        for pick in steps:
            state = core.State(*(np.stack([getattr(visited[s], f)[e] for e, s in enumerate(pick)])
                                 for f in core.State.__slots__))
            v = np.stack([vectors[s][e] for e, s in enumerate(pick)])
            xs.append(features(v))
            rules.append(v[:, :len(RULES)].argmax(axis=1))
            ys.append(_arm_values(params, state, LOOKAHEAD, arms=every))
        bandit = _fit(np.concatenate(xs), np.concatenate(rules), np.concatenate(ys), candidates)
    return bandit


class _RandomArm(Policy):
    def __init__(self, rng: np.random.Generator, arms: core.Mechanism) -> None:
        self.rng = rng
        self.arms = arms

    def decide(self, vectors: FloatArray) -> core.Mechanism:
        return take(self.arms, self.rng.integers(0, self.arms.rule.size, vectors.shape[0]))


def make_policy(spec: str, stage: int = 1, *, seed: int = 0) -> Policy:
    """A policy from its spec: ``random``, ``greedy``, ``constant:FILE``, ``oracle``, ``learned`` or
    ``learned:FILE`` (a model written by ``mecharena designer train``; plain ``learned`` trains one
    for ``stage`` with the default budget, about half a minute with the grid search for its arms;
    ``oracle`` runs that search too, about 15 s).

    Raises:
        UnknownIdError: an unknown policy name (with the allowed ones).
        ConfigError: an unreadable constant or model file.
    """
    name, _, arg = spec.partition(":")
    if name == "random":
        return RandomPolicy(seed)
    if name == "greedy":
        return GreedyPolicy()
    if name == "constant" and arg:
        return ConstantPolicy.load(arg)
    if name == "oracle":
        return OraclePolicy(arms=stage_arms(stage, seed=seed))
    if name == "learned":
        return LearnedPolicy(Bandit.load(arg) if arg else train_learned(stage, seed=seed))
    raise UnknownIdError(f"unknown policy {spec!r}; allowed: {', '.join(POLICIES)}")
