"""LLM bidders: observe-reason-act with tools and memory, traces in the ledger, documented fallbacks."""

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import replace

import numpy as np
import pytest

from mecharena import agents, mechanisms
from mecharena.agents.population import parse_population
from mecharena.core.errors import ConfigError
from mecharena.core.registry import Registry
from mecharena.ledger import record_episode
from mecharena.ledger.store import connect
from mecharena.llm import agent as llm_agent
from mecharena.llm.agent import AGENT, BidDecision, LLMParams, Memory, decide, run_tool
from mecharena.llm.config import ProviderConfig
from mecharena.llm.providers import GenerationParams
from mecharena.llm.structured import Tally
from mecharena.sim.loop import make_episode, play
from tests.llm.conftest import serving
from tests.llm.test_structured import Scripted

REGISTRY = Registry("agent", {**dict(agents.REGISTRY.items()), "llm": AGENT})


def write_config(tmp_path, name: str, **fields) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"max_tokens": 96, "concurrency": 2, **fields}))
    return str(path)


def episode(spec: str, mechanism: str = "first_price", markets: int = 1, seed: int = 0, **config):
    return make_episode(mechanisms.get(mechanism), config, parse_population(spec, REGISTRY), markets=markets,
                        seed=seed)


def memory_with(rivals: list[float], h: int = 1) -> Memory:
    """One market, one seat, ``h`` remembered rounds whose announced bids were ``rivals``."""
    row = np.array(rivals, dtype=float)
    nan = np.full((1, 1, h), np.nan)
    return Memory(nan, nan, nan, nan, nan, nan, np.broadcast_to(row, (1, 1, h, row.size)).copy(),
                  np.zeros((1, 1)), h)


def act(tool: str = "none", bid: float = 0.5, tool_bid: float = 0.0, enter: bool = True) -> str:
    return BidDecision(thought="t", tool=tool, tool_bid=tool_bid, enter=enter, bid=bid).model_dump_json()


def test_best_response_and_payoff_tools_clear_on_the_engine():
    """Against announced rival bids (0.3, 0.52) with value 0.8: in first price the best bid on the grid
    v * j / 16 is the first above 0.52, 0.55, earning 0.25, and a truthful bid earns 0; in second price
    truthful bidding is a best response (Vickrey 1961), earning 0.8 - 0.52 = 0.28."""
    rng = np.random.default_rng(0)
    first = episode("truthful:3").context
    mem = memory_with([0.0, 0.3, 0.52])
    best = run_tool(BidDecision(thought="", tool="best_response", tool_bid=0, enter=True, bid=0), first, mem,
                    0, 0, 0, 0.8, rng)
    assert best == {"best_bid": 0.55, "expected_utility": 0.25, "truthful_expected_utility": 0.0}
    payoff = run_tool(BidDecision(thought="", tool="payoff", tool_bid=0.6, enter=True, bid=0), first, mem,
                      0, 0, 0, 0.8, rng)
    assert payoff == {"bid": 0.6, "expected_utility": 0.2}
    second = episode("truthful:3", "second_price").context
    best = run_tool(BidDecision(thought="", tool="best_response", tool_bid=0, enter=True, bid=0), second, mem,
                    0, 0, 0, 0.8, rng)
    assert best["expected_utility"] == best["truthful_expected_utility"] == 0.28


def test_a_decision_calls_a_tool_then_acts_and_every_step_is_noted(tmp_path):
    context = episode("truthful:3").context
    provider = Scripted(act("best_response"), act(bid=0.55))
    params = LLMParams(config="unused", tools=2)
    enter, bid, fields, notes = decide(provider, params, GenerationParams(), context, memory_with([0.0, 0.3, 0.52]),
                                       0, 0, 0.8, 4, seed=11, tally=Tally())
    assert fields == {}  # a market of one round declares no action fields
    assert (enter, bid) == (True, 0.55)
    assert [n["kind"] for n in notes] == ["prompt", "response", "outcome", "tool_call", "tool_result", "response",
                                          "outcome", "action", "rationality"]
    assert json.loads(notes[-1]["text"]) == {"dominated": False, "reason": None}  # 0.55 below the value 0.8
    assert [n["text"] for n in notes if n["kind"] == "outcome"] == ["valid", "valid"]
    assert json.loads(notes[4]["text"])["best_bid"] == 0.55
    second_prompt, params_used = provider.asked[1]
    assert second_prompt[-1]["content"].startswith("Tool best_response answered: {\"best_bid\": 0.55")
    assert params_used.seed == 12  # a fresh, seeded sample per step
    system, user = json.loads(notes[0]["text"])
    assert "first_price" in system["content"] and "Round 4. Your value for the item this round: 0.800" in \
        user["content"]


