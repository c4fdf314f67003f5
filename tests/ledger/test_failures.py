"""Bad input gives clear errors; an interrupted writer leaves readable, replayable rounds."""

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest

from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.core.errors import ConfigError, MechArenaError, UnknownIdError
from mecharena.ledger import (
    FORMAT_VERSION,
    Ledger,
    LedgerError,
    connect,
    describe,
    finalize,
    read_meta,
    record_episode,
    replay,
)
from mecharena.sim.loop import play

from .helpers import ENFORCED, JITTER, SPLITTER, edit_meta, episode, reseal


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
    with pytest.raises(LedgerError, match=rf"^ledger format_version must be <= {FORMAT_VERSION} \(this mecharena .*\), "
                                          r"got 99; upgrade mecharena to read it$"):
        replay(damaged)
    (damaged / "meta.json").write_text(json.dumps(meta | {"format": "other"}))
    with pytest.raises(LedgerError, match=r"has format 'other', expected 'mecharena.ledger'$"):
        replay(damaged)


def test_metadata_naming_an_unknown_mechanism(damaged):
    edit_meta(damaged, mechanism="second_prize")
    with pytest.raises(UnknownIdError, match="^unknown mechanism 'second_prize'; did you mean 'second_price'"):
        replay(damaged)


def test_replay_of_an_aggregate_ledger_asks_for_full_mode(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    path = record_episode(ep, tmp_path / "agg", rounds=2, mode="aggregate")
    with pytest.raises(ConfigError, match=r"^replay needs a ledger recorded in mode 'full' .* got mode 'aggregate' "
                                          r"in .*; record again with mode='full'$"):
        replay(path)


def test_corrupt_event_file_that_its_manifest_vouches_for(damaged):
    part = damaged / "events" / "part-000000001.parquet"
    part.write_bytes(part.read_bytes()[:200])  # written, then truncated
    reseal(damaged)  # as if the writer had listed the broken file
    with pytest.raises(LedgerError, match=f"^ledger file {quoted(part)} is corrupt or unreadable: "):
        replay(damaged)


def test_event_file_with_rows_out_of_place(damaged):
    part = damaged / "events" / "part-000000000.parquet"
    table = pq.read_table(part)
    pq.write_table(table.take(list(range(1, table.num_rows)) + [0]), part)  # one row moved to the end
    reseal(damaged)
    with pytest.raises(LedgerError, match=r"part-000000000.parquet is corrupt: its rows are not the \(round, market, "
                                          r"seat\) grid of 8 markets x 3 seats"):
        replay(damaged)


def test_event_file_without_a_column(damaged):
    part = damaged / "events" / "part-000000000.parquet"
    pq.write_table(pq.read_table(part).drop_columns(["payment"]), part)
    reseal(damaged)
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
    with pytest.raises(LedgerError, match=r"is closed; open a new one to record more rounds$"):
        ledger.annotate([{"round": 0, "market": 0, "seat": 0, "agent": "truthful", "step": 0, "kind": "regret",
                          "text": "{}"}])
    assert not (tmp_path / "a" / "traces.jsonl").exists()  # the refused notes wrote nothing
    assert read_meta(tmp_path / "a").rounds_recorded == 1 and replay(tmp_path / "a").ok  # the round recorded stays


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


# Damage done to a closed ledger of 6 one-round event parts (events/, markets/ part-0..5) and two
# rounds parts, and the problem replay must name. Each entry: (what it does to the directory, regex).
def _cut(table, seq, keep):
    def damage(path):
        part = path / table / f"part-{seq:09d}.parquet"
        data = part.read_bytes()
        part.write_bytes(data[:keep(len(data))])
    return damage


def _flip(table, seq, where):
    def damage(path):
        part = path / table / f"part-{seq:09d}.parquet"
        data = bytearray(part.read_bytes())
        data[where(len(data))] ^= 0x01
        part.write_bytes(bytes(data))
    return damage


def _delete(*parts):
    def damage(path):
        for table, seq in parts:
            (path / table / f"part-{seq:09d}.parquet").unlink()
    return damage


def _swap(a, b):
    def damage(path):
        pa_, pb = (path / t / f"part-{s:09d}.parquet" for t, s in (a, b))
        da, db = pa_.read_bytes(), pb.read_bytes()
        pa_.write_bytes(db)
        pb.write_bytes(da)
    return damage


def _copy(source, target):
    def damage(path):
        shutil.copy(source(path), path / target)
    return damage


def _meta(**changes):
    def damage(path):
        meta = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps(meta | changes, indent=2))
    return damage


