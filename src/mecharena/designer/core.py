"""The referee environment's pure core: ``step(params, state, mechanism) -> (state, StepResult)``.

E episodes run side by side (the leading axis). Each step plays ``ROUNDS`` rounds of one market
under the designer's mechanism; the first ``ROUNDS - SCORED`` let the population adapt to the new
rules and the reward is the mean over the last ``SCORED`` rounds of

    reward = welfare ratio x fairness x participation x stability,

each defined on the current round's agents (shills are not buyers and count in none):

* welfare ratio: (value of the units real buyers won - fines paid by honest buyers) / the largest
  value the agents present this round could get from the k units, clipped to [0, 1] (0 when
  nobody is present). A buyer is honest in a round where it does not collude: a fine on it (a
  price setter taken for a shill, a near-zero bidder under a collusion screen, an exit) is a
  cost of the rules, not a transfer from a cheat;
* fairness: 1 - 2 |money taken from buyers - competitive revenue| / that maximum, clipped to
  [0, 1], where the money taken is the prices paid plus every fine a buyer paid, and the
  competitive revenue is min(k, present) times the (k+1)-th highest present value (the lowest
  Walrasian price): a cartel's depressed prices and a shill's, a high reserve's or a fine's
  inflated takings all cost fairness. It is 0 in a round where nothing is traded (nobody earns
  surplus);
* participation: share of the population's buyers who are in the market and want to be: not
  exited, and with running utility (fines included) at or above their outside option. A buyer a
  withdrawal fine keeps in below its outside option does not count;
* stability: 1 - min(1, 2 x mean |change of bid/value|) over buyers that bid in both this and
  the previous round: strategies still churning, a ring flipping between collusion and defection.

The kernel is compiled (one thread) and draws from a counter-based hash of (episode key, round,
seat, stream), so an episode's draws do not depend on E, on the other episodes or on the
process: the same seed gives a bit-identical episode. Penalties are fines of ``FINE_UNIT`` x
penalty in value units, charged in the round they are incurred (the withdrawal fine in the round
of the exit). Audits happen with probability ``AUDIT``.
"""

from dataclasses import dataclass
from functools import cache

import numba
import numpy as np

from mecharena.agents.bne import shaded_bids
from mecharena.agents.values import ValueDistribution
from mecharena.core.seeding import hash_uniform
from mecharena.core.types import BoolArray, FloatArray, IntArray
from mecharena.designer.action import COALITIONS, FLAGS, MAX_RESERVE, MECHANISM_WIDTH, RULES, MechanismAction
from mecharena.designer.population import BUDGET, CARTEL, DROPOUT, EMPTY, SEATS, SHADER, SHILL, TRUTHFUL, Params
from mecharena.mechanisms.base import SMALLEST_BID

ROUNDS = 4
SCORED = 2
WINDOW = 20
HORIZON = 25  # steps per episode
AUDIT = 0.25
FINE_UNIT = 0.1
SCREENED = 0.15  # chance that screening under a coalition restriction bars a bidder from a round
TOKEN = 0.001  # a ring member's phony bid / its value
PHONY = 0.01  # a bid under this share of the top bid counts as near-zero; two of them fire the collusion signal
AIMED = 0.5  # how well a shill must see bids to bid at all
POLICED = 0.5  # how well a ring must see defections to hold in a first-price format
DISTORTION = 2.0  # fairness lost per unit of price distortion (relative to the maximum welfare)
FEAR = 0.08  # shading per unit of shill penalty, in formats where the price setter is audited
FEATURES = ("welfare", "fairness", "participation", "stability", "price_mean", "price_spread", "dropouts",
            "collusion", "sold", "bid_mean", "bid_spread", "top_gap", "entry")
PRICE, DROPOUTS, COLLUSION, BID_MEAN, BID_SPREAD, TOP_GAP = (FEATURES.index(f) for f in (
    "price_mean", "dropouts", "collusion", "bid_mean", "bid_spread", "top_gap"))
