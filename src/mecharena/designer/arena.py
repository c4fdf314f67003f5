"""The referee on the arena's own round loop: the designer sets the rules for arena agents.

Each step the designer sets the rules of an episode's M markets (:class:`Rules`): any registered
mechanism in which bidders submit one bid each for single units (the built-in auctions, a
plug-in's too), that mechanism's config fields, what the market reveals
(:class:`~mecharena.mechanisms.policy.InformationPolicy`) and how it is policed
(:class:`~mecharena.mechanisms.policy.Enforcement`). The population comes from the arena's agent
types (:attr:`Settings.populations`: specs or ``dirichlet(...)`` mixtures, one drawn per episode).
``bne`` plays the equilibrium solver's bid function under whatever mechanism is chosen. The step
plays ``rounds`` rounds of :func:`mecharena.sim.loop.play_round` and scores the last ``scored``:

    reward = welfare ratio x fairness x participation x stability   (per market-round, averaged)

* welfare ratio: (realized welfare - fines paid by honest agents) / the most welfare
  the round's values allow (the outcome's ``max_welfare``, every seat counted: an agent the rules
  drove out is welfare lost), clipped to [0, 1]; 0 where that is 0. An agent is honest in a round
  where it neither colludes nor owns a false name that bids: its fines are a cost of the rules;
* fairness: 1 - ``DISTORTION`` x |money taken - competitive revenue| / that most welfare, clipped
  to [0, 1]. The money taken is the payments net of receipts plus every fine. The competitive
  revenue is k x v(k+1): k is the number of units the efficient allocation gives (the number of
  top values that make up the most welfare) and v(k+1) the next value (0 if there is none);
* participation: the share of economic agents (false names are not) that entered and whose mean
  utility per round under the current rules, fines included, is at or above their outside option
  (a ``dropout``'s ``outside``, 0 for other types);
* stability: 1 - min(1, 2 x mean |b - b'| / v) over economic agents with a positive value v that
  bid in the round, where b is the bid made and b' the bid the agent's state of the round before
  makes on the same value with the same draws (0 where it would sit out): how far the strategies
  moved in a round, a learner's drift or a ring switching between collusion and defection, and
  not how bids vary with values (a stationary strategy scores 1 whatever its shape). It is 1 in
  the first round under new rules.

Rules kept from one step to the next go on in the same markets, with the agents' learnt state.
New rules open new markets, whose agents meet them fresh: an agent's state is built for the rules
(an equilibrium bidder's bid function, a learner's grid of bids). The markets opened at step s are
the loop's markets ``[s M, (s + 1) M)`` under the episode key, so every draw is keyed by (episode
key, stream, round, market): an episode is the same bit for bit whichever episodes run beside it.
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from mecharena import agents
from mecharena.agents.population import components
from mecharena.core.config import MAX_SEED, StrictModel, check_seed, shown_value
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray
from mecharena.mechanisms import REGISTRY as MECHANISMS
from mecharena.mechanisms.base import Mechanism
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.designer.search import halve_and_climb
from mecharena.metrics.summary import mean_ci
from mecharena.sim.loop import (Episode, LoopState, RoundRecord, false_names, gather_actions, initial_state, make_episode,
                                play_round)

DISTORTION = 2.0  # fairness lost per unit of price distortion (relative to the most welfare), as the referee's core
MAX_MARKETS = 4096
FLAGS = tuple(InformationPolicy.model_fields)  # information flags, in the policy's order
PENALTIES = ("shill_penalty", "withdrawal_penalty", "collusion_penalty")
FEATURES = ("welfare", "fairness", "participation", "stability", "reward", "revenue", "sold", "entry", "collusion",
            "fines", "bid_ratio")


class Rules(StrictModel):
    """The designer's action: the rules of every market of an episode for one step."""

    mechanism: str | None = Field(None, description="a mechanism of Settings.mechanisms (None: the first)")
    config: dict[str, Any] = Field(default_factory=dict, description="the mechanism's config fields")
    information: InformationPolicy = Field(default_factory=InformationPolicy, description="what the market reveals")
    enforcement: Enforcement = Field(default_factory=Enforcement, description="fines and audits")


