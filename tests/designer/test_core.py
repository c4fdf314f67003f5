"""The referee environment's pure core (:mod:`mecharena.designer.core`) and its shells.

Checked here: the kernel's clearing rule against the arena's own mechanism engine; that every
field of :class:`MechanismAction` reaches the simulation; the reward components as the core's
module docstring defines them, against hand computations of whole rounds (a round's values are
``hash_uniform(episode key, round, seat, 0)``, so a test can replay them); the collusion signal;
seeded determinism and batch invariance; the held-out population seeds; and the errors of the
boundary.
"""

import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecharena import mechanisms
from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.seeding import hash_uniform
from mecharena.designer import core, env, population
from mecharena.designer.action import MechanismAction
from mecharena.designer.population import CARTEL, DROPOUT, EMPTY, HELD_OUT_BASE, SHADER, SHILL, TRUTHFUL, Params

WELFARE, FAIRNESS, PARTICIPATION, STABILITY = (core.FEATURES.index(f) for f in core.COMPONENTS)
PRICE, EXITS, SIGNAL, SOLD = (core.FEATURES.index(f) for f in ("price_mean", "dropouts", "collusion", "sold"))


def play(params: Params, actions, steps: int):
    """``steps`` steps from reset, the same action(s) each step (one action, or one per episode).

    Returns:
        (final State, (steps, E) rewards, (steps, E, 4) components).
    """
    e = params.units.size
    actions = [actions] * e if isinstance(actions, MechanismAction) else list(actions)
    state = core.reset(params)
    rewards, components = [], []
    for _ in range(steps):
        mechanism = core.Mechanism.from_actions(actions, state.mechanism[:, core.RESERVE_COLUMN])
        state, result = core.step(params, state, mechanism)
        rewards.append(result.reward)
        components.append(result.components)
    return state, np.array(rewards), np.array(components)


def documented_reward(state: core.State) -> np.ndarray:
    """(E,) the last step's reward by the definition in docs/designer.md and core's docstring: the mean
    over the last SCORED rounds of welfare ratio x fairness x participation x stability, each round's
    components read from the operator's recorded window."""
    rounds = core.ordered_window(state)[:, -core.SCORED:]
    return (rounds[:, :, WELFARE] * rounds[:, :, FAIRNESS] * rounds[:, :, PARTICIPATION]
            * rounds[:, :, STABILITY]).mean(axis=1)


def values_of(params: Params, row: int, rounds: int) -> np.ndarray:
    """(rounds, SEATS) the values the kernel draws for episode ``row`` (seat i, round t)."""
    key = params.seed[row]
    return np.array([[hash_uniform(key, t, i, 0) for i in range(population.SEATS)] for t in range(rounds)])


def copy_state(state: core.State) -> core.State:
    return replace(state, **{f.name: getattr(state, f.name).copy() for f in fields(state)})


def same_state(a: core.State, b: core.State, rows=slice(None)) -> bool:
    """Bit-identical fields (NaN == NaN: ``ratio`` marks seats that did not bid)."""
    return all(np.array_equal(getattr(a, f.name)[rows], getattr(b, f.name), equal_nan=True) for f in fields(a))


# ---- 1. the referee's clearing rule is the engine's ----------------------------------------------------------


def engine(rule: str, units: int, reserve: float) -> tuple[str, dict]:
    """The arena mechanism and config that charge what the referee's ``rule`` charges.

    The referee's uniform_price charges the lowest accepted bid: the engine's
    ``pricing="lowest_winning"`` (its default, ``highest_losing``, is the (k+1)-th price). The
    reserve means the same in every rule here: a bid at or above it may win and no price falls
    below it; VCG's "the seller keeps unsold units at the reserve" makes a unit-demand winner pay
    max(reserve, (k+1)-th bid), exactly the referee's rule, so VCG is cross-checked with reserve too.
    """
    if rule in ("first_price", "second_price"):
        return rule, {"reserve_price": reserve}
    config = {"units": units, "reserve_price": reserve}
    return rule, config | ({"pricing": "lowest_winning"} if rule == "uniform_price" else {})


