"""Solving an empirical symmetric game: mixed Nash equilibria, welfare of a mixture, alpha-Rank.

A symmetric game of n players over K strategies is given by its *profiles* (every multiset of n
strategies, as a (P, K) array of counts) and, for each profile p and strategy i with ``p_i > 0``,
``U[p, i]``: the mean utility of one agent playing i in p (with its standard error).

**Payoff against a mixture.** When the n - 1 rivals each draw a strategy from sigma, the rival
counts c (summing to n - 1) are multinomial, so strategy i earns

    u_i(sigma) = sum_c  (n-1)! / prod_k c_k!  *  prod_k sigma_k^c_k  *  U[c + e_i, i].

sigma is a symmetric Nash equilibrium when its *regret* ``max_i u_i(sigma) - sigma . u(sigma)`` is 0
(here: at most a tolerance, since U is estimated). Equilibria are searched by the exponential
replicator dynamics ``x <- x exp(eta (u(x) - x.u(x)))`` from several starts (uniform, near each pure
strategy, Dirichlet draws), keeping each run's least-regret iterate and its time average (which
converges where the dynamics cycle, as in rock-paper-scissors), plus every pure strategy; candidates
within the tolerance are kept, and ones closer than 0.1 in L1 are merged.

**alpha-Rank** (Omidshafiei et al. 2019, "alpha-Rank: Multi-Agent Evaluation by Evolution", single
population): a population of m individuals is monomorphic (all play s) until one mutant tau
appears; with k mutants, each individual's fitness is its expected utility in a game against n - 1
others drawn without replacement from the other m - 1 individuals (hypergeometric counts; for n = 2
this is the paper's ``(k-1)/(m-1) M(tau, tau) + (m-k)/(m-1) M(tau, s)``). Under the Fermi rule with
selection intensity alpha the mutant fixates with probability

    rho(s -> tau) = 1 / (1 + sum_{l=1}^{m-1} prod_{k=1}^{l} exp(-alpha (f_tau(k) - f_s(k)))),

(1/m under neutral drift). The Markov chain over monomorphic states moves s -> tau with probability
``rho / (K - 1)``; its stationary distribution is the ranking.

**Noisy payoffs** (Rowland et al. 2019, "Multiagent Evaluation under Incomplete Information"):
each payoff entry is resampled from a normal with its standard error and the ranking recomputed;
the spread of the stationary mass and how often the ranking order changes say how far the ranking
can be trusted, and :func:`sensitivity` names the profiles whose uncertainty moves it most.
"""

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray

MERGE_L1 = 0.1


def profiles(n: int, k: int) -> IntArray:
    """(P, K) every multiset of ``n`` players over ``k`` strategies as counts, in lexicographic
    order from all-first-strategy down. P = C(n + k - 1, k - 1).

    >>> profiles(2, 2).tolist()
    [[2, 0], [1, 1], [0, 2]]
    """
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    rows = [np.concatenate([[first], rest]) for first in range(n, -1, -1) for rest in profiles(n - first, k - 1)]
    return np.array(rows, dtype=np.int64)


def multinomial(counts: IntArray) -> FloatArray:
    """(P,) multinomial coefficients ``sum(c)! / prod(c_k!)`` of each row of counts."""
    return np.array([math.factorial(int(row.sum())) / math.prod(math.factorial(int(c)) for c in row)
                     for row in counts])


