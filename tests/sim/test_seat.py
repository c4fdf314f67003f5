"""The generic single-learner shell: one agent of a ParallelEnv as a Gymnasium env (sim/seat.py)."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mecharena.core.errors import ConfigError
from mecharena.negotiation.env import draw_opponents
from mecharena.negotiation.parallel import NegotiationParallelEnv
from mecharena.sim.parallel import ArenaConfig, ArenaParallelEnv
from mecharena.sim.seat import SeatEnv, arena_env, negotiation_env

FIRST_PRICE = {"mechanism": "first_price", "rounds": 6, "opponents": "truthful:2",
               "information": {"competing_bids": True}}


@pytest.mark.parametrize("make", [lambda: arena_env(FIRST_PRICE), lambda: negotiation_env("market_round")])
def test_gymnasiums_checker_passes(make):
    check_env(make(), skip_render_check=True)


def test_an_arena_seat_plays_the_parallel_env_step_for_step():
    seat = gymnasium.make("mecharena/Arena-v0", config=FIRST_PRICE)
    parallel = ArenaParallelEnv(ArenaConfig(**FIRST_PRICE))
    obs, _ = seat.reset(seed=5)
    expected, _ = parallel.reset(seed=5)
    assert np.array_equal(obs, expected["bidder_0"])
    done = False
    while not done:
        action = np.array([0.6 * obs[0], 1.0], np.float32)
        obs, reward, terminated, truncated, _ = seat.step(action)
        expected, rewards, _, truncations, _ = parallel.step({"bidder_0": action})
        assert np.array_equal(obs, expected["bidder_0"]) and reward == rewards["bidder_0"]
        done = terminated or truncated
    assert truncated and not parallel.agents


def test_a_negotiation_seat_plays_lab_0_against_the_drawn_archetypes():
    seat = gymnasium.make("mecharena/Negotiation-v0", task="market_round")
    labs = 4
    parallel = NegotiationParallelEnv("market_round", scripted=dict(enumerate(draw_opponents("market_round", 0, labs),
                                                                              start=1)))
    obs, _ = seat.reset(seed=2)
    expected, _ = parallel.reset(seed=2)
    assert np.array_equal(obs, expected["lab_0"])
    seat.action_space.seed(2)
    done, steps = False, 0
    while not done:
        action = seat.action_space.sample()
        obs, reward, terminated, truncated, _ = seat.step(action)
        expected, rewards, _, _, _ = parallel.step({"lab_0": action})
        assert np.array_equal(obs, expected["lab_0"]) and reward == rewards["lab_0"]
        done, steps = terminated or truncated, steps + 1
    assert steps > 1


def test_a_parallel_env_with_several_agents_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"exactly one agent \(script the others\), got 3: \['bidder_0'"):
        SeatEnv(ArenaParallelEnv(ArenaConfig(n_agents=3)))
    with pytest.raises(ConfigError, match=r"opponents must name 1 archetypes for task 'single_trade'"):
        negotiation_env("single_trade", opponents=["selfish", "cooperative"])


def test_ppo_learns_on_the_arena_seat():
    """The shell carries a learning signal: a short PPO run (SB3, 4,096 steps) lifts the held-out reward per round
    far above the random policy's (first price against two truthful bidders: a random bid often overpays).
    What it has learned in so few steps is to stop losing (enter rarely, bid below value), not yet to shade."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = arena_env(FIRST_PRICE)

    def held_out(policy) -> np.ndarray:
        per_episode = []
        for episode in range(30):
            obs, _ = env.reset(seed=10_000 + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total, done = total + reward, terminated or truncated
            per_episode.append(total / FIRST_PRICE["rounds"])
        return np.array(per_episode)

    env.action_space.seed(0)
    random = held_out(lambda obs: env.action_space.sample())
    model = PPO("MlpPolicy", env, seed=0, n_steps=512, batch_size=128, verbose=0).learn(4096)
    learned = held_out(lambda obs: model.predict(obs, deterministic=True)[0])
    gain = learned - random
    low = gain.mean() - 1.96 * gain.std(ddof=1) / np.sqrt(gain.size)
    assert random.mean() < -0.1 and low > 0.1, (random.mean(), learned.mean())
    assert learned.mean() > -0.01