class Settings(StrictModel):
    """What the referee's episodes are: the mechanisms on offer, the populations, the markets.

    ``grid`` gives the values a discrete designer (:func:`rules_of`) may set a config field to, for
    every offered mechanism that declares the field; other fields keep their defaults.
    """

    mechanisms: list[str] = Field(["first_price", "pay_as_bid"],
                                        min_length=1, max_length=64, description="registered mechanism ids")
    populations: list[str] = Field(["truthful:2,bne:2,adaptive:2,dropout:2"], min_length=1, max_length=64,
                                         description="population specs or dirichlet(...) mixtures; one per episode")
    values: str = Field("uniform", description="the value distribution (agents.parse_distribution)")
    markets: int = Field(64, ge=1, le=MAX_MARKETS, description="markets per episode")
    rounds: int = Field(6, ge=2, le=100, description="rounds per step")
    scored: int = Field(3, ge=1, le=100, description="last rounds of a step that count in the reward")
    horizon: int = Field(25, ge=1, le=10_000, description="steps per episode")
    grid: dict[str, list[float]] = Field(
        default_factory=lambda: {"reserve_price": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]},
        description="config field -> values a discrete designer may choose")
    penalty_levels: list[float] = Field([0.0, 1.0, 2.0, 3.0], min_length=1, max_length=16,
                                              description="fines a discrete designer may choose (each in [0, 3])")
    audit_levels: list[float] = Field([0.0, 0.1, 0.25, 0.5], min_length=1, max_length=16,
                                            description="audit probabilities a discrete designer may choose")

    @field_validator("scored")
    @classmethod
    def _scored_within_rounds(cls, scored: int, info) -> int:
        rounds = info.data.get("rounds")
        if rounds is not None and scored > rounds:
            raise ValueError(f"must be at most rounds ({rounds})")
        return scored


@dataclass(frozen=True, slots=True)
class Params:
    """The settings resolved: mechanisms checked, the discrete designer's arms enumerated."""

    settings: Settings
    mechanisms: dict[str, Mechanism]
    arms: tuple[tuple[str, dict[str, Any]], ...]  # (mechanism id, config fields) a discrete designer chooses among
    values: agents.ValueDistribution


@dataclass(frozen=True, slots=True)
class State:
    """One episode: the markets under the rules in force and how their agents have fared."""

    key: int  # the episode key
    step: int
    population: str  # the episode's population, a fixed-count spec
    rules: Rules | None  # in force (None before the first step)
    episode: Episode | None  # the markets under those rules
    loop: LoopState | None
    earned: FloatArray  # (M, N)  utility summed since the rules were set
    played: int  # rounds since the rules were set
    entered: LoopState | None  # the loop's state that entered the last round (None: no round under the rules)
    features: FloatArray  # (len(FEATURES),)  the last round's, averaged over markets


@dataclass(frozen=True, slots=True)
class StepResult:
    reward: float
    components: dict[str, float]  # welfare, fairness, participation, stability: means over the scored rounds
    done: bool


def _check_mechanism(name: str) -> Mechanism:
    mechanism = MECHANISMS.get(name)
    spec = mechanism.market_spec(mechanism.config(None), 2)
    if spec.sellers is not None or spec.value_width or spec.orders_per_agent:
        raise ConfigError(f"mechanisms: {name} is not a market of bidders with one bid each for single units "
                          f"(two-sided, multi-unit demand, matching or several orders); the referee sets such rules")
    return mechanism


