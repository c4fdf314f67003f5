"""The marketplace reputation use case (examples/plugins/reputation.py): rules, analytic checks, fuzzing, repair."""

import math
from pathlib import Path

import numpy as np
import pytest

from mecharena import mechanisms, plugins
from mecharena.core.errors import ConfigError
from mecharena.fuzz.search import fuzz
from mecharena.mechanisms.checker import check_mechanism
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugins" / "reputation.py"


@pytest.fixture
def rep():
    """The plug-in's module, loaded (and registered) for one test."""
    import sys

    return sys.modules[plugins.load(str(PLUGIN)).module]


def game(rep, config, values, orders, priority=None):
    """Play hand-written games: values (B, N), orders (B, N, 2P)."""
    config = rep.ReputationConfig(**config)
    values = np.asarray(values, dtype=float)
    if priority is None:
        priority = np.random.default_rng(0).random(values.shape)
    return rep.play_game(config, values, np.asarray(orders, dtype=float), priority)


def plan(periods, effort=1.0, renew=(), fakes=0.0):
    """One seller's orders: efforts (re-entering in the periods ``renew``), then fake ratings."""
    efforts = [effort + (2.0 if t in renew else 0.0) for t in range(periods)]
    return efforts + [fakes] * periods


def attack(rule, family, budget=16, deviators=1, seed=0):
    target = Cell(mechanism="reputation_market", config=rule, population="honest:4")
    return fuzz(target, families=[family], deviators=deviators, budget=budget, seed=seed, markets=300, rounds=2,
                eval_markets=2000)


def test_plugin_loads_and_passes_the_checker(rep):
    plugin = plugins.load(str(PLUGIN))
    assert [m.name for m in plugin.mechanisms] == ["reputation_market"]
    assert {a.name for a in plugin.agents} == {"honest", "milker", "whitewasher", "fake_review_ring"}
    assert {f.name for f in plugin.families} == {"milking", "whitewashing", "fake_review_ring"}
    assert check_mechanism(mechanisms.get("reputation_market")) > 0
    assert mechanisms.get("reputation_market").properties(rep.ReputationConfig(listing_fee=0.2)) == {
        "weak_budget_balance"}


def test_config_errors_name_the_field(rep):
    with pytest.raises(ConfigError, match="decay"):
        mechanisms.get("reputation_market").config({"decay": 0.0})
    with pytest.raises(ConfigError, match="price_share"):
        mechanisms.get("reputation_market").config({"price_share": 1.0})


def test_the_agents_refuse_other_mechanisms(rep):
    cell = Cell(mechanism="second_price", population="milker:3", markets=2, rounds=1)
    with pytest.raises(ConfigError, match="milker supports reputation_market"):
        next(play(cell.episode(), 1))


def test_beta_posterior_mean_for_a_perfect_seller(rep):
    """Beta-Bernoulli updating (Josang and Ismail 2002): after k positive ratings and none negative the
    display is (m s + k) / (s + k); with forgetting factor lambda the evidence is sum lambda^(t-1-j) over
    the periods j with a sale. A type-1 seller at full effort earns only positive ratings."""
    periods, m, s = 12, 0.3, 2.0
    values = np.ones((400, 1))
    orders = np.tile(plan(periods), (400, 1, 1))
    for lam in (1.0, 0.6):
        g = game(rep, {"periods": periods, "prior_mean": m, "prior_strength": s, "decay": lam}, values, orders)
        sold = g.sold[:, 0, :].astype(float)
        evidence = np.zeros(400)
        for t in range(periods):
            np.testing.assert_allclose(g.shown[:, 0, t], (m * s + evidence) / (s + evidence), rtol=1e-12)
            evidence = lam * evidence + sold[:, t]
        np.testing.assert_allclose(g.final[:, 0], (m * s + evidence) / (s + evidence), rtol=1e-12)
        assert sold.mean() > m  # buyers buy with probability r, which climbs from m
        if lam < 1:
            assert evidence.max() <= 1 / (1 - lam) + 1e-12  # the most weight a forgetting rule keeps


