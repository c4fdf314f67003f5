"""The discovery engine's repeated-game search: a deviator's policy from observation to action, by CMA-ES.

No deviation family is assumed. The deviator (or a coalition of K deviators sharing one policy)
plays :mod:`mecharena.agents.policy`: 30 weights mapping what each seat sees, exactly as the
information policy reveals it (last price, whether it or a rival won, the highest rival bid, the
announced reserve, its value, its partners' values, whether it was in), to a bid and an
entry decision. CMA-ES (Hansen 2016, "The CMA Evolution Strategy: A Tutorial", via the ``cmaes``
package) searches the weights. Every candidate is scored by :class:`~mecharena.fuzz.score.Scorer`
over the cell's rounds on the *same* search seed (common random numbers: candidates differ only
by their policy), starting from truthful bidding; the best one is re-scored on a fresh seed with
more markets, which is the honest estimate with its 95% interval.

Why evolution strategies rather than policy-gradient RL: the objective is a whole episode's
utility, and a policy's effect on it runs through the rivals' adaptation over many rounds (exits,
learned beliefs, punishments), so per-round credit assignment buys little; the payoff is
discontinuous in the weights (entry thresholds, winning a first-price auction), where a
likelihood-ratio gradient needs a stochastic policy and many samples; and ES needs only the
scorer's paired gain, so it searches exactly the quantity the fuzzer reports, deterministically for
a seed. Measured on the reserve-sniping cell of ``tests/fuzz/test_policy_search.py``: 10
generations of 8 candidates (80 evaluations of 300 markets x 6 rounds) reach the sniping
family's gain.

Steps and the polish. CMA-ES starts with a step of SIGMA on the bid maps and FIELD_SIGMA on each action
field's map (split over its features, so the field itself moves by about FIELD_SIGMA), each divided by
its feature's typical size in honest play (:func:`feature_sizes`: a stateful market's round and own
state are counts). Its best policy is then polished one action field at a time (:func:`polish`), which
finds an edge CMA-ES mostly steps over. Measured on the reputation marketplace
(examples/usecases/reputation_marketplace.py, seed 0, 80 generations): the gain found under the average
rule rose from 0.081 to 0.140 per round, and under verified reviews from 0.018 to 0.046, above a
hand-written re-entry policy (0.038); on the service marketplace the polish finds the unnoticed
shortfall (effort 1 - notice) that CMA-ES alone left at 0.92.

Resumable: with ``store`` every generation (its candidates and their gains) is appended to a JSONL
file; a later call with the same settings replays the stored generations into a fresh CMA-ES
(checking that it proposes the same candidates) and continues from there.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cmaes import CMA

from mecharena.agents.policy import feature_names, format_weights, layout, parse_weights, ring_width, start_weights
from mecharena import mechanisms
from mecharena.core.config import check_seed
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray
from mecharena.fuzz.behaviour import describe_play
from mecharena.fuzz.score import Deviation, Gain, Scorer, replace_cell
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

FAMILY = "policy"
BOUND = 4.0  # every weight is searched in [-BOUND, BOUND]
SIGMA = 0.05  # initial step: larger steps land most candidates on the flat region of never winning
# initial step of each action field (its map's weights share it): an integer field (re-enter, claim) changes
# only where its map crosses 1/2, so small steps from its default never leave the plateau
FIELD_SIGMA = 0.5
POLISH = 21  # constants and moves of each action field per grid of the polish
POPULATION = 14  # candidates per generation: CMA-ES's default 4 + 3 ln(30)
MAX_GENERATIONS = 10_000
MAX_POPULATION = 1000
DESCRIBE_MARKETS = 400  # markets played to say what the found policy does
MIN_POPULATION = 4  # CMA-ES's recombination weights need two parents (cmaes divides by zero below)


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of the search: its candidates and their gains on the search seed."""

    index: int
    candidates: FloatArray  # (L, W)  as evaluated (rounded to their spec text)
    gains: FloatArray  # (L,)  mean gain per agent and round

    def as_dict(self) -> dict[str, Any]:
        return {"generation": self.index, "candidates": [format_weights(c) for c in self.candidates],
                "gains": self.gains.tolist()}


@dataclass(frozen=True)
class PolicyFound:
    """The best policy found, the deviation that plays it and its gains."""

    deviation: Deviation
    weights: FloatArray  # (W,)  3 F and F per action field of the mechanism (policy.layout)
    search: Gain  # on the search seed (biased upward: the best of many)
    fresh: Gain  # on a fresh seed: the honest estimate
    generations: tuple[Generation, ...]
    seed: int
    description: str | None = None  # what it does, read from its play (fuzz.behaviour)

    @property
    def evaluations(self) -> int:
        return sum(g.gains.size for g in self.generations)

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.deviation.agent_spec, "deviators": self.deviation.deviators,
                "search_gain": self.search.as_dict(), "fresh_gain": self.fresh.as_dict(),
                "generations": len(self.generations), "evaluations": self.evaluations, "seed": self.seed,
                "description": self.description}


