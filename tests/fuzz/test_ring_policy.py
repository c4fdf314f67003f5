"""A ring's policy across rounds: the ring's features and alarm, a defector inside the ring, and the search for a
ring that no member wants to leave."""

import numpy as np
import pytest

from mecharena import mechanisms
from mecharena.agents.base import Feedback, MarketContext, Observation
from mecharena.agents.policy import PolicyParams, act, feature_names, format_weights, init, update
from mecharena.agents.values import ValueDistribution
from mecharena.core.errors import ConfigError
from mecharena.fuzz.behaviour import describe_play
from mecharena.fuzz.policy_search import policy_deviation
from mecharena.fuzz.ring_policy import RingGame, certify, certify_threat, once_caught, ring_policy_search
from mecharena.fuzz.score import Scorer
from mecharena.mechanisms.policy import InformationPolicy
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

NAMES = feature_names(mechanisms.get("first_price"), ring=True)
DRAWS = type("D", (), {"markets": 1})()


def ring_weights(**maps: dict[str, float]) -> np.ndarray:
    """A ring's weights from {feature: weight} per map (g, c, e); a map left out is 0."""
    out = np.zeros((3, len(NAMES)))
    for row, name in enumerate(("g", "c", "e")):
        for feature, weight in maps.get(name, {}).items():
            out[row, NAMES.index(feature)] = weight
    return out.ravel()


SHADE = 0.5  # the ring's highest value bids half its value (the best reply to one rival bidding 3/4 of its)
RING = ring_weights(g={"bias": SHADE}, e={"bias": 1, "lead": 50})  # the others sit out
# the same ring, and once the market showed a partner off the ring's policy, it bids its value
GRIM = ring_weights(g={"bias": SHADE, "caught": 1 - SHADE}, e={"bias": 1, "lead": 50, "caught": 100})
DEFECT = ring_weights(g={"bias": 0.7}, e={"bias": 1})  # always in, 0.7 of its value
BNE = 0.75  # the Bayes-Nash bid of 4 bidders, a share of the value


def _context(information: InformationPolicy, seats: slice = slice(0, 3)) -> MarketContext:
    mech = mechanisms.get("first_price")
    cfg = mech.config({})
    return MarketContext(mech, cfg, mech.market_spec(cfg, 4), 4, ValueDistribution(), information, seats=seats)


def _round(ctx: MarketContext, params: PolicyParams, state, values, winners, bids=None):
    """The state after a round where the group played ``params`` and ``winners`` won with ``bids`` (default:
    the group's own bids and 0 for the rival)."""
    action = act(ctx, params, state, values, DRAWS)
    bids = np.concatenate([action.bids, [[0.0]]], axis=1) if bids is None else bids
    observation = Observation(np.array([0.5]), winners if ctx.information.winner_identity else None,
                              bids if ctx.information.competing_bids else None, None)
    shape = values.shape
    feedback = Feedback(np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape), np.ones(shape, bool))
    return update(ctx, params, state, values, action, observation, feedback, DRAWS)


@pytest.mark.parametrize("revealed", [False, True])
def test_partner_news_is_read_only_as_the_market_reveals_it(revealed):
    ctx = _context(InformationPolicy(winner_identity=revealed, competing_bids=revealed))
    params = PolicyParams(w=format_weights(RING))
    state = init(ctx, params, 3, DRAWS)
    winners = np.array([[False, True, False, False]])  # seat 1, a partner of seats 0 and 2, won
    bids = np.array([[0.3, 0.6, 0.1, 0.4]])
    new = _round(ctx, params, state, np.array([[0.9, 0.5, 0.2]]), winners, bids)
    np.testing.assert_array_equal(new.led, [[1.0, 0.0, 0.0]])  # its own memory: always known
    np.testing.assert_array_equal(new.partner_won, [[1.0, 0.0, 1.0]] if revealed else np.zeros((1, 3)))
    np.testing.assert_array_equal(new.partner_bid, [[0.6, 0.3, 0.6]] if revealed else np.zeros((1, 3)))
    np.testing.assert_array_equal(new.rival_bid, np.full((1, 3), 0.4 if revealed else 0.0))


