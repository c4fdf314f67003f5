"""The casebook of planted flaws (examples/plugins/planted): every case loads and passes the checker, and
its exact exploitability oracle agrees with Monte Carlo play through the case's own kernel.

Exploitability (the casebook's README): one deviator among n agents, the other n - 1 bid truthfully,
values i.i.d. U[0, 1], one round; the mean gain per round of the deviator's best response over
truthful bidding.
"""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mecharena import agents, mechanisms, plugins
from mecharena.mechanisms import clear
from mecharena.mechanisms.checker import check_mechanism
from mecharena.sim.loop import make_episode, merge_identities
from mecharena.sim.loop import play as play_rounds

ROOT = Path(__file__).resolve().parents[2]
CASEBOOK = ROOT / "examples" / "plugins" / "planted"
CASES = sorted(path.stem for path in CASEBOOK.glob("*.py"))
SIZES = (3, 4, 5)
MAX_FALSE_NAMES = 5  # identity_rebate: up to 6 identities
# The config of each case without its flaw, and the exploitability the oracle must give it.
PLAIN = {
    "margin_discount": {"discount": 0.0},
    "price_band": {"band_share": 1.0},
    "near_miss_rebate": {"rebate_share": 0.0},
    "tick_ties": {"ticks": 0},
    "identity_rebate": {"rebate": 0.0},
    "waived_reserve": {"reserve_price": 0.0},
}


def first_price_shading(n: int) -> float:
    """Plain first price against truthful rivals: ``b^(n-1) (v - b)`` is maximised at ``b = (n-1)v/n``,
    worth ``(n-1)^(n-1) v^n / n^n``; truthful bidding earns 0, so the gain integrates to
    ``(n-1)^(n-1) / (n^n (n+1))`` (Krishna, *Auction Theory*, 2nd ed., sec. 2.3, with the rivals' bids
    the highest of n - 1 uniform values)."""
    return (n - 1) ** (n - 1) / (n**n * (n + 1))


def case(name: str):
    """The case's module, loaded as a plug-in without re-running the checker (the registry is restored
    after each test by the conftest fixture)."""
    plugin = plugins.load(str(CASEBOOK / f"{name}.py"), check=False)
    return sys.modules[plugin.module]


def utility(module, values, bids, rivals, priority, identities=None):
    """The deviator's utility (seat 0, its identities merged) in markets of ``1 + rivals.shape[1]`` agents.

    Args:
        values: (M,) the deviator's values.
        bids: (M,) its bids (NaN: abstain, bid 0).
        rivals: (M, n - 1) the rivals' values, which they bid.
        priority: (M, n - 1 + 5) tie-breaking priorities (the last 5: false names' seats).
        identities: (M,) m (identity_rebate): the m - 1 false names take seats n.. and bid the rebate
            floor; None: one identity.
    """
    n = rivals.shape[1] + 1
    seats = n + (0 if identities is None else MAX_FALSE_NAMES)
    owner = np.r_[np.arange(n), np.zeros(seats - n, dtype=np.int64)]
    all_values = np.column_stack([values, rivals, np.repeat(values[:, None], seats - n, axis=1)])
    all_bids = np.where(owner == np.arange(seats), all_values, 0.0)
    all_bids[:, 0] = np.nan_to_num(bids, nan=0.0)
    if identities is not None:
        false_names = np.arange(1, seats - n + 1)[None, :] < identities[:, None]
        floor = module.MECHANISM.config().rebate_floor
        all_bids[:, n:] = np.where(false_names & ~np.isnan(bids)[:, None], floor, 0.0)
    out = clear(module.MECHANISM, None, all_values, all_bids, priority[:, :seats])
    return merge_identities(owner, all_values, out)[0][:, 0]


def gain(module, values, bids, n, rng, identities=None):
    """(M,) the deviator's gain over truthful bidding, in M markets with fresh rivals (common to both plays)."""
    rivals, priority = rng.random((values.size, n - 1)), rng.random((values.size, n - 1 + 1 + MAX_FALSE_NAMES))
    ones = None if identities is None else np.ones_like(identities)
    return (utility(module, values, bids, rivals, priority, identities)
            - utility(module, values, values, rivals, priority, ones))


@pytest.mark.parametrize("name", CASES)
def test_each_case_loads_and_passes_the_checker(name):
    path = CASEBOOK / f"{name}.py"
    plugin = plugins.load(str(path))  # refused unless check_mechanism passes
    mechanism = mechanisms.get(name)
    assert plugin.mechanisms == (mechanism,) and mechanism.merges_identities
    assert check_mechanism(mechanism) >= 10
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"typing", "numpy", "pydantic", "mecharena"}


def test_the_casebook_has_five_kinds_of_flaw():
    assert {"margin_discount", "price_band", "near_miss_rebate", "tick_ties", "identity_rebate"} <= set(CASES)
    assert set(CASES) == set(PLAIN)


@pytest.mark.parametrize("name", CASES)
def test_without_the_flaw_the_oracle_finds_the_plain_rule(name):
    """The plain rules are Vickrey auctions (truthful bidding dominant; Vickrey 1961), exploitability 0,
    and, for the price band, the plain first-price auction's gain from shading."""
    module = case(name)
    for n in SIZES:
        expected = first_price_shading(n) if name == "price_band" else 0.0
        assert module.true_exploitability(n, PLAIN[name]) == pytest.approx(expected, abs=1e-9)
        assert module.true_exploitability(n) > 1e-4  # the planted flaw pays


