"""``mecharena llm ...``: serve a local model behind an OpenAI-compatible API."""

from pathlib import Path
from typing import Annotated

import typer

from mecharena.cli.shell import fail, make_console
from mecharena.core.errors import ConfigError, MechArenaError

err = make_console(stderr=True)

app = typer.Typer(no_args_is_help=True, help="LLM providers: serve a local model over an OpenAI-compatible API.")


@app.command("serve")
def serve(
    model: Annotated[Path, typer.Option("--model", help="folder of a transformers model (or of a GGUF file)")],
    gguf: Annotated[str | None, typer.Option("--gguf", help="GGUF file name inside --model")] = None,
    name: Annotated[str | None, typer.Option("--name", help="model id clients ask for (default: folder or file)")] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8001,
) -> None:
    """Serve a local model at /v1/chat/completions (the openai client, vLLM-style tools and agents can use it)."""
    if not 0 < port < 65536:
        raise fail(ConfigError(f"port must be in 1..65535, got {port}"))
    try:
        from mecharena.llm.providers import TransformersProvider
        from mecharena.server.openai_api import serve as serve_openai

        provider = TransformersProvider(model, gguf, name=name)
        err.print(f"serving {provider.model} at http://{host}:{port}/v1")
        serve_openai(provider, host, port)
    except MechArenaError as exc:
        raise fail(exc) from None
