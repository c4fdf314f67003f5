"""Value distributions, the empirical one (a user's CSV of values) above all."""

import numpy as np
import pytest

from mecharena.agents.equilibrium import solve
from mecharena.agents.values import MAX_POINTS, ValueDistribution, empirical, parse_distribution
from mecharena.core.errors import ConfigError
from mecharena import mechanisms
from mecharena.metrics.run import simulate_summary


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def power_csv(tmp_path):
    """A sample of F(v) = v^2 on [0, 1] (its quantiles sqrt(u)), with a header and a second column."""
    u = np.linspace(0.0, 1.0, 20_001)
    return write(tmp_path / "values.csv", ["id,value"] + [f"{i},{float(np.sqrt(x))!r}" for i, x in enumerate(u)])


def test_empirical_matches_the_distribution_it_was_drawn_from(power_csv):
    data = parse_distribution(f"empirical:path={power_csv},column=value")
    exact = ValueDistribution(kind="power", shape=2.0)
    assert data.low == 0.0 and data.high == 1.0 and len(data.points) == MAX_POINTS  # 20,001 values summarised
    x = np.linspace(0.0, 1.0, 1001)
    assert np.abs(data.cdf(x) - exact.cdf(x)).max() < 1e-3
    assert np.abs(data.ppf(x) - exact.ppf(x)).max() < 1e-2  # sqrt is steep at 0: the quantiles' largest gap
    np.testing.assert_allclose(data.cdf(data.ppf(x)), x, atol=1e-12)  # one the inverse of the other


@pytest.mark.slow
def test_first_price_equilibrium_on_data_matches_the_closed_form(power_csv):
    """Symmetric first-price BNE with F(v) = v^2 and n = 3: b(v) = v - int_0^v F^2 / F(v)^2 = 4v/5
    (Krishna, *Auction Theory*, 2nd ed., prop. 2.2); revenue E[b(max of 3)] = 4/5 x 6/7 = 24/35.
    The closed-form bidders (numeric integration over the data's CDF) and the solver both hold it; a
    value below 0.2 wins with chance below 0.0016 (v^4), which the solver's samples hardly resolve:
    those entries are held to 0.02, the rest to 0.01."""
    spec = f"empirical:path={power_csv},column=value"
    summary = simulate_summary("first_price", {}, "bne:3", 20_000, 1, 0, values=spec)
    revenue = summary["metrics"]["revenue"]
    assert revenue["ci95"][0] - 1e-3 <= 24 / 35 <= revenue["ci95"][1] + 1e-3, revenue
    found = solve(mechanisms.get("first_price"), {}, 3, parse_distribution(spec))
    error = np.abs(found.bids - 0.8 * found.values)
    assert error.max() <= 0.02 and error[found.values >= 0.2].max() <= 0.01 and found.gain_ci95[1] <= 1e-3


def test_empirical_points_are_the_record_not_the_path(power_csv, tmp_path):
    one = parse_distribution(f"empirical:path={power_csv},column=value")
    moved = tmp_path / "moved.csv"
    moved.write_text(power_csv.read_text())
    assert parse_distribution(f"empirical:path={moved},column=value") == one
    assert ValueDistribution.model_validate(one.model_dump()) == one  # a ledger's copy rebuilds it


@pytest.mark.parametrize("lines, spec_tail, message", [
    (["0.1", "0.5", "abc"], "", r"values file .*v\.csv line 3: 'abc' is not a number"),
    (["0.1", "", "-0.5"], "", r"values must be finite and >= 0, got -0\.5"),
    (["0.1", "nan"], "", r"values must be finite and >= 0, got nan"),
    (["0.3", "0.3"], "", r"at least two distinct values, got \[0\.3, 0\.3\]"),
    ([], "", r"values file .*v\.csv is empty"),
    (["value", "0.1", "0.2"], ",column=price", r"has no column 'price'; its header: \['value'\]"),
    (["0.1", "0.2"], ",shape=2", "an empirical value distribution takes path, column, common and persistent, got shape"),
])
def test_bad_values_files_get_one_clear_line(tmp_path, lines, spec_tail, message):
    path = write(tmp_path / "v.csv", lines)
    with pytest.raises(ConfigError, match=message):
        parse_distribution(f"empirical:path={path}{spec_tail}")


def test_missing_file_and_inconsistent_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"values file .*nope\.csv: No such file or directory"):
        parse_distribution(f"empirical:path={tmp_path / 'nope.csv'}")
    with pytest.raises(ConfigError, match="needs path=FILE"):
        parse_distribution("empirical")
    with pytest.raises(ConfigError, match="points are given exactly when kind is 'empirical'"):
        ValueDistribution.build(kind="uniform", points=(0.0, 1.0))
    with pytest.raises(ConfigError, match=r"high of an empirical distribution is its data's highest value \(1\.0\)"):
        ValueDistribution.build(kind="empirical", points=(0.0, 1.0), high=2.0)
    assert empirical(np.array([0.2, 0.1, 0.4])).points == (0.1, 0.2, 0.4)
    shared = parse_distribution(f"empirical:path={write(tmp_path / 'c.csv', ['0.1', '0.9'])},common=0.5")
    assert shared.common == 0.5 and shared.points == (0.1, 0.9)
