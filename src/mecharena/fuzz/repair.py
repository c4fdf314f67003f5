"""Repairing a mechanism: search the design space for rules that are harder to exploit.

The loop is the white paper's "fuzz, then repair": for each candidate *design* (payment rule,
reserve, information policy, enforcement policy) the arena measures

* its **exploitability**: the fresh-seed gain of the best deviation that an inner
  :func:`~mecharena.fuzz.search.fuzz` run finds against the target population (``inner_budget``
  evaluations per design), and
* its **welfare** and **revenue**: :func:`~mecharena.metrics.harness.evaluate` of the design
  with the target population playing as it does.

The target's own design is evaluated the same way first: it is the counterfactual baseline
(candidate 0). A design is *feasible* when it keeps at least ``welfare_floor`` of the baseline's
welfare and ``revenue_floor`` of its revenue (for a negative baseline ``x``: at least
``x - (1 - floor) |x|``, so the baseline itself is always feasible).

Design space (Optuna, seeded):

* ``mechanism``: the one-sided single-item rules compatible with the target (``first_price`` and
  ``second_price`` share one config, so either can stand in for the other); any other target
  keeps its mechanism;
* ``reserve_price`` in [0, 0.9] where the mechanism's config has one;
* any other field of the mechanism's own config named in ``search`` (``{"listing_fee": (0, 0.5),
  "weighting": ["linear", "sqrt"]}``: a range, or a list of choices), so a plug-in's knobs are
  searched like the built-in ones (study parameter ``config.NAME``);
* the five :class:`~mecharena.mechanisms.policy.InformationPolicy` flags;
* the :class:`~mecharena.mechanisms.policy.Enforcement` terms: shill, withdrawal and collusion
  penalties in [0, 3] and the audit probability in [0, 1]. The white paper's "coalition policy"
  maps to the collusion penalty plus the audit probability here (an audit is what detects a
  ring; the penalty is what it costs the ring's members).

Search: a TPE sampler (Bergstra et al., *Algorithms for Hyper-Parameter Optimization*, NeurIPS
2011) minimizes the scalarized objective ``exploitability + 10 * shortfall``, where the shortfall
is the sum of the relative amounts by which welfare and revenue miss their floors (0 when
feasible). The weight makes a design 1% short of a floor cost as much as 0.1 of exploitability
(per agent and round), well above the gains seen in practice, so the search is pushed into the
feasible region without a hard wall. Before TPE's own proposals, the study evaluates the
baseline with each other compatible rule swapped in (one-change neighbours, e.g. second price
for a first-price target). Every design is played on the same seeds (common random numbers), so
their comparison is not drowned in value noise.

The report holds every candidate, the Pareto front among feasible candidates (non-dominated on
exploitability (min), welfare (max) and revenue (max), by their point estimates) and the
recommended design: the feasible candidate with the lowest exploitability, ties broken by higher
welfare, then revenue, then the earlier candidate.

Caveat: the baseline is the target *population's* behaviour, not an equilibrium. Against
``truthful`` bidders a first-price auction collects the whole winning value, so a truthful
payment rule loses revenue against that baseline even though revenue equivalence holds in
equilibrium; lower ``revenue_floor`` when the target population is not best-responding.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from mecharena import mechanisms
from mecharena.core.config import StrictModel, check_seed
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.seeding import generator
from mecharena.core.settings import RepairSettings
from mecharena.fuzz.score import replace_cell
from mecharena.fuzz.search import fuzz
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.harness import Cell, evaluate

#: Rules that can replace one another (same config model, one item, one-sided).
SINGLE_ITEM_RULES = ("first_price", "second_price")
RESERVE_RANGE = (0.0, 0.9)
PENALTY_RANGE = (0.0, 3.0)
SHORTFALL_WEIGHT = 10.0
INFORMATION_FLAGS = tuple(InformationPolicy.model_fields)
PENALTIES = ("shill_penalty", "withdrawal_penalty", "collusion_penalty")


class Design(StrictModel):
    """One point of the design space: the rules around a fixed population."""

    mechanism: str
    config: dict[str, Any] = Field(default_factory=dict)
    information: InformationPolicy = InformationPolicy()
    enforcement: Enforcement = Enforcement()

    @classmethod
    def of(cls, cell: Cell) -> "Design":
        """The design of ``cell`` (its mechanism, config and policies)."""
        return cls(mechanism=cell.mechanism, config=dict(cell.config), information=cell.information,
                   enforcement=cell.enforcement)

    def apply(self, cell: Cell) -> Cell:
        """``cell`` with this design's rules (population, values and sizes unchanged)."""
        return replace_cell(cell, mechanism=self.mechanism, config=self.config,
                            information=self.information.model_dump(), enforcement=self.enforcement.model_dump())

    def flat(self) -> dict[str, Any]:
        """Every field as ``name -> value`` (config fields prefixed ``config.``), for diffs and tables."""
        config = mechanisms.get(self.mechanism).config(self.config).model_dump()  # defaults filled in
        return {"mechanism": self.mechanism, **{f"config.{k}": v for k, v in config.items()},
                **self.information.model_dump(), **self.enforcement.model_dump()}

    def changes(self, other: "Design") -> dict[str, list[Any]]:
        """Fields whose value differs from ``other``: ``name -> [other's, this one's]``."""
        mine, theirs = self.flat(), other.flat()
        defaults = {**InformationPolicy().model_dump(), **Enforcement().model_dump()}
        names = dict.fromkeys([*theirs, *mine])
        return {k: [theirs.get(k, defaults.get(k)), mine.get(k, defaults.get(k))] for k in names
                if theirs.get(k, defaults.get(k)) != mine.get(k, defaults.get(k))}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One evaluated design. Metrics are ``{"mean", "ci95"}`` dicts."""

    index: int  # 0: the target's own design
    design: Design
    exploitability: dict[str, Any]
    welfare: dict[str, Any]
    revenue: dict[str, Any]
    efficiency: dict[str, Any]
    feasible: bool
    objective: float  # exploitability + SHORTFALL_WEIGHT * shortfall (what the search minimized)
    exploit: str | None  # family of the best deviation found (None: nothing found)
    error: str | None = None  # the design could not be played (never feasible)

    def as_dict(self, original: Design | None = None) -> dict[str, Any]:
        out = {"index": self.index, "design": self.design.model_dump(mode="json"),
               "exploitability": self.exploitability, "welfare": self.welfare, "revenue": self.revenue,
               "efficiency": self.efficiency, "feasible": self.feasible, "objective": self.objective,
               "exploit": self.exploit, "error": self.error}
        if original is not None:
            out["changes"] = self.design.changes(original)
        return out


@dataclass(frozen=True)
class RepairResult:
    """Everything a repair run measured. ``candidates[0]`` is the target's own design."""

    target: Cell
    floors: dict[str, float]  # welfare, revenue: the fractions asked for
    thresholds: dict[str, float]  # welfare, revenue: the absolute values a feasible design must reach
    candidates: tuple[Candidate, ...]
    pareto: tuple[int, ...]  # indices of the feasible, non-dominated candidates
    recommended: Candidate | None
    search: dict[str, Any] = field(default_factory=dict)

    @property
    def original(self) -> Candidate:
        return self.candidates[0]

    @property
    def improved(self) -> bool:
        """A feasible design other than the original is strictly less exploitable."""
        rec = self.recommended
        return rec is not None and rec.index != 0 and (
            rec.exploitability["mean"] < self.original.exploitability["mean"])

    def as_dict(self) -> dict[str, Any]:
        base = self.original.design
        return {
            "target": self.target.model_dump(mode="json"),
            "floors": self.floors,
            "thresholds": self.thresholds,
            "original": self.original.as_dict(),
            "candidates": [c.as_dict(base) for c in self.candidates],
            "pareto": list(self.pareto),
            "recommended": None if self.recommended is None else self.recommended.as_dict(base),
            "improved": self.improved,
            "search": self.search,
        }


