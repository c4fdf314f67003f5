"""The discovery engine's ring across rounds: a coalition's shared policy that no member wants to leave.

A ring of K deviators sharing one policy (:mod:`mecharena.agents.policy` in a ring's layout: a partner's
win and bid as the market reveals them, whether the seat led its ring, and whether the market has shown a
partner playing off the ring's policy) can gain together
while one member would gain more by leaving it: in a first-price auction the ring's highest value shades
because its partners stay out, and a partner whose value is close outbids it cheaply. Such a ring is not an
equilibrium and reporting its gain overstates what capable colluders can hold. A ring worth reporting
enforces itself: no member gains by defecting, counting how the others play once they notice, and they
notice only what the market reveals. Which is why the information policy decides how much a ring can hold.

That is a bilevel search, run as a double oracle (McMahan, Gordon and Blum 2003, "Planning in the
presence of cost functions controlled by an adversary"): an archive of defections grows until the ring
holds against all of them.

1. Ring: CMA-ES (:func:`mecharena.fuzz.policy_search.evolve`) over the ring's weights w. A candidate scores
   its gain per member and round G(w), minus ``penalty`` (4) times the largest gain D(w) that a defection of the
   archive brings the member who plays it (the group's first seat plays the defection's weights, seeing its
   partners as before; the others play w), when that gain is positive. Everything is on common random
   numbers: the same markets, values and rivals' draws for every candidate.
2. Defection: CMA-ES over one member's weights against the ring just found, started from loyalty (its
   weights are the ring's), scored by that member's gain over staying loyal. A profitable one joins the
   archive.
3. Punisher (``credible``, the default): a threat deters only if the members would carry it out. CMA-ES over
   what the second member plays once it has caught the phase's defection (``policy(p=...)``), started from
   carrying the threat out, scored by that member's gain over doing so. A profitable one joins a second
   archive, and a ring's score pays ``penalty`` times the best gain an archived punisher finds by shirking,
   as it pays for defections: the ring found is one whose threat is a best reply, within the policy class,
   once it is set off (a subgame-perfect ring, checked one deviator at a time).

The phases repeat from the ring found so far. The ring reported is the phase's ring that scores best against
the final archive, polished one weight at a time; a last defection search against it (CMA-ES from loyalty,
every archived defection, and a coordinate polish of the best), scored on a fresh seed, certifies it: a
defection gain whose interval reaches 0 or below means no defection found pays. The certificate is as strong
as that search: a defection outside the policy's linear maps is not tried. The ring's gain on the fresh seed,
with its 95% interval, is the honest estimate. The certificate then asks the same of the threat: the best play
of a member who caught the certificate's defection (CMA-ES from carrying it out, the archived punishers, a
polish), scored on the fresh seed. The threat is *credible* when that gain's interval reaches 0; a Nash ring
whose threat is not credible holds only as long as its members believe it. Starting from truthful bidding with
an empty archive, the first phase finds the collusive ring a coalition search would; later phases keep what of
it holds. Nothing about designated winners, suppression or punishment is assumed: what a member can check is
set by the information policy (``caught``), and how the ring plays, before and after, is searched.

Resumable: with ``store`` (a folder) every phase's searches append their generations to their own JSONL
files (``ring-P.jsonl``, ``defection-P.jsonl``, ``punisher-P.jsonl``), which a rerun with the same settings
replays.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mecharena import mechanisms
from mecharena.agents.policy import feature_names, format_weights, layout, parse_weights, start_weights
from mecharena.core.config import check_seed
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator
from mecharena.core.settings import RingSettings
from mecharena.core.types import FloatArray
from mecharena.fuzz.behaviour import describe_play
from mecharena.fuzz.policy_search import (BOUND, DESCRIBE_MARKETS, FAMILY, SIGMA, check_settings, evolve, known_horizon,
                                          policy_deviation)
from mecharena.fuzz.score import Deviation, Gain, Scorer, deviated_population
from mecharena.mechanisms.base import Mechanism
from mecharena.metrics.harness import Cell

RING = RingSettings()  # the defaults (mecharena.core.settings holds them and the bounds)
# initial step of the weights on ``caught``, in units of the others': they act only once a partner strays, so a
# small step changes nothing a ring's score can see; a punishment needs a move of order 1
CAUGHT_STEP = 10.0
SEARCHES = ("ring", "defection", "certificate", "punisher", "credibility")
POLISH_GRID = 17  # values per weight in the polish


@dataclass(frozen=True)
class RingPolicyFound:
    """The self-enforcing ring found, the best defection against it and their gains on a fresh seed."""

    deviation: Deviation  # the ring: K deviators sharing the policy
    weights: FloatArray
    gain: Gain  # per member and round, on a fresh seed
    defector: FloatArray  # the certificate search's best defection
    defection: Gain  # what it brings the defecting member over loyalty, per round, on the fresh seed
    # per phase: the ring's gain on the search seed, its score against the final archive, defections known after it
    phases: tuple[dict[str, Any], ...]
    seed: int
    description: str | None = None  # what the ring does, read from its play
    punishment: str | None = None  # what its members do once a partner is caught (None: nothing changes)
    punisher: FloatArray | None = None  # the credibility search's best play of a punisher once a partner is caught
    shirking: Gain | None = None  # what it brings that member over carrying out the threat, on the fresh seed
    punished: bool = False  # whether the certificate's defection sets a threat off (the ring reacts to caught)

    @property
    def enforced(self) -> bool:
        """No defection found pays: its gain's 95% interval reaches 0."""
        return self.defection.lo <= 0.0

    @property
    def credible(self) -> bool:
        """No member found gains by not carrying out the ring's threat: its gain's 95% interval reaches 0."""
        return self.shirking is None or self.shirking.lo <= 0.0

    @property
    def verdict(self) -> str:
        """Whether the ring holds and whether its threat is credible, with the gains, in one sentence."""
        k, gain, defection = self.deviation.deviators, self.gain.text, self.defection.text
        if not self.enforced:
            return (f"No ring found holds: the best gains {gain} per member and round, but a member gains "
                    f"{defection} more by leaving it.")
        if not self.punished:
            return (f"A ring of {k} holds {gain} per member and round with no threat set off: the best defection "
                    f"found brings its member {defection}.")
        if self.credible:
            return (f"A ring of {k} holds {gain} per member and round: the best defection found brings its member "
                    f"{defection}, and its threat is credible: a member who would not carry it out gains "
                    f"{self.shirking.text}.")
        return (f"A ring of {k} holds {gain} per member and round against the defections found ({defection}) only "
                f"by a threat its members would not carry out: a member gains {self.shirking.text} by not "
                f"punishing.")

    @property
    def summary(self) -> str:
        """The verdict, what the ring does and what its members do once a partner is caught."""
        does = f" What the ring does: {self.description}." if self.description else ""
        return f"{self.verdict}{does} Once a partner is caught: {self.punishment or 'nothing changes'}."

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.deviation.agent_spec, "deviators": self.deviation.deviators,
                "fresh_gain": self.gain.as_dict(), "defection_gain": self.defection.as_dict(),
                "defector": format_weights(self.defector), "enforced": self.enforced, "phases": list(self.phases),
                "seed": self.seed, "description": self.description, "punishment": self.punishment,
                "punished": self.punished, "credible": self.credible,
                "shirking_gain": None if self.shirking is None else self.shirking.as_dict(),
                "punisher": None if self.punisher is None else format_weights(self.punisher)}