@st.composite
def markets(draw):
    """Distinct positive bids (N in 2..12), units in 1..3, reserve in [0, 1), sometimes equal to a bid."""
    n = draw(st.integers(2, 12))
    bids = draw(st.lists(st.floats(1e-3, 1.0, exclude_max=True), min_size=n, max_size=n, unique=True))
    reserve = draw(st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.sampled_from(bids), st.just(0.0)))
    return np.array(bids), draw(st.integers(1, 3)), reserve


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(core.RULES)), markets())
def test_kernel_clears_like_the_engine(rule, market):
    """Winners and payments of ``core.clear_market`` equal the engine's ``clear`` for every rule.

    Payment rules (Krishna, *Auction Theory*, 2nd ed., ch. 2 for the single-item first and second
    price auctions; ch. 12-13 for multi-unit VCG, uniform and discriminatory pricing): first price
    and pay-as-bid charge each winner its bid; second price and unit-demand VCG the highest
    losing bid; uniform price (lowest-winning variant) the k-th bid; none below the reserve.
    """
    bids, units, reserve = market
    won, price = core.clear_market(rule, reserve, bids, units)
    name, config = engine(rule, units, reserve)
    out = mechanisms.clear(mechanisms.get(name), config, bids[None, :], bids[None, :], np.zeros((1, bids.size)))
    np.testing.assert_array_equal(won, out.allocation[0] > 0)
    np.testing.assert_allclose(price, out.payments[0], rtol=0, atol=1e-12)
    # and the rule as stated: the highest eligible bids win, at most 1 or k of them
    eligible = np.sort(bids[bids >= reserve])[::-1]
    sold = min(eligible.size, 1 if rule in ("first_price", "second_price") else units)
    assert won.sum() == sold and (bids[won] >= (eligible[sold - 1] if sold else np.inf)).all()


# bids 0.9 > 0.7 > 0.5 > 0.3 (seats 0..3, shuffled), k = 2
WORKED = [
    ("first_price", 0.4, {1: 0.9}),  # one unit, pays its bid
    ("second_price", 0.4, {1: 0.7}),  # one unit, pays the highest losing bid
    ("second_price", 0.8, {1: 0.8}),  # ... or the reserve when it is higher
    ("vcg", 0.4, {1: 0.5, 3: 0.5}),  # both pay the (k+1)-th bid
    ("vcg", 0.6, {1: 0.6, 3: 0.6}),  # the (k+1)-th bid 0.5 is below the reserve: the reserve
    ("uniform_price", 0.4, {1: 0.7, 3: 0.7}),  # the lowest winning (k-th) bid
    ("uniform_price", 0.8, {1: 0.9}),  # one eligible bid: it sets the price, >= the reserve
    ("pay_as_bid", 0.4, {1: 0.9, 3: 0.7}),
    ("pay_as_bid", 0.95, {}),  # nobody reaches the reserve: nothing sold
]


@pytest.mark.parametrize(("rule", "reserve", "paid"), WORKED)
def test_kernel_worked_examples(rule, reserve, paid):
    """Hand-cleared markets, two units (Krishna, *Auction Theory*, 2nd ed., ch. 2 and 12-13)."""
    bids = np.array([0.3, 0.9, 0.5, 0.7])
    won, price = core.clear_market(rule, reserve, bids, 2)
    assert set(np.flatnonzero(won)) == set(paid)
    expected = np.zeros(4)
    for seat, p in paid.items():
        expected[seat] = p
    np.testing.assert_array_equal(price, expected)


# ---- 2. every action field reaches the simulation -------------------------------------------------------------

# field -> (stage, population seed, base action, the one field changed). Populations are chosen so the
# field's mechanism is at work (population.describe of each is in the comment); the base is the default
# action except where the field provably does nothing under it (see the comments).
FIELD_CASES = {
    "rule": (1, 0, {}, {"rule": "first_price"}),  # 8 truthful: they pay their value
    "reserve": (1, 0, {}, {"reserve": 0.5}),  # 8 truthful
    "reserve_change": (1, 0, {}, {"reserve_change": 0.2}),  # 8 truthful
    "reveal_reserve": (3, 1, {}, {"reveal_reserve": False}),  # 1 truthful, 3 dropouts: re-entry is slower
    "competing_bids": (2, 0, {}, {"competing_bids": True}),  # 2 truthful, 8 shaders learn faster
    # winner identities only help a ring police defections, which matters only in first-price
    # formats (in second price the ring is self-enforcing and identities add no learning to the
    # default clearing price): base first price; 6 truthful, a ring of 3
    "winner_identity": (4, 3, {"rule": "first_price"}, {"winner_identity": True}),
    "clearing_price": (2, 0, {}, {"clearing_price": False}),  # shaders learn slower
    "bid_distribution": (2, 0, {}, {"bid_distribution": True}),  # shaders learn faster
    # a shill aims only with the bids in view: base competing bids; 5 truthful and a shill
    # (gain 0.052 < the expected fine 0.25 x 0.1 x 3): the shill stops
    "shill_penalty": (2, 8, {"competing_bids": True}, {"shill_penalty": 3.0}),
    "withdrawal_penalty": (3, 1, {}, {"withdrawal_penalty": 3.0}),  # 1 truthful, 3 dropouts
    # coalition "allow" charges no collusion fines at all: base penalize_confirmed; a ring of 4
    # with gain 0.01 < the expected fine 0.25 x 0.1 x 3 breaks up
    "collusion_penalty": (4, 0, {"coalition": "penalize_confirmed"}, {"collusion_penalty": 3.0}),
    "coalition": (1, 0, {}, {"coalition": "restrict"}),  # screening bars bidders from rounds
}