COMPONENTS = ("welfare", "fairness", "participation", "stability")
FP, SP, VCG, UP, PAB = range(5)
ALLOW, RESTRICT, SUSPECTED, CONFIRMED = range(4)
RESERVE_COLUMN = len(RULES)  # of the mechanism vector
PENALTY_COLUMN = RESERVE_COLUMN + 1 + len(FLAGS)


@dataclass(frozen=True, slots=True)
class Mechanism:
    """The designer's mechanism for each episode, as arrays (the step's params)."""

    rule: IntArray  # (E,)  index into RULES
    reserve: FloatArray  # (E,)  absolute reserve
    flags: BoolArray  # (E, 5)  in FLAGS order
    penalties: FloatArray  # (E, 3)  shill, withdrawal, collusion in [0, 3]
    coalition: IntArray  # (E,)  index into COALITIONS

    @classmethod
    def from_actions(cls, actions: list[MechanismAction], reserves: FloatArray) -> "Mechanism":
        """Stack validated actions; ``reserves`` are the current ones (for ``reserve_change``)."""
        return cls(
            rule=np.array([RULES.index(a.rule) for a in actions], np.int64),
            reserve=np.array([a.resolved_reserve(float(r)) for a, r in zip(actions, reserves, strict=True)]),
            flags=np.array([[getattr(a, f) for f in FLAGS] for a in actions], bool).reshape(-1, len(FLAGS)),
            penalties=np.array([[a.shill_penalty, a.withdrawal_penalty, a.collusion_penalty] for a in actions],
                               float).reshape(-1, 3),
            coalition=np.array([COALITIONS.index(a.coalition) for a in actions], np.int64),
        )

    def vectors(self) -> FloatArray:
        """(E, MECHANISM_WIDTH) the mechanism as fixed-length vectors in [0, 1]."""
        e = self.rule.size
        out = np.zeros((e, MECHANISM_WIDTH))
        rows = np.arange(e)
        out[rows, self.rule] = 1.0
        out[:, RESERVE_COLUMN] = self.reserve
        out[:, RESERVE_COLUMN + 1: RESERVE_COLUMN + 1 + len(FLAGS)] = self.flags
        out[:, PENALTY_COLUMN: PENALTY_COLUMN + 3] = self.penalties / 3.0
        out[rows, PENALTY_COLUMN + 3 + self.coalition] = 1.0
        return out


@dataclass(frozen=True, slots=True)
class State:
    """What changes during an episode. ``window`` and ``winners`` are ring buffers at ``head``."""

    step: IntArray  # (E,)
    round: IntArray  # (E,)
    mechanism: FloatArray  # (E, MECHANISM_WIDTH)  the mechanism in force
    multiplier: FloatArray  # (E, SEATS)  current bid / value of adaptive seats
    active: BoolArray  # (E, SEATS)  still in the market
    mood: FloatArray  # (E, SEATS)  running utility (dropouts)
    spent: FloatArray  # (E, SEATS)
    ratio: FloatArray  # (E, SEATS)  last round's bid / value, NaN where the seat did not bid
    cohesion: FloatArray  # (E,)  chance that the ring colludes in a round
    window: FloatArray  # (E, WINDOW, FEATURES)
    winners: BoolArray  # (E, WINDOW, SEATS)
    head: IntArray  # (E,)  next slot of the ring buffers
    filled: IntArray  # (E,)  rounds recorded, up to WINDOW


@dataclass(frozen=True, slots=True)
class StepResult:
    reward: FloatArray  # (E,)  mean over the scored rounds of the four components' product
    components: FloatArray  # (E, 4)  means over the scored rounds, in COMPONENTS order (reward is not their product)
    done: BoolArray  # (E,)


def initial_mechanism(e: int) -> Mechanism:
    """The mechanism in force before the designer's first decision: second price, no reserve."""
    return Mechanism.from_actions([MechanismAction()] * e, np.zeros(e))


