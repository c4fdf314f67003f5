"""Searching deviation families for the most profitable deviation, and the exploitability estimate.

For each applicable family an Optuna study (TPE or CMA-ES) proposes parameters; every proposal is
scored on the *same* search seed (common random numbers across proposals, so their comparison is
not drowned in value noise). A family stops early when, after ``min_trials`` proposals, no
proposal's upper 95% bound on the gain reaches ``threshold``; the budget (in evaluations) is
split over families and ``restarts`` (independent studies with other sampler seeds). A family's
``starts`` (e.g. mild linear shading) are evaluated first in its first study.

The search's best score is biased upward (it is the maximum of noisy estimates). The
exploitability of (mechanism, population) is therefore the gain of the best deviation found,
re-evaluated on a fresh, independent seed with more markets: ``max(0, gain)`` with its 95% interval.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.seeding import generator
from mecharena.core.settings import FuzzSettings, Sampler
from mecharena.fuzz import policy_search
from mecharena.fuzz.behaviour import describe_play
from mecharena.fuzz.coalition import Ring, ring_response
from mecharena.fuzz.discover import (RANKING, SEARCH_IDENTITIES, Found, best_response, describe_report,
                                     report_strategies)
from mecharena.fuzz.families import FAMILIES, Family, Param
from mecharena.fuzz.score import Deviation, Gain, Scorer, deviated_population
from mecharena.metrics.harness import Cell



@dataclass(frozen=True, slots=True)
class Trial:
    deviation: Deviation
    gain: Gain  # on the search seed


@dataclass(frozen=True)
class FuzzResult:
    """Everything a fuzzing run found."""

    target: Cell  # with the markets, rounds and seed of the search (the fresh evaluation's size: search)
    deviators: int
    families: tuple[str, ...]  # searched (applicable)
    skipped: dict[str, str]  # family -> why it does not apply
    trials: tuple[Trial, ...]
    best: Trial | None
    fresh: Gain | None  # the best deviation re-evaluated on an independent seed
    evaluations: int
    stopped_early: tuple[str, ...]  # families that stopped before their budget
    search: dict[str, Any] = field(default_factory=dict)
    response: Found | None = None  # the discovery engine's best response, when it was searched
    ring: Ring | None = None  # the discovery engine's joint best response of the K deviators, when searched
    behaviour: str | None = None  # what the best deviation does, read from its play, when it is a searched policy

    @property
    def exploitability(self) -> dict[str, Any]:
        """max(0, fresh gain) with its 95% interval (0 when nothing was found)."""
        if self.fresh is None:
            return {"mean": 0.0, "ci95": [0.0, 0.0]}
        return {"mean": max(0.0, self.fresh.mean), "ci95": [max(0.0, self.fresh.lo), max(0.0, self.fresh.hi)]}

    @property
    def description(self) -> str | None:
        """What the best deviation does in words, where the discovery engine found it (None for a named family)."""
        family = None if self.best is None else self.best.deviation.family
        if family == RANKING:
            return describe_report(self.best.deviation, self.target)
        words = {"best_response": self.response and self.response.description,
                 "coalition": self.ring and self.ring.description, policy_search.FAMILY: self.behaviour}
        return words.get(family) or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.model_dump(mode="json"),
            "deviators": self.deviators,
            "families": list(self.families),
            "skipped": self.skipped,
            "evaluations": self.evaluations,
            "stopped_early": list(self.stopped_early),
            "exploitability": self.exploitability,
            "best": None if self.best is None else {**self.best.deviation.as_dict(),
                                                     "search_gain": self.best.gain.as_dict()},
            "fresh_gain": None if self.fresh is None else self.fresh.as_dict(),
            "search": self.search,
            "best_response": None if self.response is None else self.response.as_dict(),
            "coalition": None if self.ring is None else self.ring.as_dict(),
            "description": self.description,
        }


def applicable(scorer: Scorer, family: Family, deviators: int, rounds: int = 2) -> str | None:
    """None if the family can be played here (``rounds`` per evaluation), else the reason it cannot."""
    if family.coalition and deviators < 2:
        return "a coalition family needs --deviators >= 2"
    if family.sides != "any" and scorer.two_sided != (family.sides == "two"):
        return f"{family.name} applies to {'two' if family.sides == 'two' else 'one'}-sided markets"
    if family.name == policy_search.FAMILY:
        return policy_search.applies(scorer.target, deviators, rounds)
    if family.engine:
        if deviators > 1 and not family.coalition:
            return f"{family.name} searches one deviator's response (coalitions: the coalition family)"
        try:
            if family.coalition:
                ring_response(scorer.target, deviators, seed=0, samples=2, grid=2, points=3, refine=0, sweeps=1)
            elif family.name == RANKING:
                report_strategies(scorer.target, limit=1, seed=0)
            else:
                best_response(scorer.target, seed=0, samples=2, grid=2, points=3, refine=0)
        except MechArenaError as exc:
            return str(exc)
        return None
    defaults = {p.name: _default(p) for p in family.params}
    try:
        scorer.score(Deviation(family.name, tuple(sorted(defaults.items())), deviators), seed=0, markets=2, rounds=2)
    except MechArenaError as exc:
        return str(exc)
    return None


def engine_searches(scorer: Scorer) -> list[tuple[str, int]]:
    """(role, identities) of each discovery-engine search: the first agent (a buyer in two-sided
    markets) and, in two-sided markets, the first seller; up to SEARCH_IDENTITIES identities where the
    mechanism merges them (one-sided, unit demand)."""
    ctx = scorer.target.episode().context
    if scorer.two_sided:
        return [("buyer", 1), ("seller", 1)]
    merges = ctx.mechanism.merges_identities and not ctx.spec.units_per_agent
    return [("first", SEARCH_IDENTITIES if merges else 1)]


def _default(p: Param) -> Any:
    if p.kind == "bool":
        return False
    mid = (p.low + p.high) / 2
    return round(mid) if p.kind == "int" else mid


def _suggest(trial, p: Param) -> Any:
    if p.kind == "bool":
        return trial.suggest_categorical(p.name, [False, True])
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high))
    return trial.suggest_float(p.name, p.low, p.high)


_DEFAULT = FuzzSettings()


def fuzz(
    target: Cell,
    *,
    families: list[str] | None = _DEFAULT.families,
    deviators: int = _DEFAULT.deviators,
    budget: int = _DEFAULT.budget,
    seed: int = 0,
    sampler: Sampler = _DEFAULT.sampler,
    restarts: int = _DEFAULT.restarts,
    markets: int = _DEFAULT.markets,
    rounds: int = _DEFAULT.rounds,
    eval_markets: int = _DEFAULT.eval_markets,
    threshold: float = _DEFAULT.threshold,
    min_trials: int = 8,
    starts: bool = True,
    samples: int | None = _DEFAULT.samples,
    on_trial: Callable[[Trial, int], None] | None = None,
) -> FuzzResult:
    """Search for the most profitable deviation from ``target``'s population.

    Args:
        target: the mechanism, population and rules (its seed, markets and rounds are replaced by
            ``seed``, ``markets`` and ``rounds`` in the result).
        families: family ids to search (default: every family that applies, opt-in families aside).
            ``best_response`` is the discovery engine (:mod:`mecharena.fuzz.discover`): a type-wise
            best response searched over any bid function (bid vectors with multi-unit demand; up to
            SEARCH_IDENTITIES false names where the mechanism merges identities), fitted on ``samples``
            market-rounds of the search seed and scored like every other deviation. In two-sided
            markets it searches a buyer's and a seller's response, each scored as a trial;
            ``coalition`` (:mod:`mecharena.fuzz.coalition`, ``deviators`` >= 2) is the K deviators' joint best
            response (role tables by rank of value within the ring), fitted and scored the same way.
            ``policy`` is the repeated-game engine (:mod:`mecharena.fuzz.policy_search`): CMA-ES over
            a policy from what the market reveals to a bid and entry, for all K deviators, with one
            family's share of ``budget``; it applies when ``rounds`` >= 2.
        deviators: K, agents that deviate together (a coalition when K > 1).
        budget: evaluations in the search (the fresh evaluation comes on top).
        seed: root seed; the search and the fresh evaluation use independent streams.
        sampler: ``tpe`` or ``cmaes`` (Optuna samplers).
        restarts: independent studies per family, splitting its budget.
        markets: markets of each search evaluation.
        rounds: rounds of each search evaluation.
        eval_markets: markets of the fresh evaluation.
        threshold: a family stops early once no upper 95% bound reaches it.
        min_trials: proposals per study before early stopping is considered.
        starts: evaluate each family's start points first (off: the sampler alone, e.g. to
            measure how the search's gain grows with budget).
        samples: market-rounds the discovery engine fits its best response (or the ring's) on
            (default: one search evaluation's, ``markets`` x ``rounds``).
        on_trial: called with each scored trial and the evaluation count (progress bars).

    Raises:
        ConfigError: no families, a setting outside :class:`~mecharena.core.settings.FuzzSettings`'
            bounds, or no family applies.
        UnknownIdError: an unknown family.
    """
    import optuna  # imported here: a second of import time that only fuzzing needs

    FuzzSettings.build(families=families, deviators=deviators, budget=budget, sampler=sampler, restarts=restarts,
                       markets=markets, rounds=rounds, eval_markets=eval_markets, threshold=threshold,
                       samples=samples)
    if families is not None and not families:
        raise ConfigError("families must name at least one deviation family (see `mecharena fuzz --help`)")
    chosen = [FAMILIES.get(name) for name in (families or [n for n, f in FAMILIES.items() if not f.opt_in])]
    scorer = Scorer(target)  # validates the target before any search
    deviated_population(target.population, target.seed, deviators, "truthful")  # someone must deviate
    skipped = {f.name: why for f in chosen if (why := applicable(scorer, f, deviators, rounds)) is not None}
    usable = [f for f in chosen if f.name not in skipped]
    if not usable:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise ConfigError(f"no deviation family applies to {target.mechanism} with {deviators} deviator(s): {reasons}")
    streams = generator(seed, ("fuzz",))
    search_seed, fresh_seed = (int(x) for x in streams.integers(0, 2**31 - 1, size=2))
    trials: list[Trial] = []
    stopped: list[str] = []
    sampled = [f for f in usable if not f.engine]
    policy = any(f.name == policy_search.FAMILY for f in usable)
    per_family = max(1, budget // max(1, len(sampled) + policy))  # the policy search takes one family's share
    if policy:  # CMA-ES over the policy's weights: every candidate is a trial on the search seed
        size = (policy_search.POPULATION if per_family >= 2 * policy_search.POPULATION
                else max(policy_search.MIN_POPULATION, per_family // 2))

        def record(deviation: Deviation, gain: Gain) -> None:
            trials.append(Trial(deviation, gain))
            if on_trial is not None:
                on_trial(trials[-1], len(trials))

        policy_search.evolve(scorer, deviators=deviators, search_seed=search_seed,
                             cma_seed=int(generator(seed, ("policy_cma",)).integers(2**31 - 1)),
                             generations=max(1, per_family // size), population=size, markets=markets,
                             rounds=rounds, sigma=policy_search.SIGMA, start=policy_search.start_point(scorer.target),
                             on_candidate=record)
    samples = markets * rounds if samples is None else samples
    response, ring, engine_best = None, None, float("-inf")
    engine_trials: list[Trial] = []
    for family in (f for f in usable if f.engine and f.name != policy_search.FAMILY):
        if family.coalition:
            ring = ring_response(target, deviators, seed=search_seed, samples=samples)
            engine_trials.append(Trial(ring.deviation, scorer.score(ring.deviation, seed=search_seed, markets=markets,
                                                                    rounds=rounds)))
            continue
        if family.name == RANKING:  # a finite space of reports: every one, up to the budget
            engine_trials += [Trial(d, scorer.score(d, seed=search_seed, markets=markets, rounds=rounds))
                              for d in report_strategies(target, limit=budget, seed=search_seed)]
            continue
        for role, identities in engine_searches(scorer):
            found = best_response(target, seed=search_seed, samples=samples, role=role, identities=identities)
            deviation = Deviation(found.deviation.family, found.deviation.params, deviators, found.deviation.after)
            scored = Trial(deviation, scorer.score(deviation, seed=search_seed, markets=markets, rounds=rounds))
            if scored.gain.mean > engine_best:  # the result keeps the engine's best-scoring response
                response, engine_best = found, scored.gain.mean
            engine_trials.append(scored)
    for scored in engine_trials:
        trials.append(scored)
        if on_trial is not None:
            on_trial(scored, len(trials))
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        for f_index, family in enumerate(sampled):
            per_study = max(1, per_family // restarts)
            for restart in range(restarts):
                sampler_seed = int(generator(seed, ("sampler", f_index, restart)).integers(2**31 - 1))
                sampler_obj = (optuna.samplers.CmaEsSampler(seed=sampler_seed, warn_independent_sampling=False)
                               if sampler == "cmaes" else optuna.samplers.TPESampler(seed=sampler_seed))
                study = optuna.create_study(direction="maximize", sampler=sampler_obj)
                for start in family.starts if restart == 0 and starts else ():
                    study.enqueue_trial(start)
                best_upper = float("-inf")
                for t in range(per_study):
                    trial = study.ask()
                    params = {p.name: _suggest(trial, p) for p in family.params}
                    deviation = Deviation(family.name, tuple(sorted(params.items())), deviators)
                    gain = scorer.score(deviation, seed=search_seed, markets=markets, rounds=rounds)
                    study.tell(trial, gain.mean)
                    scored = Trial(deviation, gain)
                    trials.append(scored)
                    best_upper = max(best_upper, gain.hi)
                    if on_trial is not None:
                        on_trial(scored, len(trials))
                    if t + 1 >= min_trials and best_upper < threshold:
                        stopped.append(family.name)
                        break
    finally:
        optuna.logging.set_verbosity(level)
    best = max(trials, key=lambda tr: tr.gain.mean)
    fresh = scorer.score(best.deviation, seed=fresh_seed, markets=eval_markets, rounds=rounds)
    behaviour = None
    if best.deviation.family == policy_search.FAMILY:
        behaviour = describe_play(target, best.deviation, seed=fresh_seed, rounds=rounds,
                                  markets=min(eval_markets, policy_search.DESCRIBE_MARKETS))
    # the result names the search's own size and seed, not the cell's (unused) defaults
    used = target.model_copy(update={"markets": markets, "rounds": rounds, "seed": seed})
    return FuzzResult(used, deviators, tuple(f.name for f in usable), skipped, tuple(trials), best, fresh,
                      len(trials), tuple(dict.fromkeys(stopped)),
                      {"sampler": sampler, "budget": budget, "restarts": restarts, "markets": markets,
                       "rounds": rounds, "eval_markets": eval_markets, "threshold": threshold, "seed": seed,
                       "samples": samples, "search_seed": search_seed, "fresh_seed": fresh_seed}, response, ring,
                      behaviour)