class RingGame:
    """A ring's and its defectors' gains on one seed, markets and rounds (common random numbers)."""

    def __init__(self, scorer: Scorer, deviators: int, *, seed: int, markets: int, rounds: int) -> None:
        self.scorer, self.deviators, self.seed, self.markets, self.rounds = scorer, deviators, seed, markets, rounds
        self.horizon = known_horizon(scorer.target, rounds)

    def members(self, ring: FloatArray, defector: FloatArray | None = None, punisher: FloatArray | None = None
                ) -> FloatArray:
        """(B, K) each member's gain per round over its own agent, the first member playing ``defector``, the
        second ``punisher`` once a partner is caught."""
        deviation = policy_deviation(ring, self.deviators, self.horizon, defector, punisher)
        return self.scorer.member_gains(deviation, seed=self.seed, markets=self.markets, rounds=self.rounds)

    def gain(self, diff: FloatArray) -> Gain:
        """The :class:`Gain` of (B,) per-market gains on this game's seed."""
        return self.scorer.as_gain(diff, Deviation(FAMILY, (), self.deviators), seed=self.seed, rounds=self.rounds)

    def defection(self, ring: FloatArray, defector: FloatArray, loyal: FloatArray | None = None) -> FloatArray:
        """(B,) what ``defector`` brings the first member over playing ``ring`` (``loyal``: ring's members)."""
        loyal = self.members(ring) if loyal is None else loyal
        return self.members(ring, defector)[:, 0] - loyal[:, 0]

    def shirking(self, ring: FloatArray, defector: FloatArray, punisher: FloatArray,
                 punishing: FloatArray | None = None) -> FloatArray:
        """(B,) what ``punisher`` brings the second member over carrying out ``ring``'s threat once the first
        defects with ``defector`` (``punishing``: the members' gains when it carries it out)."""
        punishing = self.members(ring, defector) if punishing is None else punishing
        return self.members(ring, defector, punisher)[:, 1] - punishing[:, 1]

    def score(self, ring: FloatArray, archive: list[FloatArray], penalty: float,
              shirkers: list[tuple[FloatArray, FloatArray]] = ()) -> Gain:
        """The ring's gain per member minus ``penalty`` times the archive's best defection gain, and the same for
        the best gain of an archived (defector, punisher) pair's punisher over carrying out the threat, each when
        it pays."""
        loyal = self.members(ring)
        diff = loyal.mean(axis=1)
        worst = max((self.defection(ring, d, loyal) for d in archive), key=np.mean, default=None)
        if worst is not None and worst.mean() > 0:
            diff = diff - penalty * worst
        shirk = max((self.shirking(ring, d, p) for d, p in shirkers), key=np.mean, default=None)
        if shirk is not None and shirk.mean() > 0:
            diff = diff - penalty * shirk
        return self.gain(diff)


