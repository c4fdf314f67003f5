"""The rationality table's script (examples/llm/rationality.py): the dominance flag end to end, through a real
OpenAI-compatible round trip, for a sensible rule and an absurd one."""

from tests.examples.conftest import load_example


def test_shading_is_never_dominated_and_tripling_the_value_always_is(isolated_registries):
    table = load_example("llm/rationality.py")
    with table.scripted(2 / 3) as shading, table.scripted(3.0) as tripling:
        sane, absurd = table.rows("shading", shading, rounds=5), table.rows("tripling", tripling, rounds=5)
    for row in sane:  # a bid below value is never dominated in either auction, and parses every time
        assert (row["requests"], row["valid"], row["decisions"], row["dominated"]) == (10, 10, 10, 0), row
    for row in absurd:  # 3 x a value in [0, 1] is above it whenever the value is positive
        assert (row["valid"], row["dominated"]) == (10, 10), row
        assert row["surplus_vs_truthful"]["ci95"][1] < 0, row  # and it costs the seats surplus
        # ... and more than any sane rule: the best response to the same rivals never bids above value here
        assert row["regret"]["mean"] > max(r["regret"]["mean"] for r in sane), row
    assert table.markdown(sane + absurd).count("\n") == 1 + 4
