"""Each bid's regret against the discovery engine's best response to the rivals as they played."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.core.errors import ConfigError
from mecharena.fuzz.discover import decision_regret
from mecharena.sim.loop import make_episode, play


def played(mechanism: str, population: str, config: dict | None = None, rounds: int = 30):
    episode = make_episode(mechanisms.get(mechanism), config or {}, agents.population(population, 0), markets=4, seed=3)
    return episode, list(play(episode, rounds))


def test_a_truthful_second_price_bidder_has_no_regret():
    episode, records = played("second_price", "truthful:3")
    regret = decision_regret(episode, records, 0)
    assert regret.shape == (4 * 30,) and np.abs(regret).max() < 1e-12


def test_an_overbid_in_second_price_regrets_the_prices_above_its_value_it_accepts():
    """Bidding 2v against rivals whose top bid is p: the bid wins every round where p < 2v and pays
    p, where the best response (any bid in (p, v] wins only where p < v) never pays more than v. So
    the regret of decision i is, by hand, the mean over all recorded rounds m of
    (p_m - v_i) 1[v_i < p_m < 2 v_i]."""
    episode, records = played("second_price", "curve(scale=2):1,truthful:2")
    regret = decision_regret(episode, records, 0)
    values = np.concatenate([r.values[:, 0] for r in records])
    top = np.concatenate([r.bids[:, 1:].max(axis=1) for r in records])
    by_hand = np.array([np.mean((top - v) * ((v < top) & (top < 2 * v))) for v in values])
    assert regret == pytest.approx(by_hand, abs=1e-12)
    assert (regret > 0).mean() > 0.5


def test_a_truthful_first_price_bidder_regrets_not_shading():
    """Winning at its value earns nothing in first price; shading against truthful rivals earns more."""
    episode, records = played("first_price", "truthful:3")
    regret = decision_regret(episode, records, 0)
    assert (regret >= 0).all() and regret.mean() > 0.01


def test_multi_unit_demand_is_refused():
    episode, records = played("uniform_price", "truthful:3", {"units": 2, "demand": 2}, rounds=2)
    with pytest.raises(ConfigError, match="decision regret scores one bid per seat and round"):
        decision_regret(episode, records, 0)