def make_params(settings: Settings | dict[str, Any] | None = None) -> Params:
    """Validate ``settings`` (a :class:`Settings` or its dict) into :class:`Params`.

    Raises:
        ConfigError: a field out of range, an unknown or unsuitable mechanism, a population that does
            not parse, a grid value a mechanism's config refuses, a penalty or audit level out of range.
        UnknownIdError: an unknown mechanism or agent type.
    """
    if not isinstance(settings, Settings):
        settings = Settings.build(**(settings or {}))
    mechanisms = {name: _check_mechanism(name) for name in dict.fromkeys(settings.mechanisms)}
    values = agents.parse_distribution(settings.values)
    for spec in settings.populations:
        agents.population(spec, seed=0)
        for part, name in itertools.product(components(spec), mechanisms):
            try:  # every agent type checks the mechanism it is given when it starts
                initial_state(make_episode(mechanisms[name], None, agents.population(part), markets=1, seed=0,
                                           values=values))
            except ConfigError as exc:
                raise ConfigError(f"populations: {part} cannot play mechanism {name}: {exc}") from None
    for level in settings.penalty_levels:
        Enforcement.build(collusion_penalty=level)
    for level in settings.audit_levels:
        Enforcement.build(audit_probability=level)
    arms = []
    for name, mechanism in mechanisms.items():
        fields = [f for f in settings.grid if f in mechanism.config_model.model_fields]
        for choice in itertools.product(*(settings.grid[f] for f in fields)):
            config = dict(zip(fields, choice, strict=True))
            mechanism.config(config)  # a grid value the mechanism refuses fails here, once
            arms.append((name, config))
    return Params(settings, mechanisms, tuple(arms), values)


def action_sizes(params: Params) -> tuple[int, ...]:
    """The discrete designer's choices: an arm, each information flag, each fine, the audit level."""
    s = params.settings
    return (len(params.arms), *(2,) * len(FLAGS), *(len(s.penalty_levels),) * len(PENALTIES), len(s.audit_levels))


def rules_of(params: Params, choice: Any) -> Rules:
    """The :class:`Rules` of a discrete choice (integers, one per :func:`action_sizes` entry).

    Raises:
        InvalidActionError: a choice of the wrong length or out of range.
    """
    sizes = action_sizes(params)
    index = np.asarray(choice)
    if index.shape != (len(sizes),) or not np.issubdtype(index.dtype, np.integer):
        raise InvalidActionError(f"action must be {len(sizes)} integers (arm, {len(FLAGS)} flags, "
                                 f"{len(PENALTIES)} fines, audit), got {shown_value(choice)}")
    bad = [i for i, (x, n) in enumerate(zip(index.tolist(), sizes, strict=True)) if not 0 <= x < n]
    if bad:
        raise InvalidActionError(f"action[{bad[0]}] must be in [0, {sizes[bad[0]] - 1}], got {index[bad[0]]}")
    s = params.settings
    name, config = params.arms[index[0]]
    flags = index[1: 1 + len(FLAGS)].astype(bool).tolist()
    fines = [s.penalty_levels[i] for i in index[1 + len(FLAGS): -1]]
    return parse_rules(params, Rules(
        mechanism=name, config=config, information=InformationPolicy(**dict(zip(FLAGS, flags, strict=True))),
        enforcement=Enforcement(**dict(zip(PENALTIES, fines, strict=True)), audit_probability=s.audit_levels[index[-1]])))


def parse_rules(params: Params, rules: Rules | dict[str, Any]) -> Rules:
    """Check a :class:`Rules` (or its dict) against the offered mechanisms and the chosen one's config; the
    answer names the mechanism and every config field.

    Raises:
        ConfigError: a malformed field, a mechanism not on offer, a config field the mechanism refuses.
    """
    if not isinstance(rules, Rules):
        if not isinstance(rules, dict):
            raise ConfigError(f"rules must be a Rules or a JSON object, got {type(rules).__name__}")
        rules = Rules.build(**rules)
    if rules.mechanism is None:
        rules = rules.model_copy(update={"mechanism": next(iter(params.mechanisms))})
    mechanism = params.mechanisms.get(rules.mechanism)
    if mechanism is None:
        raise ConfigError(f"mechanism must be one of {', '.join(params.mechanisms)}, got {rules.mechanism!r}")
    try:
        config = mechanism.config(rules.config)
    except ConfigError as exc:
        raise ConfigError(f"config of {rules.mechanism}: {exc}") from None
    return rules.model_copy(update={"config": config.model_dump()})  # every field: equal rules compare equal