def policy_deviation(weights: FloatArray, deviators: int = 1, horizon: int = 0,
                     defector: FloatArray | None = None, punisher: FloatArray | None = None) -> Deviation:
    """The ``policy`` deviation playing ``weights``, knowing the episode's ``horizon`` (0: not told); with
    ``defector``, the first deviator plays those weights instead (a ring member defecting); with ``punisher``,
    the second plays those once a partner is caught (a member weighing the ring's threat)."""
    told = (("horizon", horizon),) if horizon else ()
    own = [(name, format_weights(x)) for name, x in (("d", defector), ("p", punisher)) if x is not None]
    return Deviation(FAMILY, (*own, ("w", format_weights(weights)), *told), deviators)


def known_horizon(target: Cell, rounds: int) -> int:
    """The horizon the search tells its policy: the rounds it plays where the market keeps state (its policy
    sees its ``final`` round there), else 0."""
    return rounds if mechanisms.get(target.mechanism).stateful else 0


def check_settings(generations: int, population: int, markets: int, rounds: int, eval_markets: int,
                   sigma: float) -> None:
    """Raise :class:`ConfigError` naming the first setting out of range."""
    if not 1 <= generations <= MAX_GENERATIONS:
        raise ConfigError(f"generations must be in [1, {MAX_GENERATIONS}], got {generations}")
    if not MIN_POPULATION <= population <= MAX_POPULATION:
        raise ConfigError(f"population must be in [{MIN_POPULATION}, {MAX_POPULATION}] candidates per generation, "
                          f"got {population}")
    if markets < 2 or eval_markets < 2:
        raise ConfigError(f"markets and eval_markets must be >= 2, got markets={markets}, eval_markets={eval_markets}")
    if rounds < 2:
        raise ConfigError(f"the policy search plays repeated rounds: rounds must be >= 2, got {rounds}")
    if not (math.isfinite(sigma) and 0 < sigma <= BOUND):
        raise ConfigError(f"sigma must be a finite number in (0, {BOUND:g}], got {sigma}")


def start_point(target: Cell) -> FloatArray:
    """The search's default start for ``target``'s mechanism (see :func:`mecharena.agents.policy.start_weights`)."""
    return start_weights(mechanisms.get(target.mechanism))


def feature_sizes(target: Cell, rounds: int, seed: int, markets: int = 64, ring: bool = False) -> FloatArray:
    """(F,) each policy feature's typical size (mean absolute value, at least 1) in the honest play of ``target``.

    The initial step of a weight is divided by its feature's size, so that the search's first steps move
    every feature's term alike: a stateful market's ``round`` (0 to rounds - 1) and own state (counts of
    ratings, tasks, strikes: tens) would otherwise swing the action by several units at once and every
    early candidate would sit at an action bound. Stateless features are in units of values: 1, and so are a
    ring's (``ring``: its layout's features).
    """
    mechanism = mechanisms.get(target.mechanism)
    names = feature_names(mechanism, ring)
    sizes = np.ones(len(names))
    if not mechanism.stateful:
        return sizes
    sizes[names.index("round")] = max(1.0, (rounds - 1) / 2)
    records = list(play(replace_cell(target, seed=seed, markets=markets, rounds=rounds).episode(), rounds))
    for f in mechanism.state:
        if f.per == "seat":
            size = np.mean([np.abs(r.next_state[f.name]).mean() for r in records])
            sizes[names.index(f"own_{f.name}")] = max(1.0, float(size))
    return sizes


def applies(target: Cell, deviators: int, rounds: int) -> str | None:
    """None if the policy search can play ``target`` with ``rounds`` rounds, else the reason it cannot."""
    if rounds < 2:
        return f"the policy search needs repeated rounds (rounds >= 2), got {rounds}"
    try:
        Scorer(target).score(policy_deviation(start_point(target), deviators, known_horizon(target, 2)), seed=0,
                             markets=2, rounds=2)
    except MechArenaError as exc:
        return str(exc)
    return None


def _header(target: Cell, seed: int, deviators: int, population: int, markets: int, rounds: int,
            sigma: float, start: FloatArray) -> dict[str, Any]:
    return {"target": target.key(), "seed": seed, "deviators": deviators, "population": population,
            "markets": markets, "rounds": rounds, "sigma": sigma, "start": format_weights(start)}