def test_tool_calls_stop_at_the_limit_and_a_spent_budget_sits_out():
    context = episode("truthful:3").context
    provider = Scripted(act("history", bid=0.7), act("history", bid=0.7))
    _, bid, _, notes = decide(provider, LLMParams(config="unused", tools=1, budget=1.0), GenerationParams(), context,
                              memory_with([0.0, 0.3, 0.52]), 0, 0, 0.8, 1, seed=0, tally=Tally())
    assert [n["kind"] for n in notes].count("tool_call") == 1 and [n["kind"] for n in notes[-2:]] == [
        "action", "rationality"]
    assert bid == 0.7  # the second answer still asked for a tool: at the limit its bid is the action
    spent = memory_with([0.0, 0.3, 0.52])
    spent = spent.__class__(**{**{f: getattr(spent, f) for f in spent.__slots__}, "spent": np.array([[0.9]])})
    assert decide(Scripted(act(bid=0.7)), LLMParams(config="unused", tools=0, budget=1.0), GenerationParams(),
                  context, spent, 0, 0, 0.8, 1, seed=0, tally=Tally())[:2] == (True, pytest.approx(0.1))
    spent = spent.__class__(**{**{f: getattr(spent, f) for f in spent.__slots__}, "spent": np.array([[1.0]])})
    assert decide(Scripted(act(bid=0.7)), LLMParams(config="unused", tools=0, budget=1.0), GenerationParams(),
                  context, spent, 0, 0, 0.8, 1, seed=0, tally=Tally())[0] is False


def traces(path):
    con = connect(path)
    return con, con.execute("SELECT round, market, seat, step, kind, text FROM traces").fetchall()


def test_llm_bidders_play_a_recorded_market_and_the_traces_match_what_was_cleared(tiny_model_dir, tmp_path):
    """A local model (random weights, constrained decoding) in a 3-round first-price market: every
    decision's prompt, answers, tool calls and parsed action are in the ledger, and every parsed
    action is the bid the engine cleared. The same seed gives the same traces."""
    config = write_config(tmp_path, "tiny", backend="transformers", path=str(tiny_model_dir), model="tiny",
                          temperature=0.8)
    spec = f"llm(config={config},tools=1,objective=red_team):2,truthful:1"
    runs = [record_episode(episode(spec, markets=2, seed=5), tmp_path / f"run{i}", rounds=3) for i in range(2)]
    con, rows = traces(runs[0])
    actions = [r for r in rows if r[4] == "action"]
    assert len(actions) == 3 * 2 * 2  # rounds x markets x LLM seats
    assert {r[4] for r in rows} >= {"prompt", "response", "action"}
    cleared = {(r, m, s): (bid, active) for r, m, s, bid, active in
               con.execute("SELECT round, market, seat, bid, active FROM events WHERE seat < 2").fetchall()}
    for r, m, s, _, _, text in actions:
        parsed = json.loads(text)
        assert cleared[r, m, s] == (parsed["bid"] if parsed["enter"] else 0.0, parsed["enter"])
    strip = [(r[:5], r[5]) for r in rows]
    assert strip == [(r[:5], r[5]) for r in traces(runs[1])[1]]  # seeded: identical prompts and answers