def reset(params: Params, key: int) -> State:
    """The episode of ``key``: its population drawn (a mixture's composition too), no rules yet."""
    key = check_seed(key, "key")
    specs = params.settings.populations
    chosen = specs[int(generator(key, ("arena-referee", "population")).integers(len(specs)))]
    drawn = agents.population(chosen, seed=key)  # a mixture's composition, drawn from the key
    return State(key, 0, drawn.spec, None, None, None, np.zeros((params.settings.markets, drawn.size)), 0, None,
                 np.zeros(len(FEATURES)))


def _open(params: Params, state: State, rules: Rules) -> State:
    """New markets under ``rules``: the loop's markets [step M, (step + 1) M) under the episode key."""
    mechanism, m = params.mechanisms[rules.mechanism], params.settings.markets
    episode = make_episode(mechanism, rules.config, agents.population(state.population), markets=m, seed=state.key,
                           values=params.values, information=rules.information, enforcement=rules.enforcement,
                           start=state.step * m)
    return replace(state, rules=rules, episode=episode, loop=initial_state(episode), earned=np.zeros_like(state.earned),
                   played=0, entered=None)


def _outside(episode: Episode) -> FloatArray:
    """(N,) each seat's outside option per round: a type's ``outside`` parameter, else 0."""
    return np.concatenate([np.full(g.stop - g.start, float(getattr(g.params, "outside", 0.0)))
                           for g in episode.population.groups])


def competitive_revenue(values: FloatArray, best: FloatArray) -> FloatArray:
    """(B,) k x v(k+1): k the units the efficient allocation gives, the top values making up ``best``.

    Args:
        values: (B, A) the economic agents' values.
        best: (B,) the most welfare (the sum of the k top values).
    """
    top = -np.sort(-np.maximum(values, 0.0), axis=1)
    reached = np.cumsum(top, axis=1) >= best[:, None] * (1 - 1e-12)
    k = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, top.shape[1])
    k = np.where(best > 0, k, 0)
    padded = np.concatenate([top, np.zeros((top.shape[0], 1))], axis=1)
    return k * padded[np.arange(top.shape[0]), k]


