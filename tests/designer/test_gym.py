"""The Gymnasium shell (:mod:`mecharena.designer.gym`).

Checked here: Gymnasium's own ``check_env`` on every stage (its warnings pinned, not silenced);
observations inside the declared bounds under random and extreme mechanisms; Gymnasium's seeding
contract (same seed and actions: a bit-identical trajectory); registration, also by
``"module:id"`` in a fresh interpreter; the action conversions and their errors, which must leave
the episode untouched; and the equivalence with the JSON shell :class:`DesignerEnv`.
"""

import subprocess
import sys
import warnings
from dataclasses import fields

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.designer import core
from mecharena.designer.action import COALITIONS, RULES, MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.gym import (
    ENV_ID,
    FLAT_WIDTH,
    DesignerGymEnv,
    FlatActions,
    flatten_action,
    from_action,
    to_action,
    to_mechanism,
)
from mecharena.designer import population
from mecharena.designer.population import STAGES, sample

# check_env recommends Box actions in [0, 1] or [-1, 1]; penalties are in [0, 3] by design (the
# units of MechanismAction), so this is the one warning it may give. Any other fails the test.
NORMALISED_BOX = "For Box action spaces, we recommend using a symmetric and normalized space"


def random_actions(seed: int, count: int) -> list[MechanismAction]:
    """Absolute-reserve actions over every field's range (the JSON shell's and the gym shell's)."""
    rng = np.random.default_rng(seed)
    return [MechanismAction(rule=RULES[rng.integers(len(RULES))], reserve=float(rng.uniform(0, 0.6)),
                            reveal_reserve=bool(rng.integers(2)), competing_bids=bool(rng.integers(2)),
                            winner_identity=bool(rng.integers(2)), clearing_price=bool(rng.integers(2)),
                            bid_distribution=bool(rng.integers(2)), shill_penalty=float(rng.uniform(0, 3)),
                            withdrawal_penalty=float(rng.uniform(0, 3)), collusion_penalty=float(rng.uniform(0, 3)),
                            coalition=COALITIONS[rng.integers(len(COALITIONS))])
            for _ in range(count)]


