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
(c) **default run**: time of :func:`fuzz` with its defaults over every applicable family, with
    the relative half-width of its exploitability interval (target: under 60 s on 2 cores).

Times go through :mod:`mecharena.benchmarks.timing`: the scorer's rate is the median of
``score_repeats`` single evaluations (after a warm-up); the budgets' searches are timed in turn,
``repeats`` times over, and the default run ``repeats`` times (seeded: every repetition finds the
same), each reporting its median by wall and by CPU seconds, with the machine's load before and
after. The whole benchmark takes seconds at its default sizes. The target is judged on CPU seconds, which load from
other processes does not inflate (and which count every thread, so a run cannot pass by using
both cores); the wall seconds are reported beside them.
"""

from typing import Any

from mecharena.benchmarks.timing import interleaved, machine_load, medians, rate, report, timed
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
    repeats: int = 3,
) -> dict[str, Any]:
    """Measure (a) scorer throughput, (b) found gain vs budget, (c) a default fuzz run's time.

    Args:
        agents: n, truthful bidders in the first-price target (one of them deviates).
        markets, rounds: size of each search evaluation (and of the throughput evaluations).
        eval_markets: markets of each fresh re-evaluation.
        budgets: search budgets of the gain-vs-budget curve (``shading`` family only).
        score_repeats: timed scorer evaluations (the median of them is reported).
        default_run: also time a default :func:`fuzz` run (all families, default sizes).
        seed: root seed.
        repeats: timed repetitions of each budget's search and of the default run (medians reported).

    Returns:
        ``{"benchmark": "fuzz", "mechanism", "population", "agents", "markets", "rounds",
        "scorer_evaluations_per_s", "scorer_evaluations_per_cpu_s", "scorer_market_rounds_per_s",
        "score_repeats", "closed_form_gain", "budget_curve": [{"budget", "evaluations",
        "search_gain", "fresh_gain", "ci95", "share_of_closed_form", "seconds", "cpu_seconds",
        "best"}], "default_fuzz_seconds", "default_fuzz_cpu_seconds", "default_fuzz_exploitability",
        "default_fuzz_relative_half_width", "default_fuzz_evaluations", "default_fuzz_best_family",
        "wall_seconds", "cpu_seconds", "wall_trials", "cpu_trials", "targets", "targets_from",
        "meets_targets", "repeats", "statistic", "load_before", "load_after"}``; the per-path dicts
        are keyed ``scorer`` (one evaluation) and ``default_fuzz``; the ``default_fuzz_*`` values
        are None, and ``default_fuzz`` absent, when ``default_run`` is False.
    """
    target = Cell(mechanism="first_price", population=f"truthful:{agents}")
    scorer = Scorer(target)
    shading = Deviation("shading", (("offset", 0.0), ("power", 1.0), ("scale", (agents - 1) / agents)), 1)
    load = machine_load()
    # the warm-up compiles and caches the baseline, as the first evaluation of a search does
    times = {"scorer": timed(lambda: scorer.score(shading, seed=seed, markets=markets, rounds=rounds),
                             score_repeats, warmup=True)}
    closed = closed_form_gain(agents)
    searches: dict[str, Any] = {}
    curve_times = interleaved(  # the sampler alone (no start points): growth with budget
        {str(budget): lambda budget=budget: fuzz(target, families=["shading"], budget=budget, seed=seed,
                                                 markets=markets, rounds=rounds, eval_markets=eval_markets,
                                                 starts=False) for budget in budgets},
        repeats, warmup=False, after=searches.__setitem__)
    curve = []
    for budget in budgets:
        found = searches[str(budget)]
        fresh = found.fresh
        curve.append({"budget": budget, "evaluations": found.evaluations,
                      "search_gain": None if found.best is None else found.best.gain.mean,
                      "fresh_gain": None if fresh is None else fresh.mean,
                      "ci95": None if fresh is None else [fresh.lo, fresh.hi],
                      "share_of_closed_form": None if fresh is None else fresh.mean / closed,
                      "seconds": curve_times[str(budget)]["wall_s"],
                      "cpu_seconds": curve_times[str(budget)]["cpu_s"],
                      "best": None if found.best is None else dict(found.best.deviation.params)})
    default: dict[str, Any] = dict.fromkeys(("default_fuzz_seconds", "default_fuzz_cpu_seconds",
                                             "default_fuzz_exploitability", "default_fuzz_relative_half_width",
                                             "default_fuzz_evaluations", "default_fuzz_best_family"))
    meets = None
    if default_run:
        runs: list = []
        times["default_fuzz"] = timed(lambda: fuzz(target, seed=seed), repeats, after=runs.append)
        found = runs[-1]
        exploit = found.exploitability
        lo, hi = exploit["ci95"]
        default = {"default_fuzz_seconds": times["default_fuzz"]["wall_s"],
                   "default_fuzz_cpu_seconds": times["default_fuzz"]["cpu_s"],
                   "default_fuzz_exploitability": exploit,
                   "default_fuzz_relative_half_width": (hi - lo) / 2 / exploit["mean"] if exploit["mean"] > 0 else None,
                   "default_fuzz_evaluations": found.evaluations,
                   "default_fuzz_best_family": None if found.best is None else found.best.deviation.family}
        meets = default["default_fuzz_cpu_seconds"] < TARGET_DEFAULT_SECONDS
    return report("fuzz", {
        "mechanism": "first_price",
        "population": target.population,
        "agents": agents,
        "markets": markets,
        "rounds": rounds,
        "scorer_evaluations_per_s": rate(1, times["scorer"]["wall_s"]),
        "scorer_evaluations_per_cpu_s": rate(1, times["scorer"]["cpu_s"]),
        "scorer_market_rounds_per_s": rate(markets * rounds, times["scorer"]["wall_s"]),
        "score_repeats": score_repeats,
        "closed_form_gain": closed,
        "budget_curve": curve,
        **default,
        **medians(times),
        "targets": {"default_fuzz_seconds": TARGET_DEFAULT_SECONDS},
        "targets_from": "cpu seconds",
        "meets_targets": meets,
    }, load, repeats)