@pytest.mark.parametrize("n", SIZES)
def test_waived_reserve_matches_its_closed_form(n):
    """Values in (k r/(k+1), r) bid r and gain ``v r^k - k/(k+1) r^(k+1)``: ``r^(k+2) / (2 (k+1)^2)``."""
    module = case("waived_reserve")
    k = n - 1
    for r in (0.3, 0.5, 0.8):
        assert module.true_exploitability(n, {"reserve_price": r}) == pytest.approx(r ** (k + 2) / (2 * n**2),
                                                                                     abs=1e-7)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", CASES)
def test_the_oracle_agrees_with_monte_carlo_through_the_kernel(name, n):
    """200,000 markets: the deviator plays the oracle's best response, the others truthfully; the mean
    gain over truthful bidding matches ``true_exploitability(n)`` within 3 standard errors."""
    module = case(name)
    rng = np.random.default_rng(20240 + n)
    values = rng.random(200_000)
    if name == "identity_rebate":
        bids, identities = module.best_response(values, n)
        sample = gain(module, values, bids, n, rng, identities)
    else:
        sample = gain(module, values, module.best_response(values, n), n, rng)
    error = sample.std() / np.sqrt(sample.size)
    assert abs(sample.mean() - module.true_exploitability(n)) < 3 * error


@pytest.mark.parametrize("name", CASES)
def test_no_bid_beats_the_oracles_best_response(name):
    """At a few values no bid on a grid does better than the oracle's best response: exactly, by the
    oracle's own utility on a fine grid, and within 3 standard errors through the kernel on a coarse one
    (with 1, 2 and 6 identities, for identity_rebate)."""
    module = case(name)
    n, values = 3, np.array([0.05, 0.3, 0.5, 0.7, 0.95])
    fine = np.linspace(0.0, 4.0, 8001)
    coarse = np.r_[np.linspace(0.0, 1.5, 31), 2.0, 3.0, 4.0]
    split = name == "identity_rebate"
    markets = 4_000 if split else 10_000  # false names make each market three times larger
    best, best_m = module.best_response(values, n) if split else (module.best_response(values, n), np.ones(5, int))
    counts = range(1, MAX_FALSE_NAMES + 2) if split else [1]
    rng = np.random.default_rng(7)
    for v, b, m in zip(values, best, best_m, strict=True):
        top = 0.0 if np.isnan(b) else float(module.expected_utility(v, b, n, **({"identities": m} if split else {})))
        for k in counts:
            exact = module.expected_utility(v, fine, n, **({"identities": k} if split else {}))
            assert exact.max() <= top + 1e-12, (v, k)
        # through the kernel: every (bid, m) meets the same rivals and priorities (common random numbers)
        rivals, priority = rng.random((markets, n - 1)), rng.random((markets, n + MAX_FALSE_NAMES))
        tries = [(bid, k) for bid in coarse for k in ((1, 2, MAX_FALSE_NAMES + 1) if split else (1,))]
        each = len(tries)
        trial = utility(module, np.full(markets * each, v), np.repeat([t[0] for t in tries], markets),
                        np.tile(rivals, (each, 1)), np.tile(priority, (each, 1)),
                        np.repeat([t[1] for t in tries], markets) if split else None)
        reference = utility(module, np.full(markets, v), np.full(markets, b), rivals, priority,
                            np.full(markets, m) if split else None)
        diff = trial.reshape(each, markets) - reference
        error = diff.std(axis=1) / np.sqrt(markets)
        assert (diff.mean(axis=1) <= 3 * error + 1e-12).all(), (v, tries[int(np.argmax(diff.mean(axis=1) - 3 * error))])


def _table(text: str) -> dict[int, list[float]]:
    """Rows ``n  x  y ...`` of the reStructuredText tables in ``text``."""
    rows = re.findall(r"^([345]) {2,}([0-9. ]+)$", text, flags=re.MULTILINE)
    return {int(n): [float(x) for x in rest.split()] for n, rest in rows}


@pytest.mark.parametrize("name", CASES)
def test_the_documented_numbers_are_the_oracles(name):
    """Each docstring's table, and the README's row of the case, give ``true_exploitability(n)``."""
    module = case(name)
    table = _table(module.__doc__)
    readme = (CASEBOOK / "README.md").read_text()
    row = re.search(rf"^\| `{name}` .*$", readme, flags=re.MULTILINE)
    assert row, f"{name} has no row in the README"
    documented = [float(x) for x in re.findall(r"\b0\.\d{6}\b", row.group(0))[:3]]
    for i, n in enumerate(SIZES):
        exact = module.true_exploitability(n)
        assert table[n][0] == pytest.approx(exact, abs=1e-6)
        assert documented[i] == pytest.approx(exact, abs=1e-6)


def test_false_name_bidders_may_play_the_identity_rebate():
    """``merges_identities``: the round loop seats a sybil's false names and books their rebates on it."""
    module = case("identity_rebate")
    episode = make_episode(module.MECHANISM, module.MECHANISM.config(), agents.population("truthful:2,sybil(m=4):1"),
                           markets=200, seed=0)
    record = next(play_rounds(episode, 1))
    assert record.utility.shape == (200, 6) and (record.utility[:, 3:] == 0).all()  # booked on the owner
    assert (record.outcome.receipts[:, 3:] > 0).any()  # false names that bid collected rebates
