"""The referee on the arena's loop: analytic rewards, the strategy-churn stability, a plug-in episode, bad input."""

import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mecharena import mechanisms, plugins
from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.designer import arena
from mecharena.designer.arena_gym import ENV_ID, ArenaRefereeGymEnv

ALL_PAY = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "all_pay.py"


def play(settings: dict, rules: list[dict], key: int = 0) -> list[arena.StepResult]:
    params = arena.make_params(settings)
    state = arena.reset(params, key)
    results = []
    for r in rules:
        state, result = arena.step(params, state, arena.parse_rules(params, r))
        results.append(result)
    return results


def test_second_price_with_truthful_bidders_scores_exactly_one():
    """Truthful bidding is dominant in a second-price auction (Vickrey 1961): the highest value wins and
    pays the second, which is the competitive revenue k v(k+1) with k = 1; nobody's utility is negative and
    nobody's strategy moves."""
    results = play({"populations": ["truthful:4"], "mechanisms": ["second_price"]}, [{}] * 3)
    for result in results:
        assert result.reward == 1.0
        assert result.components == {"welfare": 1.0, "fairness": 1.0, "participation": 1.0, "stability": 1.0}


def test_first_price_fairness_with_truthful_bidders_matches_order_statistics():
    """Truthful bidders in first price pay the top value v(1) against the competitive v(2): fairness is
    max(0, 1 - 2 (v(1) - v(2)) / v(1)) = max(0, 2R - 1) with R = v(2) / v(1). For n i.i.d. U[0, 1] values R is
    Beta(n - 1, 1), independent of v(1) (David and Nagaraja, *Order Statistics*, 3rd ed., 2003, sec. 2.5:
    ratios of uniform order statistics), so E = (n - 1) int_{1/2}^1 (2r - 1) r^(n-2) dr = 17/32 for n = 4."""
    settings = {"populations": ["truthful:4"], "mechanisms": ["first_price"], "markets": 4096, "rounds": 2,
                "scored": 2}
    params = arena.make_params(settings)
    state, result = arena.step(params, arena.reset(params, 3), arena.parse_rules(params, {"mechanism": "first_price"}))
    assert result.components["welfare"] == 1.0 and result.components["stability"] == 1.0
    se = np.sqrt((17 / 32) * (1 - 17 / 32) / (2 * 4096))  # a bound: the variance of a [0, 1] variable
    assert abs(result.components["fairness"] - 17 / 32) < 4 * se
    assert result.reward == pytest.approx(result.components["fairness"])


@pytest.mark.parametrize("reserve", [0.3, 0.5])
def test_a_reserve_costs_the_welfare_of_markets_it_leaves_unsold(reserve):
    """In second price with reserve r and n truthful bidders the item sells iff v(1) >= r: the welfare ratio
    is P(v(1) >= r) = 1 - r^n for U[0, 1] values (Myerson 1981; Krishna, *Auction Theory*, sec. 2.5)."""
    settings = {"populations": ["truthful:3"], "mechanisms": ["second_price"], "markets": 4096, "rounds": 2,
                "scored": 2}
    (result,) = play(settings, [{"mechanism": "second_price", "config": {"reserve_price": reserve}}], key=5)
    p = 1 - reserve ** 3
    assert abs(result.components["welfare"] - p) < 4 * np.sqrt(p * (1 - p) / (2 * 4096))
    assert result.components["participation"] == 1.0  # truthful utility is never negative, reserve or not


def test_stationary_strategies_are_stable_and_learners_are_not():
    """With a reserve the equilibrium bid function is not linear in the value, yet it does not move:
    stability is 1 however bids vary with values. An adaptive bidder's state changes every round, and shows."""
    (bne,) = play({"populations": ["bne:3"], "mechanisms": ["first_price"]}, [{"config": {"reserve_price": 0.3}}])
    assert bne.components["stability"] == 1.0
    (learning,) = play({"populations": ["adaptive:3"], "mechanisms": ["first_price"], "rounds": 4, "scored": 3}, [{}])
    assert learning.components["stability"] < 0.99


