"""Providers: local transformers, the OpenAI-compatible client against a real server on loopback,
the answer cache, bounded concurrency and clear errors."""

import socket
import threading
import time

import pytest

from mecharena.core.errors import ConfigError
from mecharena.llm.providers import (
    CachedProvider,
    GenerationParams,
    Meter,
    OpenAICompatibleProvider,
    ProviderError,
    TransformersProvider,
    complete_many,
)
from tests.llm.conftest import serving

MESSAGES = [{"role": "system", "content": "You design markets."}, {"role": "user", "content": "Pick a rule."}]
GREEDY = GenerationParams(max_tokens=12)


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return TransformersProvider(tiny_model_dir, name="tiny", threads=1)


@pytest.fixture(scope="module")
def server(local):
    """``build_app(local)`` on loopback; yields the base URL."""
    from mecharena.server.openai_api import build_app

    with serving(build_app(local)) as url:
        yield url


def test_local_generation_is_seeded(local):
    first = local.complete(MESSAGES, GREEDY)
    assert first.completion_tokens > 0 and first.prompt_tokens > 0 and first.model == "tiny"
    assert local.complete(MESSAGES, GREEDY).text == first.text
    sampled = GenerationParams(temperature=1.0, max_tokens=12, seed=5)
    assert local.complete(MESSAGES, sampled).text == local.complete(MESSAGES, sampled).text
    others = {local.complete(MESSAGES, GenerationParams(temperature=1.0, max_tokens=12, seed=s)).text
              for s in range(6)}
    assert len(others) > 1  # the seed reaches the sampler


def test_openai_client_against_the_projects_server(local, server):
    """The real ``openai`` client over HTTP gets what the model gives locally, token counts included."""
    remote = OpenAICompatibleProvider(model="tiny", base_url=server, retries=0)
    answer = remote.complete(MESSAGES, GREEDY)
    direct = local.complete(MESSAGES, GREEDY)
    assert answer.text == direct.text and answer.model == "tiny"
    assert (answer.prompt_tokens, answer.completion_tokens) == (direct.prompt_tokens, direct.completion_tokens)
    assert [m.id for m in remote.client.models.list().data] == ["tiny"]


def test_server_errors_reach_the_client_clearly(server):
    with pytest.raises(ProviderError, match="404.*model 'other' is not served here"):
        OpenAICompatibleProvider(model="other", base_url=server, retries=0).complete(MESSAGES, GREEDY)
    client = OpenAICompatibleProvider(model="tiny", base_url=server, retries=0).client
    import openai

    with pytest.raises(openai.UnprocessableEntityError, match="temperature must be a finite float in \\[0, 2\\]"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=5)
    with pytest.raises(openai.BadRequestError, match="stream must be false"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, stream=False, extra_body={"stream": True})
    with pytest.raises(openai.UnprocessableEntityError, match="messages\\[0\\] must be"):
        client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "hi"}])


def test_unreachable_server_is_a_provider_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    remote = OpenAICompatibleProvider(model="tiny", base_url=f"http://127.0.0.1:{port}/v1", retries=1, timeout_s=2)
    with pytest.raises(ProviderError, match="APIConnectionError"):
        remote.complete(MESSAGES, GREEDY)


def test_cache_makes_a_rerun_free_and_identical(local, tmp_path):
    path = tmp_path / "cache.jsonl"
    calls = []

    class Counting:
        model = local.model

        def complete(self, messages, params):
            calls.append(1)
            return local.complete(messages, params)

    cached = CachedProvider(Counting(), path)
    first = cached.complete(MESSAGES, GREEDY)
    again = cached.complete(MESSAGES, GREEDY)
    assert not first.cached and again.cached and again.text == first.text and len(calls) == 1
    reread = CachedProvider(Counting(), path)  # a rerun in a new process reads the file
    assert reread.complete(MESSAGES, GREEDY).cached and len(calls) == 1
    assert not reread.complete(MESSAGES, GenerationParams(max_tokens=12, seed=1)).cached  # the seed is in the key
    path.write_text(path.read_text() + '{"key": "torn')  # a crash mid-write: the torn line is forgiven
    assert CachedProvider(Counting(), path).complete(MESSAGES, GREEDY).cached
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(ConfigError, match="line 1 is corrupt"):
        CachedProvider(Counting(), path)


