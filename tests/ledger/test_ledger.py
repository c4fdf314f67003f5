"""Recording and replaying ledgers: exact replay, tamper detection, modes, formats, metadata."""

import json
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mecharena
from mecharena import mechanisms
from mecharena.agents.base import AgentType
from mecharena.ledger import (
    FORMAT_VERSION,
    Ledger,
    connect,
    describe,
    read_meta,
    record_episode,
    replay,
)
from mecharena.ledger.tables import ROUNDS_SCHEMA
from mecharena.mechanisms.cda import CDAConfig
from mecharena.metrics.harness import Cell
from mecharena.sim.loop import play

from .helpers import ENFORCED, JITTER, SPLITTER, episode, reseal

CASES = {
    "second_price_reserve_sybil_enforced": ("second_price", {"reserve_price": 0.3},
                                            [(JITTER, 3), (SPLITTER, 2), ("truthful", 1)], ENFORCED),
    "first_price_bne_enforced": ("first_price", {"reserve_price": 0.1}, [("bne", 3), (JITTER, 2)], ENFORCED),
    "vcg_demand_2": ("vcg", {"units": 3, "demand": 2}, [("truthful", 3), (JITTER, 2)], ENFORCED),
    # false names in a multi-unit auction: the most welfare counts each owner's value once
    "vcg_units_2_sybil_enforced": ("vcg", {"units": 2}, [(SPLITTER, 2), (JITTER, 2)], ENFORCED),
    "mcafee": ("mcafee", {"buyers": 3}, [(JITTER, 6)], ENFORCED),
    "cda": ("cda", {"buyers": 3}, [(JITTER, 6)], ENFORCED),
    "provision_point": ("provision_point", {"threshold": 1.5}, [(JITTER, 4), ("truthful", 1)], ENFORCED),
}
if "orders" in CDAConfig.model_fields:
    CASES["cda_two_orders"] = ("cda", {"buyers": 2, "orders": 2}, [(JITTER, 5)], ENFORCED)


def events_of(path):
    return pq.read_table(sorted((path / "events").glob("part-*.parquet")))


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_ledger_replays_every_outcome_exactly(tmp_path, case):
    mechanism, config, groups, enforcement = CASES[case]
    ep = episode(mechanism, config, groups, enforcement=enforcement, start=1000)
    path = record_episode(ep, tmp_path / "run", rounds=3, jsonl=False)
    report = replay(path)
    assert report.ok, report.mismatches[:5]
    assert (report.rounds, report.market_rounds, report.events) == (3, 3 * 48, 3 * 48 * ep.population.size)
    assert report.notes == ()
    events = events_of(path)
    assert np.sum(events.column("penalty").to_numpy()) > 0  # fines were charged: replay checked the rule
    assert events.column("market").to_numpy().min() == 1000
    assert events.column("time").null_count == (0 if mechanisms.get(mechanism).uses_times else events.num_rows)


def test_every_penalty_term_fires_in_the_enforced_sybil_case(tmp_path):
    mechanism, config, groups, enforcement = CASES["second_price_reserve_sybil_enforced"]
    path = record_episode(episode(mechanism, config, groups, enforcement=enforcement), tmp_path / "run", rounds=3,
                          jsonl=False)
    con = connect(path)
    exited, colluding, owner_fined = con.execute(
        "SELECT count(*) FILTER (exited), count(*) FILTER (colluding AND active), "
        "count(*) FILTER (seat = owner AND seat >= 3 AND penalty >= 0.3) FROM events").fetchone()
    audited = con.execute("SELECT count(*) FILTER (audited), count(*) FILTER (NOT audited) FROM markets").fetchone()
    assert exited > 0 and colluding > 0 and owner_fined > 0
    assert min(audited) > 0


def test_a_changed_payment_is_reported_with_its_coordinates(tmp_path):
    ep = episode("second_price", {"reserve_price": 0.2}, [("truthful", 4)], markets=16)
    path = record_episode(ep, tmp_path / "run", rounds=3, jsonl=False)
    part = path / "events" / "part-000000001.parquet"
    table = pq.read_table(part)
    payment = table.column("payment").to_numpy().copy()
    row = int(np.flatnonzero(payment > 0)[2])
    original = payment[row]
    payment[row] = np.nextafter(original, 2.0)  # one ulp: only a bitwise comparison sees it
    pq.write_table(table.set_column(table.schema.get_field_index("payment"), "payment", pa.array(payment)), part)
    reseal(path)

    report = replay(path)
    assert not report.ok and report.mismatch_count == 1
    (m,) = report.mismatches
    market, seat = table.column("market")[row].as_py(), table.column("seat")[row].as_py()
    assert (m.round, m.market, m.seat, m.field) == (1, market, seat, "payment")
    assert m.recorded == np.nextafter(original, 2.0) and m.replayed == original


