"""The meta-game layer: empirical game-theoretic analysis of a mechanism over a set of strategies.

A *strategy* is an agent spec (``truthful``, ``bne``, ``curve(scale=0.8)``, a found
``best_response(bids=...)``). With n players drawing from K strategies the game is symmetric, so a
*profile* is a multiset of n strategies (counts). Each profile is one cell (the mechanism played by
that population, ``markets`` markets x ``rounds`` rounds), and its entry is every present
strategy's mean utility per agent and round with a 95% interval, markets being the independent
units, plus welfare and revenue per market-round. Profiles are independent jobs: each one's seed is
derived from the root seed and the profile's contents (never from the order of evaluation), so the
table is the same whatever the number of workers, and each finished profile is appended to
``DIR/profiles.jsonl`` at once, so an interrupted run resumes without recomputing it.

On the table (:mod:`mecharena.fuzz.metasolve`): every symmetric Nash equilibrium found, the worst
by welfare and by revenue beside the mechanism's *intended* profile (everyone ``truthful`` where
the mechanism promises truthful bidding to be dominant, else everyone ``bne``), their ratio (an
empirical price of anarchy, with a 95% interval from redrawing every profile's welfare within its
standard error), and alpha-Rank with its stability under payoff noise; ``adaptive`` rounds spend
extra markets on the profiles whose noise moves the ranking most.

PSRO (Lanctot et al. 2017, "A Unified Game-Theoretic Approach to Multiagent Reinforcement
Learning") grows the strategy set: table -> meta-Nash sigma -> the type-wise best response
(:func:`mecharena.agents.respond.respond`) to n - 1 rivals drawing from sigma, fitted on one cell
per rival profile with markets in proportion to its probability -> its gain over sigma's own
payoff (NashConv), measured on common random numbers (the deviator's seat, values and rivals the
same whether it plays the response or sigma's strategies) -> add it, until the gain is below
epsilon or ``iterations`` responses were added.
"""

import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from mecharena import agents, mechanisms
from mecharena import plugins as plugin_loader
from mecharena.agents.population import _split_groups
from mecharena.agents.respond import Sample, check_private_values, respond
from mecharena.core.config import MAX_SEED, StrictModel, check_seed
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray
from mecharena.fuzz import metasolve
from mecharena.fuzz.discover import sample_cell, table_deviation
from mecharena.fuzz.score import agent_seats
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import Z95
from mecharena.runner.backends import _init_worker
from mecharena.sim.loop import MAX_MARKETS, play
from mecharena.sim.simulate import aggregates

STORE = "profiles.jsonl"
MAX_PLAYERS = 8
MAX_STRATEGIES = 16
MAX_PROFILES = 5000
BOOTSTRAP = 2000