def reset(params: Params) -> State:
    """Every episode at its start: all seats in the market, empty history."""
    e = params.units.size
    real = params.kind != EMPTY
    return State(
        step=np.zeros(e, np.int64), round=np.zeros(e, np.int64), mechanism=initial_mechanism(e).vectors(),
        multiplier=params.shading.copy(), active=real.copy(), mood=params.outside + 0.05,
        spent=np.zeros((e, SEATS)), ratio=np.full((e, SEATS), np.nan), cohesion=np.zeros(e),
        window=np.zeros((e, WINDOW, len(FEATURES))), winners=np.zeros((e, WINDOW, SEATS), bool),
        head=np.zeros(e, np.int64), filled=np.zeros(e, np.int64),
    )


def step(params: Params, state: State, mechanism: Mechanism) -> tuple[State, StepResult]:
    """Play one designer step in every episode. Pure: ``state`` is not modified.

    Episodes already at ``HORIZON`` are left as they are (reward 0, done).
    """
    new = State(*(getattr(state, f).copy() for f in State.__slots__))
    return new, advance(params, new, mechanism)


def advance(params: Params, state: State, mechanism: Mechanism) -> StepResult:
    """:func:`step` in place: ``state``'s arrays are updated (for shells that own their state)."""
    live = state.step < HORIZON
    components = np.zeros((state.step.size, len(COMPONENTS)))
    rewards = np.zeros(state.step.size)
    reserve = np.clip(mechanism.reserve, 0.0, MAX_RESERVE)
    _play(params.units, params.kind, params.outside, params.budget, params.ring_gain, params.shill_gain,
          params.seed, bne_ratios(), mechanism.rule, reserve, mechanism.flags, mechanism.penalties,
          mechanism.coalition, live, state.round, state.multiplier, state.active, state.mood, state.spent,
          state.ratio, state.cohesion, state.window, state.winners, state.head, state.filled, components, rewards)
    state.step[live] += 1
    vectors = mechanism.vectors()
    vectors[:, RESERVE_COLUMN] = reserve
    state.mechanism[live] = vectors[live]
    reward = np.where(live, rewards, 0.0)
    return StepResult(reward, components, state.step >= HORIZON)


GRID = 65  # values at which the equilibrium bid curves are tabulated


@cache
def bne_ratios() -> FloatArray:
    """(SEATS + 1, 4, GRID) equilibrium bid / value of the k-unit pay-as-bid auction (first price
    for k = 1) among n bidders with uniform values, on ``linspace(0, 1, GRID)``: the arena's own
    ``agents.bne.shaded_bids`` (b(v) = v - integral G / G(v), G the CDF of the k-th highest rival
    value). With k >= n nobody competes for a unit: like the arena's bidders, each bids the smallest
    bid that enters (the reserve, which :func:`_play` adds where it is announced), ratio 0."""
    values = np.linspace(0.0, 1.0, GRID)
    values[0] = 1e-9
    out = np.ones((SEATS + 1, 4, GRID))
    for n in range(1, SEATS + 1):
        for k in range(1, 4):
            bids = shaded_bids(ValueDistribution(), values, n, k, 0.0)
            # SMALLEST_BID / value is a subnormal number: call it 0 (mult x value x 0 is then kept > 0 in _play)
            out[n, k] = np.where(bids > SMALLEST_BID, bids / values, 0.0)
    return out


@numba.njit(cache=True)
def _target(rule: int, n: int, k: int, fear: float, ratios) -> float:
    """Bid / value an adaptive bidder moves toward among ``n`` with ``k`` units for sale.

    The format's equilibrium at the top value (its shape over values is :func:`_shape`), less
    ``fear`` where a losing or lowest winning bid sets the price: there audits for shill bids
    fine honest price setters too, so bidders keep away from it.
    """
    if rule == SP or rule == VCG:
        return 1.0 - fear
    n = min(n, SEATS)
    if rule == UP:  # no closed form: shade by half the pay-as-bid margin
        return 1.0 - 0.5 * (1.0 - ratios[n, k, GRID - 1]) - fear
    return ratios[n, 1 if rule == FP else k, GRID - 1]


