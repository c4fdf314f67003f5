"""Every test here starts from the built-in registries and leaves them as it found them."""

import pytest

from mecharena import agents, mechanisms, plugins
from mecharena.fuzz.families import FAMILIES


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch):
    """Plug-ins loaded by a test (directly or through the CLI) are forgotten after it."""
    for registry in (mechanisms.REGISTRY, agents.REGISTRY, FAMILIES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_sources", dict(registry._sources))
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setenv(plugins.ENV_VAR, "")

