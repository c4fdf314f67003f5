"""Designers on the held-out benchmark, the reward-hacking audit, the curriculum and the CLI."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.designer import core, evaluate, policies, population
from mecharena.designer.action import MechanismAction
from mecharena.designer.curriculum import Curriculum
from mecharena.designer.env import DesignerEnv, VectorDesignerEnv, population_seeds
from mecharena.designer.policies import ConstantPolicy, LearnedPolicy, OraclePolicy, make_policy, train_learned

runner = CliRunner()

DEGENERATE = {
    "first price, reserve 0": MechanismAction(rule="first_price", reserve=0.0),
    "every penalty at its maximum": MechanismAction(shill_penalty=3, withdrawal_penalty=3, collusion_penalty=3,
                                                    coalition="penalize_suspected"),
    "every penalty at its maximum, confirmed": MechanismAction(shill_penalty=3, withdrawal_penalty=3,
                                                               collusion_penalty=3, coalition="penalize_confirmed"),
    "everything hidden": MechanismAction(reveal_reserve=False, clearing_price=False),
    "everything revealed": MechanismAction(competing_bids=True, winner_identity=True, bid_distribution=True),
    "reserve at the bound": MechanismAction(reserve=1.0),
}


class FlipFlop(policies.Policy):
    """Switches between two mechanisms every step (churn as a strategy: never let bidders settle)."""

    name = "flip-flop"

    def __init__(self, first: MechanismAction, second: MechanismAction) -> None:
        self.pair = policies.stack([first, second])

    def decide(self, vectors: np.ndarray) -> core.Mechanism:
        in_force = vectors[:, :core.MECHANISM_WIDTH]
        first = (np.abs(in_force - self.pair.vectors()[0]) < 1e-9).all(axis=1)
        return policies.take(self.pair, first.astype(np.int64))  # the first in force -> the second


FLIP_FLOPS = {
    "flip-flop between second price and first price": (MechanismAction(), MechanismAction(rule="first_price")),
    "flip-flop between open vcg and hidden pay-as-bid": (
        MechanismAction(rule="vcg", competing_bids=True, winner_identity=True),
        MechanismAction(rule="pay_as_bid", clearing_price=False, collusion_penalty=3, coalition="penalize_confirmed")),
}


@pytest.fixture(scope="module")
def learned() -> dict[int, LearnedPolicy]:
    """A small-budget learned designer per adversarial stage (a few seconds each)."""
    return {stage: LearnedPolicy(train_learned(stage, populations=128)) for stage in (2, 3, 4, 5)}


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3, 4, 5])
def test_no_degenerate_policy_reaches_the_learned_designer(learned, stage):
    """Reward-hacking audit: constant degenerate mechanisms stay well below what learning earns.

    Stage 1 (truthful bidders only) is excluded on purpose: there every truthful rule is optimal
    whatever the penalties or the information, and a constant policy is the right answer.
    """
    target = evaluate.scores(learned[stage], stage, episodes=2)[0].mean()
    degenerate = {name: ConstantPolicy(action) for name, action in DEGENERATE.items()} | {
        name: FlipFlop(*pair) for name, pair in FLIP_FLOPS.items()}
    for name, policy in degenerate.items():
        score = evaluate.scores(policy, stage, episodes=2)[0].mean()
        assert score < target - 0.1, f"{name} scores {score:.3f} against the learned {target:.3f}"


def test_reserve_at_the_bound_earns_nothing():
    """Nobody trades above every value: welfare and fairness are 0, never a free 1.0."""
    reward, components = evaluate.scores(ConstantPolicy(DEGENERATE["reserve at the bound"]), 1, episodes=1)
    assert reward.max() == 0.0
    assert components[:, core.COMPONENTS.index("fairness")].max() == 0.0


def test_oracle_beats_the_best_constant_where_context_matters():
    """The oracle picks per population; at stage 4 (cartels or not) it must beat one fixed mechanism."""
    found = evaluate.audit(4, episodes=2, populations=128)
    assert found["gap"]["ci95"][0] > 0.02 and not found["bandit"]
    assert found["oracle"]["reward"]["mean"] > found["constant"]["reward"]["mean"]


def test_the_oracle_needs_the_hidden_population():
    with pytest.raises(ConfigError, match="oracle needs the hidden population"):
        OraclePolicy().decide(np.zeros((1, core.OBSERVATION_WIDTH)))


def test_policies_act_on_json_observations():
    env = DesignerEnv(stage=3)
    observation = env.reset(seed=4)
    for spec in ("random", "greedy"):
        action = make_policy(spec, 3).act(observation)
        assert isinstance(action, MechanismAction)
        env.step(action)  # a policy's action is always valid
    with pytest.raises(ConfigError, match="observation.vector must be"):
        make_policy("greedy").act({"vector": [0.0, 1.0]})


def test_greedy_reacts_to_the_collusion_signal():
    vector = np.zeros((2, core.OBSERVATION_WIDTH))
    vector[1, core.PROXY_COLUMN + core.PROXIES.index("collusion_rate")] = 0.8
    chosen = policies.GreedyPolicy().decide(vector)
    assert policies.action_of(chosen, 0).rule == "second_price"
    collusive = policies.action_of(chosen, 1)
    assert collusive.rule == "pay_as_bid" and not collusive.competing_bids and collusive.collusion_penalty == 3


def test_make_policy_errors(tmp_path):
    with pytest.raises(UnknownIdError, match="unknown policy 'smart'; allowed: random, greedy"):
        make_policy("smart")
    with pytest.raises(ConfigError, match="constant policy file"):
        make_policy(f"constant:{tmp_path / 'missing.json'}")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rule": "english"}))
    with pytest.raises(ConfigError, match="rule must be one of"):
        make_policy(f"constant:{bad}")
    with pytest.raises(ConfigError, match="learned model"):
        make_policy(f"learned:{tmp_path / 'missing.npz'}")


def test_learned_model_roundtrip(tmp_path):
    bandit = train_learned(2, populations=16, rounds=1)
    path = tmp_path / "model.npz"
    bandit.save(path)
    loaded = make_policy(f"learned:{path}")
    vectors = evaluate.benchmark_params(2, 1)
    observations = core.observation_vectors(core.reset(vectors), vectors)
    assert np.array_equal(loaded.decide(observations).rule, LearnedPolicy(bandit).decide(observations).rule)
    assert [name for name, _ in loaded.bandit.arms] == [name for name, _ in bandit.arms]
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(path, **{k: v for k, v in arrays.items() if k not in ("names", "actions")},
             arms=np.arange(len(bandit.arms)))  # the older format: menu indices
    stale = f"^learned model {re.escape(str(path))}: written before models stored their arms: retrain it"
    with pytest.raises(ConfigError, match=stale):
        make_policy(f"learned:{path}")
    arrays["actions"] = np.array(['{"rule": "english"}'] * len(bandit.arms))
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=f"learned model {re.escape(str(path))}: rule must be one of 'first_price'"):
        make_policy(f"learned:{path}")


def test_curriculum_promotes_on_the_rolling_mean_of_a_full_window():
    curriculum = Curriculum(window=3, thresholds={1: 0.9})
    assert not curriculum.record([1.0, 1.0])  # window not full yet
    assert not curriculum.record([0.5])  # 1, 1, 0.5: mean 0.83 < 0.9
    assert not curriculum.record([1.0])  # 1, 0.5, 1: still 0.83
    assert curriculum.stage == 1 and curriculum.rolling == pytest.approx(2.5 / 3)
    assert not curriculum.record([1.0])  # 0.5, 1, 1
    assert curriculum.record([1.0])  # 0.5 has left the window: 1, 1, 1
    assert curriculum.stage == 2 and curriculum.history == [{"stage": 1, "rolling": 1.0, "bar": 0.9}]
    assert not curriculum.record([1.0] * 10)  # no bar for stage 2 here: it stays
    with pytest.raises(ConfigError, match="threshold for stage 7"):
        Curriculum(thresholds={7: 0.5})
    with pytest.raises(ConfigError, match="stage must be one of"):
        Curriculum(stage=6)


def test_vector_env_follows_the_curriculum():
    """Stage 1 under second price earns 1.0 per step: the curriculum promotes to stage 2 populations."""
    env = VectorDesignerEnv(8, curriculum=Curriculum(window=8))
    env.reset(seed=1)
    good = policies.stack([MechanismAction()] * 8)
    promoted = False
    for _ in range(core.HORIZON):
        *_, info = env.step(good)
        promoted |= bool(info.get("promoted", False))
    assert promoted and env.stage == 2 and (env.params.stage == 2).all()
    stuck = VectorDesignerEnv(8, curriculum=Curriculum(window=8))
    stuck.reset(seed=1)
    bad = policies.stack([MechanismAction(reserve=1.0)] * 8)
    for _ in range(core.HORIZON):
        stuck.step(bad)
    assert stuck.stage == 1


def test_run_benchmark_resumes(tmp_path, monkeypatch):
    calls = []

    def fake(stage, policies, episodes, seed, populations=512):
        calls.append(stage)
        return {"stage": stage, "episodes": episodes, "seed": seed}

    monkeypatch.setattr(evaluate, "benchmark", fake)
    evaluate.run_benchmark([1, 2], {}, tmp_path, episodes=2)
    evaluate.run_benchmark([1, 2, 3], {}, tmp_path, episodes=2)
    assert calls == [1, 2, 3]
    evaluate.run_benchmark([1], {}, tmp_path, episodes=3)  # other settings: recomputed
    assert calls == [1, 2, 3, 1]


def test_cli_eval_and_audit(tmp_path):
    result = runner.invoke(app, ["designer", "eval", "--policy", "greedy", "--stage", "2", "--episodes", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["policy"] == "greedy" and len(data["per_population"]) == 20
    assert data["reward"]["ci95"][0] <= data["reward"]["mean"] <= data["reward"]["ci95"][1]
    constant = tmp_path / "constant.json"
    result = runner.invoke(app, ["designer", "audit", "--stage", "2", "--episodes", "1", "--out", str(constant)])
    assert result.exit_code == 0, result.output
    assert "oracle - constant (paired)" in result.output
    result = runner.invoke(app, ["designer", "eval", "--policy", f"constant:{constant}", "--stage", "2",
                                 "--episodes", "1", "--json"])
    assert result.exit_code == 0, result.output
    for args, message in ((["--policy", "greedy", "--stage", "9"], "stage must be one of 1, 2, 3, 4, 5, got 9"),
                          (["--policy", "genius"], "unknown policy 'genius'"),
                          (["--policy", "greedy", "--episodes", "0"], "episodes must be an integer in"),
                          (["--policy", "greedy", "--populations", "0"], "populations must be an integer in [1, 20]")):
        result = runner.invoke(app, ["designer", "eval", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(app, ["designer", "audit", "--candidates", "400000"])
    assert result.exit_code == 2 and "candidates must be between 0 and 368640" in result.output, result.output


def test_policies_explain_their_choice():
    env = DesignerEnv(stage=4)
    observation = env.reset(seed=2)
    for _ in range(5):
        observation, *_ = env.step({"rule": "second_price"})
    greedy = make_policy("greedy").explain(observation)
    assert len(greedy) == 4 and greedy[0].startswith("collusion signal in")
    learned = LearnedPolicy(train_learned(4, populations=16, rounds=1)).explain(observation)
    assert learned[0].startswith("predicted mean reward over the next 3 steps:")
    assert ConstantPolicy(MechanismAction()).explain(observation) == ["One mechanism whatever the market shows."]
    with pytest.raises(ConfigError, match="observation.vector must be"):
        make_policy("random").explain({})


def test_play_records_an_episode_and_steps_stops_it_early(tmp_path):
    full = runner.invoke(app, ["designer", "play", "--policy", "random", "--stage", "2", "--seed", "3",
                               "--out", str(tmp_path / "full"), "--json"])
    assert full.exit_code == 0, full.output
    assert json.loads(full.output)["steps"] == core.HORIZON
    short = runner.invoke(app, ["designer", "play", "--policy", "random", "--stage", "2", "--seed", "3",
                                "--out", str(tmp_path / "short"), "--steps", "4", "--json"])
    assert short.exit_code == 0, short.output
    lines = {name: (tmp_path / name / "steps.jsonl").read_text().splitlines() for name in ("full", "short")}
    assert len(lines["short"]) == 4 and lines["short"] == lines["full"][:4]  # the same episode, cut short
    rewards = [json.loads(line)["reward"] for line in lines["short"]]
    assert json.loads(short.output)["reward"] == pytest.approx(np.mean(rewards))
    for steps in ("0", str(core.HORIZON + 1)):
        result = runner.invoke(app, ["designer", "play", "--policy", "random", "--out", str(tmp_path / steps),
                                     "--steps", steps])
        assert result.exit_code == 2, result.output
        assert f"steps must be between 1 and {core.HORIZON} (the episode's length), got {steps}" in result.output


def test_the_audit_climbs_to_an_optimum_it_was_not_seeded_with(monkeypatch):
    """Stage 1 (truthful bidders, one unit): second price or VCG with no reserve and no shill fine
    scores exactly 1 (test_core: truthful second price), about 2% of the grid. Without the menu
    and from 8 random grid points, none of them such a mechanism, the local search reaches it."""
    monkeypatch.setattr(policies, "menu", lambda: [])
    found = policies.search_constant(1, populations=16, candidates=8, seed=1)
    assert found["sampled"]["mean"] < 1.0  # the random start was not the optimum ...
    action = MechanismAction(**found["action"])
    assert found["mean"] == pytest.approx(1.0, abs=1e-12)  # ... the climb found one
    assert action.rule in ("second_price", "vcg") and action.reserve == 0 and action.shill_penalty == 0
    assert found["evaluated"] > 8 and found["grid"] == policies.GRID_SIZE == 368_640


def test_the_audit_searches_the_grid_beyond_the_menu():
    """The full grid holds mechanisms the 420-mechanism menu lacks (reserves, penalty levels, flag
    combinations); at stage 3 the best of them beats the menu's best on the same populations."""
    found = policies.search_constant(3, populations=64, candidates=512)
    menu = [action for _, action in policies.menu()]
    params = population.sample(3, population_seeds(0, 64), list(range(64)))
    menu_best = policies._arm_values(params, None, core.HORIZON).mean(axis=0).max()
    assert found["mean"] > menu_best
    assert MechanismAction(**found["action"]) not in menu
    assert policies.grid_action(policies.grid_point(MechanismAction(**found["action"]))) == MechanismAction(
        **found["action"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"populations": 8}, "populations must be >= 16, got 8"),
    ({"candidates": -1}, "candidates must be between 0 and 368640 (the grid's size), got -1")])
