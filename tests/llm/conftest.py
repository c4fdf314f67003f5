"""A tiny random-weight causal LM with a tokenizer built here (no model hub is needed)."""

import socket
import string
import threading
import time
from contextlib import contextmanager

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a 2-layer Llama (random weights, seed 0) and a byte-level BPE tokenizer."""
    import torch

    from mecharena.llm.tiny import build_tiny

    torch.set_num_threads(1)
    corpus = ['{"rule": "vcg", "reserve": 0.1, "competing_bids": true}', string.printable,
              "the designer picks a mechanism for the market"] * 20
    return build_tiny(tmp_path_factory.mktemp("tiny-llm"), corpus, vocab=300, hidden=32, context=16384, tie=False)


@contextmanager
def serving(app):
    """``app`` under uvicorn on a free loopback port; yields the ``/v1`` base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        running.should_exit = True
        thread.join(10)