def test_stability_compares_the_bids_of_two_states_on_one_round():
    """``bids_before`` replays the round with the state that entered the round before: with a state that
    did not change it gives exactly the bids made."""
    params = arena.make_params({"populations": ["truthful:2,bne:2"], "mechanisms": ["first_price"]})
    state = arena.step(params, arena.reset(params, 0), arena.Rules(mechanism="first_price"))[0]
    from mecharena.sim.loop import play_round

    entering = state.loop
    _, record = play_round(state.episode, entering)
    assert (arena.bids_before(state.episode, entering, record) == record.bids).all()


def test_dropouts_priced_out_by_a_reserve_stop_participating():
    """Dropouts leave when their mean utility falls below their outside option: a high reserve takes their
    surplus, and participation (only agents who want to be there) falls."""
    settings = {"populations": ["dropout(outside=0.05,patience=2):4"], "mechanisms": ["second_price"],
                "markets": 256, "rounds": 8, "scored": 4}
    low, high = (play(settings, [{"config": {"reserve_price": r}}] * 2, key=1)[-1] for r in (0.0, 0.6))
    assert high.components["participation"] < low.components["participation"] - 0.2


def test_fines_on_cheats_are_not_a_cost_of_the_rules_and_fines_on_honest_agents_are():
    """Audited every round: a sybil's owner pays the shill fine for each false name that bid, a dropout
    the withdrawal fine when it exits. Only the honest dropout's fine comes off the welfare ratio."""
    from mecharena.sim.loop import play_round

    params = arena.make_params({"populations": ["sybil(m=2,explore=0.5):1,dropout(outside=0.3,patience=1):2"],
                                "mechanisms": ["first_price"], "markets": 512})
    rules = arena.Rules(mechanism="first_price", enforcement={"shill_penalty": 3, "withdrawal_penalty": 1,
                                                               "audit_probability": 1})
    state = arena.step(params, arena.reset(params, 2), rules)[0]
    loop, seen = state.loop, {"shill": 0, "exit": 0}
    for _ in range(4):
        loop, record = play_round(state.episode, loop)
        parts = arena.score(record, state.episode, np.ones(record.utility.shape), 1, None)
        honest = record.exited[:, 2:].sum(axis=1) * 1.0  # the dropouts sit in seats 2 and 3, after the false name
        best = record.outcome.max_welfare
        expected = np.clip((record.welfare - honest) / best, 0, 1)
        assert np.array_equal(parts["welfare"], expected)
        seen["shill"] += int((record.penalties[:, 0] > 0).sum())
        seen["exit"] += int(honest.astype(bool).sum())
    assert seen["shill"] > 0 and seen["exit"] > 0  # both kinds of fine were charged


def test_the_search_finds_the_best_constant_it_was_not_started_from():
    """Against truthful bidders the second-price auction without a reserve scores exactly 1 (see above);
    started from first price at the highest reserve alone, the search climbs to it."""
    params = arena.make_params({"populations": ["truthful:3"], "mechanisms": ["first_price", "second_price"],
                                "markets": 16, "rounds": 2, "scored": 1, "horizon": 2})
    start = (5, 1, 1, 0, 0, 0, 0, 0, 0, 0)
    assert arena.rules_of(params, start).config["reserve_price"] == 0.5
    found = arena.search_constant(params, episodes=16, candidates=0, starts=[start])
    assert found["rules"]["mechanism"] == "second_price" and found["rules"]["config"]["reserve_price"] == 0.0
    assert found["mean"] == 1.0 and found["held_out"]["mean"] == 1.0
    assert found["sampled"]["mean"] < 0.5  # the start was far from it
    low, _ = found["baseline"]["paired_gain"]["ci95"]
    assert low > 0  # better than first price without a reserve, on held-out episodes


def test_kept_rules_go_on_and_new_rules_open_new_markets():
    params = arena.make_params({"populations": ["adaptive:3"], "mechanisms": ["first_price"], "rounds": 3})
    first = arena.Rules(mechanism="first_price")
    state = arena.reset(params, 9)
    state, _ = arena.step(params, state, first)
    state, _ = arena.step(params, state, first)
    assert state.loop.round == 6 and state.episode.start == 0 and state.played == 6
    state, _ = arena.step(params, state, arena.Rules(mechanism="first_price", config={"reserve_price": 0.1}))
    assert state.loop.round == 3 and state.episode.start == 2 * params.settings.markets and state.played == 3