class MetaGameSettings(StrictModel):
    """Everything a meta-game run takes (CLI, Python); bounds and defaults live here only."""

    mechanism: str = Field(description="mechanism id")
    config: dict[str, Any] = Field(default_factory=dict, description="mechanism config")
    strategies: list[str] = Field(default_factory=lambda: ["truthful"], min_length=1, max_length=MAX_STRATEGIES,
                                  description="agent specs (PSRO's starting set)")
    players: int = Field(3, ge=2, le=MAX_PLAYERS, description="players n of the symmetric game")
    values: str = Field("uniform", description="value distribution")
    information: InformationPolicy = InformationPolicy()
    enforcement: Enforcement = Enforcement()
    markets: int = Field(2000, ge=2, le=MAX_MARKETS, description="markets per profile")
    rounds: int = Field(1, ge=1, le=1000, description="rounds per market")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="root seed")
    intended: str | None = Field(None, description="the intended strategy (default: truthful if dominant, else bne)")
    iterations: int = Field(0, ge=0, le=20, description="PSRO best responses added at most (0: no PSRO)")
    epsilon: float = Field(1e-3, gt=0, le=1e3, description="PSRO stops when the best response gains less")
    br_markets: int = Field(4000, ge=2, le=MAX_MARKETS, description="markets the best response is fitted on")
    grid: int = Field(33, ge=2, le=1025, description="value points of a best-response table")
    points: int = Field(129, ge=3, le=4097, description="bids of the best response's coarse search grid")
    interpolate: Literal["nearest", "linear"] = Field("linear", description="between a table's value points")
    nash_tol: float = Field(1e-3, ge=0, le=1e3, description="largest regret accepted as an equilibrium")
    alpha: float = Field(10.0, ge=0, le=1e4, description="alpha-Rank selection intensity")
    population_size: int = Field(20, ge=2, le=1000, description="alpha-Rank population size m")
    resamples: int = Field(100, ge=0, le=10_000, description="payoff tables redrawn for alpha-Rank's stability")
    adaptive: int = Field(0, ge=0, le=20, description="rounds of extra simulation on the ranking's noisiest profiles")
    adaptive_profiles: int = Field(3, ge=1, le=1000, description="profiles re-simulated per adaptive round")
    workers: int = Field(1, ge=1, le=256, description="processes evaluating profiles")

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, value: list[str]) -> list[str]:
        return [s.strip() for s in value]


def settings(**fields: Any) -> MetaGameSettings:
    """Validated settings, or one :class:`ConfigError` line naming the field, its value and the range.

    Raises:
        ConfigError: a field out of range (the seed checked by :func:`check_seed`), fewer than one
            strategy, n < 2, a non-finite epsilon, alpha-Rank's population smaller than n.
        UnknownIdError: an unknown mechanism or agent type (with a suggestion).
    """
    if "seed" in fields:
        check_seed(fields["seed"])
    for name in ("epsilon", "alpha", "nash_tol"):
        value = fields.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if "strategies" in fields and not fields["strategies"]:
        raise ConfigError("strategies must name at least 1 agent spec, got none")
    if "players" in fields and isinstance(fields["players"], int) and fields["players"] < 2:
        raise ConfigError(f"players must be an integer >= 2 (a game needs two players), got {fields['players']}")
    s = MetaGameSettings.build(**fields)
    metasolve.check_alpharank(s.alpha, s.population_size, s.players)
    labels = [canonical(x) for x in s.strategies]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"strategies must be distinct, got {labels}")
    if s.intended is not None and canonical(s.intended) not in labels:
        raise ConfigError(f"intended must be one of the strategies {labels}, got {s.intended!r}")
    profiles = math.comb(s.players + len(labels) + s.iterations - 1, s.players)
    if profiles > MAX_PROFILES:
        raise ConfigError(f"players and strategies (plus PSRO iterations) make {profiles} profiles; at most "
                          f"{MAX_PROFILES} are allowed: use fewer players, strategies or iterations")
    for label in labels:  # every strategy must play this mechanism (unknown ids, wrong mechanism, ...)
        _profile_cell(s, {label: s.players}, markets=2).episode()
    return s.model_copy(update={"strategies": labels})


def canonical(spec: str) -> str:
    """The agent spec as the population parser writes it (defaults dropped), so equal specs compare equal.

    Raises:
        ConfigError / UnknownIdError: not a single agent spec ``TYPE`` or ``TYPE(name=value,...)``.
    """
    parts = _split_groups(spec)
    if len(parts) != 1 or ":" in spec.rpartition(")")[2]:
        raise ConfigError(f"a strategy must be one agent spec TYPE or TYPE(name=value,...), without a count, got {spec!r}")
    group = agents.population(f"{spec.strip()}:1").groups[0]
    if group.values is not None:
        raise ConfigError(f"a strategy is how a player bids, not its values: the meta-game is symmetric, every player "
                          f"draws from the settings' values; drop values= from {spec!r}")
    return group.label