@pytest.mark.parametrize("revealed", ["winner_identity", "competing_bids", None])
def test_a_partner_off_the_rings_policy_is_caught_only_where_the_market_shows_it(revealed):
    ctx = _context(InformationPolicy(**{revealed: True} if revealed else {}))
    params = PolicyParams(w=format_weights(GRIM), d=format_weights(DEFECT))  # seat 0 defects
    state = init(ctx, params, 3, DRAWS)
    values = np.array([[0.5, 0.9, 0.2]])  # seat 1 leads; seat 0 should sit out but bids 0.35
    first = _round(ctx, params, state, values, np.array([[True, False, False, False]]))
    caught = [[0.0, 1.0, 1.0]] if revealed else np.zeros((1, 3))  # its partners see it; it sees nobody stray
    np.testing.assert_array_equal(first.caught, caught)
    loyal = PolicyParams(w=format_weights(GRIM))
    later = _round(ctx, loyal, first, np.array([[0.1, 0.8, 0.2]]), np.array([[False, True, False, False]]))
    np.testing.assert_array_equal(later.caught, caught)  # a loyal round after: it stays set
    action = act(ctx, loyal, later, np.array([[0.3, 0.9, 0.6]]), DRAWS)
    expect = [[0.0, 0.9, 0.6]] if revealed else [[0.0, 0.45, 0.0]]  # the partners who saw it compete at their value
    np.testing.assert_allclose(action.bids, expect)


def test_a_partner_that_plays_the_rings_policy_is_never_caught():
    ctx = _context(InformationPolicy(winner_identity=True, competing_bids=True))
    params = PolicyParams(w=format_weights(GRIM))
    state = init(ctx, params, 3, DRAWS)
    for values in ([[0.5, 0.9, 0.2]], [[0.7, 0.1, 0.2]], [[0.3, 0.2, 0.25]]):
        action = act(ctx, params, state, np.array(values), DRAWS)
        state = _round(ctx, params, state, np.array(values), np.append(action.bids > 0, False)[None, :])
    np.testing.assert_array_equal(state.caught, np.zeros((1, 3)))


def test_a_defector_plays_its_own_weights_inside_the_ring():
    ctx = _context(InformationPolicy())
    values = np.array([[0.5, 0.9, 0.2]])
    loyal = act(ctx, PolicyParams(w=format_weights(RING)), init(ctx, PolicyParams(), 3, DRAWS), values, DRAWS)
    params = PolicyParams(w=format_weights(RING), d=format_weights(DEFECT))
    defects = act(ctx, params, init(ctx, params, 3, DRAWS), values, DRAWS)
    np.testing.assert_allclose(loyal.bids, [[0.0, 0.45, 0.0]])
    np.testing.assert_allclose(defects.bids, [[0.35, 0.45, 0.0]])  # the first seat alone leaves the ring


def test_a_punisher_plays_its_own_weights_only_once_it_has_caught_a_partner():
    ctx = _context(InformationPolicy(competing_bids=True))
    params = PolicyParams(w=format_weights(GRIM), d=format_weights(DEFECT), p=format_weights(RING))
    state = init(ctx, params, 3, DRAWS)
    values = np.array([[0.5, 0.9, 0.2]])
    before = act(ctx, params, state, values, DRAWS)
    np.testing.assert_allclose(before.bids, [[0.35, 0.45, 0.0]])  # seat 1 plays the ring's weights: nobody caught
    after = _round(ctx, params, state, values, np.array([[False, False, False, True]]))
    np.testing.assert_array_equal(after.caught, [[0.0, 1.0, 1.0]])
    action = act(ctx, params, after, np.array([[0.3, 0.9, 0.6]]), DRAWS)
    # seat 1 keeps colluding (its p: the ring without a threat); seat 2 carries the threat out (bids its value)
    np.testing.assert_allclose(action.bids, [[0.21, 0.45, 0.6]])
    np.testing.assert_allclose(action.memo[0], [[0.0, 0.9, 0.6]])  # what the ring prescribes: partners check it
    with pytest.raises(ConfigError, match="p is what a group's second seat plays once a partner is caught: it needs "
                                          "a group of at least 2 seats, got 1"):
        init(_context(InformationPolicy(), slice(0, 1)), params, 1, DRAWS)
    with pytest.raises(ConfigError, match="^p must hold 30 numbers separated by '/'.*, got 2$"):
        PolicyParams.build(w=format_weights(RING), p="1/2")