def compatible_rules(mechanism: str) -> tuple[str, ...]:
    """Rules the repair may switch ``mechanism`` to (itself first)."""
    if mechanism in SINGLE_ITEM_RULES:
        return (mechanism, *(m for m in SINGLE_ITEM_RULES if m != mechanism))
    return (mechanism,)


def floor_threshold(baseline: float, floor: float) -> float:
    """The least value that keeps ``floor`` of ``baseline`` (``floor * baseline`` when it is >= 0).

    >>> floor_threshold(0.8, 0.9)
    0.72
    >>> floor_threshold(-1.0, 0.9)
    -1.1
    """
    return round(baseline - (1.0 - floor) * abs(baseline), 12)


def pareto_front(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices of the points (exploitability, welfare, revenue) no other point dominates.

    A point dominates another when it is no worse on all three (lower exploitability, higher
    welfare and revenue) and strictly better on one.

    >>> pareto_front([(0.0, 1.0, 1.0), (0.1, 1.0, 1.0), (0.2, 2.0, 0.0)])
    [0, 2]
    """
    def dominates(p: tuple[float, float, float], q: tuple[float, float, float]) -> bool:
        no_worse = p[0] <= q[0] and p[1] >= q[1] and p[2] >= q[2]
        return no_worse and (p[0] < q[0] or p[1] > q[1] or p[2] > q[2])

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


Space = dict[str, tuple[float, float] | list[Any]]  # config field -> (low, high) or choices


def check_space(mechanism: str, search: Space | None) -> Space:
    """``search`` validated against the mechanism's config: known fields, ranges low < high whose ends
    the config accepts, non-empty choice lists the config accepts.

    Raises:
        ConfigError: naming the field, the value and what is allowed.
    """
    model = mechanisms.get(mechanism).config_model
    space: Space = {}
    for name, domain in (search or {}).items():
        if name not in model.model_fields or name == "reserve_price":
            allowed = ", ".join(f for f in model.model_fields if f != "reserve_price") or "none"
            raise ConfigError(f"search field {name!r} is not a config field of {mechanism} (reserve_price is "
                              f"always searched); allowed: {allowed}")
        if isinstance(domain, tuple):
            if len(domain) != 2 or not all(isinstance(x, int | float) for x in domain) or not domain[0] < domain[1]:
                raise ConfigError(f"search range of {name!r} must be (low, high) numbers with low < high, got {domain}")
            points = list(domain)
        elif isinstance(domain, list) and domain:
            points = domain
        else:
            raise ConfigError(f"search of {name!r} must be a (low, high) range or a non-empty list of choices, "
                              f"got {domain!r}")
        for value in points:
            model.build(**{name: value})  # a ConfigError names the field and what is allowed
        space[name] = domain
    return space


def _suggest_config(trial: Any, space: Space, model: Any) -> dict[str, Any]:
    config = {}
    for name, domain in space.items():
        if isinstance(domain, list):
            config[name] = trial.suggest_categorical(f"config.{name}", domain)
        elif model.model_fields[name].annotation is int:
            config[name] = trial.suggest_int(f"config.{name}", int(domain[0]), int(domain[1]))
        else:
            config[name] = trial.suggest_float(f"config.{name}", float(domain[0]), float(domain[1]))
    return config


def _suggest(trial: Any, rules: tuple[str, ...], base: Design, space: Space) -> Design:
    rule = trial.suggest_categorical("mechanism", list(rules))
    config = dict(base.config)  # the compatible rules share one config model
    if "reserve_price" in mechanisms.get(rule).config_model.model_fields:
        config["reserve_price"] = trial.suggest_float("reserve_price", *RESERVE_RANGE)
    config.update(_suggest_config(trial, space, mechanisms.get(rule).config_model))
    information = {flag: trial.suggest_categorical(flag, [False, True]) for flag in INFORMATION_FLAGS}
    enforcement = {name: trial.suggest_float(name, *PENALTY_RANGE) for name in PENALTIES}
    enforcement["audit_probability"] = trial.suggest_float("audit_probability", 0.0, 1.0)
    return Design(mechanism=rule, config=config, information=InformationPolicy(**information),
                  enforcement=Enforcement(**enforcement))


def _params(design: Design, space: Space) -> dict[str, Any] | None:
    """``design`` as the study's parameters, or None when it lies outside the searched box."""
    params: dict[str, Any] = {"mechanism": design.mechanism}
    config = mechanisms.get(design.mechanism).config(design.config)  # defaults filled in
    if "reserve_price" in type(config).model_fields:
        reserve = float(config.reserve_price)
        if not RESERVE_RANGE[0] <= reserve <= RESERVE_RANGE[1]:
            return None
        params["reserve_price"] = reserve
    for name, domain in space.items():
        value = getattr(config, name)
        inside = value in domain if isinstance(domain, list) else domain[0] <= value <= domain[1]
        if not inside:
            return None
        params[f"config.{name}"] = value
    params.update(design.information.model_dump())
    params.update(design.enforcement.model_dump())
    return params


_DEFAULT = RepairSettings()


def repair(
    target: Cell,
    *,
    families: list[str] | None = _DEFAULT.families,
    deviators: int = _DEFAULT.deviators,
    budget: int = _DEFAULT.budget,
    inner_budget: int = _DEFAULT.inner_budget,
    welfare_floor: float = _DEFAULT.welfare_floor,
    revenue_floor: float = _DEFAULT.revenue_floor,
    seed: int = 0,
    markets: int = _DEFAULT.markets,
    rounds: int = _DEFAULT.rounds,
    eval_markets: int = _DEFAULT.eval_markets,
    search: Space | None = None,
    on_candidate: Callable[[Candidate, int], None] | None = None,
) -> RepairResult:
    """Search the design space for a less exploitable mechanism that keeps welfare and revenue.

    Args:
        target: the mechanism, population and rules to repair (its seed, markets and rounds are ignored).
        families: deviation families the inner fuzzing searches (default: every family that applies).
        deviators: K, agents that deviate together in the inner fuzzing.
        budget: designs proposed by the search (the original design is evaluated on top).
        inner_budget: evaluations of the inner fuzzing per design.
        welfare_floor: least share of the original welfare a feasible design keeps, in [0, 1].
        revenue_floor: least share of the original revenue a feasible design keeps, in [0, 1].
        seed: root seed of the sampler, the fuzzing and the welfare/revenue evaluation.
        markets, rounds: size of each evaluation (fuzzing search steps and welfare/revenue).
        eval_markets: markets of the fuzzing's fresh re-evaluation of its best deviation.
        search: config fields of the mechanism to search too: ``name -> (low, high)`` or a list of
            choices (see the module docstring).
        on_candidate: called with each evaluated candidate and the count so far (progress bars).

    Returns:
        A :class:`RepairResult`; ``candidates[0]`` is the original design.

    Raises:
        ConfigError: a floor outside [0, 1], a budget below 1, bad sizes, or a target whose own
            design cannot be fuzzed (e.g. no deviation family applies).
        UnknownIdError: an unknown mechanism, agent or family.
    """
    import optuna  # a second of import time that only the search needs

    RepairSettings.build(families=families, deviators=deviators, budget=budget, inner_budget=inner_budget,
                         welfare_floor=welfare_floor, revenue_floor=revenue_floor, markets=markets, rounds=rounds,
                         eval_markets=eval_markets)
    check_seed(seed)
    target.episode()  # validates mechanism, config and population before any search
    space = check_space(target.mechanism, search)
    base = Design.of(target)
    rules = compatible_rules(target.mechanism)
    streams = generator(seed, ("repair",))
    sampler_seed, eval_seed = (int(x) for x in streams.integers(0, 2**31 - 1, size=2))

    def measure(design: Design) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str | None]:
        cell = design.apply(target)
        found = fuzz(cell, families=families, deviators=deviators, budget=inner_budget, seed=seed,
                     markets=markets, rounds=rounds, eval_markets=eval_markets)
        metrics = evaluate(replace_cell(cell, seed=eval_seed, markets=markets, rounds=rounds))["metrics"]
        family = found.best.deviation.family if found.best is not None and found.exploitability["mean"] > 0 else None
        return found.exploitability, metrics, family

    exploit0, metrics0, family0 = measure(base)  # errors here are the caller's: let them raise
    thresholds = {"welfare": floor_threshold(metrics0["welfare"]["mean"], welfare_floor),
                  "revenue": floor_threshold(metrics0["revenue"]["mean"], revenue_floor)}
    scale = {k: max(abs(metrics0[k]["mean"]), 1e-9) for k in thresholds}

    def candidate(index: int, design: Design, exploit: dict[str, Any], metrics: dict[str, Any],
                  family: str | None) -> Candidate:
        shortfall = sum(max(0.0, thresholds[k] - metrics[k]["mean"]) / scale[k] for k in thresholds)
        objective = exploit["mean"] + SHORTFALL_WEIGHT * shortfall
        return Candidate(index, design, exploit, metrics["welfare"], metrics["revenue"], metrics["efficiency"],
                         shortfall <= 0.0, objective, family)

    candidates = [candidate(0, base, exploit0, metrics0, family0)]
    if on_candidate is not None:
        on_candidate(candidates[0], 1)
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=sampler_seed))
        if (params := _params(base, space)) is not None:  # the search learns from the baseline too
            study.add_trial(optuna.trial.create_trial(params=params, distributions=_distributions(params, rules,
                                                                                                  space, target),
                                                      value=candidates[0].objective))
        for rule in rules[1:]:  # one-change neighbours first
            neighbour = _params(base.model_copy(update={"mechanism": rule}), space)
            if neighbour is not None:
                study.enqueue_trial(neighbour)
        for index in range(1, budget + 1):
            trial = study.ask()
            design = _suggest(trial, rules, base, space)
            try:
                exploit, metrics, family = measure(design)
            except MechArenaError as exc:
                nan = {"mean": float("nan"), "ci95": [float("nan"), float("nan")]}
                found = Candidate(index, design, nan, nan, nan, nan, False, float("inf"), None, str(exc))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                found = candidate(index, design, exploit, metrics, family)
                study.tell(trial, found.objective)
            candidates.append(found)
            if on_candidate is not None:
                on_candidate(found, len(candidates))
    finally:
        optuna.logging.set_verbosity(level)
    feasible = [c for c in candidates if c.feasible]
    front = pareto_front([(c.exploitability["mean"], c.welfare["mean"], c.revenue["mean"]) for c in feasible])
    recommended = min(feasible, key=lambda c: (c.exploitability["mean"], -c.welfare["mean"], -c.revenue["mean"],
                                               c.index), default=None)
    return RepairResult(
        target, {"welfare": float(welfare_floor), "revenue": float(revenue_floor)}, thresholds, tuple(candidates),
        tuple(feasible[i].index for i in front), recommended,
        {"sampler": "tpe", "objective": f"exploitability + {SHORTFALL_WEIGHT:g} * shortfall", "budget": budget,
         "inner_budget": inner_budget, "families": families, "deviators": deviators, "rules": list(rules),
         "search": {k: list(v) for k, v in space.items()},
         "markets": markets, "rounds": rounds, "eval_markets": eval_markets, "seed": seed,
         "sampler_seed": sampler_seed, "eval_seed": eval_seed})


def _distributions(params: dict[str, Any], rules: tuple[str, ...], space: Space, target: Cell) -> dict[str, Any]:
    """The study's distributions for the parameter names in ``params`` (to tell it a known design)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    model = mechanisms.get(target.mechanism).config_model

    dists: dict[str, Any] = {"mechanism": CategoricalDistribution(list(rules))}
    for name in params:
        if name in INFORMATION_FLAGS:
            dists[name] = CategoricalDistribution([False, True])
        elif name in PENALTIES:
            dists[name] = FloatDistribution(*PENALTY_RANGE)
        elif name == "audit_probability":
            dists[name] = FloatDistribution(0.0, 1.0)
        elif name == "reserve_price":
            dists[name] = FloatDistribution(*RESERVE_RANGE)
        elif name.startswith("config."):
            domain = space[name.removeprefix("config.")]
            if isinstance(domain, list):
                dists[name] = CategoricalDistribution(domain)
            elif model.model_fields[name.removeprefix("config.")].annotation is int:
                dists[name] = IntDistribution(int(domain[0]), int(domain[1]))
            else:
                dists[name] = FloatDistribution(float(domain[0]), float(domain[1]))
    return dists
