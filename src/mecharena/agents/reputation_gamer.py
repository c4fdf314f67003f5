"""Reputation gamer: a seller that manages the score buyers see, not the quality it delivers.

For the ``reputation`` marketplace (:mod:`mecharena.mechanisms.reputation`) only. Each round every seat
lists at the mechanism's honest price share ``(1 + c) / 2`` of its displayed score (:func:`truthful`),
delivers effort ``effort`` (quality ``effort * theta``, hidden from its buyer), never re-enters, and
buys the fewest whole fake reviews that keep its score after the round at least ``target``, whatever
its buyer does. The score is the Beta posterior mean of :func:`~mecharena.mechanisms.reputation.displayed`;
after a round with decay lambda the evidence is ``(lambda P + g + w f, lambda N + 1 - g)`` where it
sold (g = 1: a positive rating), ``(lambda P + w f, lambda N)`` where it did not, with f fakes of weight
w = ``unverified_weight``. A negative rating is the worst case, so it needs fake evidence

    w f >= (T (s + lambda P + lambda N + 1) - m s - lambda P) / (1 - T)

(prior mean m, strength s, target T), and with ``min_history`` h > 0 and T above m also
``w f >= h - lambda (P + N)`` (the evidence must be enough to be shown: the worst case there is no
sale). It buys ``ceil`` of that over w, capped by ``max_fakes``; none where w = 0 (verified purchases
only: fakes would not count). P and N are its own state: a seller knows its listing's record.

The type is the review manipulator of the empirical literature, a behavioural rule rather than an
optimiser: promotional reviews bought where they are cheap and count (Mayzlin, Dover and Chevalier
2014, "Promotional reviews: an empirical investigation of online review manipulation", *AER* 104(8):
2421-2455), more so by sellers with a weak record (Luca and Zervas 2016, "Fake it till you make it:
reputation, competition, and Yelp review fraud", *Management Science* 62(12): 3412-3427); manipulation
that a platform's rule does not filter biases the scores buyers rely on (Dellarocas 2006, "Strategic
manipulation of internet opinion forums", *Management Science* 52(10): 1577-1593). With low effort its
score overstates what it delivers, so its buyers, who expect the score, pay for quality they do not get:
their surplus ``q - p - u`` falls below honest sellers' buyers'. A verified-purchase rule
(``unverified_weight = 0``) leaves it nothing to buy, and its score follows its delivered quality.

Every other mechanism raises :class:`~mecharena.core.errors.ConfigError`.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mecharena.agents.base import (Action, AgentType, Draws, Feedback, MarketContext, Observation, initial_own_state,
                                   require_mechanism)
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray
from mecharena.mechanisms.reputation import ReputationConfig

VERSION = 1
_ROUNDING = 1e-9  # whole fakes: a need of 3 + 1e-12 (floating error) is 3


class ReputationGamerParams(StrictModel):
    target: float = Field(0.9, ge=0, lt=1, description="score it buys fake reviews to keep after each round")
    effort: float = Field(0.2, ge=0, le=1, description="share of its quality type it delivers")


@dataclass(frozen=True, slots=True)
class GamerState:
    """Each seat's listing record after last round."""

    positive: FloatArray  # (B, S)
    negative: FloatArray  # (B, S)


def fakes_needed(config: ReputationConfig, positive: FloatArray, negative: FloatArray, target: float) -> FloatArray:
    """(B, S) the fewest whole fake reviews, capped by ``max_fakes``, that keep the score after the round at least
    ``target`` even if this round's sale is rated negative (module docstring); 0 where they would not count.

    Under the average rule (m = 0.5, s = 0, no decay, w = 1, at most 5 a round), 8 positive ratings need one
    fake to stay at 0.9 after a negative one (9 / 10), and 3 positive and 1 negative need 15, capped at 5:

    >>> fakes_needed(ReputationConfig(), np.array([8.0, 3.0]), np.array([0.0, 1.0]), 0.9).tolist()
    [1.0, 5.0]
    """
    if config.unverified_weight == 0:
        return np.zeros(np.broadcast(positive, negative).shape)
    lam, m, s = config.decay, config.prior_mean, config.prior_strength
    kept_pos, kept_neg = lam * np.asarray(positive, float), lam * np.asarray(negative, float)
    weight = (target * (s + kept_pos + kept_neg + 1.0) - m * s - kept_pos) / (1.0 - target)
    if config.min_history > 0 and target > m:
        weight = np.maximum(weight, config.min_history - kept_pos - kept_neg)
    count = np.ceil(np.maximum(weight, 0.0) / config.unverified_weight - _ROUNDING)
    return np.clip(count, 0.0, config.max_fakes)


def _check(context: MarketContext) -> None:
    require_mechanism(context, "reputation_gamer", ("reputation",), reason="sells in the reputation marketplace")


def init(context: MarketContext, params: ReputationGamerParams, seats: int, draws: Draws) -> GamerState:
    _check(context)
    start = initial_own_state(context, draws)
    return GamerState(positive=start["positive"], negative=start["negative"])


def act(context: MarketContext, params: ReputationGamerParams, state: GamerState, values: FloatArray,
        draws: Draws) -> Action:
    """Price shares, effort, no re-entry and fake reviews, each (B, S), for quality types (B, S)."""
    _check(context)
    config = context.config
    fields = {"quality": np.full(values.shape, params.effort), "reenter": np.zeros(values.shape),
              "fakes": fakes_needed(config, state.positive, state.negative, params.target)}
    return Action(bids=context.mechanism.truthful(config, values, context.spec), fields=fields)


def update(context: MarketContext, params: ReputationGamerParams, state: GamerState, values: FloatArray,
           action: Action, observation: Observation, feedback: Feedback, draws: Draws) -> GamerState:
    return dataclasses.replace(state, positive=feedback.state["positive"].copy(),
                               negative=feedback.state["negative"].copy())


AGENT = AgentType(name="reputation_gamer", version=VERSION,
                  summary="reputation seller: low effort, buys fake reviews to hold its score at a target",
                  act=act, init=init, update=update, params_model=ReputationGamerParams)
