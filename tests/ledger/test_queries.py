"""The ledger's query layer: one market round by round and the seats' utility per market, against the records the
ledger was written from."""

import numpy as np
import pytest

from mecharena.ledger import connect, record_episode
from mecharena.ledger.queries import declared_columns, market_messages, market_rounds, utility_by_market
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play


@pytest.mark.parametrize("mechanism, declared", [
    ("reputation", {"action_quality", "action_reenter", "action_fakes", "state_score", "state_listings"}),
    ("second_price", set()),
])
def test_a_market_round_by_round_is_what_was_played(tmp_path, mechanism, declared):
    cell = Cell(mechanism=mechanism, population="truthful:3", markets=4, seed=6)
    record_episode(cell.episode(), tmp_path / "ledger", rounds=3)
    records = list(play(cell.episode(), 3))
    con = connect(tmp_path / "ledger")
    try:
        assert declared <= set(declared_columns(con)) and (declared or not declared_columns(con))
        rounds = market_rounds(con, 2)
        assert sorted(rounds) == [0, 1, 2]
        for t, record in enumerate(records):
            seats = rounds[t]["seats"]
            assert [s["seat"] for s in seats] == [0, 1, 2]
            np.testing.assert_array_equal([s["bid"] for s in seats], record.bids[2])
            np.testing.assert_array_equal([s["utility"] for s in seats], record.utility[2])
            assert rounds[t]["revenue"] == pytest.approx(float(record.outcome.revenue[2]))
            for name in (c for c in declared if c.startswith("state_")):
                np.testing.assert_array_equal([s["extra"][name] for s in seats], record.next_state[name[6:]][2])
        by_market = utility_by_market(con, [0, 2])
        expected = sum(r.utility[:, [0, 2]].sum(axis=1) for r in records)
        np.testing.assert_allclose([by_market[m] for m in range(4)], expected)
        assert utility_by_market(con, []) == {} and market_messages(con, 2) == {}  # auctions record no messages
    finally:
        con.close()
