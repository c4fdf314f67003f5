"""Selective disclosure on an open channel with interdependent values: sharers pool their signals and bid their
exact values; the hoarder, hiding its good news, gains against naive sharers and loses against skeptical ones
(the unravelling argument, sources in mecharena.agents.sharer); without a channel nothing changes."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.metrics.summary import mean_ci
from mecharena.sim.loop import make_episode, play

COMMON = "uniform:common=0.5"


def records(population, channels="public", markets=3000, rounds=4, mechanism="second_price"):
    episode = make_episode(mechanisms.get(mechanism), {}, agents.population(population, 3), markets=markets, seed=3,
                           values=agents.parse_distribution(COMMON), channels=channels)
    return list(play(episode, rounds))


def gain(seat_zero, rest, **kwargs):
    """Seat 0's utility per round as ``seat_zero`` minus as a naive sharer, on the same draws: mean and 95% CI."""
    mine, base = (np.mean([r.utility[:, 0] for r in records(f"{a},{rest}", **kwargs)], axis=0)
                  for a in (seat_zero, "sharer:1"))
    return mean_ci((mine - base)[None, :])


def test_when_everyone_shares_everyone_bids_its_exact_value():
    for r in records("sharer:4", markets=200):
        np.testing.assert_allclose(r.bids, r.values, atol=1e-12)
    silent = records("sharer:4", channels=None, markets=200)[0]  # nothing heard: the others at the prior mean
    np.testing.assert_allclose(silent.bids, 0.5 * silent.signals + 0.5 * (silent.signals + 1.5) / 4, atol=1e-12)


def test_hiding_good_news_pays_against_naive_sharers_and_loses_against_skeptical_ones():
    naive = gain("hoarder:1", "sharer:3")
    assert naive["ci95"][0] > 0.005, naive  # 0.0109 [0.0105, 0.0112] per round
    skeptical = gain("hoarder:1", "sharer(skeptical=true):3")
    assert skeptical["ci95"][1] < 0, skeptical
    full = gain("hoarder(disclose_below=1.0):1", "sharer(skeptical=true):3")  # disclosing everything: a sharer
    assert full["mean"] == 0.0 and full["ci95"] == [0.0, 0.0]


def test_without_an_open_channel_there_is_nothing_to_hoard():
    for channels in (None, "private"):
        closed = gain("hoarder:1", "sharer:3", channels=channels, markets=500)
        assert closed["mean"] == 0.0, (channels, closed)


def test_sharers_refuse_rules_where_their_bid_is_not_competitive():
    with pytest.raises(ConfigError, match="^sharer/hoarder bids its estimated value.*supports second_price, vcg"):
        records("hoarder:1,sharer:2", mechanism="first_price", markets=2)


@pytest.mark.parametrize("spec, message", [
    ("hoarder(disclose_below=-1):1,sharer:2", "hoarder: disclose_below must be a finite float >= 0 (or null), got -1"),
    ("sharer(skeptical=maybe):1,sharer:2", "sharer: skeptical must be a bool, got 'maybe'"),
])
def test_bad_parameters_are_refused_naming_the_field(spec, message):
    with pytest.raises(ConfigError) as info:
        agents.population(spec)
    assert str(info.value) == message