def polish(score: Callable[[FloatArray], float], weights: FloatArray, best: float, free: np.ndarray) -> FloatArray:
    """One sweep of coordinate search: each ``free`` weight in turn set to each of POLISH_GRID values across [-BOUND,
    BOUND], kept where it raises ``score``. CMA-ES moves every weight at once by small steps; a ring's entry
    map needs one weight moved far (the knockout: sit out unless the ring's top value), which one coordinate
    at a time reaches."""
    for i in free:
        for x in np.linspace(-BOUND, BOUND, POLISH_GRID):
            candidate = weights.copy()
            candidate[i] = x
            candidate = parse_weights(format_weights(candidate))
            if not np.array_equal(candidate, weights) and (s := score(candidate)) > best:
                weights, best = candidate, s
    return weights


def once_caught(mechanism: Mechanism, weights: FloatArray) -> FloatArray | None:
    """The ring's weights as its members play once a partner is caught (``caught`` is 1 from then on: its
    weights fold into the bias's); None where the ring ignores ``caught``."""
    names = feature_names(mechanism, ring=True)
    if layout(mechanism, weights)[0] != len(names):
        return None
    maps = weights.reshape(-1, len(names)).copy()
    caught = names.index("caught")
    if not maps[:, caught].any():
        return None
    maps[:, 0] += maps[:, caught]
    maps[:, caught] = 0.0
    return maps.ravel()


def best_polished(objective: Callable[[FloatArray], float], candidates: list[FloatArray]) -> FloatArray:
    """The best of ``candidates`` (a search's best, the archived ones) under ``objective``, then polished one
    weight at a time (:func:`polish`)."""
    best = max(candidates, key=objective)
    return polish(objective, best, objective(best), np.arange(best.size))


def certify(game: RingGame, ring: FloatArray, candidates: list[FloatArray]) -> FloatArray:
    """The best defection from ``ring`` among ``candidates``, polished (:func:`best_polished`)."""
    loyal = game.members(ring)
    return best_polished(lambda d: float(game.defection(ring, d, loyal).mean()), candidates)


def certify_threat(game: RingGame, ring: FloatArray, defector: FloatArray, candidates: list[FloatArray]
                   ) -> FloatArray:
    """The best play of a member who has caught ``defector``'s defection from ``ring``, among ``candidates``,
    polished (:func:`best_polished`): the ring's threat is credible when it gains nothing over carrying it out."""
    punishing = game.members(ring, defector)
    return best_polished(lambda p: float(game.shirking(ring, defector, p, punishing).mean()), candidates)


def cma_seed_of(root: int, name: str, phase: int) -> int:
    """The CMA-ES seed of search ``name`` in ``phase`` (the first three searches' seeds are offsets of ``root``)."""
    if name in SEARCHES[:3]:
        return root + 3 * phase + SEARCHES.index(name)
    return int(generator(root, (name, phase)).integers(0, 2**31 - 1))


