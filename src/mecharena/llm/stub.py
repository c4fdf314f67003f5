"""A stub OpenAI-compatible chat server that answers by a rule: the reference row of a model table.

A table of what language models do in a market (examples/llm/rationality.py,
examples/usecases/service_llm.py) needs a row whose answers are known, played through the same round
trip as a model's: the ``openai`` provider, the HTTP request, the answer's JSON. :func:`stub_provider`
serves ``POST /v1/chat/completions`` on a free local port from a rule (the last message's text to the
answer object) and yields the path of a provider config that points at it.
"""

import contextlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def stub_provider(answer: Callable[[str], dict[str, Any]], model: str = "scripted") -> Iterator[str]:
    """A provider config (a file path) for a local server answering each request with ``answer(prompt)`` as JSON,
    ``prompt`` being the text of the request's last message; the server stops when the block ends."""

    class Rule(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content = json.dumps(answer(body["messages"][-1]["content"]))
            data = json.dumps({"id": "s", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Rule)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / f"{model}.json"
            config.write_text(json.dumps({"backend": "openai", "model": model, "retries": 0,
                                          "base_url": f"http://127.0.0.1:{server.server_port}/v1"}))
            yield str(config)
    finally:
        server.shutdown()
        server.server_close()