@dataclass(frozen=True)
class EmpiricalGame:
    """A symmetric n-player game over K strategies, estimated profile by profile."""

    players: int
    counts: IntArray  # (P, K) the profiles (from :func:`profiles`)
    payoff: FloatArray  # (P, K) mean utility of one agent of each present strategy (NaN where absent)
    se: FloatArray  # (P, K) its standard error
    welfare: FloatArray  # (P,) mean welfare per market-round
    welfare_se: FloatArray  # (P,)
    revenue: FloatArray  # (P,) mean revenue per market-round
    revenue_se: FloatArray  # (P,)

    @property
    def strategies(self) -> int:
        return self.counts.shape[1]

    @cached_property
    def index(self) -> dict[tuple[int, ...], int]:
        return {tuple(int(c) for c in row): p for p, row in enumerate(self.counts)}

    @cached_property
    def _rivals(self) -> tuple[IntArray, FloatArray, IntArray]:
        """(Q, K) rival counts, (Q,) their multinomial coefficients, (K, Q) profile of i against each."""
        rivals = profiles(self.players - 1, self.strategies)
        own = np.array([[self.index[tuple(int(c) for c in row + np.eye(self.strategies, dtype=np.int64)[i])]
                         for row in rivals] for i in range(self.strategies)])
        return rivals, multinomial(rivals), own

    def with_payoff(self, payoff: FloatArray) -> "EmpiricalGame":
        """The same game with another (P, K) payoff table (e.g. a resample)."""
        return EmpiricalGame(self.players, self.counts, payoff, self.se, self.welfare, self.welfare_se,
                             self.revenue, self.revenue_se)

    def payoffs(self, sigma: FloatArray) -> FloatArray:
        """(K,) u_i(sigma): each strategy's expected utility against n - 1 rivals drawing from sigma."""
        rivals, coef, own = self._rivals
        weights = coef * np.prod(np.power(sigma[None, :], rivals), axis=1)  # (Q,)
        table = self.payoff[own, np.arange(self.strategies)[:, None]]  # (K, Q)
        return np.where(weights[None, :] > 0, table, 0.0) @ weights

    def regret(self, sigma: FloatArray) -> float:
        """max_i u_i(sigma) - sigma . u(sigma) (0 at a symmetric Nash equilibrium)."""
        u = self.payoffs(sigma)
        return float(max(u.max() - sigma @ u, 0.0))

    def profile_weights(self, sigma: FloatArray) -> FloatArray:
        """(P,) probability of each profile when all n players draw from sigma."""
        return multinomial(self.counts) * np.prod(np.power(sigma[None, :], self.counts), axis=1)

    def expected(self, sigma: FloatArray, values: FloatArray) -> float:
        """The expectation of a (P,) per-profile quantity when all n players draw from sigma."""
        w = self.profile_weights(sigma)
        return float(np.where(w > 0, values, 0.0) @ w)


@dataclass(frozen=True, slots=True)
class Equilibrium:
    """A symmetric mixed strategy with its regret and what it yields."""

    sigma: FloatArray  # (K,)
    regret: float
    payoff: float  # sigma . u(sigma): one agent's expected utility per round
    welfare: float
    revenue: float


def equilibrium(game: EmpiricalGame, sigma: FloatArray) -> Equilibrium:
    """``sigma`` evaluated: regret, payoff, welfare and revenue."""
    u = game.payoffs(sigma)
    return Equilibrium(sigma, game.regret(sigma), float(sigma @ u), game.expected(sigma, game.welfare),
                       game.expected(sigma, game.revenue))


def replicator(game: EmpiricalGame, start: FloatArray, *, steps: int = 3000, eta: float | None = None,
               direction: float = 1.0, stop: float = 0.0) -> list[FloatArray]:
    """The least-regret iterate of the exponential replicator dynamics from ``start``, and the
    time average of the iterates (normalised to sum 1). ``direction`` -1 runs time backwards, which
    turns unstable mixed equilibria (e.g. a coordination game's) into attractors; the run ends once
    an iterate's regret is at most ``stop``."""
    finite = game.payoff[np.isfinite(game.payoff)]
    scale = float(np.ptp(finite)) if finite.size else 1.0
    step = direction * (eta if eta is not None else 0.5) / max(scale, 1e-12)
    x = start / start.sum()
    best, best_regret, total = x, math.inf, np.zeros_like(x)
    for _ in range(steps):
        u = game.payoffs(x)
        mean = x @ u
        r = u.max() - mean
        if r < best_regret:
            best, best_regret = x, r
            if r <= stop:
                break
        total += x
        x = x * np.exp(np.clip(step * (u - mean), -50, 50))
        x = x / x.sum()
    return [best] if best_regret <= stop else [best, total / total.sum()]