@numba.njit(cache=True)
def _shape(rule: int, n: int, k: int, value: float, ratios) -> float:
    """The equilibrium bid / value at ``value`` relative to the top value's (1 but in pay-your-bid formats)."""
    if rule != FP and rule != PAB:
        return 1.0
    curve = ratios[min(n, SEATS), 1 if rule == FP else k]
    if curve[GRID - 1] == 0.0:  # no competition: every value bids the lowest bid that enters
        return 1.0
    x = value * (GRID - 1)
    j = min(int(x), GRID - 2)
    return (curve[j] + (x - j) * (curve[j + 1] - curve[j])) / curve[GRID - 1]


@numba.njit(cache=True, error_model="numpy")
def _play(units, kind, outside, budget, ring_gain, shill_gain, seed, ratios,
          rule_of, reserve_of, flags, penalties, coalition_of, live,
          round_of, mult, active, mood, spent, ratio, cohesion, window, winners, head, filled, components, rewards):
    e_count = units.size
    value = np.zeros(SEATS)
    bid = np.zeros(SEATS)
    entered = np.zeros(SEATS, np.bool_)
    colluding = np.zeros(SEATS, np.bool_)
    won = np.zeros(SEATS, np.bool_)
    price = np.zeros(SEATS)
    fine = np.zeros(SEATS)
    order = np.zeros(SEATS, np.int64)
    present_values = np.zeros(4)  # the k + 1 highest present values
    for e in range(e_count):
        if not live[e]:
            continue
        key = seed[e]
        k = units[e]
        rule = rule_of[e]
        rho = reserve_of[e]
        coalition = coalition_of[e]
        first_like = rule == FP or rule == PAB or rule == UP
        sell = 1 if (rule == FP or rule == SP) else k
        reveal_reserve, bids_shown, identity, price_shown, quantiles = (
            flags[e, 0], flags[e, 1], flags[e, 2], flags[e, 3], flags[e, 4])
        learn = max(1.0 * bids_shown, 0.6 * quantiles, 0.2 * price_shown, 0.1 * identity)
        police = max(1.0 * identity, 1.0 * bids_shown, 0.3 * price_shown, 0.5 * quantiles)
        aim = max(1.0 * bids_shown, 0.8 * quantiles, 0.2 * price_shown)
        rate = 0.03 + 0.3 * learn
        noise = 0.15 * (1.0 - learn)
        p_shill, p_exit, p_collude = penalties[e, 0], penalties[e, 1], penalties[e, 2]
        # honest bidders shade away from what gets them fined by mistake: the price setter's seat
        # (shill audits) and, under statistical collusion screens, the market's screen
        fear = FEAR * (p_shill + (0.5 * p_collude if coalition == SUSPECTED else 0.0))
        cover = coalition == SUSPECTED and p_collude > 0
        ring_fine = 0.0
        if coalition == RESTRICT or coalition == CONFIRMED:
            ring_fine = AUDIT * FINE_UNIT * p_collude
        # a ring holds where cheating is self-defeating (second-price formats) or can be policed
        ring_target = 1.0 if ring_gain[e] > ring_fine and (not first_like or police >= POLICED) else 0.0
        # a shill needs to see bids to aim (blind, it would buy its own units) and must expect to gain
        shill_on = (rule == SP or rule == VCG or rule == UP) and aim >= AIMED \
            and shill_gain[e] > AUDIT * FINE_UNIT * p_shill
        seats = 0
        for i in range(SEATS):
            seats = i + 1 if kind[e, i] != EMPTY else seats
        n_real = 0
        for i in range(seats):
            n_real += kind[e, i] != EMPTY and kind[e, i] != SHILL
        for r in range(ROUNDS):
            t = round_of[e]
            cohesion[e] += 0.3 * (ring_target - cohesion[e])
            colludes = hash_uniform(key, t, SEATS, 1) < cohesion[e]
            # values, and who is in the market
            n_present = 0
            present_values[:] = 0.0
            for i in range(seats):
                value[i] = hash_uniform(key, t, i, 0)
                entered[i] = False
                colluding[i] = False
                won[i] = False
                price[i] = 0.0
                fine[i] = 0.0
                bid[i] = 0.0
                if kind[e, i] != EMPTY and kind[e, i] != SHILL and active[e, i]:
                    n_present += 1
                    x = value[i]  # keep the k+1 highest present values, highest first
                    for j in range(k + 1):
                        hi = max(present_values[j], x)
                        x = min(present_values[j], x)
                        present_values[j] = hi
            # the ring's designated bidder: its member with the highest value
            designated = -1
            partner = -1
            for i in range(seats):
                if kind[e, i] == CARTEL and active[e, i] and (designated < 0 or value[i] > value[designated]):
                    designated = i
            if coalition == RESTRICT:
                for i in range(seats):
                    if kind[e, i] == CARTEL and active[e, i] and i != designated and partner < 0:
                        partner = i
            n_bidding = max(n_present, 1)
            n_ring = max(n_present - _ring_size(kind, active, e, seats) + 1, 1)  # the ring bids as one
            target = _target(rule, n_bidding, k, fear, ratios)
            ring_target_bid = _target(rule, n_ring, k, 0.0, ratios)
            for i in range(seats):
                kd = kind[e, i]
                if kd == EMPTY or kd == SHILL or not active[e, i]:
                    continue
                v = value[i]
                if reveal_reserve and v < rho:
                    continue  # knows it cannot win
                if coalition == RESTRICT and hash_uniform(key, t, i, 6) < SCREENED:
                    continue  # barred this round by the screening for affiliated bidders
                entered[i] = True
                jitter = 1.0 + noise * (2.0 * hash_uniform(key, t, i, 2) - 1.0)
                if kd == TRUTHFUL:
                    bid[i] = v
                elif kd == BUDGET and not first_like:
                    bid[i] = min(budget[e, i] - spent[e, i], v * (1.5 - 0.15 * p_exit) + 0.1)
                elif kd == CARTEL and colludes and designated >= 0:
                    in_ring = coalition != RESTRICT or i == designated or i == partner
                    if i == designated:
                        bid[i] = v * (ring_target_bid * _shape(rule, n_ring, k, v, ratios) if first_like else 1.0)
                    elif in_ring:
                        colluding[i] = True
                        if cover:  # near-zero bids are fined: abstain instead of a phony bid
                            entered[i] = False
                            continue
                        bid[i] = TOKEN * v
                    else:
                        bid[i] = mult[e, i] * v * jitter * _shape(rule, n_bidding, k, v, ratios)
                    colluding[designated] = True
                else:
                    bid[i] = mult[e, i] * v * jitter * _shape(rule, n_bidding, k, v, ratios)
                if first_like:  # at least the lowest bid that enters (a bidder without rivals bids it)
                    bid[i] = max(bid[i], rho if reveal_reserve else 0.0, SMALLEST_BID)
                bid[i] = min(bid[i], budget[e, i] - spent[e, i])
            # the shill aims just under the lowest winning real bid
            n_bids = _rank(bid, entered, order, seats)
            if shill_on:
                for i in range(seats):
                    if kind[e, i] == SHILL:
                        goal = bid[order[min(sell, n_bids) - 1]] if n_bids > 0 else 0.5
                        slack = 0.5 * (1.0 - aim) + 0.02
                        bid[i] = goal * (1.0 - (-0.1 * (1.0 - aim) + (slack + 0.1 * (1.0 - aim))
                                                * hash_uniform(key, t, i, 3)))
                        entered[i] = bid[i] > 0
                n_bids = _rank(bid, entered, order, seats)
            # clear
            welfare = 0.0
            revenue = 0.0
            sold = 0
            lowest = 1e9
            highest = -1.0
            n_winners, setter = _clear(rule, rho, bid, order, n_bids, sell, won, price)
            for j in range(n_winners):
                i = order[j]
                if kind[e, i] != SHILL:  # a unit the shill wins stays unsold
                    welfare += value[i]
                    revenue += price[i]
                    sold += 1
                    lowest = min(lowest, price[i])
                    highest = max(highest, price[i])
            # competitive benchmark on the present buyers
            best = 0.0
            for j in range(min(k, n_present)):
                best += present_values[j]
            competitive = min(k, n_present) * present_values[k] if n_present > k else 0.0
            # fines
            audited = hash_uniform(key, t, SEATS, 4) < AUDIT
            top_bid = bid[order[0]] if n_bids > 0 else 0.0
            phony = 0
            for i in range(seats):
                phony += entered[i] and bid[i] < PHONY * top_bid
            signal = 1.0 if phony >= 2 else 0.0
            if audited and setter >= 0:
                fine[setter] += FINE_UNIT * p_shill * (1.0 if kind[e, setter] == SHILL else 0.5)
            for i in range(seats):
                if coalition == SUSPECTED and signal > 0 and entered[i] and bid[i] < PHONY * top_bid:
                    fine[i] += FINE_UNIT * p_collude
                if (coalition == CONFIRMED or coalition == RESTRICT) and audited and colluding[i]:
                    fine[i] += FINE_UNIT * p_collude
            # settle and adapt
            exits = 0
            churn = 0.0
            compared = 0
            n_willing = 0
            for i in range(seats):
                kd = kind[e, i]
                if kd == EMPTY or kd == SHILL:
                    continue
                utility = (value[i] - price[i] if won[i] else 0.0) - fine[i]
                if won[i]:
                    spent[e, i] += price[i]
                now = bid[i] / value[i] if entered[i] and value[i] > 0 else np.nan
                if entered[i] and not np.isnan(ratio[e, i]):
                    churn += abs(now - ratio[e, i])
                    compared += 1
                ratio[e, i] = now
                if active[e, i]:
                    if kd == SHADER or kd == DROPOUT or kd == CARTEL or kd == BUDGET:
                        mult[e, i] += rate * (target - mult[e, i])
                    frustration = 0.05 if (not reveal_reserve and entered[i] and not won[i] and value[i] < rho) else 0
                    mood[e, i] = 0.8 * mood[e, i] + 0.2 * (utility - frustration)
                    leave = (kd == DROPOUT and t >= 4 and mood[e, i] < outside[e, i] - 0.01 * p_exit) or \
                        (kd == BUDGET and budget[e, i] - spent[e, i] < 0.05)
                    if leave:
                        active[e, i] = False
                        fine[i] += FINE_UNIT * p_exit
                        exits += 1
                elif kd == DROPOUT:
                    back = 0.05 * (1.0 if reveal_reserve else 0.5) * (1.0 - rho) * np.exp(-p_exit)
                    if hash_uniform(key, t, i, 5) < back:
                        active[e, i] = True
                        mood[e, i] = outside[e, i] + 0.05
                n_willing += active[e, i] and mood[e, i] >= outside[e, i]
            # every fine a buyer paid this round (the exit fine too) is money the market took from
            # buyers; a fine on a buyer that was not colluding punished an honest bidder
            taken = 0.0
            honest = 0.0
            for i in range(seats):
                if kind[e, i] != EMPTY and kind[e, i] != SHILL:
                    taken += fine[i]
                    honest += 0.0 if colluding[i] else fine[i]
            # rounding can pass 1 by an ulp
            ratio_w = min(1.0, max(0.0, (welfare - honest) / best)) if best > 0 else 0.0
            fair = 0.0 if welfare <= 0 or best <= 0 else \
                min(1.0, max(0.0, 1.0 - DISTORTION * abs(revenue + taken - competitive) / best))
            share = n_willing / n_real if n_real > 0 else 0.0
            steady = 1.0 - min(1.0, 2.0 * churn / compared) if compared > 0 else 1.0
            if r >= ROUNDS - SCORED:
                components[e, 0] += ratio_w / SCORED
                components[e, 1] += fair / SCORED
                components[e, 2] += share / SCORED
                components[e, 3] += steady / SCORED
                # the mean of each round's product, not the product of the means: a round scores
                # only what it achieves on all four at once (the means are reported beside it)
                rewards[e] += ratio_w * fair * share * steady / SCORED
            # record what the operator saw
            mean_bid = 0.0
            n_entered = 0
            for i in range(seats):
                if entered[i]:
                    mean_bid += bid[i]
                    n_entered += 1
            mean_bid = mean_bid / n_entered if n_entered else 0.0
            spread = 0.0
            for i in range(seats):
                if entered[i]:
                    spread += (bid[i] - mean_bid) ** 2
            spread = np.sqrt(spread / n_entered) if n_entered else 0.0
            gap = 1.0
            if n_bids > sell and bid[order[sell - 1]] > 0:
                gap = (bid[order[sell - 1]] - bid[order[sell]]) / bid[order[sell - 1]]
            row = window[e, head[e]]
            row[0] = ratio_w
            row[1] = fair
            row[2] = share
            row[3] = steady
            row[4] = revenue / sold if sold else 0.0
            row[5] = highest - lowest if sold else 0.0
            row[6] = exits / n_real if n_real else 0.0
            row[7] = signal
            row[8] = sold / k
            row[9] = mean_bid
            row[10] = spread
            row[11] = gap
            row[12] = n_entered / seats  # the operator counts registered seats, shills included
            for i in range(seats):
                winners[e, head[e], i] = won[i]
            head[e] = (head[e] + 1) % WINDOW
            filled[e] = min(filled[e] + 1, WINDOW)
            round_of[e] += 1


