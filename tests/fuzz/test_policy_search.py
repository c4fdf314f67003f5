"""The repeated-game policy search: the policy agent type, CMA-ES over its weights, and what it rediscovers."""

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.base import Feedback, MarketContext, Observation
from mecharena.agents.policy import F, TRUTHFUL, WEIGHTS, PolicyParams, decide, features, format_weights, init, parse_weights
from mecharena.agents.policy import feature_names, start_weights
from mecharena.agents.policy import act as policy_act
from mecharena.agents.policy import init as policy_init
from mecharena.agents.policy import update as policy_update
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.fuzz import fuzz
from mecharena.fuzz.policy_search import policy_deviation, policy_search, polish
from mecharena.fuzz.score import Scorer
from mecharena.mechanisms.policy import InformationPolicy
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

SNIPE = Cell(mechanism="first_price", config={"reserve_price": 0.5}, population="truthful:3", rounds=6)
FEE = Cell(mechanism="second_price", config={"entry_fee": 0.1}, population="dropout:4", rounds=10)


def test_default_policy_is_truthful_and_always_in():
    gain = Scorer(SNIPE).score(policy_deviation(TRUTHFUL), seed=4, markets=200, rounds=3)
    assert gain.mean == 0.0 and gain.hi == 0.0


def _context(information: InformationPolicy) -> MarketContext:
    mech = mechanisms.get("first_price")
    cfg = mech.config({"reserve_price": 0.3})
    return MarketContext(mech, cfg, mech.market_spec(cfg, 4), 4, ValueDistribution(), information,
                         seats=slice(0, 2))


@pytest.mark.parametrize("revealed", [False, True])
def test_features_read_only_what_the_information_policy_reveals(revealed):
    info = InformationPolicy(clearing_price=revealed, winner_identity=revealed, competing_bids=revealed)
    ctx = _context(info)
    params = PolicyParams()
    draws = type("D", (), {"markets": 1})()
    state = policy_init(ctx, params, 2, draws)
    bids = np.array([[0.2, 0.1, 0.7, 0.4]])
    winners = np.array([[False, False, True, False]])
    observation = Observation(np.array([0.7 if revealed else np.nan]), winners if revealed else None,
                              bids if revealed else None, None)
    feedback = Feedback(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2), bool))
    values = np.array([[0.5, 0.2]])
    action = policy_act(ctx, params, state, values, draws)
    new = policy_update(ctx, params, state, values, action, observation, feedback, draws)
    expect = (0.7, 1.0, 0.7) if revealed else (0.0, 0.0, 0.0)
    np.testing.assert_array_equal([new.price[0, 0], new.rival_won[0, 1], new.rival_bid[0, 0]], expect)


@pytest.mark.parametrize(("weights", "message"), [
    ("1/2", f"w must hold {WEIGHTS} numbers separated by '/'"),
    ("/".join(["0"] * (WEIGHTS - 1) + ["nan"]), f"w entry {WEIGHTS - 1} must be a finite number in"),
    ("/".join(["0"] * (WEIGHTS - 1) + ["1" * 5000]), "1000], got '1111111111"),
])
def test_bad_weights_name_the_field_and_what_is_allowed(weights, message):
    with pytest.raises(ConfigError, match="^policy: ") as info:
        agents.population(f"policy(w={weights}):1,truthful:2")
    assert message in str(info.value) and len(str(info.value)) < 400


def test_weights_round_trip_through_the_spec():
    w = np.linspace(-2, 3, WEIGHTS)
    np.testing.assert_allclose(parse_weights(format_weights(w)), w, rtol=1e-5, atol=1e-6)
    assert F * 3 == WEIGHTS == 30


def test_search_is_deterministic_and_resumes_from_its_store(tmp_path):
    kwargs = {"seed": 5, "population": 4, "markets": 40, "rounds": 3, "eval_markets": 40}
    direct = policy_search(SNIPE, generations=3, **kwargs)
    again = policy_search(SNIPE, generations=3, **kwargs)
    assert direct.deviation == again.deviation and direct.fresh == again.fresh
    store = tmp_path / "search.jsonl"
    policy_search(SNIPE, generations=2, store=store, **kwargs)
    resumed = policy_search(SNIPE, generations=3, store=store, **kwargs)
    assert resumed.deviation == direct.deviation and resumed.fresh == direct.fresh
    assert len(store.read_text().splitlines()) == 1 + 3  # header and one line per generation
    with pytest.raises(ConfigError, match="holds a search with other settings"):
        policy_search(SNIPE, generations=3, store=store, **{**kwargs, "seed": 6})