def test_field_cases_cover_every_action_field():
    assert set(FIELD_CASES) == set(MechanismAction.model_fields)
    for name, (_, _, base, changed) in FIELD_CASES.items():
        assert set(changed) - set(base) == {name}
        assert MechanismAction(**base) != MechanismAction(**base | changed)


@pytest.mark.parametrize("name", list(FIELD_CASES))
def test_every_action_field_changes_the_simulation(name):
    """Changing only ``name`` changes the 5-step rewards or what the market recorded.

    The mechanism part of the observation is excluded: it echoes the action whatever the
    simulation does with it; the rest (window, proxies) comes from the rounds played.
    """
    stage, seed, base, changed = FIELD_CASES[name]
    params = population.sample(stage, [seed])
    runs = []
    for action in (MechanismAction(**base), MechanismAction(**base | changed)):
        state, _, components = play(params, action, 5)
        runs.append((components, core.observation_vectors(state, params)[0, core.MECHANISM_WIDTH:]))
    (c0, o0), (c1, o1) = runs
    assert not (np.array_equal(c0, c1) and np.array_equal(o0, o1)), f"{name} changed nothing"


# ---- 3. the reward components --------------------------------------------------------------------------------


def test_no_trade_means_no_welfare_and_no_fairness():
    """A revealed reserve of 1.0 keeps every bidder out (values lie in [0, 1)): nothing is sold,
    nobody earns surplus, so welfare ratio and fairness are 0 (not a vacuous 1) and so is the reward.
    Truthful bidders never leave and never bid, so participation and stability stay 1."""
    params = population.sample(1, range(6))
    state, rewards, components = play(params, MechanismAction(reserve=1.0, reveal_reserve=True), 5)
    assert (rewards == 0.0).all()
    np.testing.assert_array_equal(components, np.broadcast_to([0.0, 0.0, 1.0, 1.0], components.shape))
    window = core.ordered_window(state)
    assert (window[:, :, SOLD] == 0).all() and (window[:, :, WELFARE] == 0).all()
    assert (window[:, :, FAIRNESS] == 0).all()
    # stage 2 adds shills and several units: still no trade, no welfare, no fairness
    _, rewards, components = play(population.sample(2, range(12)), MechanismAction(reserve=1.0), 5)
    assert (rewards == 0.0).all() and (components[:, :, :2] == 0.0).all()


def test_truthful_second_price_scores_exactly_one():
    """Stage 1 (truthful bidders, one unit) under second price with no reserve: reward 1.0 exactly.

    Every bidder bids its value v, so the highest value v(1) wins: welfare ratio v(1)/v(1) = 1.
    The winner pays the second bid v(2), which is the competitive revenue min(k, n) x v(k+1) =
    v(2) (the lowest Walrasian price; Krishna, *Auction Theory*, 2nd ed., ch. 2): |revenue -
    competitive| = 0 and fairness 1. Truthful bidders never exit (participation 1) and their
    bid / value is always 1 (stability 1). The product is 1 - with no rounding, every step.
    """
    params = population.sample(1, range(8))
    _, rewards, components = play(params, MechanismAction(rule="second_price", reserve=0.0), core.HORIZON)
    assert (rewards == 1.0).all() and (components == 1.0).all()


