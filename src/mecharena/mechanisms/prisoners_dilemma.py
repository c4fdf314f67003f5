"""Repeated prisoner's dilemma with observation noise: partners see each other's moves through a noisy channel.

Seats are paired (0 with 1, 2 with 3, ...) for the whole episode. Each round a seat's bid is its
probability of cooperating (1: cooperate, 0: defect); the move is drawn from it (hashed from the seat's
priority, :mod:`mecharena.mechanisms.draws`). Payoffs are the one-shot game's: ``reward`` R when both
cooperate, ``punishment`` P when both defect, ``temptation`` T to a defector against a cooperator, who
gets the ``sucker`` payoff S, with T > R > P > S and 2R > T + S (Axelrod 1984, *The Evolution of
Cooperation*: 5, 3, 1, 0). Each seat then observes its partner's move, flipped with probability
``noise`` (an implementation or perception error, Molander 1985). Values are unused (every seat's type is
the same); the honest plan (:func:`truthful`) cooperates.

State (per seat): ``seen`` (the partner's move as this seat observed it last round; 1 at the start, so
reciprocating strategies open with cooperation) and ``cooperated`` (its own last move). Events:
``cooperated``, ``partner`` (the partner's true move) and ``seen``. Utility is the payoff; no money
moves; ``welfare`` is the sum of payoffs and ``max_welfare`` is R per seat (mutual cooperation).

Known results (tests/mechanisms/test_prisoners_dilemma.py, with the ``tit_for_tat`` agent): under
noise every error starts an echo of retaliation that only another error ends, so two tit-for-tat
players spend equal time in each of the four outcomes and earn ``(R + S + T + P) / 4`` per round in the
long run, whatever the noise level (Molander 1985, *J. Conflict Resolution* 29(4)); generous
tit-for-tat, forgiving an observed defection with probability ``g``, restores most of the cooperation,
the best g being ``min(1 - (T - R) / (R - S), (R - P) / (T - P))`` (1/3 with Axelrod's payoffs; Molander
1985; Nowak and Sigmund 1992, *Nature* 355). Both are checked against the exact Markov chain of the
pair's moves.
"""

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from mecharena.core.errors import ConfigError
from mecharena.mechanisms.base import MarketSpec, Mechanism, MechanismConfig, finish, is_valid_number, scalar_outcome
from mecharena.mechanisms.draws import seat_key, seat_keys, uniform, uniforms
from mecharena.mechanisms.schema import StateField

VERSION = 1
MOVE, SEEN = 0, 1  # streams of the hashed draws


class DilemmaConfig(MechanismConfig):
    """Payoffs of the one-shot game and the noise of the channel partners observe each other through."""

    temptation: float = Field(5.0, ge=-100, le=100, description="payoff of defecting against a cooperator (T)")
    reward: float = Field(3.0, ge=-100, le=100, description="payoff of mutual cooperation (R)")
    punishment: float = Field(1.0, ge=-100, le=100, description="payoff of mutual defection (P)")
    sucker: float = Field(0.0, ge=-100, le=100, description="payoff of cooperating against a defector (S)")
    noise: float = Field(0.0, ge=0, le=0.5, description="probability that a seat sees its partner's move flipped")

    @model_validator(mode="after")
    def _a_dilemma(self) -> "DilemmaConfig":
        t, r, p, s = self.temptation, self.reward, self.punishment, self.sucker
        if not t > r > p > s:
            raise ValueError(f"payoffs must satisfy temptation > reward > punishment > sucker, got {t}, {r}, {p}, {s}")
        if not 2 * r > t + s:
            raise ValueError(f"payoffs must satisfy 2 reward > temptation + sucker (alternating must not beat "
                             f"cooperating), got 2 x {r} <= {t} + {s}")
        return self


STATE = (
    StateField("seen", initial=1.0, description="partner's move as this seat saw it last round (1: cooperated)"),
    StateField("cooperated", initial=1.0, description="this seat's own last move (1: cooperated)"),
)


def properties(config: DilemmaConfig) -> frozenset[str]:
    """No money moves: the budget balances."""
    return frozenset({"weak_budget_balance", "budget_balance"})


def market_spec(config: DilemmaConfig, n: int) -> MarketSpec:
    if n % 2:
        raise ConfigError(f"the prisoner's dilemma pairs seats: the number of agents must be even, got {n}")
    return MarketSpec(action_high=1.0, action_rule="each bid is a probability of cooperating, in [0, 1]")


def truthful(config: DilemmaConfig, values: Any, spec: MarketSpec) -> Any:
    """The honest plan: cooperate."""
    return np.ones(np.shape(values))


def _payoff(config: DilemmaConfig, own: Any, other: Any) -> Any:
    return np.where(own, np.where(other, config.reward, config.sucker), np.where(other, config.temptation,
                                                                                 config.punishment))


def step(config: DilemmaConfig, state: dict, values: Any, bids: Any, priority: Any, times: Any, actions: dict):
    """One round of every pair of every market; see the module docstring."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(bids) & (bids >= 0) & (bids <= 1)
    keys = seat_keys(priority)
    move = valid & (uniforms(keys, MOVE) < np.where(valid, bids, 0.0))  # an invalid bid defects
    partner = move.reshape(move.shape[0], -1, 2)[:, :, ::-1].reshape(move.shape)
    seen = partner ^ (uniforms(keys, SEEN) < config.noise)
    gains = _payoff(config, move, partner).astype(float)
    zeros = np.zeros(bids.shape)
    n = bids.shape[1]
    outcome = finish(zeros, zeros, zeros, gains, valid, valid, np.full(bids.shape[0], config.reward * n))
    new_state = {"seen": seen.astype(float), "cooperated": move.astype(float)}
    return new_state, outcome, {"cooperated": move.astype(float), "partner": partner.astype(float),
                                "seen": seen.astype(float)}


def step_reference(config: DilemmaConfig, state: dict, values: list, bids: list, priority: list, times: Any,
                   actions: dict) -> tuple[dict, dict, dict]:
    """One market in plain Python, pair by pair."""
    n = len(bids)
    valid = [is_valid_number(b, 0.0, 1.0) for b in bids]
    move = [valid[i] and uniform(seat_key(priority[i]), MOVE) < bids[i] for i in range(n)]
    partner = [move[i + 1] if i % 2 == 0 else move[i - 1] for i in range(n)]
    seen = [partner[i] != (uniform(seat_key(priority[i]), SEEN) < config.noise) for i in range(n)]
    gains = []
    for own, other in zip(move, partner, strict=True):
        if own:
            gains.append(config.reward if other else config.sucker)
        else:
            gains.append(config.temptation if other else config.punishment)
    outcome = scalar_outcome(gains, [0.0] * n, [0.0] * n, [0.0] * n, valid, valid, max_welfare=config.reward * n)
    state = {"seen": [float(x) for x in seen], "cooperated": [float(x) for x in move]}
    return state, outcome, {"cooperated": [float(x) for x in move], "partner": [float(x) for x in partner],
                            "seen": [float(x) for x in seen]}


MECHANISM = Mechanism(
    name="prisoners_dilemma", version=VERSION,
    summary="repeated prisoner's dilemma in fixed pairs, each seeing its partner's moves through a noisy channel",
    config_model=DilemmaConfig, kernel=None, reference=None, properties=properties, market_spec=market_spec,
    truthful=truthful, examples=({}, {"noise": 0.1}, {"noise": 0.5, "temptation": 4.0, "sucker": -1.0}),
    doc=__doc__, state=STATE, step=step, step_reference=step_reference,
)