@pytest.mark.parametrize(("setting", "message"), [
    ({"rounds": 1}, "rounds must be >= 2, got 1"), ({"population": 1}, "population must be in [4, 1000]"),
    ({"sigma": float("nan")}, "sigma must be a finite number in (0, 4]"), ({"seed": -1}, "seed must be an integer"),
])
def test_bad_settings_are_refused(setting, message):
    with pytest.raises(ConfigError) as info:
        policy_search(SNIPE, **{"seed": 0, "generations": 1, **setting})
    assert message in str(info.value)


def test_fuzz_searches_the_policy_family_on_repeated_rounds_only():
    result = fuzz(SNIPE, families=["policy", "shading"], budget=16, seed=1, markets=40, rounds=3, eval_markets=40)
    policy_trials = [t for t in result.trials if t.deviation.family == "policy"]
    assert len(policy_trials) == 8 and result.evaluations == 8 + len(result.trials) - 8
    assert policy_trials[0].deviation.agent_spec.startswith("policy(w=")
    small = fuzz(SNIPE, families=["policy", "shading"], budget=2, seed=1, markets=40, rounds=3, eval_markets=40)
    assert sum(t.deviation.family == "policy" for t in small.trials) == 4  # the least population CMA-ES runs with
    one_round = fuzz(SNIPE, families=["policy", "shading"], budget=4, seed=1, markets=40, rounds=1, eval_markets=40)
    assert one_round.skipped["policy"] == "the policy search needs repeated rounds (rounds >= 2), got 1"


