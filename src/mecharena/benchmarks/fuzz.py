"""Incentive-fuzzing benchmark: first-price auction, n truthful bidders, one deviator.

Three measurements on ``Cell(mechanism="first_price", population="truthful:n")``:

(a) **scorer throughput**: evaluations of one shading deviation per second (each evaluation plays
    ``markets`` x ``rounds`` deviated markets; the baseline run is cached, as in a search);
(b) **gain vs budget**: for each budget, a ``shading``-only :func:`~mecharena.fuzz.search.fuzz`
    run and the fresh-seed gain of its best deviation with its 95% interval, against the
    closed-form best-response gain. With the other n - 1 bidders truthful and values i.i.d.
    U[0, 1], a deviator with value v bidding b wins with probability b^(n-1), so it maximizes
    (v - b) b^(n-1) at b = (n - 1) v / n and earns v^n (n - 1)^(n-1) / n^n; averaged over v the
    gain per round (truthful bidding earns 0) is ``(n - 1)^(n - 1) / n^n / (n + 1)``
    (0.003522 for n = 10). The curve family contains that best response (scale (n-1)/n, power 1,
    offset 0), so a good search approaches the closed form from below, up to noise. The family's
    start points (linear shading at 0.9, 0.75, 0.5) are switched off here (``starts=False``):
    0.9 *is* the best response for n = 10, and the curve is meant to show the sampler itself.
(c) **default run**: wall time of :func:`fuzz` with its defaults over every applicable family,
    with the relative half-width of its exploitability interval (target: under 60 s on 2 cores).
"""

import time
from typing import Any

from mecharena.fuzz.score import Deviation, Scorer
from mecharena.fuzz.search import fuzz
from mecharena.metrics.harness import Cell

TARGET_DEFAULT_SECONDS = 60.0


def closed_form_gain(n: int) -> float:
    """Expected best-response gain per round of one bidder against n - 1 truthful ones (U[0, 1] values).

    >>> round(closed_form_gain(10), 6)
    0.003522
    >>> closed_form_gain(2)  # b = v/2: E[v^2/4] = 1/12
    0.08333333333333333
    """
    return (n - 1) ** (n - 1) / n**n / (n + 1)


def run(
    agents: int = 10,
    markets: int = 400,
    rounds: int = 10,
    eval_markets: int = 2000,
    budgets: tuple[int, ...] = (5, 10, 20, 40, 80),
    score_repeats: int = 20,
    default_run: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure (a) scorer throughput, (b) found gain vs budget, (c) a default fuzz run's wall time.

    Args:
        agents: n, truthful bidders in the first-price target (one of them deviates).
        markets, rounds: size of each search evaluation (and of the throughput evaluations).
        eval_markets: markets of each fresh re-evaluation.
        budgets: search budgets of the gain-vs-budget curve (``shading`` family only).
        score_repeats: timed scorer evaluations.
        default_run: also time a default :func:`fuzz` run (all families, default sizes).
        seed: root seed.

    Returns:
        ``{"benchmark": "fuzz", "mechanism", "population", "agents", "markets", "rounds",
        "scorer_evaluations_per_s", "scorer_market_rounds_per_s", "closed_form_gain",
        "budget_curve": [{"budget", "evaluations", "search_gain", "fresh_gain", "ci95",
        "share_of_closed_form", "seconds", "best"}], "default_fuzz_seconds",
        "default_fuzz_exploitability", "default_fuzz_relative_half_width", "default_fuzz_evaluations",
        "default_fuzz_best_family", "targets", "meets_targets"}``; the ``default_fuzz_*`` values are
        None when ``default_run`` is False.
    """
    target = Cell(mechanism="first_price", population=f"truthful:{agents}")
    scorer = Scorer(target)
    shading = Deviation("shading", (("offset", 0.0), ("power", 1.0), ("scale", (agents - 1) / agents)), 1)
    scorer.score(shading, seed=seed, markets=markets, rounds=rounds)  # warm-up: compilation and the baseline
    start = time.perf_counter()
    for _ in range(score_repeats):
        scorer.score(shading, seed=seed, markets=markets, rounds=rounds)
    per_s = score_repeats / (time.perf_counter() - start)
    closed = closed_form_gain(agents)
    curve = []
    for budget in budgets:
        start = time.perf_counter()
        found = fuzz(target, families=["shading"], budget=budget, seed=seed, markets=markets, rounds=rounds,
                     eval_markets=eval_markets, starts=False)  # the sampler alone: growth with budget
        seconds = time.perf_counter() - start
        fresh = found.fresh
        curve.append({"budget": budget, "evaluations": found.evaluations,
                      "search_gain": None if found.best is None else found.best.gain.mean,
                      "fresh_gain": None if fresh is None else fresh.mean,
                      "ci95": None if fresh is None else [fresh.lo, fresh.hi],
                      "share_of_closed_form": None if fresh is None else fresh.mean / closed,
                      "seconds": seconds,
                      "best": None if found.best is None else dict(found.best.deviation.params)})
    default: dict[str, Any] = dict.fromkeys(("default_fuzz_seconds", "default_fuzz_exploitability",
                                             "default_fuzz_relative_half_width", "default_fuzz_evaluations",
                                             "default_fuzz_best_family"))
    if default_run:
        start = time.perf_counter()
        found = fuzz(target, seed=seed)
        seconds = time.perf_counter() - start
        exploit = found.exploitability
        lo, hi = exploit["ci95"]
        default = {"default_fuzz_seconds": seconds, "default_fuzz_exploitability": exploit,
                   "default_fuzz_relative_half_width": (hi - lo) / 2 / exploit["mean"] if exploit["mean"] > 0 else None,
                   "default_fuzz_evaluations": found.evaluations,
                   "default_fuzz_best_family": None if found.best is None else found.best.deviation.family}
    meets = None if not default_run else default["default_fuzz_seconds"] < TARGET_DEFAULT_SECONDS
    return {
        "benchmark": "fuzz",
        "mechanism": "first_price",
        "population": target.population,
        "agents": agents,
        "markets": markets,
        "rounds": rounds,
        "scorer_evaluations_per_s": per_s,
        "scorer_market_rounds_per_s": per_s * markets * rounds,
        "closed_form_gain": closed,
        "budget_curve": curve,
        **default,
        "targets": {"default_fuzz_seconds": TARGET_DEFAULT_SECONDS},
        "meets_targets": meets,
    }