@pytest.mark.slow
def test_a_threat_is_credible_only_where_carrying_it_out_is_a_best_reply():
    """Bids revealed, 3 members who caught the first one bidding 0.7 of its value. In first price GRIM's threat
    (bid your value from then on) earns a punisher nothing, where shading earns the Bayes-Nash surplus: a
    member gains by not carrying it out. In second price the same threat on the knockout ring (the top member
    bids its value, the others sit out) is bidding one's value, weakly dominant whatever the others do
    (Vickrey 1961): no member gains by shirking it. (Reverting to the uninformed Bayes-Nash bid in first price
    is not credible either: members know each other's values, and a member who leads its partners by a
    margin shades more.)"""
    knockout = ring_weights(g={"bias": 1.0}, e={"bias": 1, "lead": 50, "caught": 100})  # once caught: all in
    shirk = ring_weights(g={"bias": BNE}, e={"bias": 1})  # once caught: the Bayes-Nash bid of first price
    gains = {}
    for mechanism, ring in (("first_price", GRIM), ("second_price", knockout)):
        cell = Cell(mechanism=mechanism, population="bne:4", rounds=10, information={"competing_bids": True})
        game = RingGame(Scorer(cell), 3, seed=3, markets=400, rounds=10)
        punisher = certify_threat(game, ring, DEFECT, [ring, shirk])
        gains[mechanism] = game.gain(game.shirking(ring, DEFECT, punisher))
    assert gains["first_price"].lo > 0.01, gains
    assert gains["second_price"].mean <= 0.002, gains  # the polish's in-sample best: a dominant strategy's noise


def test_member_gains_are_each_deviators_share_of_the_score():
    cell = Cell(mechanism="first_price", population="bne:4", rounds=4)
    scorer = Scorer(cell)
    deviation = policy_deviation(RING, 3)
    members = scorer.member_gains(deviation, seed=2, markets=300, rounds=4)
    assert members.shape == (300, 3)
    assert members.mean() == pytest.approx(scorer.score(deviation, seed=2, markets=300, rounds=4).mean, abs=1e-15)


@pytest.mark.parametrize("revealed", [False, True])
def test_a_grim_trigger_deters_a_defector_only_where_winners_are_revealed(revealed):
    """First price, 3 ring members and one Bayes-Nash rival (bid 3/4 of value): the ring's highest value bids
    half of it and the others sit out, a gain of about 0.017 per member and round; a member who always bids
    0.7 of its value gains about 0.012 more. The trigger (compete at your value once a partner was caught off
    the ring's policy) keeps the ring's gain while loyal and makes the defection lose, but only where the
    market names the winner."""
    cell = Cell(mechanism="first_price", population="bne:4", rounds=10,
                information={"winner_identity": revealed})
    game = RingGame(Scorer(cell), 3, seed=5, markets=3000, rounds=10)
    loyal = game.members(RING)
    assert game.gain(loyal.mean(axis=1)).lo > 0.01
    np.testing.assert_array_equal(game.members(GRIM), loyal)  # nobody defects: nobody is caught
    untriggered = game.gain(game.defection(RING, DEFECT, loyal))
    triggered = game.gain(game.defection(GRIM, DEFECT, loyal))
    assert untriggered.lo > 0.005
    if revealed:
        assert triggered.hi < 0
    else:
        assert triggered == untriggered


@pytest.mark.parametrize(("settings", "message"), [
    ({"deviators": 1}, r"deviators must be a finite int in \[2, 64\], got 1"),
    ({"phases": 0}, r"phases must be a finite int in \[1, 50\], got 0"),
    ({"penalty": 0.5}, r"penalty must be a finite float in \[1, 1000\], got 0.5"),
    ({"generations": 0}, r"generations must be a finite int in \[1, 10000\], got 0"),
    ({"features": ("bias", "values")}, "features: unknown 'values'; first_price's are bias, value, "),
])
def test_bad_settings_name_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        ring_policy_search(Cell(mechanism="first_price", population="bne:4"), seed=0, **settings)


def test_a_rings_play_is_described_by_who_holds_its_highest_value():
    said = describe_play(Cell(mechanism="first_price", population="bne:4", rounds=10), policy_deviation(RING, 3),
                         seed=1, markets=200)
    assert said.startswith("bids 0.50x value; if it has the ring's highest value: always takes part, else "), said