def test_the_audit_refuses_bad_budgets(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        policies.search_constant(3, **kwargs)


@pytest.mark.parametrize("stage", [2, 4, 5])
def test_a_stratified_subset_keeps_the_benchmarks_mix(stage):
    """K of the 20 held-out populations: distinct, sorted, all 20 at K = 20; and where the benchmark mixes
    markets with and without a ring (stage 4) or several unit counts, four populations hold both kinds."""
    every = population.sample(stage, population.held_out_seeds())
    for k in range(1, 21):
        chosen = evaluate.stratified(stage, k)
        assert chosen == sorted(set(chosen)) and len(chosen) == k and 0 <= chosen[0] and chosen[-1] < 20
    assert evaluate.stratified(stage, 20) == list(range(20))
    four = evaluate.stratified(stage, 4)
    rings = (every.kind == population.CARTEL).any(axis=1)
    if rings.any() and not rings.all():
        assert rings[four].any() and not rings[four].all()
    if len(set(every.units)) > 1:
        assert len(set(every.units[four])) > 1
    with pytest.raises(ConfigError, match=re.escape("populations must be an integer in [1, 20] (of the held-out "
                                                    "benchmark), got 21")):
        evaluate.stratified(stage, 21)


def test_scores_on_a_subset_are_those_populations_scores():
    """A population's episodes do not depend on the batch: the subset's scores are the full run's rows."""
    policy = policies.GreedyPolicy()
    full, full_components = evaluate.scores(policy, 3, episodes=2)
    chosen = evaluate.stratified(3, 5)
    part, part_components = evaluate.scores(policy, 3, episodes=2, populations=chosen)
    assert np.array_equal(part, full[chosen]) and np.array_equal(part_components, full_components[chosen])
    result = evaluate.evaluate(policy, 3, episodes=2, populations=chosen)
    assert result["populations"] == chosen and result["per_population"] == [round(float(r), 6) for r in part]
