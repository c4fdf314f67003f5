import importlib.metadata
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mecharena import mechanisms
from mecharena.cli import app

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden"


def invoke(*args):
    return runner.invoke(app, list(args))


def test_mechanisms_json_lists_every_mechanism_with_fields_and_version():
    result = invoke("mechanisms", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(mechanisms.REGISTRY)
    sp = next(r for r in rows if r["name"] == "second_price")
    assert sp["version"] == 1 and "Vickrey" in sp["description"]
    assert {f["name"] for f in sp["config"]} == {"reserve_price", "reserve_visibility", "entry_fee"}
    assert "truthful" in sp["properties"]
    assert "second_price" in invoke("mechanisms").stdout


def test_simulate_json_schema():
    result = invoke("simulate", "--mechanism", "second_price", "--population", "truthful:4", "--set",
                    "reserve_price=0.5", "--markets", "500", "--rounds", "2", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"mechanism", "config", "population", "markets", "rounds", "seed", "versions", "metrics"}
    assert data["config"]["reserve_price"] == 0.5 and data["markets"] == 500 and data["rounds"] == 2
    assert data["versions"] == {"mechanism": {"second_price": 1}, "agents": {"truthful": 1}}
    for name in ("revenue", "efficiency", "welfare", "bidder_surplus", "participation"):
        metric = data["metrics"][name]
        assert metric["ci95"][0] <= metric["mean"] <= metric["ci95"][1]


def test_simulate_golden_trace():
    """A seeded run's full JSON report is stored; any change to outcomes shows up as a diff.
    Regenerate deliberately with MECHARENA_REGEN_GOLDEN=1 (and bump the versions that changed)."""
    path = GOLDEN / "simulate_first_price_bne.json"
    result = invoke("simulate", "--mechanism", "first_price", "--population", "bne:3,truthful:1", "--set",
                    "reserve_price=0.25", "--markets", "64", "--rounds", "3", "--seed", "11", "--json")
    assert result.exit_code == 0, result.output
    if os.environ.get("MECHARENA_REGEN_GOLDEN"):
        path.write_text(result.stdout)
    assert json.loads(result.stdout) == json.loads(path.read_text())


def test_simulate_human_output_is_a_table():
    result = invoke("simulate", "--mechanism", "mcafee", "--population", "truthful:6", "--set", "buyers=3",
                    "--markets", "200", "--rounds", "2")
    assert result.exit_code == 0, result.output
    assert "efficiency" in result.stdout and "truthful:6" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--mechanism", "second_prize", "--population", "truthful:3"], "unknown mechanism 'second_prize'"),
    (["--mechanism", "second_price", "--population", "truthful:3", "--set", "reserve_price=-5"],
     "reserve_price must be a finite float >= 0, got -5"),
    (["--mechanism", "second_price", "--population", "truthful:3", "--set", "reserve"], "--set expects key=value"),
    (["--mechanism", "second_price", "--population", "robot:3"], "unknown agent 'robot'"),
    (["--mechanism", "k_double", "--population", "truthful:3", "--set", "buyers=1"] + [], None),
    (["--mechanism", "k_double", "--population", "bne:3", "--set", "buyers=1"], "bne has no closed form for k_double"),
    (["--mechanism", "mcafee", "--population", "truthful:2", "--set", "buyers=2"], "buyers must be < the number"),
    (["--mechanism", "second_price", "--population", "truthful:3", "--markets", "0"], "markets must be in"),
    (["--mechanism", "second_price", "--population", "truthful:3", "--values", "normal"], "kind must be one of"),
])
def test_simulate_bad_input_exits_nonzero_with_the_message(args, message):
    result = invoke("simulate", *args, "--markets" if "--markets" not in args else "--rounds", "5")
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_real_process_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "mecharena.cli", "simulate", "--mechanism", "vickrey",
                           "--population", "truthful:2"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown mechanism 'vickrey'" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args, line", [
    (["simulat"], "error: No such command 'simulat'. Did you mean 'simulate'? (see `mecharena --help`)"),
    (["simulate", "--mechanism", "first_price", "--population", "truthful:3", "--markets", "abc"],
     "error: Invalid value for '--markets': Input should be a valid integer, unable to parse string as an integer "
     "(see `mecharena simulate --help`)"),
    (["simulate", "--population", "truthful:3"], "error: Missing option '--mechanism'. (see `mecharena simulate --help`)"),
    (["mechanisms", "--bogus"], "error: No such option: --bogus (see `mecharena mechanisms --help`)"),
])
def test_usage_errors_are_one_line(args, line):
    """The command's own usage errors read like every other error: one line on stderr, status 2."""
    proc = subprocess.run([sys.executable, "-m", "mecharena.cli", *args], check=False, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")


def test_bench_engine_json_reports_four_paths():
    result = invoke("bench", "engine", "--markets", "2000", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("engine_markets_per_s", "protocol_markets_per_s", "bare_kernel_markets_per_s",
                "scalar_reference_markets_per_s", "engine_over_bare", "engine_over_scalar", "protocol_over_engine",
                "engine_peak_bytes"):
        assert data[key] > 0
    assert invoke("bench", "engine", "--markets", "0").exit_code == 2


def test_demo_json_covers_every_mechanism():
    result = invoke("demo", "--markets", "200", "--rounds", "1", "--json")
    assert result.exit_code == 0, result.output
    assert {row["mechanism"] for row in json.loads(result.stdout)} == set(mechanisms.REGISTRY)


def test_agents_and_rules_json():
    rows = json.loads(invoke("agents", "--json").stdout)
    names = {r["name"] for r in rows}
    assert {"truthful", "bne", "adaptive", "hedge", "exp3", "cartel", "dropout", "sybil", "audit_evader", "zic",
            "sniper", "free_rider", "conditional", "crra", "budget", "myopic"} <= names
    cartel = next(r for r in rows if r["name"] == "cartel")
    assert cartel["adaptive"] and {p["name"] for p in cartel["params"]} == {"threshold", "temptation", "punish_rounds", "knockout"}
    rules = json.loads(invoke("rules", "--json").stdout)
    assert {f["name"] for f in rules["information"]} == {"reserve", "clearing_price", "winner_identity",
                                                          "competing_bids", "bid_distribution"}
    assert "cartel" in invoke("agents").stdout


def test_simulate_with_rules_and_a_ledger_that_replays(tmp_path):
    ledger = tmp_path / "ledger"
    result = invoke("simulate", "--mechanism", "second_price", "--population", "cartel:3,truthful:2", "--info",
                    "winner_identity=true", "--enforce", "audit_probability=0.3", "--enforce", "collusion_penalty=1",
                    "--markets", "100", "--rounds", "4", "--ledger", str(ledger), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["information"]["winner_identity"] is True and data["enforcement"]["collusion_penalty"] == 1.0
    replayed = invoke("replay", str(ledger), "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["mismatch_count"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--info", "winner=true"], "unknown field 'winner' for InformationPolicy"),
    (["--enforce", "audit_probability=2"], "audit_probability must be a finite float in [0, 1], got 2"),
    (["--info", "nonsense"], "--info expects key=value, got 'nonsense'"),
    (["--ledger-mode", "partial", "--ledger", "LEDGER"], "mode must be one of 'full', 'aggregate', got 'partial'"),
])
def test_simulate_rule_and_ledger_errors(args, message, tmp_path):
    args = [str(tmp_path / "x") if a == "LEDGER" else a for a in args]
    result = invoke("simulate", "--mechanism", "second_price", "--population", "truthful:3", "--markets", "5",
                    "--rounds", "1", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_replay_of_a_missing_directory_is_a_clear_error(tmp_path):
    result = invoke("replay", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nowhere" in result.output


def test_bench_loop_and_ledger_json():
    loop = json.loads(invoke("bench", "loop", "--markets", "64", "--rounds", "2", "--json").stdout)
    assert loop["market_rounds_per_s"] > 0 and loop["markets"] == 64
    ledger = invoke("bench", "ledger", "--markets", "64", "--rounds", "2", "--json")
    assert ledger.exit_code == 0, ledger.output
    assert json.loads(ledger.stdout)["benchmark"] == "ledger"


# --- the shell's shared rules: consoles, seeds, stdout, version ------------------------------------
def _commands(command=None, path=()):
    """Every leaf command of the CLI as (path, click command)."""
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):  # a group (typer ships its own click)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


SEEDED = sorted(" ".join(path) for path, command in _commands()
                if any("--seed" in getattr(p, "opts", ()) for p in command.params))


def test_every_command_with_a_seed_is_found():
    assert {"simulate", "demo", "fuzz", "regress", "repair", "designer eval", "designer play", "designer audit",
            "designer train", "designer benchmark", "train sft-data", "train grpo", "negotiate baselines",
            "negotiate play", "negotiate sft-data"} <= set(SEEDED)


@pytest.mark.parametrize("command", SEEDED)
@pytest.mark.parametrize("seed", [-1, 2**63])
def test_every_seed_option_refuses_a_seed_outside_int64_with_one_line(command, seed):
    """The seed is checked while the command line is parsed, before any work (or a missing option)."""
    result = invoke(*command.split(), "--seed", str(seed))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: --seed must be an integer in [0, 2^63 - 1], got {seed}"


def test_seed_counts_keep_every_seed_in_range():
    last = invoke("negotiate", "baselines", "--seed", str(2**63 - 1), "--seeds", "2", "--policies", "random")
    assert last.exit_code == 2 and "the last episode's seed) must be an integer in [0, 2^63 - 1]" in last.stderr
    ranked = invoke("rank", "second_price", "first_price", "--population", "truthful:3", "--seeds", str(2**63))
    assert ranked.exit_code == 2 and "Traceback" not in ranked.output
    assert "seeds must be an integer in [2, 10000]" in " ".join(ranked.stderr.split())


def test_no_command_parameter_hides_the_output_consoles():
    """A parameter named like a module console (``out``, ``err``) replaces it inside the command:
    ``out.print`` then fails on a Path after the work is done."""
    hidden = [(" ".join(path), p.name) for path, command in _commands() for p in command.params
              if p.name in ("out", "err")]
    assert hidden == []


def test_train_sft_data_prints_its_summary_as_a_table(tmp_path):
    result = invoke("train", "sft-data", "--out", str(tmp_path / "d.jsonl"), "--stage", "1", "--episodes", "1",
                    "--teacher", "greedy")
    assert result.exit_code == 0, result.output
    assert "decisions of greedy at stage 1 written to" in " ".join(result.stdout.split())


def _fake_grpo(out, **kwargs):
    """A stand-in for TRL's trainer that logs as it does: dicts and tqdm lines on stdout."""
    print({"loss": 0.1, "reward": 0.5})
    sys.stdout.write("\r 33%|###       | 1/3\n")
    return {"steps": kwargs["steps"], "final_reward": 0.5, "out": Path(out)}


@pytest.mark.parametrize("as_json", [True, False])
def test_train_grpo_keeps_library_logs_off_stdout(monkeypatch, tmp_path, as_json):
    import mecharena.llm.train

    monkeypatch.setattr(mecharena.llm.train, "train_grpo", _fake_grpo)
    result = invoke("train", "grpo", "--model", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "3",
                    *(["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    assert "'loss': 0.1" in result.stderr and "'loss'" not in result.stdout
    if as_json:
        assert json.loads(result.stdout)["steps"] == 3
    else:
        assert "final_reward" in result.stdout


def test_stdout_to_stderr_moves_what_c_code_writes_to_fd_1():
    code = ("import os, sys\nfrom mecharena.cli.shell import stdout_to_stderr\n"
            "with stdout_to_stderr():\n    print('python log')\n    os.write(1, b'fd log\\n')\nprint('{}')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "{}\n" and "python log" in proc.stderr and "fd log" in proc.stderr


def test_tables_in_captured_output_keep_ids_and_names_whole():
    """Output that is not a terminal is not cut to 80 columns, and a narrow terminal folds specs."""
    result = invoke("rank", "second_price", "first_price:reserve_price=0.1", "--population", "truthful:3",
                    "--seeds", "2", "--markets", "50", "--rounds", "2")
    assert result.exit_code == 0, result.output
    assert "second_price" in result.stdout and "first_price:reserve_price=0.1" in result.stdout
    assert "…" not in result.stdout

    from rich.console import Console

    from mecharena.cli.repair import rank_command

    narrow = Console(width=60, file=io.StringIO(), force_terminal=True, color_system=None)
    rank_command(["second_price", "first_price:reserve_price=0.1"], "truthful:3", seeds=2, markets=50, rounds=2,
                 console=narrow)
    assert "…" not in narrow.file.getvalue().split("┡")[1]


def test_exploits_list_shows_the_whole_id_that_replay_takes(tmp_path):
    library = tmp_path / "lib"
    found = invoke("fuzz", "--mechanism", "first_price", "--population", "truthful:4", "--families", "shading",
                   "--budget", "12", "--markets", "200", "--rounds", "3", "--eval-markets", "400",
                   "--library", str(library), "--json")
    report_id = json.loads(found.stdout)["report"]["id"]
    listed = invoke("exploits", "list", "--library", str(library))
    assert report_id in listed.stdout and "first_price v" in listed.stdout and "…" not in listed.stdout


def test_version_is_the_distribution_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"mecharena {importlib.metadata.version('mecharena')}\n"