def test_a_changed_input_shows_up_in_the_outcomes(tmp_path):
    ep = episode("first_price", {}, [("bne", 4)], markets=16)
    path = record_episode(ep, tmp_path / "run", rounds=2, jsonl=False)
    part = path / "events" / "part-000000000.parquet"
    table = pq.read_table(part)
    bids = table.column("bid").to_numpy().copy()
    bids[:4] = 0.999  # market 0: seat 0..3 all bid 0.999 (the winner changes or pays more)
    pq.write_table(table.set_column(table.schema.get_field_index("bid"), "bid", pa.array(bids)), part)
    reseal(path)
    report = replay(path)
    fields = {m.field for m in report.mismatches}
    assert {"payment", "revenue", "digest"} <= fields
    assert all(m.market == 0 for m in report.mismatches if m.market is not None)


def test_aggregate_totals_equal_the_full_ledger_and_its_sums(tmp_path):
    cell = Cell(mechanism="second_price", config={"reserve_price": 0.25}, population="truthful:3,bne:2",
                enforcement=ENFORCED, markets=40, rounds=4, seed=11)
    full = record_episode(cell, tmp_path / "full", jsonl=False)
    aggregate = record_episode(cell, tmp_path / "aggregate", mode="aggregate")
    assert sorted(p.name for p in aggregate.iterdir()) == ["ledger.duckdb", "meta.json", "parts.jsonl", "rounds",
                                                                  "rounds.jsonl"]
    a = connect(aggregate).sql("SELECT * FROM rounds ORDER BY round").to_arrow_table()
    f = connect(full).sql("SELECT * FROM rounds ORDER BY round").to_arrow_table()
    assert a.num_rows == 4 and a.equals(f)

    sums = connect(full).execute("""
        SELECT e.round, any_value(m.revenue), sum(e.penalty), any_value(m.welfare), any_value(m.max_welfare),
               sum(e.utility), sum(greatest(e.allocation, 0)), sum(e.payment), sum(e.receipt),
               count(*) FILTER (e.participated), count(*) FILTER (e.active), count(*) FILTER (NOT e.valid),
               count(*) FILTER (e.exited), count(*) FILTER (e.colluding)
        FROM events e JOIN (SELECT round, sum(revenue) AS revenue, sum(welfare) AS welfare,
                                   sum(max_welfare) AS max_welfare FROM markets GROUP BY round) m USING (round)
        GROUP BY e.round ORDER BY e.round""").fetchall()
    names = ["revenue", "fines", "welfare", "max_welfare", "surplus", "units", "payments", "receipts",
             "participants", "active", "invalid", "exited", "colluding"]
    for row, expected in zip(a.to_pylist(), sums, strict=True):
        assert row["round"] == expected[0]
        for name, value in zip(names, expected[1:], strict=True):
            assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
        assert row["markets"] == 40 and row["seats"] == 200
        assert row["participation"] == row["participants"] / 200
    audited = connect(full).execute("SELECT round, count(*) FILTER (audited) FROM markets GROUP BY round "
                                    "ORDER BY round").fetchall()
    assert [r["audited"] for r in a.to_pylist()] == [n for _, n in audited]


def _jsonl(path):
    with path.open() as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("case", ["vcg_demand_2", "cda"])
def test_jsonl_and_parquet_hold_the_same_events(tmp_path, case):
    mechanism, config, groups, enforcement = CASES[case]
    path = record_episode(episode(mechanism, config, groups, enforcement=enforcement, markets=12), tmp_path / "run",
                          rounds=3)
    for table in ("events", "markets", "rounds"):
        parquet = connect(path).sql(f"SELECT * FROM {table}").to_arrow_table().to_pylist()
        lines = _jsonl(path / f"{table}.jsonl")
        assert len(lines) == len(parquet) > 0
        for row, line in zip(parquet, lines, strict=True):
            assert list(line) == list(row)
            for key, value in row.items():  # floats round-trip exactly (shortest repr); nulls as null
                same_nan = isinstance(value, float) and np.isnan(value) and np.isnan(line[key])
                assert line[key] == value or same_nan, (table, key)


def test_jsonl_lists_the_marginal_values_of_multi_unit_demand(tmp_path):
    mechanism, config, groups, _ = CASES["vcg_demand_2"]
    path = record_episode(episode(mechanism, config, groups, markets=4), tmp_path / "run", rounds=1)
    first = _jsonl(path / "events.jsonl")[0]
    assert len(first["value"]) == 2 and first["value"][0] >= first["value"][1]
    assert pq.read_schema(path / "events" / "part-000000000.parquet").field("value").type == pa.list_(pa.float64(), 2)