def test_an_episode_is_the_same_bit_for_bit_whatever_runs_beside_it():
    settings = {"populations": ["adaptive:2,bne:2", "truthful:3"], "mechanisms": ["first_price"], "horizon": 3}
    env = ArenaRefereeGymEnv(settings)
    other = ArenaRefereeGymEnv(settings)
    actions = [np.array([i % 6, 1, 0, 1, 0, 0, i % 4, 0, 1, 2]) for i in range(3)]
    trajectories = []
    for interleave in (False, True):
        obs, info = env.reset(seed=11)
        if interleave:
            other.reset(seed=12)
        steps = [obs]
        for action in actions:
            if interleave:
                other.step(other.action_space.sample())
            obs, reward, _, truncated, parts = env.step(action)
            steps += [obs, reward, parts]
        trajectories.append((info, steps, truncated))
    (info_a, a, done_a), (info_b, b, done_b) = trajectories
    assert info_a == info_b and done_a and done_b
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


@pytest.mark.slow  # the equilibrium solver's first solve of the all-pay auction (cached afterwards)
def test_a_plug_in_mechanism_against_the_solvers_bidders_runs_end_to_end(isolated_registries):
    """The all-pay plug-in (examples/plugins) is offered by name once loaded; the ``bne`` bidders play the
    equilibrium solver's bid function for it, which does not move (stability 1)."""
    plugins.load(str(ALL_PAY), check=False)
    settings = {"mechanisms": ["first_price", "all_pay"], "populations": ["bne:3"], "markets": 32, "rounds": 3,
                "scored": 2, "horizon": 4, "grid": {"reserve_price": [0.0]}}
    env = gymnasium.make(ENV_ID, settings=settings)
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    all_pay = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert env.unwrapped.rules(all_pay).mechanism == "all_pay"
    for t in range(4):
        obs, reward, terminated, truncated, parts = env.step(all_pay)
        assert obs in env.observation_space and 0 <= reward <= 1 and not terminated and truncated == (t == 3)
        assert parts["stability"] == 1.0 and 0.9 < parts["welfare"] <= 1.0  # the highest value wins
    with pytest.raises(InvalidActionError, match="the episode is over after 4 steps"):
        env.step(all_pay)


@pytest.mark.parametrize(("settings", "error", "message"), [
    ({"mechanisms": ["first_prize"]}, UnknownIdError, "first_price"),
    ({"mechanisms": ["mcafee"], "populations": ["truthful:4"]}, ConfigError, "mechanisms: mcafee is not a market"),
    ({"mechanisms": ["second_price"]}, ConfigError,
     r"populations: truthful:2,bne:2,adaptive:2,dropout:2 cannot play mechanism second_price: adaptive supports"),
    ({"populations": ["dirichlet(n=3):truthful,hedge"], "mechanisms": ["vcg"]}, ConfigError,
     "populations: hedge:3 cannot play mechanism vcg"),
    ({"grid": {"reserve_price": [-1.0]}}, ConfigError, "reserve_price"),
    ({"rounds": 2, "scored": 3}, ConfigError, "scored"),
    ({"penalty_levels": [4.0]}, ConfigError, r"collusion_penalty must be .*\[0, 3\], got 4"),
    ({"markets": 0}, ConfigError, r"markets must be .*\[1, 4096\], got 0"),
])
def test_bad_settings_get_one_clear_error(settings, error, message):
    with pytest.raises(error, match=message):
        arena.make_params(settings)