@numba.njit(cache=True)
def _clear(rule, rho, bid, order, n_bids, sell, won, price):
    """Clear one market: the ``sell`` highest bids at or above ``rho`` win (``order`` ranks the
    ``n_bids`` entered seats, highest first); fills ``won`` and ``price`` (per winner).

    first_price and pay_as_bid: each winner pays its bid; second_price and vcg (unit demand): the
    highest losing bid; uniform_price: the lowest winning bid; never below the reserve.

    Returns:
        (number of winners, the seat whose bid set the price or -1).
    """
    n_winners = 0
    for j in range(min(sell, n_bids)):
        i = order[j]
        if bid[i] < rho or bid[i] <= 0.0:
            break
        won[i] = True
        n_winners += 1
    setter = -1
    if n_winners > 0:
        if rule == SP or rule == VCG:
            setter = order[n_winners] if n_bids > n_winners else -1
        elif rule == UP:
            setter = order[n_winners - 1]
    for j in range(n_winners):
        i = order[j]
        if rule == FP or rule == PAB:
            price[i] = bid[i]
        else:
            price[i] = max(rho, bid[setter] if setter >= 0 else 0.0)
    return n_winners, setter


def clear_market(rule: str, reserve: float, bids: FloatArray, units: int) -> tuple[BoolArray, FloatArray]:
    """One market cleared by the referee kernel (bids of 0 abstain), for checks against the engine.

    Returns:
        (N,) won and (N,) price paid by each winner (0 for losers).
    """
    bids = np.ascontiguousarray(bids, dtype=float)
    n = bids.size
    entered = bids > 0
    order = np.zeros(n, np.int64)
    won, price = np.zeros(n, np.bool_), np.zeros(n)
    count = _rank(bids, entered, order, n)
    code = RULES.index(rule)
    _clear(code, reserve, bids, order, count, 1 if code in (FP, SP) else units, won, price)
    return won, price