def ring_work(mechanism: Mechanism, *, phases: int, generations: int, defection_generations: int, population: int,
              markets: int, rounds: int, eval_markets: int, features: tuple[str, ...] = (), credible: bool = True
              ) -> tuple[int, str]:
    """An upper bound on the market-rounds :func:`ring_policy_search` plays, and its formula in words: every
    ring candidate played loyal, against each archived defection and twice against each archived shirking
    punisher (at most one of each per phase), every defection and punisher candidate once, the polish of the
    ring's free weights and of every weight of the certificate's defection and punisher (POLISH_GRID values
    each), and the fresh scores and descriptions (6 plays of ``eval_markets``)."""
    weights = start_weights(mechanism, ring=True).size
    free = weights if not features else weights // len(feature_names(mechanism, ring=True)) * len(features)
    per_ring = 1 + phases * (3 if credible else 1)  # plays of one ring candidate against a full archive
    searches = defection_generations * population + 2  # one defection or punisher search and its loyal plays
    plays = (phases * (generations * population * per_ring + per_ring + searches * (2 if credible else 1))
             + phases * per_ring + POLISH_GRID * free * per_ring
             + 2 * (searches + phases + POLISH_GRID * weights))
    work = plays * markets * rounds + 6 * eval_markets * rounds
    return work, (f"about {plays:,} plays of markets x rounds = {markets} x {rounds} (phases {phases}, generations "
                  f"{generations} and {defection_generations}, population {population}, a polish of {free} and "
                  f"{weights} weights) + 6 x eval_markets x rounds = 6 x {eval_markets} x {rounds}")