@pytest.mark.parametrize("rule", ["first_price", "second_price"])
def test_stage_one_rounds_match_a_hand_computation(rule):
    """Replay each round of a stage-1 episode from its values: the highest value wins and pays v(1)
    (first price, naive truthful bidders pay their value) or v(2) (second price); welfare ratio 1;
    fairness = clip(1 - 2 |revenue - v(2)| / v(1), 0, 1), so first price loses fairness in every
    round (v(1) > v(2)) and second price none."""
    params = population.sample(1, [3])  # 3 truthful bidders
    n = int((params.kind[0] != EMPTY).sum())
    state, rewards, components = play(params, MechanismAction(rule=rule), 5)
    top = np.sort(values_of(params, 0, 20)[:, :n], axis=1)[:, ::-1]
    paid = top[:, 0] if rule == "first_price" else top[:, 1]
    fairness = np.clip(1 - 2 * np.abs(paid - top[:, 1]) / top[:, 0], 0, 1)
    window = core.ordered_window(state)[0]  # rounds 0..19
    np.testing.assert_array_equal(window[:, PRICE], paid)
    np.testing.assert_array_equal(window[:, WELFARE], 1.0)
    np.testing.assert_allclose(window[:, FAIRNESS], fairness, rtol=0, atol=1e-15)
    scored = fairness.reshape(5, core.ROUNDS)[:, -core.SCORED:].mean(axis=1)
    np.testing.assert_allclose(components[:, 0, 1], scored, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rewards[:, 0], components[:, 0].prod(axis=1), rtol=0, atol=0)
    if rule == "first_price":
        assert (fairness < 1).all() and (components[:, 0, 1] < 1).all()
    else:
        assert (rewards == 1.0).all()


def test_components_stay_in_the_unit_interval():
    """Over every stage and a seeded sweep of actions (high reserves, penalties, every coalition),
    each component, each recorded round and the reward (their product) lie in [0, 1]. The sweep
    reaches rounds where fairness is clipped at 0 (prices far above the competitive ones) while
    units are sold."""
    rng = np.random.default_rng(5)
    clipped = 0
    for stage in population.STAGES:
        params = population.sample(stage, range(24), range(24))
        state = core.reset(params)
        for _ in range(8):
            actions = [MechanismAction(
                rule=str(rng.choice(core.RULES)), reserve=float(rng.choice([0.0, 0.3, 0.7, 0.95])),
                reveal_reserve=bool(rng.integers(2)), competing_bids=bool(rng.integers(2)),
                winner_identity=bool(rng.integers(2)), shill_penalty=float(rng.uniform(0, 3)),
                withdrawal_penalty=float(rng.uniform(0, 3)), collusion_penalty=float(rng.uniform(0, 3)),
                coalition=str(rng.choice(core.COALITIONS))) for _ in range(24)]
            mechanism = core.Mechanism.from_actions(actions, state.mechanism[:, core.RESERVE_COLUMN])
            state, result = core.step(params, state, mechanism)
            assert ((result.components >= 0) & (result.components <= 1)).all()
            assert ((result.reward >= 0) & (result.reward <= 1)).all()
            np.testing.assert_allclose(result.reward, documented_reward(state), rtol=0, atol=1e-15)
            rows = core.ordered_window(state)[:, -core.ROUNDS:]
            assert ((rows[:, :, :4] >= 0) & (rows[:, :, :4] <= 1)).all()
            clipped += ((rows[:, :, FAIRNESS] == 0) & (rows[:, :, WELFARE] > 0)).sum()
    assert clipped > 0


def test_reward_is_the_mean_of_each_scored_rounds_product():
    """The reward of every step of recorded episodes (stage 5: rings, dropouts, shills, budgets; a
    mechanism that changes each step) equals the documented formula computed from the rounds the
    operator recorded; and it is not the product of the component means: a round scores only what
    it achieves on all four at once."""
    params = population.sample(5, range(32), range(32))
    state = core.reset(params)
    rng = np.random.default_rng(2)
    differs = 0
    for _ in range(6):
        actions = [MechanismAction(rule=str(rng.choice(core.RULES)), reserve=float(rng.choice([0.0, 0.3, 0.6])),
                                   winner_identity=bool(rng.integers(2)), withdrawal_penalty=float(rng.uniform(0, 3)))
                   for _ in range(32)]
        mechanism = core.Mechanism.from_actions(actions, state.mechanism[:, core.RESERVE_COLUMN])
        state, result = core.step(params, state, mechanism)
        np.testing.assert_allclose(result.reward, documented_reward(state), rtol=0, atol=1e-15)
        rounds = core.ordered_window(state)[:, -core.SCORED:, :4]
        np.testing.assert_allclose(result.components, rounds.mean(axis=1), rtol=0, atol=1e-15)
        differs += (np.abs(result.reward - result.components.prod(axis=1)) > 1e-9).sum()
    assert differs > 0  # the two definitions part in these episodes, so the check above can tell them apart


