"""The fuzzing commands end to end: fuzz -> failure report -> exploits list/show/replay -> regress."""

import json

from typer.testing import CliRunner

from mecharena.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_fuzz_writes_a_report_that_replays_and_regresses(tmp_path):
    library = tmp_path / "lib"
    found = invoke("fuzz", "--mechanism", "first_price", "--population", "truthful:4", "--families", "shading",
                   "--budget", "12", "--markets", "200", "--rounds", "3", "--eval-markets", "400",
                   "--library", library, "--json")
    assert found.exit_code == 0, found.output
    data = json.loads(found.stdout)
    assert data["exploit"] and data["exploitability"]["ci95"][0] > 0
    report_id = data["report"]["id"]
    listed = json.loads(invoke("exploits", "list", "--library", library, "--json").stdout)
    assert [r["id"] for r in listed] == [report_id]
    shown = json.loads(invoke("exploits", "show", report_id[:6], "--library", library, "--json").stdout)
    assert shown["strategy"]["family"] == "shading" and shown["mitigation"]
    replayed = invoke("exploits", "replay", report_id, "--library", library, "--json")
    assert replayed.exit_code == 0, replayed.output
    assert invoke("regress", "--mechanism", "first_price", "--library", library, "--markets", "600").exit_code == 1
    assert invoke("regress", "--mechanism", "second_price", "--library", library, "--markets", "600").exit_code == 0


def test_fuzz_without_an_exploit_writes_no_report(tmp_path):
    result = invoke("fuzz", "--mechanism", "second_price", "--population", "truthful:4", "--budget", "12",
                    "--markets", "200", "--rounds", "3", "--samples", "3000", "--library", tmp_path / "lib", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert not data["exploit"] and data["report"] is None and not (tmp_path / "lib").exists()


def test_fuzz_bad_input_is_a_clear_error(tmp_path):
    for args, message in ((["--budget", "0"], "budget must be a finite int in [1, 2000], got 0"),
                          (["--families", ""], "families must name at least one deviation family"),
                          (["--deviators", "9"], "deviators must be in [1, 4]"),
                          (["--families", "shadow"], "unknown deviation family 'shadow'")):
        result = invoke("fuzz", "--mechanism", "first_price", "--population", "truthful:4", *args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
    missing = invoke("exploits", "list", "--library", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_fuzz_json_reports_the_size_and_seed_it_used(tmp_path):
    result = invoke("fuzz", "--mechanism", "second_price", "--population", "truthful:3", "--budget", "4",
                    "--markets", "50", "--rounds", "3", "--eval-markets", "60", "--seed", "7", "--samples", "1500",
                    "--library", tmp_path / "lib", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["target"]["markets"], data["target"]["rounds"], data["target"]["seed"]) == (50, 3, 7)
    assert (data["search"]["markets"], data["search"]["rounds"], data["search"]["eval_markets"]) == (50, 3, 60)


def test_ring_search_reports_and_resumes_from_its_store(tmp_path):
    args = ("ring", "--mechanism", "first_price", "--population", "bne:4", "--deviators", "3", "--info",
            "competing_bids=true", "--rounds", "3", "--phases", "1", "--generations", "4", "--markets", "60",
            "--eval-markets", "100", "--library", tmp_path / "lib", "--store", tmp_path / "store", "--json")
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["agent"].startswith("policy(w=") and data["deviators"] == 3 and len(data["phases"]) == 1
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "certificate-1.jsonl", "credibility-1.jsonl", "defection-0.jsonl", "punisher-0.jsonl", "ring-0.jsonl"]
    again = invoke(*args)  # every generation replays from the store: the same ring, the same scores
    assert again.exit_code == 0 and json.loads(again.stdout) == data
    text = invoke(*args[:-3])
    assert text.exit_code == 0 and ("holds" in text.stdout) and "What the ring does" in text.stdout
    assert "Once a partner is caught: " in text.stdout


def test_a_ring_that_pays_is_stored_with_its_certificate_and_replays(tmp_path):
    """Second price, a ring of 3 among bne:4: suppressing the members' bids pays (the knockout), so the ring
    is a failure report whose summary and search hold the certificate, and its traces replay exactly."""
    library = tmp_path / "lib"
    found = invoke("ring", "--mechanism", "second_price", "--population", "bne:4", "--deviators", "3", "--rounds",
                   "3", "--phases", "1", "--generations", "3", "--defection-generations", "2", "--markets", "60",
                   "--eval-markets", "200", "--features", "bias,value,lead", "--library", library, "--json")
    assert found.exit_code == 0, found.output
    data = json.loads(found.stdout)
    assert data["exploit"] and data["fresh_gain"]["ci95"][0] > 0.001
    shown = json.loads(invoke("exploits", "show", data["report"]["id"], "--library", library, "--json").stdout)
    assert shown["strategy"]["family"] == "policy" and shown["agents_involved"]["deviators"] == 3
    assert shown["gain"]["mean"] == data["fresh_gain"]["mean"]
    assert shown["search"]["ring"]["defection_gain"] == data["defection_gain"]
    assert shown["search"]["ring"]["enforced"] == data["enforced"]
    assert ("A ring of 3 holds" if data["enforced"] else "No ring found holds") in shown["strategy"]["summary"]
    replayed = invoke("exploits", "replay", data["report"]["id"], "--library", library, "--json")
    assert replayed.exit_code == 0 and json.loads(replayed.stdout)["ok"], replayed.output


def test_ring_search_refuses_bad_input_in_one_line():
    for args, line in ((("--deviators", "1"), "deviators must be a finite int in [2, 64], got 1"),
                       (("--deviators", "5"), "deviators must be in [1, 4]"),
                       (("--info", "competing_bids=maybe"), "competing_bids must be a bool, got 'maybe'"),
                       (("--phases", "0"), "phases must be a finite int in [1, 50], got 0")):
        result = invoke("ring", "--mechanism", "first_price", "--population", "bne:4", *args)
        assert result.exit_code == 2 and line in result.output and "Traceback" not in result.output, result.output