def test_average_rule_is_unbiased_for_an_honest_seller(rep):
    """Shown the prior mean 1 until all P ratings are in (min_history = P), every buyer buys, and the
    average rule's final display is a Binomial(P, theta) / P share: mean theta, variance theta(1 - theta)/P."""
    periods, theta, markets = 10, 0.7, 20_000
    config = {"periods": periods, "prior_mean": 1.0, "min_history": float(periods)}
    g = game(rep, config, np.full((markets, 1), theta), np.tile(plan(periods), (markets, 1, 1)))
    assert g.sold.all()
    final = g.final[:, 0]
    half = 1.96 * math.sqrt(theta * (1 - theta) / periods / markets)
    assert abs(final.mean() - theta) < 1.5 * half
    assert final.var() == pytest.approx(theta * (1 - theta) / periods, rel=0.05)


def test_whitewashing_resets_the_record_and_pays_a_fee_per_identity(rep):
    periods, fee = 6, 0.25
    config = {"periods": periods, "listing_fee": fee}
    cheat = plan(periods, effort=0.0, renew=(2, 4))
    orders = np.array([[cheat, plan(periods, effort=0.0)]])
    g = game(rep, config, [[0.8, 0.8]], orders, priority=np.array([[0.3, 0.3]]))
    assert g.identities.tolist() == [[3.0, 1.0]]
    assert g.shown[0, 0, 2] == g.shown[0, 0, 4] == 0.5  # a fresh identity is shown the prior mean
    out = rep.kernel(rep.ReputationConfig(**config), np.array([[0.8, 0.8]]), orders, np.array([[0.3, 0.3]]))
    assert out.payments.tolist() == [[3 * fee, fee]]
    assert out.revenue[0] == pytest.approx(4 * fee)


def test_fake_ratings_go_to_the_ring_partner_and_verification_ignores_them(rep):
    """Two ring members spread their fakes over each other: the one buying many inflates its partner."""
    periods = 8
    values = np.full((300, 3), 0.2)
    orders = np.stack([plan(periods, fakes=5.0), plan(periods, fakes=1e-6), plan(periods)])
    orders = np.tile(orders, (300, 1, 1))
    naive = game(rep, {"periods": periods}, values, orders)
    assert naive.final[:, 1].mean() > 0.8 > naive.final[:, 0].mean() + 0.3  # the partner is inflated, not the buyer
    verified = game(rep, {"periods": periods, "unverified_weight": 0.0}, values, orders)
    honest = game(rep, {"periods": periods}, values, np.tile(plan(periods), (300, 3, 1)))
    np.testing.assert_array_equal(verified.final, honest.final)  # as if no fake rating had been bought
    np.testing.assert_allclose(honest.profit[:, 0] - verified.profit[:, 0], 0.05 * 5.0 * periods)  # but paid for


def test_invalid_orders_list_nothing(rep):
    periods = 4
    orders = np.array([[plan(periods), plan(periods, effort=1.5), plan(periods, fakes=-1.0)]])
    out = rep.kernel(rep.ReputationConfig(periods=periods), np.array([[0.5, 0.5, 0.5]]), orders,
                     np.array([[0.1, 0.2, 0.3]]))
    assert out.valid.tolist() == [[True, False, False]]
    assert out.utility[0, 1:].tolist() == [0.0, 0.0] and out.allocation[0, 1:].tolist() == [0.0, 0.0]


def test_fuzzer_finds_milking_whitewashing_and_fake_ratings_under_the_naive_rule(rep):
    for family in ("milking", "whitewashing", "fake_review_ring"):
        found = attack(rep.NAIVE, family)
        assert found.fresh.lo > 0.05, (family, found.fresh)
    milk = dict(attack(rep.NAIVE, "milking").best.deviation.params)
    assert milk["cut"] < 0.5 and milk["warmup"] > 0.3  # build a record first, then cut quality
    wash = dict(attack(rep.NAIVE, "whitewashing").best.deviation.params)
    assert wash["below"] > 0.3 and wash["effort"] < 0.5  # low types cheat and re-enter