def _load(store: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """The generations stored under ``header`` (none if the file does not exist)."""
    if not store.exists():
        return []
    lines = [json.loads(line) for line in store.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != {"header": header}:
        raise ConfigError(f"store {str(store)!r} holds a search with other settings; use another file or delete it")
    return lines[1:]


def policy_search(target: Cell, *, seed: int, deviators: int = 1, generations: int = 40, population: int = POPULATION,
                  markets: int = 300, rounds: int | None = None, eval_markets: int = 2000, sigma: float = SIGMA,
                  start: FloatArray | None = None, store: Path | str | None = None,
                  scorer: Scorer | None = None) -> PolicyFound:
    """Search a policy for the first ``deviators`` agents of ``target`` (a coalition when > 1).

    Args:
        target: the mechanism, population and rules (its markets and seed are replaced).
        seed: root seed: the search seed, the fresh seed and CMA-ES's own draws come from it.
        deviators: K agents sharing the policy; their gain per agent and round is maximised.
        generations: CMA-ES generations (``generations x population`` evaluations).
        population: candidates per generation.
        markets: markets of each search evaluation.
        rounds: rounds of every evaluation (default: the target's).
        eval_markets: markets of the fresh evaluation.
        sigma: CMA-ES's initial step size (weights are searched in [-4, 4]).
        start: the initial mean (default :func:`start_point`: truthful bidding, always in, action fields at their
            defaults).
        store: a JSONL file holding every generation; an existing one with the same settings is
            resumed (its generations are not evaluated again).
        scorer: a :class:`Scorer` of ``target`` to reuse (its baselines are cached).

    Returns:
        The best candidate of all generations (by search gain), polished (:func:`polish`: up to 3 x POLISH
        more evaluations per action field), with its fresh gain and what it does in words (read from its play on
        the fresh seed).

    Raises:
        ConfigError: a setting out of range, a store with other settings, or a market the policy
            cannot play.
    """
    seed = check_seed(seed)
    rounds = target.rounds if rounds is None else rounds
    check_settings(generations, population, markets, rounds, eval_markets, sigma)
    default = start_point(target)
    x0 = default if start is None else np.asarray(start, dtype=float)
    size = default.size
    if x0.shape != (size,) or not (np.isfinite(x0).all() and (np.abs(x0) <= BOUND).all()):
        raise ConfigError(f"start must hold {size} finite weights in [-{BOUND:g}, {BOUND:g}]")
    scorer = Scorer(target) if scorer is None else scorer
    streams = generator(seed, ("policy_search",))
    search_seed, fresh_seed, cma_seed = (int(x) for x in streams.integers(0, 2**31 - 1, size=3))
    header = _header(target, seed, deviators, population, markets, rounds, sigma, x0)
    done, weights, search_gain = evolve(scorer, deviators=deviators, search_seed=search_seed, cma_seed=cma_seed,
                                        generations=generations, population=population, markets=markets,
                                        rounds=rounds, sigma=sigma, start=x0,
                                        store=None if store is None else (Path(store), header))
    weights, search_gain = polish(scorer, weights, search_gain, deviators=deviators, seed=search_seed, markets=markets,
                                  rounds=rounds)
    deviation = policy_deviation(weights, deviators, known_horizon(target, rounds))
    fresh = scorer.score(deviation, seed=fresh_seed, markets=eval_markets, rounds=rounds)
    said = describe_play(target, deviation, seed=fresh_seed, markets=min(eval_markets, DESCRIBE_MARKETS), rounds=rounds)
    return PolicyFound(deviation, weights, search_gain, fresh, done, seed, said)


def polish(scorer: Scorer, weights: FloatArray, gain: Gain, *, deviators: int, seed: int, markets: int,
           rounds: int) -> tuple[FloatArray, Gain]:
    """Coordinate search from the found policy over each action field in turn: the field held at each of
    POLISH constants across its range, and its map shifted by as many moves across the range; then shifts
    ten times finer around the best. A candidate is kept only when it raises the gain on the search seed.

    CMA-ES steps every weight at once, so a field whose payoff falls off a cliff next to its best value (an
    effort just above what customers notice) is mostly sampled over the cliff; one field at a time, with
    the map's other terms dropped or kept, walks up to the edge. Markets without action fields are left
    as found.
    """
    mechanism = mechanisms.get(scorer.target.mechanism)
    width, extra = layout(mechanism, weights)
    horizon = known_horizon(scorer.target, rounds)

    def trial(candidate: FloatArray) -> None:
        nonlocal weights, gain
        candidate = parse_weights(format_weights(np.clip(candidate, -BOUND, BOUND)))
        if not np.array_equal(candidate, weights):
            scored = scorer.score(policy_deviation(candidate, deviators, horizon), seed=seed, markets=markets,
                                  rounds=rounds)
            if scored.mean > gain.mean:
                weights, gain = candidate, scored

    for k, a in enumerate(mechanism.actions[:extra]):
        i = (3 + k) * width
        span = a.high - a.low
        found = weights.copy()
        for x, move in zip(np.linspace(a.low, a.high, POLISH), np.linspace(-span, span, POLISH), strict=True):
            constant = found.copy()
            constant[i:i + width] = 0.0
            constant[i] = x
            trial(constant)
            shifted = found.copy()
            shifted[i] += move
            trial(shifted)
        centre = weights.copy()
        for move in np.linspace(-2 * span / (POLISH - 1), 2 * span / (POLISH - 1), POLISH):
            shifted = centre.copy()
            shifted[i] += move
            trial(shifted)
    return weights, gain


def evolve(scorer: Scorer, *, deviators: int, search_seed: int, cma_seed: int, generations: int, population: int,
           markets: int, rounds: int, sigma: float, start: FloatArray,
           store: tuple[Path, dict[str, Any]] | None = None,
           on_candidate: Callable[[Deviation, Gain], None] | None = None,
           evaluate: Callable[[FloatArray], Gain] | None = None, steps: FloatArray | None = None
           ) -> tuple[tuple[Generation, ...], FloatArray, Gain]:
    """CMA-ES over the weights, every candidate scored on ``search_seed`` (inputs already checked).

    Args:
        store: ``(path, header)``: append each generation to the JSONL file, resuming its stored ones.
        on_candidate: called with every candidate evaluated here and its gain.
        evaluate: the objective of a candidate's weights (default: the deviators' gain as the scorer scores
            their policy on ``search_seed``).
        steps: (W,) factors of each weight's initial step (default 1); 0 holds a weight at its start.

    Returns:
        The generations, the best weights and their gain on the search seed.
    """
    path, header = (None, None) if store is None else store
    stored = [] if path is None else _load(path, header)
    if path is not None and not path.exists():
        path.write_text(json.dumps({"header": header}) + "\n")
    bounds = np.tile([-BOUND, BOUND], (start.size, 1))
    horizon = known_horizon(scorer.target, rounds)
    if evaluate is None:
        def evaluate(weights: FloatArray) -> Gain:
            return scorer.score(policy_deviation(weights, deviators, horizon), seed=search_seed, markets=markets,
                                rounds=rounds)
    mechanism = mechanisms.get(scorer.target.mechanism)
    width, _ = layout(mechanism, start)
    scale = np.where(np.arange(start.size) < 3 * width, 1.0, max(FIELD_SIGMA / math.sqrt(width) / sigma, 1.0))
    ring = width == ring_width(mechanism)
    scale /= np.resize(feature_sizes(scorer.target, rounds, search_seed, ring=ring)[:width], start.size)
    scale *= 1.0 if steps is None else steps
    free = scale > 0  # a weight of step 0 is held at its start
    cma = CMA(mean=start[free], sigma=sigma, bounds=bounds[free], seed=cma_seed, population_size=population,
              cov=np.diag(scale[free]**2))
    done: list[Generation] = []
    best: tuple[float, FloatArray, Gain | None] = (-math.inf, start, None)
    for index in range(generations):
        asked = [cma.ask() for _ in range(population)]
        held = np.tile(start, (population, 1))
        held[:, free] = asked
        candidates = np.stack([parse_weights(format_weights(x)) for x in held])  # what the spec replays
        if index < len(stored):
            gains = np.asarray(stored[index]["gains"], dtype=float)
            if [format_weights(c) for c in candidates] != stored[index]["candidates"]:
                raise ConfigError(f"store {str(path)!r} does not replay: generation {index} differs")
            scored: list[Gain | None] = [None] * population
        else:
            scored = []
            for c in candidates:
                scored.append(evaluate(c))
                if on_candidate is not None:
                    on_candidate(policy_deviation(c, deviators, horizon), scored[-1])
            gains = np.array([g.mean for g in scored])
        cma.tell([(x, -float(v)) for x, v in zip(asked, gains, strict=True)])
        generation = Generation(index, candidates, gains)
        done.append(generation)
        if path is not None and index >= len(stored):
            with path.open("a") as out:
                out.write(json.dumps(generation.as_dict()) + "\n")
        top = int(np.argmax(gains))
        if gains[top] > best[0]:
            best = (float(gains[top]), candidates[top], scored[top])
    _, weights, search_gain = best
    if search_gain is None:  # the best came from a stored generation
        search_gain = evaluate(weights)
    return tuple(done), weights, search_gain