@pytest.mark.slow
def test_the_search_finds_a_ring_that_holds_only_where_the_market_reveals_bids():
    """First price, a ring of 3 among Bayes-Nash bidders, 10 rounds; the search is told nothing about
    designated winners or punishment, and here not asked for a credible threat (a Nash ring). Where bids and
    winners are revealed it finds a ring that gains at least 85% of full suppression (the hand-written RING:
    the top member bids half its value, the others sit out) and no defection it finds pays: members who stray
    are caught and answered. The certificate sees that the threat would cost its punishers: a member gains by
    not carrying it out. Where nothing is revealed the same search finds no ring that holds: a member gains by
    leaving the best one, and no threat is ever set off."""
    found = {}
    for revealed in (True, False):
        cell = Cell(mechanism="first_price", population="bne:4", rounds=10,
                    information={"winner_identity": revealed, "competing_bids": revealed})
        found[revealed] = ring_policy_search(cell, seed=0, deviators=3, phases=2, generations=15,
                                             defection_generations=8, markets=300, eval_markets=2000,
                                             credible=False)
    revealed, hidden = found[True], found[False]
    cell = Cell(mechanism="first_price", population="bne:4", rounds=10)
    suppression = RingGame(Scorer(cell), 3, seed=revealed.gain.seed, markets=2000, rounds=10).members(RING).mean()
    assert revealed.enforced and revealed.defection.hi < 0, revealed.defection
    assert revealed.punishment is not None  # it holds because the others answer a partner caught straying
    assert revealed.gain.mean >= 0.85 * suppression, (revealed.gain, suppression)
    assert revealed.punished and not revealed.credible and revealed.shirking.lo > 0.01, revealed.shirking
    assert "only by a threat its members would not carry out" in revealed.verdict
    assert not hidden.enforced and hidden.defection.lo > 0, hidden.defection
    assert not hidden.punished and hidden.shirking.mean == 0  # nothing revealed: nobody is ever caught


@pytest.mark.parametrize(("mechanism", "holds"), [("second_price", True), ("first_price", False)])
def test_the_certificate_passes_a_knockout_ring_only_where_no_member_wants_to_leave(mechanism, holds):
    """Nothing revealed, 3 members and one rival. In second price the knockout ring (the top member bids its
    value, the others sit out) holds with no punishment at all: a member below the top can win only by
    paying more than its value (Graham and Marshall 1987). In first price the top member shades and a
    partner close below it gains by outbidding it. From loyalty and the plain defection (always in, 0.7 of
    its value), the best polished one weight at a time gains nothing in the first case and pays in the
    second."""
    knockout = ring_weights(g={"bias": 1.0 if mechanism == "second_price" else SHADE}, e={"bias": 0.01, "lead": 4})
    game = RingGame(Scorer(Cell(mechanism=mechanism, population="bne:4", rounds=10)), 3, seed=7, markets=300,
                    rounds=10)
    defection = game.gain(game.defection(knockout, certify(game, knockout, [knockout, DEFECT])))
    if holds:
        assert defection.mean <= 0 and game.gain(game.members(knockout).mean(axis=1)).lo > 0.04, defection
    else:
        assert defection.lo > 0.005, defection


def test_what_a_ring_does_once_a_partner_is_caught_is_its_weights_with_caught_set():
    first_price = mechanisms.get("first_price")
    assert once_caught(first_price, RING) is None  # it ignores caught: nothing changes
    punished = once_caught(first_price, GRIM)
    np.testing.assert_array_equal(punished, ring_weights(g={"bias": 1.0}, e={"bias": 101, "lead": 50}))
    said = describe_play(Cell(mechanism="first_price", population="bne:4", rounds=10), policy_deviation(punished, 3),
                         seed=1, markets=200)
    assert said == "bids its value", said  # always in, at its value: the others' ring gains are gone


@pytest.mark.parametrize(("d", "message"), [
    ("1/2", "^policy: d must hold 30 numbers separated by '/'"),
    ("/".join(["0"] * 41 + ["nan"]), r"^policy: d entry 41 must be a finite number in \[-1000, 1000\], got 'nan'$"),
    ("/".join(["0"] * 33), "^policy: d holds 33 weights; first_price takes 30 or 42 "),
])
def test_a_defectors_bad_weights_are_refused_naming_d(d, message):
    with pytest.raises(ConfigError, match=message):
        list(play(Cell(mechanism="first_price", markets=2, population=f"policy(d={d}):2,truthful:1").episode(), 1))
