import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from mecharena.core.errors import ConfigError
from mecharena.negotiation import core
from mecharena.negotiation.env import draw_opponents, play_episode
from mecharena.negotiation.parallel import NegotiationParallelEnv, decode, encode
from mecharena.negotiation.policies import Expert
from mecharena.negotiation.scenario import TASKS


@pytest.mark.parametrize("task", TASKS)
def test_pettingzoo_api_and_seed_tests_pass(task):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test warns about missing or stale keys
        parallel_api_test(NegotiationParallelEnv(task), num_cycles=200)
        parallel_api_test(NegotiationParallelEnv(task, scripted={1: "deceptive"}), num_cycles=200)
    parallel_seed_test(lambda: NegotiationParallelEnv(task), num_cycles=200)


def test_scripted_seats_reproduce_the_single_seat_shell():
    """Lab 0 playing the expert through PettingZoo (dict actions) against the same scripted archetypes
    earns exactly what play_episode reports."""
    for seed in (0, 3):
        names = draw_opponents("coalition_market", seed, 6)
        env = NegotiationParallelEnv("coalition_market", scripted=dict(enumerate(names, start=1)))
        env.reset(seed=seed)
        expert, rng = Expert(), np.random.default_rng()
        total = 0.0
        from mecharena.core.seeding import generator

        rng = generator(seed, ("seat", 0))
        while env.agents:
            action = expert.act(env.observation_dict("lab_0"), rng)
            _, rewards, *_ = env.step({"lab_0": action.model_dump()})
            total += rewards["lab_0"]
        assert total == pytest.approx(play_episode("coalition_market", "expert", seed).reward, abs=1e-9)


def test_invalid_vectors_are_fined_and_explained():
    env = NegotiationParallelEnv("single_trade")
    env.reset(seed=0)
    # reserve (kind 5) of a block that lab 1 owns
    mine = next(b["id"] for b in env.observation_dict("lab_0")["blocks"] if b["owner"] == 1)
    _, rewards, _, _, infos = env.step({"lab_0": np.array([5, 0, mine, 0, 0, 0]), "lab_1": {"kind": "wait"}})
    assert rewards["lab_0"] == -core.INVALID_FINE and rewards["lab_1"] == 0.0
    assert infos["lab_0"]["invalid"] == f"block: block {mine} belongs to lab 1, not the provider"
    _, rewards, _, _, infos = env.step({"lab_0": {"kind": "message", "text": ""}})
    assert rewards["lab_0"] == -core.INVALID_FINE and "text" in infos["lab_0"]["invalid"]


def test_every_action_component_is_read():
    env = NegotiationParallelEnv("market_round")
    env.reset(seed=1)
    obs = env.observation_dict("lab_0")
    base = np.array([0, 1, 0, 0, 4, 0])  # offer to lab 1, block 0, job slot 0, level 1.0
    changed = [decode(obs, np.where(np.arange(6) == i, base + 1, base)) for i in range(5)]
    assert all(a != decode(obs, base) for a in changed)
    coalition = {"id": 0, "owner": 1, "job": 9, "job_hours": 10.0, "job_deadline": 9, "job_value": 20.0,
                 "job_min_reliability": 0.0, "delivered": 0.0, "members": [0], "shares": [0.3], "committed": [False],
                 "left": [False], "blocks": []}
    with_two = dict(obs, coalitions=[coalition, dict(coalition, id=1)])
    commit = np.array([8, 0, 0, 0, 0, 0])
    assert decode(with_two, commit) != decode(with_two, commit + np.array([0, 0, 0, 0, 0, 1]))


def test_vectors_stay_in_the_observation_space():
    env = NegotiationParallelEnv("coalition_market")
    obs, _ = env.reset(seed=4)
    space = env.observation_space("lab_0")
    assert all(o in space for o in obs.values())
    assert encode("coalition_market", env.observation_dict("lab_0")).dtype == np.float32


def test_bad_construction_is_refused():
    with pytest.raises(ConfigError, match=r"scripted seats must be labs in \[0, 1\], got 5"):
        NegotiationParallelEnv("single_trade", scripted={5: "selfish"})
    with pytest.raises(ConfigError, match=r"at least one of the 2 labs must be an agent"):
        NegotiationParallelEnv("single_trade", scripted={0: "selfish", 1: "selfish"})