def test_repaired_rule_cuts_milking_and_closes_whitewashing_and_fake_ratings(rep):
    naive_milk = attack(rep.NAIVE, "milking", budget=40)
    repaired_milk = attack(rep.REPAIRED, "milking", budget=40)
    # a cut in the last period or two still pays: the rating of a sale arrives after its price was paid
    assert repaired_milk.exploitability["ci95"][1] < naive_milk.fresh.mean / 10
    for family in ("whitewashing", "fake_review_ring"):
        assert attack(rep.REPAIRED, family, budget=40).exploitability["ci95"][1] <= 0.005, family
    assert attack(rep.REPAIRED, "fake_review_ring", deviators=2).exploitability["mean"] == 0.0
    # decay alone cuts milking but leaves whitewashing open: the fee and verification do the rest
    assert attack(rep.DECAYED, "whitewashing").fresh.lo > 0.5


def test_the_table_measures_the_welfare_cost_of_the_repair(rep):
    table = rep.exploitability_table(("average", "bayesian", "repaired", "repaired_low_start"),
                                     (("whitewashing", 1),), budget=8, eval_markets=1500)
    costs, metrics = table["costs"], table["metrics"]
    assert set(costs) == {f"{r} - {b}" for r in ("repaired", "repaired_low_start") for b in ("average", "bayesian")}
    assert costs["repaired - average"]["welfare"]["ci95"][0] > 0  # the average rule's cold start is costlier
    assert abs(costs["repaired - bayesian"]["welfare"]["mean"]) < 0.01  # the fee is a transfer: welfare kept
    assert costs["repaired - bayesian"]["buyer_welfare"]["ci95"][1] < 0  # noisier, fresher ratings cost buyers
    # showing newcomers below the average loses trades (their dues) but buyers pay less
    low, high = metrics["repaired_low_start"], metrics["repaired"]
    assert low["trades"]["ci95"][1] < high["trades"]["ci95"][0]
    assert low["buyer_welfare"]["ci95"][0] > high["buyer_welfare"]["ci95"][1]
    assert table["exploits"]["average"]["whitewashing/1"]["exploitability"]["ci95"][0] > 0
    assert table["exploits"]["repaired"]["whitewashing/1"]["exploitability"]["mean"] < 0.005
    text = rep.markdown(table)
    assert "| `whitewashing` (1) |" in text and "`repaired - bayesian`" in text


def test_docs_show_the_table_and_the_command(rep):
    doc = (ROOT / "docs" / "usecases.md").read_text()
    section = doc.split("## Marketplace reputation", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/python examples/plugins/reputation.py" in section
    assert "| `milking` (1) |" in section and "| `whitewashing` (1) |" in section


def test_repair_searches_the_plugins_own_knobs_and_closes_whitewashing(rep):
    """``repair(search=...)`` searches a plug-in's config fields: against whitewashing under the
    Bayesian rule it raises the listing fee until re-entering under a new identity stops paying."""
    from mecharena.fuzz.repair import repair

    target = Cell(mechanism="reputation_market", config={"prior_strength": 2}, population="honest:5")
    result = repair(target, families=["whitewashing"], budget=6, inner_budget=6, welfare_floor=0.5,
                    revenue_floor=0.0, search={"listing_fee": (0.0, 0.5)})
    assert result.original.exploitability["ci95"][0] > 0.5  # whitewashing pays under the naive rule
    best = result.recommended
    assert best.exploitability["mean"] < 0.05 * result.original.exploitability["mean"]
    assert best.design.config["listing_fee"] > 0.2
    with pytest.raises(ConfigError, match="search field 'fee' is not a config field of reputation_market"):
        repair(target, search={"fee": (0.0, 1.0)})
    with pytest.raises(ConfigError, match="listing_fee must be"):
        repair(target, search={"listing_fee": (-1.0, 1.0)})