def test_welfare_ratio_never_exceeds_one():
    """The welfare ratio is at most 1: real buyers cannot win more value than the best allocation.

    Regression: the kernel sums the winners' values in bid order and the benchmark in value order;
    here (3 units, shaders' noisy bids reorder the winners) rounds 10 and 11 gave 1 + 2^-52.
    """
    designer = env.DesignerEnv(stage=2, population=154)  # 3 units; 2 truthful, 8 shaders
    designer.reset(seed=154)
    for _ in range(3):
        _, reward, _, info = designer.step({"rule": "vcg"})
        assert info["welfare"] <= 1.0 and 0.0 <= reward <= 1.0
    assert (core.ordered_window(designer.state)[0, :, WELFARE] <= 1.0).all()


def test_welfare_ratio_counts_only_the_agents_present():
    """The welfare ratio's denominator is the best the agents *present this round* could get.

    Three truthful bidders and the dropout that always leaves (it bids its value: multiplier 1, no
    noise once every bid is revealed; each exit is recorded). In rounds where the absent dropout
    drew the highest value, the unit still goes to the best present bidder and the ratio is
    exactly 1 (it would be v(winner) / v(dropout) < 1 if absent seats counted). Participation is
    3/4 throughout: out of the market, or in it below its outside option, the dropout does not
    want to be there.
    """
    params = dropout_that_always_leaves()
    state, _, components = play(params, MechanismAction(competing_bids=True), 5)
    window = core.ordered_window(state)[0]
    exits = window[:, EXITS] > 0
    present = (np.arange(20) <= 4) | exits  # in from the start to its first exit, then only when it exits
    values = values_of(params, 0, 20)[:, :4]
    absent_top = ~present & (values.argmax(axis=1) == 3)
    assert exits[4] and absent_top.any()  # the case under test happens
    np.testing.assert_array_equal(window[:, WELFARE], 1.0)
    np.testing.assert_array_equal(window[:, FAIRNESS], 1.0)
    np.testing.assert_array_equal(window[:, PARTICIPATION], 0.75)
    assert (components[:, 0, 2] == 0.75).all() and (components[:, 0, [0, 1, 3]] == 1).all()


def dropout_that_always_leaves() -> Params:
    """Three truthful bidders and a dropout (seat 3) whose outside option (10) is out of reach: it
    leaves at round 4, the first it may, and again each time it drifts back."""
    params = population.sample(1, [0])
    kind = np.full_like(params.kind, EMPTY)
    kind[0, :3], kind[0, 3] = TRUTHFUL, DROPOUT
    shading, outside = params.shading.copy(), params.outside.copy()
    shading[0, 3], outside[0, 3] = 1.0, 10.0
    return replace(params, kind=kind, shading=shading, outside=outside)


@pytest.mark.parametrize("penalty", [1.0, 3.0])
def test_the_withdrawal_fine_is_charged_in_the_round_of_the_exit(penalty):
    """An exit costs the leaver FINE_UNIT x penalty in that round. The dropout is honest (it does
    not collude), so the fine comes off the welfare ratio's numerator and adds to the money taken
    from buyers: in an exit round where present truthful bidders trade under second price with
    every bid shown, welfare ratio = 1 - f / v(1) and fairness = 1 - 2 f / v(1), v(1) the highest
    present value; every other round scores 1 on both."""
    params = dropout_that_always_leaves()
    state, _, _ = play(params, MechanismAction(competing_bids=True, withdrawal_penalty=penalty), 5)
    window = core.ordered_window(state)[0]
    exits = window[:, EXITS] > 0
    assert exits[4]
    fine = core.FINE_UNIT * penalty
    top = values_of(params, 0, 20)[:, :4].max(axis=1)  # the leaver is present in the round it leaves
    np.testing.assert_allclose(window[exits, WELFARE], 1 - fine / top[exits], rtol=0, atol=1e-14)
    np.testing.assert_allclose(window[exits, FAIRNESS], 1 - 2 * fine / top[exits], rtol=0, atol=1e-14)
    assert (window[~exits, WELFARE] == 1).all() and (window[~exits, FAIRNESS] == 1).all()