def parse_spec(spec: str) -> dict[str, Any]:
    """The parameters of a single agent spec, as its type's model holds them (defaults included)."""
    return agents.population(f"{spec}:1").groups[0].params.model_dump()


def profile_seed(root: int, profile: dict[str, int], batch: int = 0, salt: str = "profile") -> int:
    """A seed from the root seed and the profile's contents (not its position in any order)."""
    text = json.dumps([root, salt, sorted(profile.items()), batch])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _profile_cell(s: MetaGameSettings, profile: dict[str, int], markets: int | None = None, batch: int = 0) -> Cell:
    population = ",".join(f"{label}:{count}" for label, count in sorted(profile.items()) if count > 0)
    return Cell(mechanism=s.mechanism, config=s.config, population=population, information=s.information,
                enforcement=s.enforcement, values=s.values, markets=markets or s.markets, rounds=s.rounds,
                seed=profile_seed(s.seed, profile, batch))


# --- one profile, in any process ---------------------------------------------------------------------------


def _stats(x: FloatArray) -> list[float]:
    """[mean, standard error] over markets."""
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return [float(x.mean()), se]


def play_profile(payload: dict[str, Any], plugins: tuple[str, ...] = ()) -> dict[str, Any]:
    """Play one profile's cell: each strategy's mean utility per agent-round, welfare and revenue per
    market-round, each as [mean, standard error over markets]. A pure function of ``payload``."""
    plugin_loader.load_all(plugins, check=False)
    cell = Cell.model_validate(payload["cell"])
    profile: dict[str, int] = payload["profile"]
    episode = cell.episode()
    labels = [label for label, count in sorted(profile.items()) if count > 0]
    total = sum(profile[label] for label in labels)
    seats = agent_seats(episode.owner, total)
    utility = np.zeros((cell.markets, total))
    welfare, revenue = np.zeros(cell.markets), np.zeros(cell.markets)
    for record in play(episode, cell.rounds):
        utility += record.utility[:, seats]
        rows = aggregates(record)
        welfare += rows["welfare"]
        revenue += rows["revenue"]
    out, start = {}, 0
    for label in labels:
        stop = start + profile[label]
        out[label] = _stats(utility[:, start:stop].mean(axis=1) / cell.rounds)
        start = stop
    return {"key": payload["key"], "profile": profile, "batch": payload["batch"], "markets": cell.markets,
            "seed": cell.seed, "utility": out, "welfare": _stats(welfare / cell.rounds),
            "revenue": _stats(revenue / cell.rounds)}


def _key(cell: Cell, batch: int) -> str:
    data = json.dumps({"cell": cell.model_dump(mode="json"), "batch": batch}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:20]


# --- the store and the pool --------------------------------------------------------------------------------


class Store:
    """Finished profiles in ``DIR/profiles.jsonl`` (or in memory when ``directory`` is None), one
    JSON line each, written and flushed as each finishes."""

    def __init__(self, directory: str | Path | None) -> None:
        self.path = None if directory is None else Path(directory) / STORE
        self.records: dict[str, dict[str, Any]] = {}
        self.computed = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                for line in self.path.read_text().splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut by an interruption: that profile is computed again
                    self.records[record["key"]] = record

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["key"]] = record
        self.computed += 1
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())


