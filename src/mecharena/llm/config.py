"""Provider configs: a JSON or YAML file (``llm:CONFIG`` wherever a policy is named).

.. code-block:: yaml

    backend: openai            # or transformers
    model: smollm2             # the model id the server knows (openai) or a display name
    base_url: http://127.0.0.1:8001/v1
    temperature: 0.0
    max_tokens: 192
    cache: runs/llm-cache.jsonl

Unset ``model``, ``base_url`` and the key fall back to ``MECHARENA_LLM_MODEL``,
``MECHARENA_LLM_BASE_URL`` and ``MECHARENA_LLM_API_KEY``; ``path`` (and ``gguf_file``) name a local
model for the ``transformers`` backend.
"""

import threading
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.llm.providers import (
    CachedProvider,
    GenerationParams,
    OpenAICompatibleProvider,
    Provider,
    TransformersProvider,
)


class ProviderConfig(StrictModel):
    backend: Literal["openai", "transformers"] = Field(description="which provider")
    model: str | None = Field(None, description="model id (openai) or display name (transformers)")
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8001/v1")
    path: str | None = Field(None, description="local model folder (transformers)")
    gguf_file: str | None = Field(None, description="GGUF file inside path (transformers)")
    context: int | None = Field(None, ge=16, description="context window in tokens (transformers; default: the "
                                                         "model's own); a longer prompt is a ContextLengthError")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(192, ge=1, le=8192)
    seed: int = Field(0, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(4, ge=1, le=64)
    cache: str | None = Field(None, description="JSONL answer cache: a rerun is reproducible and free")

    def params(self) -> GenerationParams:
        return GenerationParams(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed)


def load_config(path: str | Path) -> ProviderConfig:
    """Read and validate a provider config file.

    Raises:
        ConfigError: the file is missing or unreadable, or a field is unknown or out of range.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"LLM config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"LLM config {path} must be a mapping of fields, got {type(data).__name__}")
    try:
        return ProviderConfig.build(**data)
    except ConfigError as exc:
        raise ConfigError(f"LLM config {path}: {exc}") from None


def build_provider(config: ProviderConfig) -> Provider:
    """The provider a config describes, behind its answer cache when it names one."""
    if config.backend == "openai":
        provider: Provider = OpenAICompatibleProvider(config.model, config.base_url, timeout_s=config.timeout_s,
                                                      retries=config.retries)
    else:
        if config.path is None:
            raise ConfigError("the transformers backend needs path (a local model folder)")
        provider = TransformersProvider(config.path, config.gguf_file, name=config.model, context=config.context)
    return CachedProvider(provider, config.cache) if config.cache else provider


_SHARED: dict[str, tuple[ProviderConfig, Provider]] = {}
_SHARED_LOCK = threading.Lock()


def shared_provider(path: str | Path) -> tuple[ProviderConfig, Provider]:
    """The config in ``path`` and its provider, built once per process and file (a local model
    loads once however many agents and designers name it).

    Raises:
        ConfigError: see :func:`load_config` and :func:`build_provider`.
    """
    key = str(Path(path).resolve())
    with _SHARED_LOCK:
        if key not in _SHARED:
            config = load_config(path)
            _SHARED[key] = (config, build_provider(config))
        return _SHARED[key]