@pytest.mark.slow
def test_rediscovers_reserve_sniping():
    """First price, public reserve 0.5, two truthful rivals: bidding just above the reserve wins at the
    reserve whenever both rivals' values are below it. The policy search, told nothing about sniping,
    reaches >= 90% of the reserve_sniping family's fresh gain, and its found bids sit at the reserve."""
    family = fuzz(SNIPE, families=["reserve_sniping"], budget=12, seed=1, markets=300, rounds=6, min_trials=20)
    found = policy_search(SNIPE, seed=1, markets=300)
    assert found.fresh.mean >= 0.9 * family.fresh.mean, (found.fresh, family.fresh)
    assert found.fresh.lo > 0  # the truthful start gains exactly 0 (test_default_policy_is_truthful_and_always_in)
    ctx = Cell.model_validate(SNIPE.model_dump()).episode().context
    state = init(ctx, PolicyParams(), 1, type("D", (), {"markets": 101})())
    values = np.linspace(0.6, 1.0, 101)[:, None]
    feats = features(ctx, state, values)[:, :, :found.weights.size // 3]
    bids, enter = decide(found.weights, feats, values, ctx.spec.action_high)
    assert enter.all() and 0.5 <= np.median(bids) <= 0.6, bids.ravel()


@pytest.mark.slow
def test_rediscovers_exit_against_an_entry_fee():
    """Second price with an entry fee of 0.1 among dropout agents: sitting out the rounds whose
    expected surplus is below the fee pays. The search at least matches the exit family (dropout
    timing); it sits out part of the rounds, and the unsearched truthful policy gains far less."""
    family = fuzz(FEE, families=["exit"], budget=30, seed=1, markets=300, rounds=10, min_trials=40)
    found = policy_search(FEE, seed=1, markets=300)
    assert found.fresh.mean >= 0.9 * family.fresh.mean, (found.fresh, family.fresh)
    truthful = Scorer(FEE).score(policy_deviation(TRUTHFUL), seed=found.fresh.seed, markets=2000, rounds=10)
    assert truthful.hi < found.fresh.lo, (truthful, found.fresh)  # no search, no exits: far less
    cell = Cell.model_validate({**FEE.model_dump(), "population": f"{found.deviation.agent_spec}:1,dropout:3",
                                "markets": 500})
    out = np.mean([(r.bids[:, 0] <= 0).mean() for r in play(cell.episode(), cell.rounds)])
    assert 0.1 < out < 0.9, out  # it sits out (pays no fee) in some rounds and comes back in others


def test_the_final_round_is_seen_only_where_the_horizon_is_told_and_older_weights_still_play():
    """Reputation over 4 rounds: a quality of 1 - final delivers 1 until the last round, and only with horizon 4;
    the same weights without the final feature (stored before it existed) play as with it weighing 0."""
    mechanism = mechanisms.get("reputation")
    width = len(feature_names(mechanism))
    w = start_weights(mechanism)
    quality = 3 * width  # the first action field's map
    w[quality:quality + width] = 0.0
    w[quality] = 1.0
    w[quality + width - 1] = -1.0  # final
    old = np.delete(w, [k * width + width - 1 for k in range(w.size // width)])  # one feature fewer per map

    def delivered(spec: str) -> np.ndarray:
        cell = Cell(mechanism="reputation", markets=50, population=f"{spec}:1,truthful:2")
        return np.stack([r.actions["quality"][:, 0] for r in play(cell.episode(), 4)])

    told = delivered(f"policy(w={format_weights(w)},horizon=4)")
    np.testing.assert_array_equal(told[:3], 1.0)
    np.testing.assert_array_equal(told[3], 0.0)
    np.testing.assert_array_equal(delivered(f"policy(w={format_weights(w)})"), 1.0)  # horizon unknown
    np.testing.assert_array_equal(delivered(f"policy(w={format_weights(old)},horizon=4)"), 1.0)


@pytest.mark.parametrize("horizon, shown", [("-1", "-1"), ("x", "'x'")])
def test_a_horizon_that_is_not_a_count_of_rounds_is_refused_in_one_line(horizon, shown):
    cell = Cell(mechanism="reputation", markets=2, population=f"policy(horizon={horizon}):1,truthful:2")
    with pytest.raises(ConfigError, match=rf"^policy: horizon must be a finite int in \[0, 100000\], got {shown}$"):
        list(play(cell.episode(), 1))


def test_the_policy_maps_features_to_the_mechanisms_declared_actions(isolated_registries):
    """Token rewards declare ``unlock``: weights beyond the first 30 (the 10 features of a stateless market) set
    it (here: bias 1, so always unlock); the search starts from every field at its default, over the features
    a stateful market adds; a spec for another number of fields is refused."""
    from mecharena import plugins
    from mecharena.agents.policy import FEATURES, feature_names, start_weights
    from mecharena.fuzz.policy_search import start_point

    plugins.load("examples/plugins/token_incentive.py")
    token = mechanisms.get("token_rewards")
    assert feature_names(token) == (*FEATURES, "round", "own_escrow", "final")  # it keeps state: its escrow, the end
    wide = np.eye(F + 3)[0]
    assert start_point(Cell(mechanism="token_rewards", population="contributor:2")).size == 4 * (F + 3)
    np.testing.assert_array_equal(start_weights(token), np.concatenate([wide, 0 * wide, wide, 0 * wide]))
    unlock = np.concatenate([TRUTHFUL, np.eye(F)[0]])
    config = {"vesting": 0.5, "early_unlock_fee": 0.25, "emission": 100.0}

    def records(spec):
        episode = Cell(mechanism="token_rewards", config=config, population=f"{spec}:1,contributor:1", markets=50,
                       seed=2).episode()
        return list(play(episode, 3))

    always = records(f"policy(w={format_weights(unlock)})")
    never = records(f"policy(w={format_weights(TRUTHFUL)})")
    assert all((r.actions["unlock"][:, 0] == 1).all() and (r.actions["unlock"][:, 1] == 0).all() for r in always)
    assert all((r.actions["unlock"][:, 0] == 0).all() for r in never)
    escrow = always[0].next_state["escrow"][:, 0]
    np.testing.assert_allclose(always[1].events["forfeited"][:, 0], 0.25 * escrow)  # the fee on what it unlocked
    np.testing.assert_allclose(always[1].events["released"][:, 0], 0.75 * escrow)
    two_fields = np.concatenate([TRUTHFUL, np.zeros(2 * F)])
    with pytest.raises(ConfigError, match=r"^policy: w holds weights for 2 action fields but token_rewards declares "
                                          r"1 \(unlock\)$"):
        records(f"policy(w={format_weights(two_fields)})")


def test_the_polish_walks_an_action_field_up_to_the_edge_of_a_cliff():
    """Service marketplace, proposals ranked by skill, shortfalls under notice = 0.3 unnoticed and never audited:
    from full effort, the polish finds the constant effort 1 - notice (0.70 to 0.72 on its grids), the edge
    below which every task is disputed and refunded. Seat 0 wins the round's tasks (one expected, two posted at
    v >= 0.5 each with probability 1/2) when its skill is the top of four i.i.d. U[0, 1] ones, so it saves
    c (1 - e) E[theta 1{top}] = 0.3 x 0.3 x E[theta^4] = 0.018 per round."""
    service = mechanisms.get("service")
    cell = Cell(mechanism="service", config={"first_bias": 0.0, "notice": 0.3}, population="truthful:4",
                values="uniform:persistent=true", rounds=4)
    scorer = Scorer(cell)
    start = start_weights(service)
    width = len(feature_names(service))
    honest = scorer.score(policy_deviation(start), seed=3, markets=400, rounds=4)
    weights, gain = polish(scorer, start, honest, deviators=1, seed=3, markets=400, rounds=4)
    quality = weights[3 * width:4 * width]
    assert 0.70 <= quality[0] <= 0.72 and not quality[1:].any()
    fresh = scorer.score(policy_deviation(weights), seed=11, markets=4000, rounds=4)
    expect = 0.3 * (1 - quality[0]) / 5
    assert fresh.lo - 0.001 <= expect <= fresh.hi + 0.001 and gain.mean > 0.01