def test_complete_many_is_bounded_and_ordered(local):
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    class Slow:
        model = "slow"

        def complete(self, messages, params):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1
            return local.complete(messages, params)

    requests = [([{"role": "user", "content": f"market {i}"}], GREEDY) for i in range(8)]
    meter = Meter()
    answers = complete_many(Slow(), requests, concurrency=3, meter=meter)
    assert peak[0] == 3 and meter.requests == 8 and meter.completion_tokens > 0
    assert [a.text for a in answers] == [local.complete(m, p).text for m, p in requests]
    with pytest.raises(ConfigError, match="concurrency must be in"):
        complete_many(Slow(), requests, concurrency=0)


def test_bad_messages_and_settings_are_config_errors(local):
    with pytest.raises(ConfigError, match="messages\\[0\\] must be"):
        local.complete([{"role": "robot", "content": "x"}], GREEDY)
    with pytest.raises(ConfigError, match="temperature must be"):
        GenerationParams.build(temperature=3)
    with pytest.raises(ConfigError, match="needs a model and a base URL"):
        OpenAICompatibleProvider(model="", base_url="")
    with pytest.raises(ConfigError, match="model folder /nonexistent does not exist"):
        TransformersProvider("/nonexistent")


def test_constrained_decoding_makes_even_a_random_model_answer_in_the_schema(local):
    """With a JSON schema, outlines' logits processor keeps every token inside the schema: a model with
    random weights (which never writes JSON on its own) answers valid JSON of that shape."""
    import json

    schema = {"type": "object", "properties": {"rule": {"enum": ["vcg", "pay_as_bid"]},
                                               "reveal": {"type": "boolean"}},
              "required": ["rule", "reveal"], "additionalProperties": False}
    free = local.complete(MESSAGES, GenerationParams(max_tokens=40))
    assert not free.text.lstrip().startswith("{")
    for seed in range(4):
        answer = local.complete(MESSAGES, GenerationParams(temperature=1.0, max_tokens=40, seed=seed,
                                                           json_schema=schema))
        value = json.loads(answer.text)
        assert value["rule"] in ("vcg", "pay_as_bid") and isinstance(value["reveal"], bool), answer.text


def test_schema_constrained_answers_through_the_openai_client(server):
    """response_format json_schema reaches the local model's constrained decoding over HTTP."""
    import json

    from mecharena.designer.action import RULES

    schema = {"type": "object", "properties": {"rule": {"enum": list(RULES)}}, "required": ["rule"],
              "additionalProperties": False}
    remote = OpenAICompatibleProvider(model="tiny", base_url=server, retries=0)
    answer = remote.complete(MESSAGES, GenerationParams(max_tokens=30, json_schema=schema))
    assert json.loads(answer.text)["rule"] in RULES
    import openai

    with pytest.raises(openai.BadRequestError, match="response_format must be"):
        remote.client.chat.completions.create(model="tiny", messages=MESSAGES,
                                              response_format={"type": "json_schema", "json_schema": {}})


def test_constrained_requests_in_parallel_stay_valid(local):
    """Concurrent constrained requests share one compiled constraint: each generation gets it reset
    under the model's lock (a reset during another's generation corrupts its state)."""
    import json

    from mecharena.llm.providers import bounded_map

    schema = {"type": "object", "properties": {"rule": {"enum": ["vcg", "pay_as_bid"]}}, "required": ["rule"],
              "additionalProperties": False}
    answers = bounded_map(lambda seed: local.complete(MESSAGES, GenerationParams(
        temperature=1.0, max_tokens=40, seed=seed, json_schema=schema)), range(8), concurrency=4)
    assert all(json.loads(a.text)["rule"] in ("vcg", "pay_as_bid") for a in answers)


def test_a_stop_signal_ends_the_server_within_the_grace_period_even_mid_generation():
    """``mecharena llm serve`` on SIGTERM: uvicorn is told to stop, and if a generation (a thread
    that cannot be cancelled) still holds the process after the grace period, it exits 143."""
    import signal
    import threading

    import uvicorn

    from mecharena.server.openai_api import stopping_server

    exited = threading.Event()
    statuses = []
    server = stopping_server(uvicorn.Config(lambda scope, receive, send: None), grace_s=0.05,
                             exit_now=lambda status: (statuses.append(status), exited.set()))
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    assert exited.wait(5) and statuses == [128 + signal.SIGTERM]