def rollout(env: DesignerGymEnv, seed: int | None, actions: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(observations (T + 1, W), rewards (T,)) of one episode under ``actions``."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, _, _, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("stage", STAGES)
def test_check_env_passes_every_stage(stage):
    env = gymnasium.make(ENV_ID, stage=stage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and NORMALISED_BOX in messages[0], messages


def test_observations_stay_within_their_bounds():
    """Every stage, random mechanisms with every field often at its extremes, whole episodes."""
    space = DesignerGymEnv().observation_space
    rng = np.random.default_rng(0)
    e = 600
    for stage in STAGES:
        params = sample(stage, rng.integers(0, 1 << 40, e), rng.integers(0, 1 << 31, e))
        state = core.reset(params)
        for _ in range(core.HORIZON):
            extreme = rng.random(e) < 0.5
            mechanism = core.Mechanism(
                rule=rng.integers(0, len(RULES), e),
                reserve=np.where(extreme, rng.integers(0, 2, e), rng.uniform(0, 1, e)).astype(float),
                flags=rng.random((e, 5)) < 0.5,
                penalties=np.where(extreme[:, None], 3.0 * rng.integers(0, 2, (e, 3)), rng.uniform(0, 3, (e, 3))),
                coalition=rng.integers(0, len(COALITIONS), e))
            state, _ = core.step(params, state, mechanism)
            obs = core.observation_vectors(state, params)
            outside = (obs < space.low) | (obs > space.high) | np.isnan(obs)
            assert not outside.any(), f"stage {stage}: columns {np.unique(np.nonzero(outside)[1])} out of bounds"


def test_episode_truncates_at_the_horizon_and_refuses_further_steps():
    env = DesignerGymEnv(stage=5)
    with pytest.raises(InvalidActionError, match="call reset"):
        env.step(from_action(MechanismAction()))
    obs, info = env.reset(seed=3)
    assert obs in env.observation_space and info["stage"] == 5
    env.action_space.seed(3)
    for t in range(1, core.HORIZON + 1):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space and 0.0 <= reward <= 1.0 + 1e-12
        assert terminated is False and truncated is (t == core.HORIZON)
        assert sorted(info) == sorted(core.COMPONENTS)
    with pytest.raises(InvalidActionError, match=r"the episode is over .*call reset\(\)"):
        env.step(env.action_space.sample())
    env.reset()
    env.step(env.action_space.sample())


def test_seeded_resets_are_bit_identical():
    space = DesignerGymEnv().action_space
    space.seed(11)
    actions = [space.sample() for _ in range(core.HORIZON)]
    one, two = DesignerGymEnv(stage=4), DesignerGymEnv(stage=4)
    obs_1, rewards_1 = rollout(one, 7, actions)
    obs_2, rewards_2 = rollout(two, 7, actions)
    assert np.array_equal(obs_1, obs_2) and np.array_equal(rewards_1, rewards_2)
    # reset() without a seed continues np_random's stream: the next episodes agree too
    assert all(np.array_equal(a, b) for a, b in zip(rollout(one, None, actions), rollout(two, None, actions),
                                                    strict=True))
    obs_3, rewards_3 = rollout(DesignerGymEnv(stage=4), 8, actions)
    assert not np.array_equal(obs_1, obs_3) and not np.array_equal(rewards_1, rewards_3)


def test_make_after_import_and_by_module_prefix():
    env = gymnasium.make(ENV_ID, stage=2)
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.stage == 2 and obs[core.PROXY_COLUMN + len(core.PROXIES) + 1] == 1.0  # stage_2
    # fresh interpreters: `import mecharena` registers the env (the designer module loads on make), and
    # make by the module prefix imports the package; importing again registers nothing anew (warnings
    # are errors there, so an "Overriding environment" warning would fail)
    code = ("import importlib, sys, gymnasium, mecharena\n"
            "assert 'mecharena.designer.gym' not in sys.modules\n"
            "env = gymnasium.make('mecharena/Designer-v1', stage=3)\n"
            "obs, info = env.reset(seed=0)\n"
            "assert info['stage'] == 3, info\n"
            "importlib.reload(mecharena)\n")
    prefixed = ("import gymnasium\n"
                "env = gymnasium.make('mecharena:mecharena/Designer-v1', stage=3)\n"
                "assert env.reset(seed=0)[1]['stage'] == 3\n")
    for source in (code, prefixed):
        done = subprocess.run([sys.executable, "-W", "error", "-c", source], check=False, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def test_conversions_roundtrip():
    space = DesignerGymEnv().action_space
    for action in [MechanismAction(), *random_actions(0, 20)]:
        gym_action = from_action(action)
        assert gym_action in space
        assert to_action(gym_action) == action.model_copy(update={"reserve": action.resolved_reserve(0.0)})
        expected = core.Mechanism.from_actions([action], np.zeros(1))
        got = to_mechanism(gym_action)
        assert all(np.array_equal(getattr(got, f.name), getattr(expected, f.name)) for f in fields(core.Mechanism))
    space.seed(5)
    for _ in range(20):
        sampled = space.sample()
        back = from_action(to_action(sampled))
        assert all(np.array_equal(back[k], sampled[k]) for k in sampled)
    moved = from_action(MechanismAction(reserve_change=0.1), current_reserve=0.5)
    assert moved["reserve"].tolist() == [0.6]


def test_flat_actions_reach_every_mechanism_and_refuse_bad_vectors():
    env = FlatActions(DesignerGymEnv(stage=2))
    for action in [MechanismAction(), *random_actions(1, 30)]:
        flat = flatten_action(from_action(action))
        assert flat.astype(np.float32) in env.action_space
        expected, got = core.Mechanism.from_actions([action], np.zeros(1)), to_mechanism(env.action(flat))
        assert all(np.allclose(getattr(got, f.name), getattr(expected, f.name), atol=1e-12)
                   for f in fields(core.Mechanism))
    rule = np.full(FLAT_WIDTH, -1.0)
    rule[RULES.index("pay_as_bid")] = 0.2  # the highest score plays, whatever its sign
    assert to_action(env.action(rule)).rule == "pay_as_bid"
    for vector in (np.zeros(FLAT_WIDTH - 1), np.full(FLAT_WIDTH, 1.5), np.full(FLAT_WIDTH, np.nan), "vcg"):
        with pytest.raises(ConfigError, match=f"a flat action must be {FLAT_WIDTH} finite numbers in \\[-1, 1\\]"):
            env.action(vector)


def test_stable_baselines3_ppo_trains_on_the_flat_env():
    """The wrapped env passes SB3's own checker and its PPO runs 1,000 steps and then plays."""
    torch = pytest.importorskip("torch")
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    torch.set_num_threads(1)
    env = FlatActions(gymnasium.make(ENV_ID, stage=2))
    sb3_check_env(env, warn=False)
    model = sb3.PPO("MlpPolicy", env, n_steps=250, batch_size=50, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=1_000)
    assert model.num_timesteps >= 1_000
    obs, _ = env.reset(seed=3)
    action, _ = model.predict(obs, deterministic=True)
    _, reward, *_ = env.step(action)
    assert 0.0 <= reward <= 1.0


def bad(**changes) -> dict:
    action = from_action(MechanismAction())
    action.update(changes)
    return {k: v for k, v in action.items() if v is not None}


@pytest.mark.parametrize(("action", "message"), [
    (bad(reserve=np.array([1.5])), r"^reserve must be 1 finite number in \[0, 1\] \(shape \(1,\)\), got \[1\.5\]$"),
    (bad(reserve=np.array([np.nan])), r"^reserve must be 1 finite number in \[0, 1\].*got \[nan\]$"),
    (bad(reserve=0.5), r"^reserve must be 1 finite number in \[0, 1\] \(shape \(1,\)\), got 0\.5$"),
    (bad(penalties=np.array([-1.0, 0.0, 0.0])), r"^penalties must be 3 finite numbers in \[0, 3\].*got \[-1\.0, 0\.0, 0\.0\]$"),
    (bad(rule=7), r"^rule must be an integer in \[0, 4\] \(0 first_price, .*, 4 pay_as_bid\), got 7$"),
    (bad(rule=True), r"^rule must be an integer in \[0, 4\].*got True$"),
    (bad(coalition=np.int64(-1)), r"^coalition must be an integer in \[0, 3\].*got -1$"),
    (bad(flags=np.array([2, 0, 0, 0, 0])), r"^flags must be 5 values in \{0, 1\} \(reveal_reserve, .*\), got \[2, 0, 0, 0, 0\]$"),
    (bad(flags=None), r"^action is missing flags; an action has keys rule, reserve, flags, penalties, coalition$"),
    (bad(colour=1), r"^unknown action key 'colour'; allowed: rule, reserve, flags, penalties, coalition$"),
    ([0, 1], r"^action must be a dict with keys rule, reserve, flags, penalties, coalition, got list$"),
])
def test_bad_actions_are_refused_and_change_nothing(action, message):
    env, reference = DesignerGymEnv(stage=3), DesignerGymEnv(stage=3)
    obs, _ = env.reset(seed=1)
    reference.reset(seed=1)
    good = from_action(MechanismAction(rule="vcg", reserve=0.2))
    env.step(good)
    reference.step(good)
    state, obs = env.state, env._observation()
    with pytest.raises(ConfigError, match=message):
        env.step(action)
    assert env.state is state and np.array_equal(env._observation(), obs)
    # nothing consumed: the episode goes on exactly as one that never saw the bad action
    assert np.array_equal(env.step(good)[0], reference.step(good)[0])


def test_reset_options_are_validated_before_anything_changes():
    env = DesignerGymEnv(stage=1)
    _, info = env.reset(seed=0, options={"stage": 4, "population": 123})
    assert info["stage"] == 4 and info["population"] == 123
    assert env.reset(seed=0)[1]["stage"] == 1  # options hold for one episode
    for options, message in [({"stage": 6}, r"^stage must be one of 1, 2, 3, 4, 5, got 6$"),
                             ({"population": -1}, r"^population must be an integer in \[0, 2\^40\) .*, got -1$"),
                             ({"population": 2**40}, r"^population must be an integer in \[0, 2\^40\) \(2\^40 and up "
                                                     r"are the held-out benchmark's\), got 1099511627776$"),
                             ({"seed": 1}, r"^unknown reset option 'seed'; allowed: 'stage', 'population'$")]:
        with pytest.raises(ConfigError, match=message):
            env.reset(options=options)
    reference = DesignerGymEnv(stage=1)
    reference.reset(seed=0)
    assert np.array_equal(env.reset()[0], reference.reset()[0])  # the failed resets drew nothing
    with pytest.raises(ConfigError, match="held-out benchmark"):
        DesignerGymEnv(population=population.HELD_OUT_BASE + 3)
    with pytest.raises(ConfigError, match=r"^render_mode must be None or one of \['ansi'\], got 'human'$"):
        DesignerGymEnv(render_mode="human")
    with pytest.raises(ConfigError, match="^stage must be one of"):
        gymnasium.make(ENV_ID, stage=0)


@pytest.mark.parametrize("stage", STAGES)
def test_gym_and_json_shells_agree(stage):
    """Same population seed, episode seed and actions: bit-identical rewards, components, vectors."""
    actions = random_actions(stage, core.HORIZON)
    for options in (None, {"population": 4242 + stage}):
        gym_env, json_env = DesignerGymEnv(stage=stage), DesignerEnv(stage=stage)
        _, info = gym_env.reset(seed=stage, options=options)
        json_env.reset(seed=info["episode_seed"], population=None if options is None else info["population"])
        assert np.array_equal(gym_env._observation(), json_env.vector())
        for action in actions:
            obs, reward, _, truncated, components = gym_env.step(from_action(action))
            _, json_reward, done, json_info = json_env.step(action)
            assert reward == json_reward and truncated == done
            assert components == {c: json_info[c] for c in core.COMPONENTS}
            assert np.array_equal(obs, json_env.vector())


def test_render_shows_the_last_step():
    env = gymnasium.make(ENV_ID, stage=2, render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "stage 2, step 0/25: no step yet"
    _, reward, _, _, info = env.step(from_action(MechanismAction(rule="vcg", reserve=0.25, competing_bids=True,
                                                                 shill_penalty=1.5, coalition="restrict")))
    text = env.render()
    assert text.startswith("stage 2, step 1/25\nmechanism: vcg, reserve 0.250, reveals reveal_reserve, "
                           "competing_bids, clearing_price, shill_penalty 1.5, withdrawal_penalty 0, "
                           "collusion_penalty 0, coalition restrict\n")
    assert text.endswith(f"reward {reward:.4f} = welfare {info['welfare']:.4f} x fairness {info['fairness']:.4f}"
                         f" x participation {info['participation']:.4f} x stability {info['stability']:.4f}")