def score(record: RoundRecord, episode: Episode, earned: FloatArray, played: int,
          before: FloatArray | None) -> dict[str, FloatArray]:
    """The four components (B,) of one round.

    Args:
        record: the round.
        episode: its markets.
        earned: (B, N) utility summed under the current rules, this round included.
        played: rounds under the current rules, this round included.
        before: (B, N) the bids the agents' states of the round before make in this round (0: sitting
            out); None in the first round under the rules.
    """
    owner = episode.owner
    own = owner == np.arange(owner.size)
    out = record.outcome
    best = out.max_welfare
    honest_fines = (record.penalties * ~cheats(record, owner)).sum(axis=1)
    taken = (out.payments - out.receipts).sum(axis=1) + record.penalties.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        welfare = np.where(best > 0, np.clip((record.welfare - honest_fines) / best, 0, 1), 0.0)
        fair = np.where(best > 0, np.clip(
            1 - DISTORTION * np.abs(taken - competitive_revenue(record.values[:, own], best)) / best, 0, 1), 0.0)
    wanted = record.active & (earned / played >= _outside(episode)[None, :])
    participation = wanted[:, own].mean(axis=1)
    stability = np.ones(best.shape)
    if before is not None:
        bid = record.bids[:, own]
        counted = ((bid > 0) | (before[:, own] > 0)) & (record.values[:, own] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            change = np.where(counted, np.abs(bid - before[:, own]) / record.values[:, own], 0.0)
        mean = change.sum(axis=1) / np.maximum(counted.sum(axis=1), 1)
        stability = 1 - np.minimum(1.0, 2 * mean)
    return {"welfare": welfare, "fairness": fair, "participation": participation, "stability": stability}


def cheats(record: RoundRecord, owner: np.ndarray) -> np.ndarray:
    """(B, N) the seats that cheated in a round: colluding, or owning a false name that bid."""
    false_name = false_names(owner, record.active, record.bids)
    out = record.colluding.copy()
    for seat in np.flatnonzero(owner != np.arange(owner.size)):
        out[:, owner[seat]] |= false_name[:, seat]
    return out


def bids_before(episode: Episode, entering_before: LoopState, record: RoundRecord) -> FloatArray:
    """(B, N) the bids the agents' states that entered the round before make in ``record``'s round, with its
    values and draws (0 where they would sit out)."""
    signals = record.values if record.signals is None else record.signals
    _, joint = gather_actions(episode, replace(entering_before, round=record.round), signals)
    return np.where(joint.enter, joint.bids, 0.0)


def _features(record: RoundRecord, parts: dict[str, FloatArray]) -> FloatArray:
    """(len(FEATURES),) what the designer sees of a round: means over the markets."""
    out = record.outcome
    columns = (*parts.values(), parts["welfare"] * parts["fairness"] * parts["participation"] * parts["stability"],
               out.payments.sum(axis=1), (out.allocation > 0).any(axis=1), record.active.mean(axis=1),
               record.colluding.mean(axis=1), record.penalties.sum(axis=1))
    bidding = record.active & (record.bids > 0) & (record.values > 0)
    ratio = float((record.bids[bidding] / record.values[bidding]).mean()) if bidding.any() else 0.0
    return np.array([*(float(np.mean(c)) for c in columns), ratio])


def step(params: Params, state: State, rules: Rules) -> tuple[State, StepResult]:
    """Play one step under ``rules``. Pure: ``state`` is unchanged.

    Raises:
        InvalidActionError: the episode is over.
        ConfigError: rules :func:`parse_rules` refuses.
    """
    s = params.settings
    if state.step >= s.horizon:
        raise InvalidActionError(f"the episode is over after {s.horizon} steps: reset it")
    rules = parse_rules(params, rules)
    if rules != state.rules:
        state = _open(params, state, rules)
    loop, earned, played, entered = state.loop, state.earned, state.played, state.entered
    totals = dict.fromkeys(("welfare", "fairness", "participation", "stability"), 0.0)
    reward = 0.0
    for r in range(s.rounds):
        record_entry = loop
        loop, record = play_round(state.episode, loop)
        earned, played = earned + record.utility, played + 1
        scored = r >= s.rounds - s.scored
        before = bids_before(state.episode, entered, record) if entered is not None and scored else None
        entered = record_entry
        parts = score(record, state.episode, earned, played, before)
        if scored:
            reward += float((parts["welfare"] * parts["fairness"] * parts["participation"]
                             * parts["stability"]).mean()) / s.scored
            for name, value in parts.items():
                totals[name] += float(value.mean()) / s.scored
    features = _features(record, parts)
    state = replace(state, step=state.step + 1, loop=loop, earned=earned, played=played, entered=entered,
                    features=features)
    return state, StepResult(reward, totals, state.step >= s.horizon)


def observation(params: Params, state: State) -> FloatArray:
    """The designer's view: the last round's :data:`FEATURES`, then the rules in force as in
    :func:`rules_vector` (zeros before the first step)."""
    rules = np.zeros(observation_width(params) - len(FEATURES)) if state.rules is None else \
        rules_vector(params, state.rules)
    return np.concatenate([state.features, rules])


def observation_width(params: Params) -> int:
    return len(FEATURES) + len(params.mechanisms) + len(params.settings.grid) + len(FLAGS) + len(PENALTIES) + 1


def rules_vector(params: Params, rules: Rules) -> FloatArray:
    """The rules as numbers: the mechanism one-hot, each grid field's value (0 where not set), the
    flags, the fines / 3 and the audit probability."""
    one_hot = [float(name == rules.mechanism) for name in params.mechanisms]
    fields = [float(rules.config.get(f, 0.0)) for f in params.settings.grid]
    flags = [float(getattr(rules.information, f)) for f in FLAGS]
    fines = [getattr(rules.enforcement, p) / 3.0 for p in PENALTIES]
    return np.array([*one_hot, *fields, *flags, *fines, rules.enforcement.audit_probability])


def play_constant(params: Params, rules: Rules, key: int,
                  on_step: Callable[[], None] | None = None) -> tuple[State, list[StepResult]]:
    """The episode of ``key`` under ``rules`` from start to end: its last state and every step's result."""
    state, results = reset(params, key), []
    for _ in range(params.settings.horizon):
        state, result = step(params, state, rules)
        results.append(result)
        if on_step is not None:
            on_step()
    return state, results


def episode_keys(seed: int, count: int, purpose: str) -> list[int]:
    """``count`` episode keys of stream ``purpose`` ("train" for searches, "held-out" for their scores)."""
    return [int(k) for k in generator(seed, ("arena-referee", purpose)).integers(0, MAX_SEED, count)]


def menu_point(params: Params, arm: int) -> tuple[int, ...]:
    """The discrete action of arm ``arm`` with the default information policy and no enforcement."""
    shown = InformationPolicy()
    return (arm, *(int(getattr(shown, f)) for f in FLAGS), *(0,) * len(PENALTIES), 0)


def search_constant(params: Params, *, episodes: int = 16, seed: int = 0, candidates: int = 128,
                    starts: list[tuple[int, ...]] | None = None,
                    on_episode: Callable[[], None] | None = None) -> dict[str, Any]:
    """The constant rules with the highest mean reward on ``episodes`` training episodes, over the whole
    discrete grid (:func:`action_sizes`): successive halving and steepest ascent
    (:func:`~mecharena.designer.search.halve_and_climb`) from ``starts`` (default: every arm with the
    default information policy and no enforcement) and ``candidates`` grid points drawn at random. The
    winner is then scored on as many held-out episodes, paired with the first arm's default rules.

    Raises:
        ConfigError: ``episodes`` below 16 or ``candidates`` outside [0, the grid's size].
    """
    sizes = action_sizes(params)
    total = math.prod(sizes)
    if not 16 <= episodes <= 4096:
        raise ConfigError(f"episodes must be in [16, 4096], got {episodes}")
    if not 0 <= candidates <= total:
        raise ConfigError(f"candidates must be between 0 and {total} (the grid's size), got {candidates}")
    train = episode_keys(seed, episodes, "train")
    drawn = generator(seed, ("arena-referee", "candidates")).choice(total, size=candidates, replace=False)
    pool = {tuple(int(i) for i in np.unravel_index(flat, sizes)) for flat in drawn}
    pool |= {menu_point(params, arm) for arm in range(len(params.arms))} if starts is None else set(starts)

    def rewards(point: tuple[int, ...], keys: list[int]) -> FloatArray:
        rules = rules_of(params, np.array(point))
        out = []
        for key in keys:
            out.append(np.mean([result.reward for result in play_constant(params, rules, key)[1]]))
            if on_episode is not None:
                on_episode()
        return np.array(out)

    def means(points: list[tuple[int, ...]], rows: int) -> FloatArray:
        return np.array([rewards(point, train[:rows]).mean() for point in points])

    best, sampled, scored = halve_and_climb(sizes, pool, means, episodes)
    held_out = episode_keys(seed, episodes, "held-out")
    found, baseline = rewards(best, held_out), rewards(menu_point(params, 0), held_out)
    rules = rules_of(params, np.array(best))
    return {"rules": rules.model_dump(), "action": list(best), "mean": scored[best], "held_out": mean_ci(found[None, :]),
            "baseline": {"rules": rules_of(params, np.array(menu_point(params, 0))).model_dump(),
                         "held_out": mean_ci(baseline[None, :]), "paired_gain": mean_ci((found - baseline)[None, :])},
            "sampled": {"action": list(sampled), "mean": scored[sampled]}, "evaluated": len(pool | set(scored)),
            "grid": total, "episodes": episodes, "seed": seed, "candidates": candidates,
            "top": [{"rules": rules_of(params, np.array(p)).model_dump(), "mean": scored[p]}
                    for p in sorted(scored, key=scored.__getitem__, reverse=True)[:5]]}