def test_bad_rules_and_actions_get_one_clear_error():
    params = arena.make_params({"populations": ["truthful:3"], "mechanisms": ["first_price", "second_price"]})
    with pytest.raises(ConfigError, match="mechanism must be one of first_price, second_price, got 'vcg'"):
        arena.parse_rules(params, {"mechanism": "vcg"})
    with pytest.raises(ConfigError, match="config of first_price: .*reserve_prize"):
        arena.parse_rules(params, {"mechanism": "first_price", "config": {"reserve_prize": 0.1}})
    with pytest.raises(ConfigError, match="information.competing_bids"):
        arena.parse_rules(params, {"information": {"competing_bids": "sometimes"}})
    with pytest.raises(InvalidActionError, match=r"action\[0\] must be in \[0, 11\], got 12"):
        arena.rules_of(params, [12, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(InvalidActionError, match="action must be 10 integers"):
        arena.rules_of(params, [0.5] * 10)
    with pytest.raises(InvalidActionError, match="call reset"):
        ArenaRefereeGymEnv({"populations": ["truthful:3"], "mechanisms": ["first_price"]}).step([0] * 10)


def test_the_discrete_designer_offers_every_mechanism_with_its_grid():
    params = arena.make_params({"populations": ["truthful:3"], "mechanisms": ["first_price", "posted_price"],
                                "grid": {"reserve_price": [0.0, 0.2], "price": [0.3, 0.6]}})
    assert params.arms == (("first_price", {"reserve_price": 0.0}), ("first_price", {"reserve_price": 0.2}),
                           ("posted_price", {"price": 0.3}), ("posted_price", {"price": 0.6}))
    assert mechanisms.REGISTRY.get("posted_price").config_model.model_fields.keys() >= {"price"}


def test_the_commands_play_and_audit_and_refuse_bad_input_in_one_line():
    import json

    from typer.testing import CliRunner

    from mecharena.cli import app

    runner = CliRunner()
    settings = json.dumps({"populations": ["truthful:3"], "mechanisms": ["first_price", "second_price"],
                           "markets": 16, "rounds": 2, "scored": 1, "horizon": 2})
    played = runner.invoke(app, ["designer", "arena-play", "--settings", settings, "--rules",
                                 '{"mechanism": "second_price"}', "--json"])
    assert played.exit_code == 0, played.output
    assert json.loads(played.output)["mean"]["reward"] == 1.0  # truthful bidders in second price
    for args, message in [
        (["arena-play", "--rules", "{bad"], "--rules must be a JSON object of Rules fields: Expecting property name"),
        (["arena-play", "--settings", "[1]"], "--settings must be a mapping of Settings fields"),
        (["arena-play", "--settings", "a: [b"], "--settings must be YAML or JSON"),
        (["arena-play", "--settings", '{"markets": -1}'], r"markets must be a finite int in \[1, 4096\], got -1"),
        (["arena-play", "--rules", '{"mechanism": "vcg"}'], "mechanism must be one of first_price, pay_as_bid, got 'vcg'"),
        (["arena-audit", "--settings", settings, "--episodes", "3"], r"episodes must be in \[16, 4096\], got 3"),
        (["arena-audit", "--settings", settings, "--candidates", "-1"], "candidates must be between 0 and"),
    ]:
        result = runner.invoke(app, ["designer", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and re.search(message, lines[0]), (args, lines)


def test_the_search_finds_that_showing_bids_breaks_a_ring_it_cannot_deter():
    """A planted case, its optimum derived and then checked by enumerating all 1,024 rules: a ring of three
    (bid rotation, grim trigger) whose members always give in to temptation, and one truthful outsider. Unseen,
    defections never trigger punishment, so the ring's abstentions hand items to the wrong member at low prices,
    whatever the format. Showing the competing bids lets the ring see every defection and break up for good
    (fines cannot deter members who always defect, and an audited collusion fine only adds to the money
    taken); once it bids competitively, second price is truthful: efficient, competitive revenue, stationary.
    The best rules are therefore second price with competing bids shown, the other flags and the shill and
    withdrawal fines free, and no collusion fine charged (its level or the audit at 0). The search starts only
    from every mechanism's default rules (no bids shown, best 0.30) and finds one of them."""
    params = arena.make_params({"mechanisms": ["second_price", "first_price"], "markets": 16, "rounds": 4,
                                "scored": 2, "horizon": 3, "grid": {"reserve_price": [0.0]},
                                "populations": ["cartel(threshold=0.7,temptation=1,punish_rounds=100):3,truthful:1"],
                                "penalty_levels": [0.0, 1.0], "audit_levels": [0.0, 0.5]})
    found = arena.search_constant(params, episodes=16, seed=2, candidates=0)
    rules = found["rules"]
    assert rules["mechanism"] == "second_price" and rules["information"]["competing_bids"]
    assert rules["enforcement"]["collusion_penalty"] == 0 or rules["enforcement"]["audit_probability"] == 0
    assert found["held_out"]["ci95"][0] > 0.8 and found["baseline"]["paired_gain"]["ci95"][0] > 0.3
