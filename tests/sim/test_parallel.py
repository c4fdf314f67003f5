"""The sealed-bid arena as a PettingZoo ParallelEnv."""

import warnings

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.sim.loop import round_values
from mecharena.sim.parallel import OWN, ArenaConfig, ArenaParallelEnv

TALK = {"n_agents": 5, "rounds": 8, "opponents": "talking_cartel:3",
        "channels": {"private": True, "side_payment_cap": 0.5, "endowment": 0.2},
        "information": {"winner_identity": True, "competing_bids": True, "bid_distribution": True}}


@pytest.mark.parametrize("config", [{"n_agents": 3, "rounds": 10}, {**TALK, "mechanism": "first_price"}])
def test_pettingzoo_api_and_seed_tests_pass(config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(ArenaParallelEnv(config), num_cycles=40)
    parallel_seed_test(lambda: ArenaParallelEnv(config), num_cycles=40)


def test_rewards_are_the_round_utility_and_observations_what_was_revealed():
    env = ArenaParallelEnv({"n_agents": 3, "rounds": 3, "information": {"competing_bids": True}})
    obs, _ = env.reset(seed=7)
    values = round_values(env.episode, 0)[0]
    assert [obs[f"bidder_{i}"][0] for i in range(3)] == pytest.approx(values.tolist())
    assert (obs["bidder_0"][2:] == -1).all()  # nothing revealed yet
    obs, rewards, _, truncations, _ = env.step({f"bidder_{i}": np.array([values[i], 1.0]) for i in range(3)})
    top = int(np.argmax(values))
    second = np.sort(values)[-2]
    assert rewards[f"bidder_{top}"] == pytest.approx(values[top] - second)
    assert sum(rewards.values()) == pytest.approx(values[top] - second)
    mine = obs[f"bidder_{top}"]
    assert mine[2] == pytest.approx(second) and mine[3] == 1 and mine[4] == pytest.approx(second)
    assert mine[OWN + 3:OWN + 6] == pytest.approx(values.astype(np.float32))  # competing bids revealed
    assert (mine[OWN:OWN + 3] == -1).all()  # winner identity hidden
    assert not any(truncations.values())
    env.step({"bidder_0": np.array([0.5, 0.0])})  # sits out; the others' actions are missing: they sit out too
    _, _, _, truncations, _ = env.step({})
    assert all(truncations.values()) and env.agents == []


def test_messages_and_side_payments_reach_the_scripted_ring():
    env = ArenaParallelEnv(TALK)
    env.reset(seed=1)
    action = {"bid": 0.3, "messages": [{"channel": "private", "to": 2, "kind": "propose", "winner": 0, "cap": 0.1,
                                        "payment": 0.15}]}
    _, rewards, _, _, infos = env.step({"bidder_0": action, "bidder_1": {"bid": 0.2}})
    record = env._last
    assert record.talk.transfers[0, 0] == pytest.approx(-0.15) and record.talk.transfers[0, 2] == pytest.approx(0.15)
    assert rewards["bidder_0"] == pytest.approx(record.utility[0, 0])
    got = record.talk.readable[0, 0, 0]
    assert got.tolist() == [False, False, True, False, False]
    ring = infos["bidder_0"]["messages"]  # the ring writes to its own members only
    assert ring == [] and infos["bidder_1"] == {"messages": []}


def test_bad_actions_are_refused_at_the_boundary_before_the_round():
    env = ArenaParallelEnv(TALK)
    env.reset(seed=0)
    cases = [
        ({"bidder_0": np.array([-0.1, 1.0])}, r"bidder_0: bid must be a finite number >= 0, got -0.1"),
        ({"bidder_0": np.array([np.nan, 1.0])}, r"bid must be a finite number >= 0, got nan"),
        ({"bidder_0": np.zeros(3)}, r"action must be a \(bid, enter\) vector of shape \(2,\), got shape \(3,\)"),
        ({"bidder_1": {"bid": 0.1, "messages": [{"channel": "private", "to": 9}]}},
         r"messages\[0\]\.to must be a seat in \[0, 4\] other than the sender 1, got 9"),
        ({"bidder_0": {"messages": [{"channel": "private", "to": 1, "payment": 0.6}]}},
         r"side payments to 0.6, above side_payment_cap=0.5"),
        ({"bidder_0": {"messages": [{"channel": "private", "to": 1, "payment": 0.3}]}},
         r"above the payer's means 0.2"),
        ({"bidder_0": {"messages": [{"channel": "private", "to": 1}] * 5}}, r"at most max_messages=4 per round, got 5"),
        ({"bidder_0": {"messages": [{"channel": "public"}]}}, r"must be one of the open channels \('private',\)"),
        ({"bidder_0": {"bid": -1}}, r"bidder_0: bid must be a finite float >= 0, got -1"),
        ({"bidder_0": {"bid": 0.1, "colour": "red"}}, r"bidder_0: unknown field 'colour' for BidAction; allowed: bid, enter, messages"),
    ]
    for actions, match in cases:
        with pytest.raises(InvalidActionError, match=match):
            env.step(actions)
    assert env.state.round == 0  # nothing was played


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match=r"n_agents must be a finite int in \[1, 64\], got 0"):
        ArenaParallelEnv({"n_agents": 0})
    with pytest.raises(ConfigError, match=r"opponents must leave at least one of the n_agents=3 seats"):
        ArenaParallelEnv({"n_agents": 3, "opponents": "truthful:3"})
    with pytest.raises(ConfigError, match="one-sided sealed-bid auction with one bid per seat, got mcafee"):
        ArenaParallelEnv({"mechanism": "mcafee", "n_agents": 4})
    with pytest.raises(UnknownIdError, match="second_prise"):
        ArenaParallelEnv({"mechanism": "second_prise"})
    with pytest.raises(ConfigError, match="delay"):
        ArenaParallelEnv({"channels": {"private": True, "delay": 1000}})
    assert ArenaParallelEnv(ArenaConfig(n_agents=4, opponents="truthful:2")).possible_agents == ["bidder_0", "bidder_1"]