def nash(game: EmpiricalGame, *, tol: float = 1e-3, starts: int = 8, seed: int = 0, steps: int = 3000
         ) -> list[Equilibrium]:
    """Every distinct symmetric equilibrium found within regret ``tol``, least regret first.

    Runs forwards from uniform, from each pure strategy mixed 90/10 with uniform and from
    ``starts`` Dirichlet(1) draws; backwards from uniform, the Dirichlet draws and (up to 8
    strategies) the centre of every pair of strategies (the dynamics keep a face of the simplex,
    so each pair's mixed equilibrium is reached there); every pure strategy is checked as it is.
    If nothing reaches ``tol``, the least-regret candidate is returned alone (its regret says how
    far it is from an equilibrium).
    """
    k = game.strategies
    rng = np.random.default_rng(seed)
    uniform = np.full(k, 1.0 / k)
    draws = list(rng.dirichlet(np.ones(k), starts))
    forward = [uniform] + [0.9 * np.eye(k)[i] + 0.1 * uniform for i in range(k)] + draws
    pairs = [(np.eye(k)[i] + np.eye(k)[j]) / 2 for i, j in itertools.combinations(range(k), 2)] if k <= 8 else []
    backward = [uniform] + draws + pairs
    candidates = list(np.eye(k))
    runs = [(x, 1.0) for x in forward] + [(x, -1.0) for x in backward] if k > 1 else []
    for start, direction in runs:
        candidates.extend(replicator(game, start, steps=steps, direction=direction, stop=tol / 10))
    scored = sorted((equilibrium(game, _clean(c)) for c in candidates), key=lambda e: e.regret)
    found: list[Equilibrium] = []
    for e in [e for e in scored if e.regret <= tol] or scored[:1]:
        if all(np.abs(e.sigma - f.sigma).sum() >= MERGE_L1 for f in found):
            found.append(e)
    return found


def _clean(sigma: FloatArray, floor: float = 1e-4) -> FloatArray:
    """Mass below ``floor`` set to 0 (renormalised): a dynamics' residue is not part of the support."""
    x = np.where(sigma < floor, 0.0, sigma)
    return x / x.sum() if x.sum() > 0 else sigma


# --- alpha-Rank ---------------------------------------------------------------------------------------------


def _hypergeometric(draws: int, population: int, marked: int) -> FloatArray:
    """(draws + 1,) P(j marked among ``draws`` drawn without replacement from ``population``)."""
    total = math.comb(population, draws)
    return np.array([math.comb(marked, j) * math.comb(population - marked, draws - j) / total
                     for j in range(draws + 1)])


def fixation(game: EmpiricalGame, resident: int, mutant: int, *, alpha: float, m: int) -> float:
    """rho(resident -> mutant): probability that one mutant takes over a population of ``m``."""
    n, k = game.players, game.strategies
    pair = np.zeros(k, dtype=np.int64)

    def utility(strategy: int, mutants: int) -> float:
        c = pair.copy()
        c[mutant] += mutants
        c[resident] += n - mutants
        return float(game.payoff[game.index[tuple(int(x) for x in c)], strategy])

    mutant_u = np.array([utility(mutant, j + 1) for j in range(n)])  # a mutant facing j other mutants
    resident_u = np.array([utility(resident, j) for j in range(n)])  # a resident facing j mutants
    diff = np.array([_hypergeometric(n - 1, m - 1, km - 1) @ mutant_u - _hypergeometric(n - 1, m - 1, km) @ resident_u
                     for km in range(1, m)])
    exponents = np.concatenate([[0.0], -alpha * np.cumsum(diff)])
    top = exponents.max()
    return float(math.exp(-top) / np.exp(exponents - top).sum())