def test_honest_price_setters_fined_as_shills_cost_welfare_and_fairness():
    """Stage 1 (truthful bidders, no shill) under second price with the maximal shill penalty: an
    audit fines the honest price setter FINE_UNIT x 3 x 0.5 = 0.15. In such a round the welfare
    ratio is 1 - 0.15 / v(1) and fairness 1 - 0.3 / v(1); unaudited rounds score 1. A fined
    bidder's running utility turns negative: it no longer wants to be in the market, and
    participation falls."""
    params = population.sample(1, range(8))
    state, _, components = play(params, MechanismAction(rule="second_price", shill_penalty=3.0), 5)
    fine = core.FINE_UNIT * 3.0 * 0.5
    fined_rounds = 0
    for row in range(8):
        window = core.ordered_window(state)[row]
        n = int((params.kind[row] != EMPTY).sum())
        top = values_of(params, row, 20)[:, :n].max(axis=1)
        fined = window[:, WELFARE] < 1
        fined_rounds += fined.sum()
        np.testing.assert_allclose(window[fined, WELFARE], 1 - fine / top[fined], rtol=0, atol=1e-14)
        np.testing.assert_allclose(window[fined, FAIRNESS], 1 - 2 * fine / top[fined], rtol=0, atol=1e-14)
        assert (window[~fined, FAIRNESS] == 1).all()
    assert 0.1 < fined_rounds / (8 * 20) < 0.4  # about AUDIT = 25% of the rounds
    assert components[:, :, 2].min() < 1


# ---- 4. the collusion signal ---------------------------------------------------------------------------------


def fire_rate(params: Params, action: MechanismAction, steps: int = core.HORIZON) -> np.ndarray:
    """(E,) share of all rounds played in which the collusion signal fired."""
    state = core.reset(params)
    mechanism = core.Mechanism.from_actions([action] * params.units.size, np.zeros(params.units.size))
    fired = []
    for _ in range(steps):
        state, _ = core.step(params, state, mechanism)
        fired.append(core.ordered_window(state)[:, -core.ROUNDS:, SIGNAL])
    return np.concatenate(fired, axis=1).mean(axis=1)


HONEST_ACTIONS = [MechanismAction(rule=rule) for rule in core.RULES] + [
    MechanismAction(rule="second_price", competing_bids=True), MechanismAction(rule="first_price", reserve=0.1)]


def test_collusion_signal_is_silent_on_honest_markets():
    """Stage 2 has no rings (truthful bidders, shaders, shills): the signal fires in < 1% of rounds.

    With n honest bidders of i.i.d. values it fires by chance with P(Binomial(n-1, 0.01) >= 2),
    under 0.6% for n <= 12 (a threshold of 5% would fire in 7% of rounds at n = 10).
    """
    params = population.sample(2, range(60), range(60))
    assert not np.isin(params.kind, [CARTEL]).any() and np.isin(params.kind, [SHADER]).any()
    assert np.isin(params.kind, [SHILL]).any()
    rates = np.array([fire_rate(params, action).mean() for action in HONEST_ACTIONS])
    assert (rates < 0.01).all(), [(a.model_dump(exclude_defaults=True), round(r, 4))
                                  for a, r in zip(HONEST_ACTIONS, rates, strict=True)]


def test_collusion_signal_fires_on_a_ring():
    """A ring of three or more in second price (self-enforcing, coalition "allow") colludes in most
    rounds: its non-designated members submit token bids, two near-zero bids at least."""
    params = population.sample(4, range(30))
    ring = (params.kind == CARTEL).sum(axis=1)
    rows = np.flatnonzero(ring >= 3)
    assert rows.size >= 10
    rates = fire_rate(replace(params, **{f.name: getattr(params, f.name)[rows] for f in fields(params)}),
                      MechanismAction(rule="second_price", coalition="allow"))
    assert (rates > 0.5).all() and rates.mean() > 0.9, rates


# ---- 5. determinism and batch invariance ---------------------------------------------------------------------


