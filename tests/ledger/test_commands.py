"""The plain functions behind ``mecharena ledger replay``."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from mecharena.ledger import LedgerError, record_episode
from mecharena.cli.ledger import replay_command

from .helpers import episode, reseal


@pytest.fixture
def ledger(tmp_path):
    ep = episode("uniform_price", {"units": 2}, [("truthful", 4)], markets=6)
    return record_episode(ep, tmp_path / "run", rounds=2, jsonl=False)


def test_replay_command_exits_0_and_prints_json_when_everything_matches(ledger, capsys):
    assert replay_command(str(ledger), as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["mismatch_count"] == 0 and report["market_rounds"] == 12
    assert report["mechanism"] == "uniform_price" and report["mismatches"] == []


def test_replay_command_exits_1_and_lists_mismatches(ledger, capsys):
    part = ledger / "markets" / "part-000000001.parquet"
    table = pq.read_table(part)
    revenue = table.column("revenue").to_numpy().copy()
    revenue[3] += 1.0
    pq.write_table(table.set_column(table.schema.get_field_index("revenue"), "revenue", pa.array(revenue)), part)
    reseal(ledger)
    assert replay_command(str(ledger), as_json=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["mismatches"] == [{"round": 1, "market": 3, "seat": None, "field": "revenue",
                                     "recorded": revenue[3], "replayed": revenue[3] - 1.0}]
    console = Console(file=io.StringIO(), width=120)
    assert replay_command(str(ledger), as_json=False, console=console) == 1
    text = console.file.getvalue()
    assert "1 recorded values differ" in text and "revenue" in text and "market-rounds" in text


def test_replay_command_table_says_all_reproduced(ledger):
    console = Console(file=io.StringIO(), width=120)
    assert replay_command(str(ledger), as_json=False, console=console) == 0
    assert "all outcomes reproduced exactly" in console.file.getvalue()


def test_replay_command_raises_on_bad_input(tmp_path):
    with pytest.raises(LedgerError, match="does not exist"):
        replay_command(str(tmp_path / "missing"), as_json=True)