def ring_policy_search(target: Cell, *, seed: int, deviators: int = RING.deviators, phases: int = RING.phases,
                       generations: int = RING.generations, defection_generations: int = RING.defection_generations,
                       population: int = RING.population, markets: int = RING.markets, rounds: int | None = None,
                       eval_markets: int = RING.eval_markets, sigma: float = SIGMA, penalty: float = RING.penalty,
                       credible: bool = RING.credible, store: Path | str | None = None,
                       on_phase: Callable[[int], None] | None = None, features: tuple[str, ...] = ()
                       ) -> RingPolicyFound:
    """Search a self-enforcing ring of the first ``deviators`` agents of ``target`` (see the module docstring;
    defaults and bounds: :class:`~mecharena.core.settings.RingSettings`).

    Args:
        target: the mechanism, population, information policy and rules (markets and seed are replaced).
        seed: root seed of the search seed, the fresh seed and CMA-ES's draws.
        deviators: K >= 2 members.
        phases: ring-then-defection rounds of the double oracle.
        generations: CMA-ES generations of each ring search (``population`` candidates each, every one played
            once loyal, once per archived defection and twice per archived shirking punisher).
        defection_generations: CMA-ES generations of each defection and punisher search (and of the
            certificate's).
        markets: markets of every search evaluation.
        rounds: rounds of every evaluation (default: the target's).
        eval_markets: markets of the fresh scores of the ring and its certificate.
        penalty: weight of the best known defection's (and shirking punisher's) gain in a ring's score.
        credible: search the punishers' side too: each phase looks for a member who gains by not carrying out
            the ring's threat once the phase's defection sets it off, and the ring's score pays for it (a
            ring whose threat is credible). Either way the certificate says whether the threat is credible.
        store: a folder for the phases' generations (resumed by a rerun with the same settings).
        on_phase: called with the number of phases done after each (the certificate is one more).
        features: the features the ring's maps may weigh (default: all); the others' weights stay at their
            start. Fewer dimensions converge faster; a defection always sees every feature.

    Raises:
        ConfigError: a setting out of range, or a market the policy cannot play.
    """
    seed = check_seed(seed)
    rounds = target.rounds if rounds is None else rounds
    RingSettings.build(deviators=deviators, phases=phases, generations=generations,
                       defection_generations=defection_generations, population=population, markets=markets,
                       eval_markets=eval_markets, penalty=penalty, credible=credible, features=list(features))
    check_settings(generations, population, markets, rounds, eval_markets, sigma)
    deviated_population(target.population, target.seed, deviators, "truthful")  # enough agents to form it
    mechanism = mechanisms.get(target.mechanism)
    known_features = feature_names(mechanism, ring=True)
    if unknown := [f for f in features if f not in known_features]:
        raise ConfigError(f"features: unknown {', '.join(map(repr, unknown))}; {mechanism.name}'s are "
                          f"{', '.join(known_features)}")
    scorer = Scorer(target)
    streams = generator(seed, ("ring_policy_search",))
    search_seed, fresh_seed, cma_seed = (int(x) for x in streams.integers(0, 2**31 - 1, size=3))
    game = RingGame(scorer, deviators, seed=search_seed, markets=markets, rounds=rounds)
    folder = None if store is None else Path(store)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    settings = {"target": target.key(), "seed": seed, "deviators": deviators, "population": population,
                "markets": markets, "rounds": rounds, "sigma": sigma, "penalty": penalty, "features": list(features),
                "credible": credible}
    archive: list[FloatArray] = []
    shirkers: list[tuple[FloatArray, FloatArray]] = []  # (defector, a punisher who gains by not carrying it out)

    def search(name: str, phase: int, start: FloatArray, generations: int, evaluate,
               defector: FloatArray | None = None) -> tuple[FloatArray, float]:
        """The best weights of one CMA-ES search (its own CMA-ES seed and store file) and their score."""
        header = settings | {"search": name, "phase": phase, "start": format_weights(start),
                             "archive": [format_weights(a) for a in archive],
                             "shirkers": [[format_weights(d), format_weights(p)] for d, p in shirkers],
                             "defector": None if defector is None else format_weights(defector)}
        path = None if folder is None else (folder / f"{name}-{phase}.jsonl", header)
        _, best, gain = evolve(scorer, deviators=deviators, search_seed=search_seed,
                               cma_seed=cma_seed_of(cma_seed, name, phase), generations=generations,
                               population=population, markets=markets, rounds=rounds, sigma=sigma, start=start,
                               store=path, evaluate=evaluate, steps=steps if name == "ring" else None)
        return best, gain.mean

    def score(w: FloatArray) -> Gain:
        return game.score(w, archive, penalty, shirkers)

    def shirks(ring: FloatArray, defector: FloatArray) -> Callable[[FloatArray], Gain]:
        punishing = game.members(ring, defector)
        return lambda p: game.gain(game.shirking(ring, defector, p, punishing))

    ring = start_weights(mechanism, ring=True)
    names = np.resize(np.array(known_features), ring.size)
    steps = np.where(names == "caught", CAUGHT_STEP, 1.0) * (np.isin(names, features) if features else 1.0)
    rings: list[FloatArray] = []
    known: list[tuple[int, int]] = []  # defections and shirking punishers archived after each phase
    for phase in range(phases):
        found, best = search("ring", phase, ring, generations, score)
        if best > score(ring).mean:
            ring = found  # CMA-ES samples around its start, never the start itself: keep it if none beats it
        rings.append(ring)
        loyal = game.members(ring)
        defector, gain = search("defection", phase, ring, defection_generations,
                                lambda d, w=ring, loyal=loyal: game.gain(game.defection(w, d, loyal)))
        if gain > 0:
            archive.append(defector)
        if credible:
            punisher, shirked = search("punisher", phase, ring, defection_generations, shirks(ring, defector),
                                       defector)
            if shirked > 0:
                shirkers.append((defector, punisher))
        known.append((len(archive), len(shirkers)))
        if on_phase is not None:
            on_phase(phase + 1)
    scores = [score(w) for w in rings]
    best = int(np.argmax([s.mean for s in scores]))
    ring = polish(lambda w: score(w).mean, rings[best], scores[best].mean, np.flatnonzero(steps))
    loyal = game.members(ring)
    found, _ = search("certificate", phases, ring, defection_generations,
                      lambda d: game.gain(game.defection(ring, d, loyal)))
    defector = certify(game, ring, [found, *archive])
    found, _ = search("credibility", phases, ring, defection_generations, shirks(ring, defector), defector)
    punisher = certify_threat(game, ring, defector, [found, *(p for _, p in shirkers)])
    fresh = RingGame(scorer, deviators, seed=fresh_seed, markets=eval_markets, rounds=rounds)
    loyal, defected = fresh.members(ring), fresh.members(ring, defector)  # the defection sets off the threat
    shirking = fresh.shirking(ring, defector, punisher, defected)
    deviation = policy_deviation(ring, deviators, game.horizon)
    said = describe_play(target, deviation, seed=fresh_seed, markets=min(eval_markets, DESCRIBE_MARKETS),
                         rounds=rounds)
    punished = once_caught(mechanism, ring)
    punishment = None if punished is None else describe_play(
        target, policy_deviation(punished, deviators, game.horizon), seed=fresh_seed,
        markets=min(eval_markets, DESCRIBE_MARKETS), rounds=rounds)
    summary = tuple({"phase": k, "ring_gain": float(game.gain(game.members(w).mean(axis=1)).mean),
                     "score": scores[k].mean, "archive": known[k][0], "shirkers": known[k][1]}
                    for k, w in enumerate(rings))
    return RingPolicyFound(deviation, ring, fresh.gain(loyal.mean(axis=1)), defector,
                           fresh.gain(defected[:, 0] - loyal[:, 0]), summary, seed, said, punishment,
                           punisher, fresh.gain(shirking), punished is not None and bool(np.any(shirking != 0)))