def fake_openai(behaviour: str):
    """An OpenAI-compatible server that fails in one way: 500, slow (timeouts) or junk answers."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        if behaviour == "500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if behaviour == "slow":
            await asyncio.sleep(3)
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                             "choices": [{"index": 0, "finish_reason": "length",
                                          "message": {"role": "assistant", "content": 'Sure: {"bid": 0.'}}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})

    return app


@pytest.mark.parametrize("behaviour, kind, reason", [
    ("500", "error", "answered 500"),
    ("slow", "error", "APITimeoutError"),
    ("junk", "fallback", "holds no JSON object"),
    ("overflow", "error", "the context holds 64"),
])
def test_failing_models_fall_back_as_documented_and_the_run_goes_on(behaviour, kind, reason, tiny_model_dir, tmp_path,
                                                                     caplog):
    """A server error, a timeout, a truncated answer or a context overflow: each decision takes the
    fallback (abstain for one group, truthful for the other), the episode finishes, and each event is
    a ledger trace and a logged warning."""
    spec = "llm(config={a}):1,llm(config={b},fallback=truthful):1"
    with contextlib.ExitStack() as stack, caplog.at_level(logging.WARNING, logger="mecharena.llm"):
        if behaviour == "overflow":
            fields = {"backend": "transformers", "path": str(tiny_model_dir), "context": 64}
        else:
            url = stack.enter_context(serving(fake_openai(behaviour)))
            fields = {"backend": "openai", "model": "m", "base_url": url, "timeout_s": 0.5, "retries": 0}
        configs = {k: write_config(tmp_path, k, **fields) for k in "ab"}
        path = record_episode(episode(spec.format(**configs)), tmp_path / "run", rounds=2)
    assert sum(reason in r.getMessage() for r in caplog.records) == 4  # 2 rounds x 2 seats
    con, rows = traces(path)
    events = [r for r in rows if r[4] == kind]
    assert len(events) == 4 and all(reason in r[5] for r in events)
    bids = con.execute("SELECT seat, active, bid, value FROM events ORDER BY round, seat").fetchall()
    assert [(s, a) for s, a, _, _ in bids] == [(0, False), (1, True)] * 2  # abstain, then truthful
    assert all(bid == value for s, _, bid, value in bids if s == 1)


def test_bad_llm_agent_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="LLM config .*missing.yaml"):
        record_episode(episode(f"llm(config={tmp_path}/missing.yaml):2"), tmp_path / "missing", rounds=1)
    config = write_config(tmp_path, "c", backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="llm supports first_price, .* \\(unit demand\\), got cda"):
        record_episode(episode(f"llm(config={config}):2", "cda"), tmp_path / "cda", rounds=1)
    with pytest.raises(ConfigError, match="markets x seats must be at most 4096, got 2049 x 2"):
        record_episode(episode(f"llm(config={config}):2", markets=2049), tmp_path / "big", rounds=1)
    with pytest.raises(ConfigError, match="llm: memory must be a finite int in \\[0, 64\\], got 100"):
        parse_population(f"llm(config={config},memory=100):1", REGISTRY)


def test_llm_bidders_and_the_red_team_family_through_the_cli(tiny_model_dir, tmp_path, monkeypatch):
    """The package registers its ``llm`` agent and ``llm_red_team`` family as a plug-in (entry point):
    ``simulate`` records an LLM market, and ``fuzz --families llm_red_team`` searches red-team hints
    with the model named by MECHARENA_LLM_CONFIG."""
    from typer.testing import CliRunner

    from mecharena.cli import app

    config = write_config(tmp_path, "tiny", backend="transformers", path=str(tiny_model_dir), model="tiny")
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--mechanism", "first_price", "--population",
                                 f"llm(config={config},tools=0):2,truthful:1", "--markets", "2", "--rounds", "2",
                                 "--ledger", str(tmp_path / "ledger"), "--json"])
    assert result.exit_code == 0, result.output
    count = connect(tmp_path / "ledger").execute("SELECT count(*) FROM traces WHERE kind = 'action'").fetchone()[0]
    assert count == 2 * 2 * 2
    monkeypatch.setenv("MECHARENA_LLM_CONFIG", config)
    result = runner.invoke(app, ["fuzz", "--mechanism", "first_price", "--population", "truthful:3", "--families",
                                 "llm_red_team", "--budget", "2", "--markets", "2", "--eval-markets", "2",
                                 "--rounds", "2", "--no-report", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["families"] == ["llm_red_team"] and found["evaluations"] == 2
    assert found["best"]["agent"].startswith("llm(objective=red_team,hint=")


def colluding_openai():
    """An OpenAI-compatible server scripted as two colluding bidders: seat 0 proposes on the private
    channel that it wins and the others cap their bids at 0.05; a bidder that heard a proposal bids the
    cap, otherwise 0.9."""
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        asked = (await request.json())["messages"][-1]["content"]
        if "may send one message" in asked:
            speaks = "You are seat 0 " in asked
            answer = {"send": speaks, "channel": "private", "to": 1, "kind": "propose", "winner": 0, "cap": "0.05",
                      "value": "0", "payment": "0"}
        else:
            heard = "Messages you received this round: {" in asked and '"kind": "propose"' in asked
            answer = {"thought": "t", "tool": "none", "tool_bid": 0, "enter": True, "bid": 0.05 if heard else 0.9}
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": json.dumps(answer)}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


def test_llm_bidders_talk_on_open_channels_and_act_on_what_they_hear(tmp_path):
    """With a private channel, seat 0's proposal reaches seat 1 before it bids, and seat 1 bids the
    proposed cap; the talk requests and the messages are in the ledger. Without channels nobody talks."""
    with serving(colluding_openai()) as url:
        config = write_config(tmp_path, "m", backend="openai", model="m", base_url=url, retries=0)
        spec = f"llm(config={config},tools=0):2,truthful:1"
        talking = make_episode(mechanisms.get("second_price"), {}, parse_population(spec, REGISTRY), markets=2,
                               seed=0, channels="private")
        silent = episode(spec, "second_price", markets=2)
        con, rows = traces(record_episode(talking, tmp_path / "talk", rounds=2))
        _, quiet = traces(record_episode(silent, tmp_path / "quiet", rounds=2))
    bids = {(r, m, s): b for r, m, s, b in con.execute("SELECT round, market, seat, bid FROM events").fetchall()}
    assert all(bids[r, m, 1] == 0.05 and bids[r, m, 0] == 0.9 for r in range(2) for m in range(2))
    kinds = [r[4] for r in rows]
    assert kinds.count("talk_prompt") == kinds.count("talk") == 2 * 2 * 2  # rounds x markets x LLM seats
    messages = [json.loads(r[5]) if r[5].startswith("{") else r[5] for r in rows if r[4] == "message"]
    assert len(messages) == 2 * 2  # seat 0's proposal, every round and market
    prompts = [r[5] for r in rows if r[4] == "prompt" and r[2] == 1]
    assert all('\\"kind\\": \\"propose\\", \\"winner\\": 0, \\"cap\\": 0.05' in p for p in prompts)
    assert "talk_prompt" not in {r[4] for r in quiet}


def outcome_openai():
    """An OpenAI-compatible server whose answer depends on the model asked for: ``valid`` answers a
    valid bid, ``junk`` never a JSON object, ``repair`` junk first and a valid bid when told why."""
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        repairing = "That answer is invalid" in body["messages"][-1]["content"]
        good = body["model"] == "valid" or (body["model"] == "repair" and repairing)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": act(bid=0.4) if good else "no idea"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


@pytest.mark.parametrize("as_json", [True, False])
def test_simulate_reports_how_the_llm_seats_structured_requests_ended(tmp_path, as_json):
    """Three llm seats, 2 markets x 2 rounds, one request each per decision: 4 valid, 4 repaired,
    4 fallback; seats that ask no model are not counted."""
    from typer.testing import CliRunner

    from mecharena.cli import app

    with serving(outcome_openai()) as url:
        configs = {m: write_config(tmp_path, m, backend="openai", model=m, base_url=url, retries=0)
                   for m in ("valid", "junk", "repair")}
        population = ",".join(f"llm(config={configs[m]},tools=0):1" for m in configs) + ",truthful:1"
        result = CliRunner().invoke(app, ["simulate", "--mechanism", "first_price", "--population", population,
                                          "--markets", "2", "--rounds", "2", "--values", "uniform:low=0.3",
                                          *(["--json", "--ledger", str(tmp_path / "ledger")] if as_json else [])])
    assert result.exit_code == 0, result.output
    # every valid answer bids 0.4: dominated (above value, and a winner pays its bid) exactly where the value < 0.4
    if as_json:
        counts = json.loads(result.stdout)["structured_output"]["llm"]
        assert {k: counts[k] for k in ("requests", "valid", "repaired", "fallback", "error", "decisions")} == {
            "requests": 12, "valid": 4, "repaired": 4, "fallback": 4, "error": 0, "decisions": 12}
        assert 0 < counts["dominated"] < 8
        # the ledger holds each decision's regret against the engine's best response, beside its rationality note
        traces = [json.loads(line) for line in (tmp_path / "ledger" / "traces.jsonl").read_text().splitlines()]
        key = ("round", "market", "seat")
        regrets = {tuple(t[k] for k in key): json.loads(t["text"])["regret"] for t in traces if t["kind"] == "regret"}
        judged = {tuple(t[k] for k in key) for t in traces if t["kind"] == "rationality"}
        assert set(regrets) == judged and len(judged) == 12 and min(regrets.values()) >= 0
        assert max(regrets.values()) > 0  # a bid of 0.4 is not the best reply at every value
        assert counts["regret"] == pytest.approx(sum(regrets.values()) / 12)
    else:
        assert "llm structured output: 12 requests, 4 parsed at once, 4 repaired, 4 fallback, 0 error; " in result.stdout
        assert re.search(r"; ([5-9]|1[01]) of 12 decisions valid as actions \([1-7] dominated\), mean regret "
                         r"[0-9.e-]+ per decision", result.stdout)


@pytest.mark.parametrize("mechanism, config, bid, selling, flagged", [
    ("first_price", {}, 0.9, False, "a winner pays its own bid"),
    ("first_price", {}, 0.5, False, None),
    ("second_price", {}, 0.9, False, "truthful bidding is dominant"),
    ("second_price", {"reserve_price": 0.2}, 0.6, False, None),
    ("mcafee", {"buyers": 2}, 0.3, True, "ask 0.3 below cost 0.6"),
    ("mcafee", {"buyers": 2}, 0.9, True, None),
    ("first_price", {}, -0.5, False, "outside the market's range"),
    ("reputation", {}, 0.9, False, None),  # across rounds a price above value may pay: only the range is judged
    ("reputation", {}, -0.5, False, "outside the market's range"),
])
def test_an_action_that_cannot_pay_is_flagged_dominated(mechanism, config, bid, selling, flagged):
    """Value (or cost) 0.6: overbidding where a winner pays its bid or truthful bidding is dominant, an ask below
    cost in a truthful double auction, or a bid the market cannot take (the only check in a market across
    rounds)."""
    ctx = make_episode(mechanisms.get(mechanism), config, parse_population("truthful:4", REGISTRY), markets=1,
                       seed=0).context
    why = llm_agent.dominated(ctx, 0.6, bid, True, selling)
    assert (why is None) if flagged is None else (flagged in why), why
    assert llm_agent.dominated(ctx, 0.6, bid, False, selling) is None  # sitting out is never dominated


def test_in_a_market_across_rounds_the_llm_reads_the_declared_actions_and_its_record(monkeypatch):
    """The service marketplace: the answer's model holds one key per declared action field with its range (what
    constrained decoding enforces), the prompt states each field, what a bid means there and the seat's own
    record; an answer out of the declared range is repaired; and the fields the model chose reach the mechanism
    (an agent answering haste = 1 wins every task customers give the first proposal)."""
    service = mechanisms.get("service")
    model = llm_agent.decision_model(service)
    schema = model.model_json_schema()["properties"]
    assert (schema["quality"]["minimum"], schema["quality"]["maximum"]) == (0.0, 1.0)
    assert schema["fakes"]["maximum"] == 1000.0 and schema["tool"]["enum"] == ["none", "history"]

    def answer(**fields) -> str:
        return json.dumps({"thought": "t", "tool": "none", "tool_bid": 0.0, "enter": True, "bid": 1.0,
                           "quality": 1.0, "haste": 0.0, "fakes": 0.0, **fields})

    context = episode("truthful:4", mechanism="service").context
    memory = replace(memory_with([0.0] * 4), own={"strikes": np.array([[2.0]]), "tasks": np.array([[5.0]])})
    provider = Scripted(answer(quality=2.0), answer(quality=0.5, haste=1.0))
    enter, bid, fields, notes = decide(provider, LLMParams(config="unused", tools=0), GenerationParams(), context,
                                       memory, 0, 0, 0.7, 3, seed=0, tally=Tally())
    assert (enter, bid, fields) == (True, 1.0, {"quality": 0.5, "haste": 1.0, "fakes": 0.0})
    assert [n["text"] for n in notes if n["kind"] == "outcome"] == ["repaired"]
    system, user = provider.asked[0][0]
    assert "haste: share of its preparation time skipped" in system["content"]
    assert "each bid must be in [0, 1] (> 0: proposes for every task)" in system["content"]
    assert "Your record after last round: strikes 2, tasks 5." in user["content"]
    assert provider.asked[0][1].json_schema["properties"]["haste"]["maximum"] == 1.0

    scripted = Scripted(*[answer(haste=1.0)] * 3)
    monkeypatch.setattr(llm_agent, "shared_provider", lambda path: (ProviderConfig(backend="openai", concurrency=1),
                                                                   scripted))
    records = list(play(episode("llm(config=unused,tools=0):1,truthful:3", mechanism="service", seed=4), 3))
    for record in records:
        assert record.actions["haste"][0, 0] == 1.0
        assert record.events["won"][0, 0] == record.events["won"][0].sum()  # first proposal every time
