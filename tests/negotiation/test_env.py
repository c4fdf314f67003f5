import json

import pytest

from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.negotiation import core
from mecharena.negotiation.action import MAX_TEXT, OfferAction, WaitAction
from mecharena.negotiation.env import NegotiationEnv, play_episode
from mecharena.negotiation.scenario import TASKS, make_params


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_gives_a_bit_identical_transcript(task, tmp_path):
    first = play_episode(task, "expert", 7)
    second = play_episode(task, "expert", 7)
    lines = lambda ep: "".join(json.dumps(e, sort_keys=True) + "\n" for e in ep.transcript)
    assert lines(first) == lines(second)
    assert lines(first) != lines(play_episode(task, "expert", 8))
    # the stateful shell writes the same bytes
    env = NegotiationEnv(task, strict=False)
    env.reset(seed=7)
    while not env.done:
        env.advance([env.act_for(i, p) for i, p in enumerate([_Seat(first.policy), *env.opponents])])
    assert env.write_transcript(tmp_path / "t.jsonl").read_text() == lines(first)


class _Seat:
    def __init__(self, name):
        from mecharena.negotiation.policies import make_policy

        self.policy = make_policy(name)
        self.name = name

    def act(self, obs, rng):
        return self.policy.act(obs, rng)


def test_transcript_records_offers_messages_and_events():
    episode = play_episode("coalition_market", "expert", 3)
    kinds = {e["type"] for e in episode.transcript}
    assert {"episode", "offer", "trade", "coalition", "commit", "settle", "shock", "end"} <= kinds
    assert episode.transcript[-1]["values"][0] == pytest.approx(episode.reward)


def test_params_are_seeded():
    a, b = make_params("market_round", 4), make_params("market_round", 4)
    assert a.block_draw.tobytes() == b.block_draw.tobytes() and a.shocks == b.shocks
    assert a.block_price.tobytes() != make_params("market_round", 5).block_price.tobytes()
    with pytest.raises(UnknownIdError, match=r"unknown task 'market'; allowed: .*did you mean 'market_round'\?"):
        make_params("market", 0)
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0, got -1"):
        make_params("market_round", -1)


@pytest.fixture
def env():
    env = NegotiationEnv("market_round")
    env.reset(seed=2)
    return env


def _someone_elses_offer(env):
    """Put an open offer from the first opponent holding a block to another opponent into the episode;
    (offer id, its recipient)."""
    block = next(b for b in env.observation()["blocks"] if b["owner"] > 0 and not b["started"])
    sender = block["owner"]
    to = 2 if sender != 2 else 1
    actions = [WaitAction()] * 4
    actions[sender] = OfferAction(to=to, give=[block["id"]], payment=-0.5)
    env.state, _ = core.step(env.params, env.state, actions)
    return len(env.state.offers) - 1, to


def test_bad_actions_raise_and_leave_the_state_untouched(env):
    offer, to = _someone_elses_offer(env)
    provider = next(b["id"] for b in env.observation()["blocks"] if b["owner"] == -1)
    budget = env.observation()["budget"]
    cases = [
        ({"kind": "reserve", "block": 99}, InvalidActionError, r"block must name a block in \[0, \d+\], got 99"),
        ({"kind": "release", "block": provider}, InvalidActionError, rf"block: block {provider} belongs to the provider"),
        ({"kind": "accept", "offer": offer}, InvalidActionError, rf"offer {offer} is addressed to lab {to}, not to you"),
        ({"kind": "accept", "offer": 40}, InvalidActionError, r"offer must name an existing offer in \[0, 0\], got 40"),
        ({"kind": "commit", "coalition": 2, "funds": 1.0}, InvalidActionError, r"coalition 2 does not exist"),
        ({"kind": "offer", "to": 1, "want": [provider], "payment": budget + 1}, InvalidActionError,
         r"want: block \d+ belongs to the provider, not lab 1"),
        ({"kind": "reserve", "block": provider, "job": 77}, InvalidActionError, r"job must name a job in"),
        ({"kind": "message", "to": 1, "text": "x" * (MAX_TEXT + 1)}, ConfigError, r"text must be a str of at most 500"),
    ]
    own = [b for b in env.observation(1)["blocks"] if b["owner"] == 1 and not b["started"] and not b["allocated"]]
    if own:
        cases.append(({"kind": "offer", "to": 1, "want": [own[0]["id"]], "payment": budget + 1}, InvalidActionError,
                      rf"payment {budget + 1:g} exceeds your budget {budget:g}; allowed: at most the budget"))
    for action, error, message in cases:
        before = env.state
        transcript = list(env.transcript)
        with pytest.raises(error, match=message):
            env.step(action)
        assert env.state is before and core.states_equal(env.state, before)
        assert env.transcript == transcript


def test_penalty_mode_fines_a_malformed_action_and_nothing_else():
    strict, lax = NegotiationEnv("single_trade", opponents=["cooperative"]), \
        NegotiationEnv("single_trade", opponents=["cooperative"], strict=False)
    strict.reset(seed=1)
    lax.reset(seed=1)
    _, waited, *_ = strict.step({"kind": "wait"})
    _, fined, _, info = lax.step({"kind": "message", "text": ""})
    assert fined == waited - core.INVALID_FINE
    assert info["events"][0]["type"] == "invalid" and "text" in info["events"][0]["reason"]


def test_stepping_without_or_after_an_episode_is_refused():
    env = NegotiationEnv("single_trade")
    with pytest.raises(InvalidActionError, match=r"no episode: call reset\(\) first"):
        env.step({"kind": "wait"})
    env.reset(seed=0)
    while not env.done:
        env.step({"kind": "wait"})
    with pytest.raises(InvalidActionError, match=r"the episode is over; call reset\(\)"):
        env.step({"kind": "wait"})


def test_judge_mode_scores_pitches_without_touching_the_reward():
    plain = play_episode("market_round", "expert", 5)
    judged = play_episode("market_round", "expert", 5, judge=True)
    assert judged.reward == plain.reward and judged.values == plain.values
    assert plain.judge is None and judged.judge is not None
    pitches = [e for e in judged.transcript if e["type"] == "pitch"]
    assert pitches and all("judge" in e for e in pitches)
    assert not any("judge" in e for e in plain.transcript)
    by_speaker = {}
    for e in pitches:
        by_speaker.setdefault(e["lab"], []).append(e["judge"]["truth"])
    seats = judged.transcript[0]["seats"]
    for lab, truths in by_speaker.items():  # the deceptive lab's claims are the false ones
        assert all(t == (0.0 if seats[lab] == "deceptive" else 1.0) for t in truths), (seats[lab], truths)