def alpharank(game: EmpiricalGame, *, alpha: float = 10.0, m: int = 20) -> FloatArray:
    """(K,) stationary distribution of the alpha-Rank chain over monomorphic populations.

    Raises:
        ConfigError: m < n (a game needs n individuals) or alpha not finite and >= 0.
    """
    check_alpharank(alpha, m, game.players)
    k = game.strategies
    if k == 1:
        return np.ones(1)
    chain = np.zeros((k, k))
    for s in range(k):
        for t in range(k):
            if s != t:
                chain[s, t] = fixation(game, s, t, alpha=alpha, m=m) / (k - 1)
        chain[s, s] = 1.0 - chain[s].sum()
    # pi (C - I) = 0 with sum(pi) = 1: least squares copes with chains that are nearly reducible
    system = np.vstack([(chain - np.eye(k)).T, np.ones(k)])
    pi, *_ = np.linalg.lstsq(system, np.concatenate([np.zeros(k), [1.0]]), rcond=None)
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def check_alpharank(alpha: float, m: int, players: int) -> None:
    """Raise :class:`ConfigError` naming the first alpha-Rank setting out of range."""
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0 <= alpha <= 1e4):
        raise ConfigError(f"alpha must be a finite number in [0, 10000], got {alpha!r}")
    if not players <= m <= 1000:
        raise ConfigError(f"population_size must be in [{players}, 1000] (at least the players of a game), got {m}")


@dataclass(frozen=True, slots=True)
class Ranking:
    """alpha-Rank at the point estimate and its stability under resampled payoffs."""

    mass: FloatArray  # (K,) stationary distribution at the mean payoffs
    mean: FloatArray  # (K,) mean over resamples
    lo: FloatArray  # (K,) 2.5% quantile over resamples
    hi: FloatArray  # (K,) 97.5% quantile
    top: FloatArray  # (K,) share of resamples in which each strategy ranks first
    stable: float  # share of resamples whose whole ranking order equals the point estimate's
    resamples: int

    @property
    def order(self) -> list[int]:
        return order_of(self.mass)


def order_of(mass: FloatArray) -> list[int]:
    """Strategies by stationary mass, highest first (ties: lower index first)."""
    return [int(i) for i in np.lexsort((np.arange(mass.size), -np.round(mass, 6)))]


def resample(game: EmpiricalGame, rng: np.random.Generator, rows: Iterable[int] | None = None) -> EmpiricalGame:
    """The game with payoffs redrawn from N(mean, se) (only in profiles ``rows``, if given)."""
    draw = game.payoff + game.se * rng.standard_normal(game.payoff.shape)
    if rows is not None:
        keep = np.ones(game.payoff.shape[0], bool)
        keep[list(rows)] = False
        draw[keep] = game.payoff[keep]
    return game.with_payoff(draw)


def noisy_alpharank(game: EmpiricalGame, *, alpha: float, m: int, resamples: int, seed: int) -> Ranking:
    """alpha-Rank at the mean payoffs and over ``resamples`` payoff tables drawn within their CIs."""
    mass = alpharank(game, alpha=alpha, m=m)
    rng = np.random.default_rng(seed)
    draws = np.array([alpharank(resample(game, rng), alpha=alpha, m=m) for _ in range(resamples)]).reshape(-1, mass.size)
    point = order_of(mass)
    if not resamples:
        return Ranking(mass, mass, mass, mass, (np.arange(mass.size) == point[0]).astype(float), 1.0, 0)
    tops = np.bincount([order_of(d)[0] for d in draws], minlength=mass.size) / resamples
    stable = float(np.mean([order_of(d) == point for d in draws]))
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    return Ranking(mass, draws.mean(axis=0), lo, hi, tops, stable, resamples)


def sensitivity(game: EmpiricalGame, *, alpha: float, m: int, resamples: int, seed: int) -> FloatArray:
    """(P,) for each profile, the mean total-variation distance between the point ranking and the
    ranking with only that profile's payoffs resampled: where more simulation would settle it most."""
    mass = alpharank(game, alpha=alpha, m=m)
    rng = np.random.default_rng(seed)
    out = np.zeros(game.counts.shape[0])
    for p in range(out.size):
        if not np.any(game.se[p][np.isfinite(game.se[p])] > 0):
            continue
        out[p] = np.mean([0.5 * np.abs(alpharank(resample(game, rng, [p]), alpha=alpha, m=m) - mass).sum()
                          for _ in range(resamples)])
    return out