@numba.njit(cache=True)
def _ring_size(kind, active, e, seats) -> int:
    size = 0
    for i in range(seats):
        size += kind[e, i] == CARTEL and active[e, i]
    return size


@numba.njit(cache=True)
def _rank(bid, entered, order, seats) -> int:
    """Fill ``order`` with the entered seats by bid, highest first (insertion sort; ties: lower seat)."""
    n = 0
    for i in range(seats):
        if entered[i]:
            j = n
            while j > 0 and bid[order[j - 1]] < bid[i]:
                order[j] = order[j - 1]
                j -= 1
            order[j] = i
            n += 1
    return n


PROXIES = ("bid_mean", "bid_spread", "top_gap", "rotation_entropy", "dropout_rate", "budget_exhaustion",
           "price_trend", "collusion_rate")


def ordered_window(state: State) -> FloatArray:
    """(E, WINDOW, FEATURES) the window oldest round first (rows before the first round are 0)."""
    rows = (state.head[:, None] + np.arange(WINDOW)[None, :]) % WINDOW
    return state.window[np.arange(state.head.size)[:, None], rows]


def observation_vectors(state: State, params: Params) -> FloatArray:
    """(E, OBSERVATION_WIDTH) the flat observation: mechanism, window (oldest round first), proxies, and
    the context a market operator knows (stage one-hot, units for sale / 3, episode progress).

    The proxies come from what a market operator sees (bids, winners, prices), over the rounds
    recorded so far: mean bid, bid spread and the gap between the last winning and the first losing
    bid; the entropy of who won (over seats that won, normalised to [0, 1]); exits per round; the
    share of repeat winners who have not won in the last five rounds (spent budgets); the
    least-squares slope of the clearing price over the window; how often the collusion signal (two
    or more near-zero bids) fired.
    """
    out = np.empty((state.step.size, OBSERVATION_WIDTH))
    _observe(state.mechanism, state.window, state.winners, state.head, state.filled, state.step, params.stage,
             params.units, out)
    return out