def test_metadata_names_versions_seeds_and_policies(tmp_path):
    cell = Cell(mechanism="first_price", config={"reserve_price": 0.2}, population="bne:3,truthful:2",
                enforcement=ENFORCED, markets=8, rounds=2, seed=42)
    path = record_episode(cell, tmp_path / "run")
    meta = read_meta(path)
    assert meta.format == "mecharena.ledger" and meta.format_version == FORMAT_VERSION
    assert meta.package_version == mecharena.__version__
    assert (meta.mechanism, meta.mechanism_version) == ("first_price", mechanisms.get("first_price").version)
    assert meta.config == {"reserve_price": 0.2, "reserve_visibility": "public", "entry_fee": 0.0}
    assert meta.population == "bne:3,truthful:2" and meta.agent_versions == {"bne": 2, "truthful": 1}
    assert (meta.seed, meta.start, meta.markets, meta.seats, meta.rounds) == (42, 0, 8, 5, 2)
    assert meta.enforcement == ENFORCED and meta.values.kind == "uniform"
    assert meta.information.clearing_price and meta.owner == [0, 1, 2, 3, 4]
    assert (meta.mode, meta.status, meta.rounds_recorded) == ("full", "closed", 2)
    assert meta.cell == cell.model_dump(mode="json")
    raw = json.loads((path / "meta.json").read_text())
    assert raw["mechanism_version"] == meta.mechanism_version and raw["seed"] == 42


def test_metadata_keeps_the_owner_map_of_false_names(tmp_path):
    mechanism, config, groups, enforcement = CASES["second_price_reserve_sybil_enforced"]
    ep = episode(mechanism, config, groups, enforcement=enforcement, markets=4)
    meta = read_meta(record_episode(ep, tmp_path / "run", rounds=1))
    assert meta.owner == [0, 1, 2, 3, 3, 5, 5, 7]
    assert meta.agent_versions == {"jitter": 3, "splitter": 1, "truthful": 1}


def test_ledger_duckdb_file_has_views_over_the_parts(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=10)
    path = record_episode(ep, tmp_path / "run", rounds=4)
    con = duckdb.connect(str(path / "ledger.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT round) FROM events").fetchone() == (120, 4)
    assert con.execute("SELECT count(*) FROM markets").fetchone() == (40,)
    assert con.execute("SELECT list(round ORDER BY round) FROM rounds").fetchone() == ([0, 1, 2, 3],)


def test_writer_thread_batching_and_sync_writes_give_the_same_tables(tmp_path):
    ep = episode("cda", {"buyers": 3}, [(JITTER, 6)], markets=20, enforcement=ENFORCED)
    paths = [record_episode(ep, tmp_path / name, rounds=5, jsonl=False, **kw) for name, kw in
             [("bg", {}), ("sync", {"background": False}), ("batched", {"flush_rounds": 2})]]
    tables = [connect(p).sql("SELECT * FROM events").to_arrow_table() for p in paths]
    assert tables[0].num_rows == 5 * 20 * 6
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert len(list((paths[2] / "events").glob("part-*.parquet"))) == 3  # round 0 at once, then 1-2, 3-4
    assert all(replay(p).ok for p in paths)


def test_ledger_records_rounds_handed_to_it_by_hand(tmp_path):
    ep = episode("pay_as_bid", {"units": 2}, [("truthful", 4)], markets=6)
    with Ledger(tmp_path / "run", "full", describe(ep, rounds=2)) as ledger:
        for record in play(ep, 2):
            ledger.record(record)
        assert ledger.meta.status == "open"
    assert ledger.meta.status == "closed" and ledger.meta.rounds_recorded == 2
    assert replay(tmp_path / "run").ok


def test_rounds_schema_lists_sums_counts_and_means():
    assert {"revenue", "fines", "welfare", "max_welfare", "surplus", "participation", "invalid",
            "efficiency"} <= set(ROUNDS_SCHEMA.names)


def _times_on_odd_rounds(context, params, state, values, draws):
    action = JITTER.act(context, params, state, values, draws)
    return action if draws.key[2] % 2 else replace(action, times=None)


def test_parts_mixing_rounds_with_and_without_order_times_replay(tmp_path):
    odd = AgentType(name="odd_timer", version=1, summary="order times on odd rounds only", act=_times_on_odd_rounds)
    ep = episode("cda", {"buyers": 2}, [(odd, 4)], markets=10)
    path = record_episode(ep, tmp_path / "run", rounds=5, flush_rounds=2, jsonl=False)
    nulls = connect(path).execute("SELECT round, count(*) FILTER (time IS NULL) FROM events GROUP BY round "
                                  "ORDER BY round").fetchall()
    assert nulls == [(0, 40), (1, 0), (2, 40), (3, 0), (4, 40)]
    assert replay(path).ok
