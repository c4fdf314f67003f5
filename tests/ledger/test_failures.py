"""Bad input gives clear errors; an interrupted writer leaves readable, replayable rounds."""

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest

from mecharena.core.errors import ConfigError, MechArenaError, UnknownIdError
from mecharena.ledger import Ledger, LedgerError, connect, describe, finalize, read_meta, record_episode, replay
from mecharena.sim.loop import play

from .helpers import ENFORCED, JITTER, SPLITTER, episode


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A small closed full-mode ledger, copied per test that damages it."""
    ep = episode("second_price", {"reserve_price": 0.2}, [("truthful", 3)], markets=8)
    return record_episode(ep, tmp_path_factory.mktemp("ledger") / "run", rounds=3)


@pytest.fixture
def damaged(ledger, tmp_path):
    return shutil.copytree(ledger, tmp_path / "copy")


def quoted(path) -> str:
    return re.escape(repr(str(path)))


def test_missing_directory(tmp_path):
    with pytest.raises(LedgerError, match=f"^ledger directory {quoted(tmp_path / 'nope')} does not exist$"):
        replay(tmp_path / "nope")


def test_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerError, match=f"^ledger directory {quoted(tmp_path / 'file')} is not a directory$"):
        replay(tmp_path / "file")


def test_missing_metadata(tmp_path):
    with pytest.raises(LedgerError, match=f"^{quoted(tmp_path)} is not a ledger: meta.json is missing$"):
        replay(tmp_path)


def test_metadata_that_is_not_json(damaged):
    (damaged / "meta.json").write_text("{not json")
    with pytest.raises(LedgerError, match=r"meta.json' is not valid JSON: Expecting property name enclosed in "
                                          r"double quotes at line 1, column 2$"):
        replay(damaged)


def test_metadata_with_a_bad_field(damaged):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["markets"] = -1
    del meta["seed"]
    (damaged / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LedgerError, match=r"meta.json' is invalid: seed is required; markets: Input should be greater "
                                          r"than or equal to 1, got -1$"):
        read_meta(damaged)


def test_metadata_of_another_format_or_a_newer_version(damaged):
    meta = json.loads((damaged / "meta.json").read_text())
    (damaged / "meta.json").write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(LedgerError, match=r"^ledger format_version must be <= 1 \(this mecharena .*\), got 99; "
                                          r"upgrade mecharena to read it$"):
        replay(damaged)
    (damaged / "meta.json").write_text(json.dumps(meta | {"format": "other"}))
    with pytest.raises(LedgerError, match=r"has format 'other', expected 'mecharena.ledger'$"):
        replay(damaged)


def test_metadata_naming_an_unknown_mechanism(damaged):
    meta = json.loads((damaged / "meta.json").read_text())
    (damaged / "meta.json").write_text(json.dumps(meta | {"mechanism": "second_prize"}))
    with pytest.raises(UnknownIdError, match="^unknown mechanism 'second_prize'; did you mean 'second_price'"):
        replay(damaged)


def test_replay_of_an_aggregate_ledger_asks_for_full_mode(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    path = record_episode(ep, tmp_path / "agg", rounds=2, mode="aggregate")
    with pytest.raises(ConfigError, match=r"^replay needs a ledger recorded in mode 'full' .* got mode 'aggregate' "
                                          r"in .*; record again with mode='full'$"):
        replay(path)


def test_corrupt_event_file(damaged):
    part = damaged / "events" / "part-000000001.parquet"
    part.write_bytes(part.read_bytes()[:200])  # written, then truncated
    with pytest.raises(LedgerError, match=f"^ledger file {quoted(part)} is corrupt or unreadable: "):
        replay(damaged)


def test_missing_event_file(damaged):
    (damaged / "events" / "part-000000002.parquet").unlink()
    with pytest.raises(LedgerError, match=r"is corrupt: events/part-000000002.parquet is missing although "
                                          r"markets/part-000000002.parquet was committed$"):
        replay(damaged)


def test_event_file_with_rows_out_of_place(damaged):
    part = damaged / "events" / "part-000000000.parquet"
    table = pq.read_table(part)
    pq.write_table(table.take(list(range(1, table.num_rows)) + [0]), part)  # one row moved to the end
    with pytest.raises(LedgerError, match=r"part-000000000.parquet is corrupt: its rows are not the \(round, market, "
                                          r"seat\) grid of 8 markets x 3 seats"):
        replay(damaged)


def test_event_file_without_a_column(damaged):
    part = damaged / "events" / "part-000000000.parquet"
    pq.write_table(pq.read_table(part).drop_columns(["payment"]), part)
    with pytest.raises(LedgerError, match=r"lacks the column 'payment'$"):
        replay(damaged)


def test_every_bad_input_error_is_a_mecharena_error():
    assert issubclass(LedgerError, MechArenaError) and issubclass(LedgerError, ValueError)


def test_bad_writer_arguments(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    meta = describe(ep)
    with pytest.raises(ConfigError, match=r"^mode must be one of 'full', 'aggregate', got 'bogus'$"):
        Ledger(tmp_path / "a", "bogus", meta)
    with pytest.raises(ConfigError, match=r"^flush_rounds must be an integer in \[1, 10000\], got 0$"):
        Ledger(tmp_path / "a", "full", meta, flush_rounds=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match=r"^ledger directory must be new or empty \(ledgers are append-only\), got "
                                          f"{quoted(tmp_path / 'busy')} which already holds files$"):
        Ledger(tmp_path / "busy", "full", meta)
    with pytest.raises(ConfigError, match=r"^rounds is required when recording an Episode"):
        record_episode(ep, tmp_path / "b")
    with pytest.raises(ConfigError, match=r"^directory must be a path \(str or os.PathLike\), got int$"):
        Ledger(3, "full", meta)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^rounds must be a positive integer, got 0$"):
        record_episode(ep, tmp_path / "b", rounds=0)
    with pytest.raises(ConfigError, match=r"^source must be an Episode or a Cell, got str$"):
        record_episode("cell", tmp_path / "b", rounds=1)


def test_records_out_of_order_shape_or_after_close(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    other = episode("second_price", {}, [("truthful", 3)], markets=5)
    records = list(play(ep, 3))
    ledger = Ledger(tmp_path / "a", "full", describe(ep))
    ledger.record(records[0])
    with pytest.raises(LedgerError, match=r"^rounds must be recorded in order: expected round 1, got 2$"):
        ledger.record(records[2])
    with pytest.raises(LedgerError, match=r"^round 1: values must have shape \(4, 3\) as the ledger's metadata says "
                                          r"\(markets, seats\[, width\]\), got \(5, 3\)$"):
        ledger.record(list(play(other, 2))[1])
    ledger.close()
    with pytest.raises(LedgerError, match=r"is closed; open a new one to record more rounds$"):
        ledger.record(records[1])


def test_an_exception_while_recording_keeps_what_was_recorded(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    with pytest.raises(RuntimeError, match="boom"), Ledger(tmp_path / "a", "full", describe(ep)) as ledger:
        for record in play(ep, 3):
            ledger.record(record)
            if record.round == 1:
                raise RuntimeError("boom")
    meta = read_meta(tmp_path / "a")
    assert (meta.status, meta.rounds_recorded) == ("aborted", 2)
    assert replay(tmp_path / "a").ok


def interrupted(tmp_path, mode: str, rounds: int, **kw):
    """Record ``rounds`` rounds and stop as a killed process would: no close, a part half written."""
    ep = episode("second_price", {"reserve_price": 0.1}, [(JITTER, 3), (SPLITTER, 1)], markets=12,
                 enforcement=ENFORCED)
    path = tmp_path / mode
    ledger = Ledger(path, mode, describe(ep, rounds=rounds + 2), background=False, **kw)
    records = play(ep, rounds + 1)
    for _ in range(rounds):
        ledger.record(next(records))
    in_flight = next(records)
    if mode == "full":  # the writer died between the events file and the markets file of the next round
        (path / "events" / "part-000000009.parquet.tmp").write_bytes(b"PAR1 half a file")
        shutil.copy(path / "events" / "part-000000000.parquet", path / "events" / f"part-{rounds:09d}.parquet")
    with (path / "rounds.jsonl").open("a") as f:  # and the log line of the round in flight was cut
        f.write(json.dumps({"round": in_flight.round})[:9])
    return ep, path


def test_an_interrupted_full_ledger_replays_the_rounds_it_flushed(tmp_path):
    _, path = interrupted(tmp_path, "full", rounds=4)
    assert read_meta(path).status == "open"
    report = replay(path)
    assert report.ok and (report.rounds, report.market_rounds) == (4, 48)
    assert report.notes[0] == ("the ledger was never closed (its writer was interrupted); replaying the rounds it "
                               "flushed")
    assert "3 rounds (from round 1) have no totals in Parquet yet" in report.notes[1]
    assert connect(path).execute("SELECT count(*) FROM markets").fetchone() == (48,)

    meta = finalize(path)
    assert (meta.status, meta.rounds_recorded) == ("recovered", 4)
    assert not list(path.glob("*/*.tmp")) and not (path / "events" / "part-000000004.parquet").exists()
    report = replay(path)
    assert report.ok and report.rounds == 4 and report.notes == ()
    assert len((path / "events.jsonl").read_text().splitlines()) == 4 * 12 * 5
    assert [json.loads(line)["round"] for line in (path / "rounds.jsonl").read_text().splitlines()] == [0, 1, 2, 3]


def test_an_interrupted_aggregate_ledger_keeps_every_logged_round(tmp_path):
    ep, path = interrupted(tmp_path, "aggregate", rounds=5)
    assert [p.name for p in (path / "rounds").iterdir()] == ["part-000000000.parquet"]  # round 0 only
    finalize(path)
    closed = record_episode(ep, tmp_path / "closed", rounds=5, mode="aggregate")
    got = connect(path).sql("SELECT * FROM rounds ORDER BY round").to_arrow_table()
    assert got.num_rows == 5 and got.equals(connect(closed).sql("SELECT * FROM rounds ORDER BY round").to_arrow_table())
    assert read_meta(path).status == "recovered"


def test_a_corrupt_log_line_is_reported(tmp_path):
    _, path = interrupted(tmp_path, "aggregate", rounds=2)
    text = (path / "rounds.jsonl").read_text().split("\n")
    (path / "rounds.jsonl").write_text("\n".join([text[0], "{oops", *text[1:]]))
    with pytest.raises(LedgerError, match=r"rounds.jsonl' line 2 is not valid JSON: Expecting property name"):
        finalize(path)