def _run(payloads: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    """Each payload's :func:`play_profile` result as it finishes (spawned workers when ``workers`` > 1)."""
    plugins = plugin_loader.sources()
    if workers == 1 or len(payloads) <= 1:
        for payload in payloads:
            yield play_profile(payload, plugins)
        return
    context = multiprocessing.get_context("spawn")  # not forked: the parent may hold threads and open files
    with ProcessPoolExecutor(min(workers, len(payloads)), mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(play_profile, p, plugins) for p in payloads}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def evaluate(s: MetaGameSettings, strategies: list[str], store: Store, extra: dict[tuple[int, ...], int] | None = None
             ) -> metasolve.EmpiricalGame:
    """The empirical game over ``strategies``: every profile computed (or taken from ``store``).

    Args:
        s: the settings.
        strategies: canonical agent specs.
        store: finished profiles; new ones are added as they finish.
        extra: profile counts -> extra batches of ``s.markets`` markets each (adaptive sampling).
    """
    counts = metasolve.profiles(s.players, len(strategies))
    jobs, keys = [], []
    for row in counts:
        profile = {label: int(c) for label, c in zip(strategies, row, strict=True) if c > 0}
        batches = 1 + (extra or {}).get(tuple(int(c) for c in row), 0)
        row_keys = []
        for batch in range(batches):
            cell = _profile_cell(s, profile, batch=batch)
            key = _key(cell, batch)
            row_keys.append(key)
            if key not in store.records:
                jobs.append({"key": key, "cell": cell.model_dump(mode="json"), "profile": profile, "batch": batch})
        keys.append(row_keys)
    for record in _run(jobs, s.workers):
        store.add(record)
    p, k = counts.shape
    payoff, se = np.full((p, k), np.nan), np.full((p, k), np.nan)
    scalars = {name: (np.zeros(p), np.zeros(p)) for name in ("welfare", "revenue")}
    for row, row_keys in enumerate(keys):
        records = [store.records[key] for key in row_keys]
        for i, label in enumerate(strategies):
            if counts[row, i]:
                payoff[row, i], se[row, i] = _pool([r["utility"][label] for r in records], records)
        for name, (mean, err) in scalars.items():
            mean[row], err[row] = _pool([r[name] for r in records], records)
    return metasolve.EmpiricalGame(s.players, counts, payoff, se, *scalars["welfare"], *scalars["revenue"])


def _pool(stats: list[list[float]], records: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean and standard error of batches pooled in proportion to their markets."""
    weights = np.array([r["markets"] for r in records], float)
    weights /= weights.sum()
    means, ses = np.array(stats).T
    return float(weights @ means), float(math.sqrt(float((weights**2) @ (ses**2))))


# --- analysis ----------------------------------------------------------------------------------------------


def intended_strategy(s: MetaGameSettings, strategies: list[str]) -> str | None:
    """``s.intended``; else ``truthful`` where the mechanism promises truthful bidding dominant; else a
    Bayes-Nash strategy (``bne`` or a plug-in's ``*_bne``); else None."""
    if s.intended is not None:
        return canonical(s.intended)
    mechanism = mechanisms.get(s.mechanism)
    config = _profile_cell(s, {strategies[0]: s.players}, markets=2).episode().context.config
    if "truthful" in mechanism.properties(config) and "truthful" in strategies:
        return "truthful"
    for label in strategies:
        name = label.partition("(")[0]
        if name == "bne" or name.endswith("_bne"):
            return label
    return None


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": [self.lo, self.hi]}


def _interval(point: float, draws: FloatArray) -> Interval:
    lo, hi = np.quantile(draws, [0.025, 0.975]) if draws.size else (point, point)
    return Interval(point, float(lo), float(hi))


def analyze(s: MetaGameSettings, strategies: list[str], game: metasolve.EmpiricalGame) -> dict[str, Any]:
    """Equilibria, worst equilibria against the intended profile, and alpha-Rank, as a JSON-able dict."""
    noise = float(np.nanmedian(game.se)) if np.isfinite(game.se).any() else 0.0
    tol = max(s.nash_tol, 2 * noise)  # regrets below the table's own noise cannot be told from 0
    found = metasolve.nash(game, tol=tol, seed=s.seed)
    rng = np.random.default_rng(profile_seed(s.seed, {}, salt="bootstrap"))
    welfare_draws = game.welfare[None, :] + game.welfare_se[None, :] * rng.standard_normal((BOOTSTRAP, game.welfare.size))
    revenue_draws = game.revenue[None, :] + game.revenue_se[None, :] * rng.standard_normal((BOOTSTRAP, game.revenue.size))

    def expected(sigma: FloatArray) -> tuple[Interval, Interval, FloatArray, FloatArray]:
        w = game.profile_weights(sigma)
        wd, rd = welfare_draws @ w, revenue_draws @ w
        return _interval(float(game.welfare @ w), wd), _interval(float(game.revenue @ w), rd), wd, rd

    equilibria = []
    for e in found:
        welfare, revenue, wd, rd = expected(e.sigma)
        equilibria.append({"sigma": _mixture(strategies, e.sigma), "regret": e.regret, "payoff": e.payoff,
                           "welfare": welfare.as_dict(), "revenue": revenue.as_dict(), "_draws": (wd, rd)})
    result: dict[str, Any] = {"tolerance": tol, "equilibria": equilibria}
    intended = intended_strategy(s, strategies)
    result["intended"] = None
    if intended is not None:
        sigma = np.array([label == intended for label in strategies], float)
        welfare, revenue, wd, rd = expected(sigma)
        result["intended"] = {"strategy": intended, "regret": game.regret(sigma), "welfare": welfare.as_dict(),
                              "revenue": revenue.as_dict()}
    for measure, index in (("welfare", 0), ("revenue", 1)):
        worst = min(equilibria, key=lambda e: e[measure]["mean"])
        entry = {"sigma": worst["sigma"], measure: worst[measure], "regret": worst["regret"]}
        if intended is not None:
            base = wd if index == 0 else rd
            ratio = worst["_draws"][index] / np.where(base != 0, base, np.nan)
            point = worst[measure]["mean"] / result["intended"][measure]["mean"] \
                if result["intended"][measure]["mean"] else math.nan
            entry["ratio_to_intended"] = _interval(point, ratio[np.isfinite(ratio)]).as_dict()
        result[f"worst_{measure}"] = entry
    for e in equilibria:
        del e["_draws"]
    ranking = metasolve.noisy_alpharank(game, alpha=s.alpha, m=s.population_size, resamples=s.resamples,
                                        seed=profile_seed(s.seed, {}, salt="alpharank"))
    result["alpharank"] = {
        "order": [strategies[i] for i in ranking.order], "stable": ranking.stable, "resamples": ranking.resamples,
        "alpha": s.alpha, "population_size": s.population_size,
        "mass": {strategies[i]: {"mean": float(ranking.mass[i]), "ci95": [float(ranking.lo[i]), float(ranking.hi[i])],
                                 "top": float(ranking.top[i])} for i in range(len(strategies))}}
    return result


def _mixture(strategies: list[str], sigma: FloatArray) -> dict[str, float]:
    return {label: round(float(x), 4) for label, x in zip(strategies, sigma, strict=True) if x > 0}


def adapt(s: MetaGameSettings, strategies: list[str], store: Store) -> tuple[metasolve.EmpiricalGame, list[dict]]:
    """The table after ``s.adaptive`` rounds, each adding a batch to the ``s.adaptive_profiles``
    profiles whose payoff noise moves the alpha-Rank distribution most (:func:`metasolve.sensitivity`)."""
    extra: dict[tuple[int, ...], int] = {}
    game = evaluate(s, strategies, store)
    spent = []
    for step in range(s.adaptive):
        score = metasolve.sensitivity(game, alpha=s.alpha, m=s.population_size, resamples=max(4, s.resamples // 10),
                                      seed=profile_seed(s.seed, {}, step, salt="adaptive"))
        chosen = [int(p) for p in np.argsort(-score, kind="stable")[: s.adaptive_profiles] if score[p] > 0]
        if not chosen:
            break
        for p in chosen:
            key = tuple(int(c) for c in game.counts[p])
            extra[key] = extra.get(key, 0) + 1
        spent.append({"round": step, "profiles": [_mixture(strategies, game.counts[p].astype(float)) for p in chosen],
                      "sensitivity": [float(score[p]) for p in chosen], "markets": len(chosen) * s.markets})
        game = evaluate(s, strategies, store, extra)
    return game, spent


# --- PSRO --------------------------------------------------------------------------------------------------


def _rival_profiles(strategies: list[str], sigma: FloatArray, players: int, markets: int
                    ) -> list[tuple[dict[str, int], float, int]]:
    """(rival profile, probability, markets) of n - 1 rivals drawing from sigma; markets in
    proportion to the probability (profiles that would get fewer than 2 are left out)."""
    rivals = metasolve.profiles(players - 1, len(strategies))
    weights = metasolve.multinomial(rivals) * np.prod(np.power(sigma[None, :], rivals), axis=1)
    out = []
    for row, w in zip(rivals, weights, strict=True):
        m = int(round(w * markets))
        if m >= 2:
            out.append(({label: int(c) for label, c in zip(strategies, row, strict=True) if c > 0}, float(w), m))
    total = sum(w for _, w, _ in out)
    return [(profile, w / total, m) for profile, w, m in out]


def _seat_cell(s: MetaGameSettings, first: str, rivals: dict[str, int], markets: int, salt: str) -> Cell:
    """A cell whose first agent plays ``first`` against ``rivals`` (seed from the rival profile)."""
    population = ",".join([f"{first}:1"] + [f"{label}:{c}" for label, c in sorted(rivals.items())])
    return Cell(mechanism=s.mechanism, config=s.config, population=population, information=s.information,
                enforcement=s.enforcement, values=s.values, markets=markets, rounds=s.rounds,
                seed=profile_seed(s.seed, rivals, salt=salt))


def best_response(s: MetaGameSettings, strategies: list[str], sigma: FloatArray, iteration: int
                  ) -> tuple[str, float]:
    """The type-wise best response to n - 1 rivals drawing from sigma, as a canonical agent spec, and
    its mean in-sample gain over truthful bidding.

    The responding seat is played by ``truthful`` while the sample is recorded (its bid is replaced
    in the search; it matters only to rivals that adapt across rounds).
    """
    samples = []
    for rivals, _, markets in _rival_profiles(strategies, sigma, s.players, s.br_markets):
        samples.append(sample_cell(_seat_cell(s, "truthful", rivals, markets, f"psro-fit-{iteration}")))
    if len({x.values.shape[1] for x in samples}) > 1 or len({x.seat for x in samples}) > 1:
        raise ConfigError("PSRO concatenates the rival profiles' samples, so every strategy must hold the same "
                          "number of seats (no false-name identities)")
    times = None if samples[0].times is None else np.concatenate([x.times for x in samples])
    common = None if samples[0].common is None else np.concatenate([x.common for x in samples])
    sample = Sample(np.concatenate([x.values for x in samples]), np.concatenate([x.bids for x in samples]),
                    np.concatenate([x.priority for x in samples]), times, samples[0].seat, common=common,
                    own_share=samples[0].own_share)
    episode = _seat_cell(s, "truthful", {strategies[0]: s.players - 1}, 2, "psro-probe").episode()
    dist, ctx = episode.context.values, episode.context
    check_private_values(ctx.mechanism, ctx.config, sample, bid=float(dist.low + dist.high) / 2)
    values = np.linspace(dist.low, dist.high, s.grid)
    response = respond(ctx.mechanism, ctx.config, sample, values, bid_high=min(3.0 * dist.high, ctx.spec.action_high),
                       points=s.points, refine=2, bandwidth=0.02 * dist.width)
    spec = table_deviation(values, response.best, interpolate=s.interpolate).agent_spec
    return canonical(spec), response.mean_gain


def nash_conv(s: MetaGameSettings, strategies: list[str], sigma: FloatArray, response: str, iteration: int
              ) -> Interval:
    """The response's gain over sigma's own payoff against rivals drawing from sigma, paired market
    by market: the deviator's seat, values and rivals are the same whether it plays the response or
    each of sigma's strategies (common random numbers). 95% interval over markets."""
    mean, var = 0.0, 0.0
    support = [(label, float(x)) for label, x in zip(strategies, sigma, strict=True) if x > 0]
    for rivals, weight, markets in _rival_profiles(strategies, sigma, s.players, s.markets):
        def first_utility(spec: str) -> FloatArray:
            cell = _seat_cell(s, spec, rivals, markets, f"psro-score-{iteration}")
            episode = cell.episode()
            seat = agent_seats(episode.owner, 1)[0]
            return sum(r.utility[:, seat] for r in play(episode, cell.rounds)) / cell.rounds

        diff = first_utility(response) - sum(x * first_utility(label) for label, x in support)
        mean += weight * float(diff.mean())
        var += weight**2 * float(diff.var(ddof=1)) / diff.size
    half = Z95 * math.sqrt(var)
    return Interval(mean, mean - half, mean + half)


def psro(s: MetaGameSettings, store: Store, on_iteration: Callable[[dict[str, Any]], None] | None = None
         ) -> tuple[list[str], list[dict[str, Any]]]:
    """PSRO from ``s.strategies``: the final strategy set and one record per iteration."""
    strategies = list(s.strategies)
    history: list[dict[str, Any]] = []
    for iteration in range(s.iterations):
        game = evaluate(s, strategies, store)
        sigma = metasolve.nash(game, tol=s.nash_tol, seed=s.seed)[0].sigma
        meta_payoff = float(sigma @ game.payoffs(sigma))
        response, fitted = best_response(s, strategies, sigma, iteration)
        gain = nash_conv(s, strategies, sigma, response, iteration)
        added = gain.mean >= s.epsilon and response not in strategies
        record = {"iteration": iteration, "meta_nash": _mixture(strategies, sigma), "meta_payoff": meta_payoff,
                  "response": response, "gain": gain.as_dict(), "in_sample_gain_over_truthful": fitted,
                  "added": added}
        history.append(record)
        if on_iteration is not None:
            on_iteration(record)
        if not added:
            break
        strategies.append(response)
    return strategies, history


def run(s: MetaGameSettings, out_dir: str | Path | None = None,
        on_iteration: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """PSRO (if ``s.iterations``), then the table, its equilibria and alpha-Rank, as a JSON-able dict."""
    store = Store(out_dir)
    strategies, history = psro(s, store, on_iteration) if s.iterations else (list(s.strategies), [])
    game, spent = adapt(s, strategies, store)
    result = analyze(s, strategies, game)
    table = []
    for row, counts in enumerate(game.counts):
        table.append({"profile": {label: int(c) for label, c in zip(strategies, counts, strict=True) if c > 0},
                      "utility": {label: {"mean": float(game.payoff[row, i]), "se": float(game.se[row, i])}
                                  for i, label in enumerate(strategies) if counts[i]},
                      "welfare": {"mean": float(game.welfare[row]), "se": float(game.welfare_se[row])},
                      "revenue": {"mean": float(game.revenue[row]), "se": float(game.revenue_se[row])}})
    return {"mechanism": s.mechanism, "config": s.config, "players": s.players, "markets": s.markets,
            "rounds": s.rounds, "seed": s.seed, "strategies": strategies, "psro": history, "adaptive": spent,
            **result, "table": table,
            "profiles": {"total": len(table), "computed": store.computed, "directory": None if out_dir is None
                         else str(out_dir)}}


def check_directory(out_dir: str | Path) -> Path:
    """``out_dir`` as a usable directory (created if missing), or a :class:`ConfigError`."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out must be a directory, got the file {str(path)!r}")
    return path


__all__ = ["MetaGameSettings", "Store", "analyze", "best_response", "canonical", "check_directory",
           "evaluate", "nash_conv", "play_profile", "profile_seed", "psro", "run", "settings"]