PROXIES = ("bid_mean", "bid_spread", "top_gap", "rotation_entropy", "dropout_rate", "budget_exhaustion",
           "price_trend", "collusion_rate")
CONTEXT = ("stage_1", "stage_2", "stage_3", "stage_4", "stage_5", "supply", "progress")
PROXY_COLUMN = MECHANISM_WIDTH + WINDOW * len(FEATURES)
OBSERVATION_WIDTH = PROXY_COLUMN + len(PROXIES) + len(CONTEXT)


@numba.njit(cache=True, error_model="numpy")
def _observe(mechanism, window, winners, head, filled, step, stage, units, out):
    n_features = window.shape[2]
    wins = np.zeros(SEATS)
    sums = np.zeros(n_features)
    recent = np.zeros(SEATS, np.bool_)
    for e in range(out.shape[0]):
        at = 0
        for j in range(mechanism.shape[1]):
            out[e, at] = mechanism[e, j]
            at += 1
        first = WINDOW - filled[e]
        count = max(filled[e], 1)
        sums[:] = 0.0
        wins[:] = 0.0
        recent[:] = False
        sx = 0.0
        sy = 0.0
        sxy = 0.0
        sxx = 0.0
        for w in range(WINDOW):
            slot = (head[e] + w) % WINDOW
            for f in range(n_features):
                x = window[e, slot, f] if w >= first else 0.0
                out[e, at] = x
                at += 1
                sums[f] += x
            if w >= first:
                price = window[e, slot, PRICE]
                sx += w
                sy += price
                sxy += w * price
                sxx += w * w
                for i in range(SEATS):
                    wins[i] += winners[e, slot, i]
                    recent[i] |= winners[e, slot, i] and w >= WINDOW - 5
        total = wins.sum()
        entropy = 0.0
        seats = 0
        repeat = 0
        gone = 0
        for i in range(SEATS):
            if wins[i] > 0:
                share = wins[i] / total
                entropy -= share * np.log(share)
                seats += 1
            if wins[i] >= 2:
                repeat += 1
                gone += not recent[i]
        n = filled[e]
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx) if n > 1 else 0.0
        out[e, at + 0] = sums[BID_MEAN] / count
        out[e, at + 1] = sums[BID_SPREAD] / count
        out[e, at + 2] = sums[TOP_GAP] / count
        out[e, at + 3] = min(1.0, entropy / np.log(seats)) if seats > 1 else 0.0
        out[e, at + 4] = sums[DROPOUTS] / count
        out[e, at + 5] = gone / repeat if repeat else 0.0
        out[e, at + 6] = slope * WINDOW
        out[e, at + 7] = sums[COLLUSION] / count
        at += 8
        for s in range(5):
            out[e, at + s] = 1.0 if stage[e] == s + 1 else 0.0
        out[e, at + 5] = units[e] / 3.0
        out[e, at + 6] = step[e] / HORIZON