def _foreign_part(path):
    """A part of another recording of the same run (another seed), added as the next part."""
    other = record_episode(episode("second_price", {"reserve_price": 0.2}, [("truthful", 3)], markets=8, seed=9),
                           path.parent / "other", rounds=1, jsonl=False)
    for table in ("events", "markets"):
        shutil.copy(other / table / "part-000000000.parquet", path / table / "part-000000006.parquet")


def _unreadable_meta(path):
    (path / "meta.json").write_text('{"format": "mecharena.ledger", ')


P = "part-00000000{}.parquet"
EDITED = r"meta.json' was edited after it was written: its contents do not match its checksum"
CORRUPTIONS = {
    "truncated to 0 bytes": (_cut("markets", 2, lambda n: 0), rf"markets/{P.format(2)} is truncated: 0 of its \d+ bytes"),
    "truncated to 8 bytes": (_cut("events", 2, lambda n: 8), rf"events/{P.format(2)} is truncated: 8 of its \d+ bytes"),
    "truncated to half": (_cut("events", 4, lambda n: n // 2), rf"events/{P.format(4)} is truncated: \d+ of its"),
    "truncated by 1 byte": (_cut("rounds", 1, lambda n: n - 1), rf"rounds/{P.format(1)} is truncated: \d+ of its"),
    "byte flipped in data": (_flip("events", 1, lambda n: 200), rf"events/{P.format(1)} was changed after it was "
                                                                 r"written: its SHA-256 is not the one recorded"),
    "byte flipped in footer": (_flip("markets", 1, lambda n: n - 12), rf"markets/{P.format(1)} was changed after it "
                                                                      r"was written"),
    "first part deleted": (_delete(("events", 0), ("markets", 0)),
                           rf"events/{P.format(0)} is missing; markets/{P.format(0)} is missing"),
    "middle markets part deleted": (_delete(("markets", 3)), rf": markets/{P.format(3)} is missing$"),
    "middle events part deleted": (_delete(("events", 3)), rf": events/{P.format(3)} is missing$"),
    "middle part deleted": (_delete(("events", 3), ("markets", 3)),
                            rf"events/{P.format(3)} is missing; markets/{P.format(3)} is missing$"),
    "last part deleted": (_delete(("events", 5), ("markets", 5)),
                          rf"events/{P.format(5)} is missing; markets/{P.format(5)} is missing$"),
    "two markets parts swapped": (_swap(("markets", 1), ("markets", 4)),
                                  rf"markets/{P.format(1)} holds the content of markets/{P.format(4)} \(parts "
                                  rf"swapped or copied\); markets/{P.format(4)} holds the content of "
                                  rf"markets/{P.format(1)}"),
    "markets and events parts swapped": (_swap(("markets", 2), ("events", 2)),
                                         rf"events/{P.format(2)} holds the content of markets/{P.format(2)}"),
    "part duplicated": (_copy(lambda p: p / "markets" / P.format(2), f"markets/{P.format(6)}"),
                        rf"markets/{P.format(6)} is extra: a copy of markets/{P.format(2)}"),
    "foreign part added": (_foreign_part, rf"events/{P.format(6)} is extra: the ledger's writer never wrote it; "
                                          rf"markets/{P.format(6)} is extra"),
    "meta rounds_recorded edited": (_meta(rounds_recorded=5), EDITED),
    "meta seed edited": (_meta(seed=6), EDITED),
    "meta mechanism_version edited": (_meta(mechanism_version=2), EDITED),
    "meta markets edited": (_meta(markets=7), EDITED),
    "meta manifest hash edited": (_meta(manifest_sha256="0" * 64), EDITED),
    "meta.json missing": (lambda p: (p / "meta.json").unlink(), r"is not a ledger: meta.json is missing"),
    "meta.json not JSON": (_unreadable_meta, r"meta.json' is not valid JSON: "),
    "manifest line edited": (lambda p: (p / "parts.jsonl").write_text((p / "parts.jsonl").read_text()
                                                                       .replace('"rows":8,', '"rows":9,', 1)),
                             r"parts.jsonl was edited after the ledger was closed"),
}


@pytest.fixture(scope="module")
def six_rounds(tmp_path_factory):
    ep = episode("second_price", {"reserve_price": 0.2}, [("truthful", 3)], markets=8)
    return record_episode(ep, tmp_path_factory.mktemp("six") / "run", rounds=6, jsonl=False)


def test_an_intact_ledger_replays_exactly_without_notes(six_rounds):
    result = CliRunner().invoke(app, ["replay", str(six_rounds)])
    assert result.exit_code == 0 and "all outcomes reproduced exactly" in result.output
    assert replay(six_rounds).notes == ()


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_every_corruption_of_a_ledger_is_named(six_rounds, tmp_path, corruption):
    """Replay exits non-zero with one line that names the damaged part and what is wrong with it."""
    damage, problem = CORRUPTIONS[corruption]
    path = shutil.copytree(six_rounds, tmp_path / "run")
    damage(path)
    result = CliRunner().invoke(app, ["replay", str(path)])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())  # rich wraps long lines; the message is one line
    assert re.search(problem, line), line
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    with pytest.raises(LedgerError):
        replay(path)


def _as_format_1(path):
    """The ledger as mecharena wrote it before part checksums: no manifest, no checksums."""
    (path / "parts.jsonl").unlink()
    meta = json.loads((path / "meta.json").read_text())
    for key in ("manifest_sha256", "checksum"):
        del meta[key]
    (path / "meta.json").write_text(json.dumps(meta | {"format_version": 1}))


def test_a_ledger_without_checksums_replays_with_a_note(six_rounds, tmp_path):
    path = shutil.copytree(six_rounds, tmp_path / "run")
    _as_format_1(path)
    report = replay(path)
    assert report.ok and report.rounds == 6
    assert report.notes == ("the ledger was written by a version of mecharena without part checksums (format version "
                            "1): its parts cannot be verified, only their sequence and counts",)


@pytest.mark.parametrize(("damage", "problem"), [
    (_delete(("markets", 3)), rf"^ledger .* is corrupt: markets/{P.format(3)} is missing; meta.json says "
                              r"rounds_recorded=6 but the markets parts hold 5 rounds$"),
    (_delete(("events", 5), ("markets", 5)), r"meta.json says rounds_recorded=6 but the markets parts hold 5 rounds$"),
    (_swap(("markets", 1), ("markets", 4)), rf"markets/{P.format(1)} starts at round 4, expected round 1 "
                                            r"\(rounds out of order or missing\)"),
])
def test_a_ledger_without_checksums_still_has_its_sequence_and_counts_checked(six_rounds, tmp_path, damage, problem):
    path = shutil.copytree(six_rounds, tmp_path / "run")
    _as_format_1(path)
    damage(path)
    with pytest.raises(LedgerError, match=problem):
        replay(path)


def test_a_ledger_being_written_is_not_reported_as_corrupt(tmp_path):
    """While a writer runs, meta.json says open and the newest part may be on disk before its
    manifest line, or an events part before its markets part: replay notes it, no error."""
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    ledger = Ledger(tmp_path / "run", "full", describe(ep, rounds=5), background=False)
    records = play(ep, 5)
    for _ in range(3):
        ledger.record(next(records))
    events = tmp_path / "run" / "events"
    shutil.copy(events / P.format(0), events / P.format(3))  # the next events part, not listed yet
    report = replay(tmp_path / "run")
    assert report.ok and report.rounds == 3 and report.status == "open"
    assert report.notes[-1] == ("1 part(s) written after the last line of parts.jsonl (the writer is still running "
                                "or was interrupted) are not verified")
    (events / P.format(3)).unlink()
    ledger.record(next(records))
    ledger.record(next(records))
    ledger.close()
    assert replay(tmp_path / "run").ok and replay(tmp_path / "run").notes == ()
    (events / P.format(1)).write_bytes((events / P.format(2)).read_bytes())  # and it is verified once closed
    with pytest.raises(LedgerError, match=rf"events/{P.format(1)} holds the content of events/{P.format(2)}"):
        replay(tmp_path / "run")


def test_an_open_ledger_with_a_changed_part_is_reported(tmp_path):
    ep = episode("second_price", {}, [("truthful", 3)], markets=4)
    ledger = Ledger(tmp_path / "run", "full", describe(ep, rounds=5), background=False)
    for record in play(ep, 3):
        ledger.record(record)
    _flip("markets", 1, lambda n: 100)(tmp_path / "run")
    with pytest.raises(LedgerError, match=rf"markets/{P.format(1)} was changed after it was written"):
        replay(tmp_path / "run")