def mixed_actions(count: int) -> list[MechanismAction]:
    """Distinct actions that exercise every type's code path."""
    pool = [MechanismAction(rule="second_price", competing_bids=True),
            MechanismAction(rule="first_price", reserve=0.2, winner_identity=True, shill_penalty=1.0),
            MechanismAction(rule="uniform_price", coalition="restrict", collusion_penalty=2.0),
            MechanismAction(rule="vcg", withdrawal_penalty=1.5, coalition="penalize_suspected", collusion_penalty=1.0),
            MechanismAction(rule="pay_as_bid", reveal_reserve=False, reserve=0.3, bid_distribution=True)]
    return [pool[i % len(pool)] for i in range(count)]


def test_same_seed_same_episode_bit_for_bit():
    """Two runs from the same params give bit-identical states, rewards and components."""
    params = population.sample(5, range(10), range(10))
    first, second = play(params, mixed_actions(10), 10), play(params, mixed_actions(10), 10)
    assert same_state(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])


def test_episode_does_not_depend_on_the_process():
    """The kernel's draws are hashes, not a process's generator: a fresh interpreter agrees."""
    code = ("import numpy as np; from mecharena.designer import population; "
            "from tests.designer.test_core import mixed_actions, play; "
            "print(play(population.sample(5, range(5), range(5)), mixed_actions(5), 3)[1].tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2])
    here = play(population.sample(5, range(5), range(5)), mixed_actions(5), 3)[1]
    assert out.stdout.strip() == here.tobytes().hex()


def test_episode_does_not_depend_on_the_batch():
    """An episode's rewards and state are the same alone, first, or anywhere in the batch."""
    seeds, episodes, actions = [11, 22, 33], [1, 2, 3], mixed_actions(3)
    full = play(population.sample(5, seeds, episodes), actions, 6)
    for order in ([2], [1, 2, 0], [0, 2]):
        part = play(population.sample(5, [seeds[i] for i in order], [episodes[i] for i in order]),
                    [actions[i] for i in order], 6)
        np.testing.assert_array_equal(part[1], full[1][:, order])
        np.testing.assert_array_equal(part[2], full[2][:, order])
        assert same_state(full[0], part[0], rows=order)


def test_step_mutates_neither_state_nor_params():
    params = population.sample(5, range(6), range(6))
    state, _, _ = play(params, mixed_actions(6), 2)
    before, params_before = copy_state(state), replace(params, **{f.name: getattr(params, f.name).copy()
                                                                  for f in fields(params)})
    mechanism = core.Mechanism.from_actions(mixed_actions(6), state.mechanism[:, core.RESERVE_COLUMN])
    after, _ = core.step(params, state, mechanism)
    assert same_state(state, before)
    assert all(np.array_equal(getattr(params, f.name), getattr(params_before, f.name)) for f in fields(params))
    assert not same_state(after, before)  # it did play


# ---- 6. the held-out benchmark stays out of training ---------------------------------------------------------


@pytest.mark.parametrize("seed", [*population.held_out_seeds(), HELD_OUT_BASE + 10**6, -1])
def test_training_seed_refuses_held_out_seeds(seed):
    with pytest.raises(ConfigError, match=r"population must be an integer in \[0, 2\^40\) \(2\^40 and up are the held-out"):
        population.training_seed(seed)


@pytest.mark.parametrize("seed", [population.HELD_OUT_BASE, population.HELD_OUT_BASE + 19, 2**62])
def test_designer_env_refuses_held_out_populations_unless_evaluating(seed):
    """docs/designer.md: no training path can be given a held-out population; evaluation replays them."""
    training = env.DesignerEnv(stage=2)
    first = training.reset(seed=1)
    with pytest.raises(ConfigError, match=r"^population must be an integer in \[0, 2\^40\)"):
        training.reset(seed=2, population=seed)
    assert training.observation() == first  # the refused reset changed nothing
    with pytest.raises(ConfigError, match="held-out benchmark"):
        env.DesignerEnv(stage=2, population=seed)
    replay = env.DesignerEnv(stage=2, held_out=True)
    assert replay.reset(seed=0, population=seed)["stage"] == 2


def test_population_seeds_are_training_seeds():
    drawn = np.array([s for seed in range(50) for s in env.population_seeds(seed, 400)])
    assert ((drawn >= 0) & (drawn < HELD_OUT_BASE)).all()
    assert len(set(drawn.tolist())) > 0.99 * drawn.size  # a spread, not a constant
    assert all(population.training_seed(int(s)) == s for s in drawn[:100])


def test_vector_env_never_samples_a_held_out_population(monkeypatch):
    """Through resets and automatic restarts, every population the batch env draws is a training one."""
    drawn = []

    def recording(stage, seeds, episodes=None):
        drawn.extend(int(s) for s in seeds)
        return population.sample(stage, seeds, episodes)

    monkeypatch.setattr(env, "sample", recording)
    for seed in (0, 1, HELD_OUT_BASE - 1):
        vector = env.VectorDesignerEnv(3, stage=2, seed=seed)
        vector.reset()
        for _ in range(core.HORIZON + 1):
            vector.step([MechanismAction()] * 3)
    assert len(drawn) == 3 * 2 * 3  # a reset and one restart of every episode, for each seed
    assert all(0 <= s < HELD_OUT_BASE for s in drawn)
    assert not set(drawn) & set(population.held_out_seeds())


# ---- 7. bad input --------------------------------------------------------------------------------------------

BAD_ACTIONS = [
    ({"bogus": 1}, r"unknown field 'bogus' for MechanismAction"),
    ({"reserve": 1.5}, r"reserve must be a finite float in \[0, 1\.0\] \(or null\), got 1\.5"),
    ({"rule": 7}, r"rule must be one of 'first_price', .*'pay_as_bid', got 7"),
    ({"reserve": 0.1, "reserve_change": 0.1}, r"give reserve or reserve_change, not both"),
    ({"reserve_change": 0.5}, r"reserve_change must be a finite float in \[-0\.2, 0\.2\] \(or null\), got 0\.5"),
]


@pytest.mark.parametrize(("action", "message"), BAD_ACTIONS)
def test_bad_action_is_refused_and_changes_nothing(action, message):
    designer = env.DesignerEnv(stage=2)
    designer.reset(seed=3)
    designer.step({"rule": "vcg"})
    before, state = designer.observation(), copy_state(designer.state)
    with pytest.raises(ConfigError, match=message):
        designer.step(action)
    assert designer.observation() == before and same_state(designer.state, state)


def test_step_before_reset_and_after_the_end():
    designer = env.DesignerEnv(stage=1)
    with pytest.raises(InvalidActionError, match=r"no episode: call reset\(\) first"):
        designer.step({})
    designer.reset(seed=0)
    for _ in range(core.HORIZON):
        designer.step({})
    assert designer.done
    final = designer.observation()
    with pytest.raises(InvalidActionError, match=r"the episode is over; call reset\(\)"):
        designer.step({})
    assert designer.observation() == final


def test_bad_stage_and_episode_count():
    with pytest.raises(ConfigError, match=r"stage must be one of 1, 2, 3, 4, 5, got 9"):
        population.check_stage(9)
    with pytest.raises(ConfigError, match=r"stage must be one of 1, 2, 3, 4, 5, got 9"):
        env.DesignerEnv(stage=9)
    with pytest.raises(ConfigError, match=r"episodes must be an integer in \[1, 1048576\], got 0"):
        env.VectorDesignerEnv(0)


# ---- 8. the referee's adversaries are the arena's ------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(2, 1), (5, 1), (10, 1), (4, 2), (8, 3), (12, 3)])
def test_shaders_converge_to_the_arenas_bayes_nash_bids(n, k):
    """At its target an adaptive shader bids the arena's own equilibrium bid (agents.bne.shaded_bids)
    for uniform values: b(v) = v - integral G / G(v) in k-unit pay-as-bid, (n-1)/n v in first price
    (Krishna, *Auction Theory*, 2nd ed., prop. 2.2 and ch. 13), and its value where truthful bidding
    is dominant (second price, VCG under unit demand)."""
    from mecharena.agents.bne import shaded_bids
    from mecharena.agents.values import ValueDistribution

    ratios = core.bne_ratios()
    values = np.array([0.05, 0.2, 0.5, 0.77, 0.9, 1.0])
    for rule, units in (("pay_as_bid", k), ("first_price", 1)):
        code = core.RULES.index(rule)
        expected = shaded_bids(ValueDistribution(), values, n, units, 0.0, 1.0)
        bids = [core._target(code, n, k, 0.0, ratios) * core._shape(code, n, k, v, ratios) * v for v in values]
        np.testing.assert_allclose(bids, expected, rtol=2e-3)
    for rule in ("second_price", "vcg"):
        code = core.RULES.index(rule)
        assert core._target(code, n, k, 0.0, ratios) * core._shape(code, n, k, 0.5, ratios) == 1.0
