import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from mecharena import agents, mechanisms, plugins
from mecharena.fuzz.families import FAMILIES
from mecharena.metrics import summarize
from mecharena.sim import simulate


def run(mechanism: str, config: dict, population: str, markets: int = 200_000, rounds: int = 1, seed: int = 0,
        **kw):
    """Metrics of a seeded simulation (helper for analytic tests)."""
    trace = simulate(mechanisms.get(mechanism), config, agents.population(population), markets=markets,
                     rounds=rounds, seed=seed, **kw)
    return summarize(trace), trace


def load_usecase(name: str):
    """The script ``examples/usecases/NAME.py`` as a module (the use-case tables the docs print)."""
    path = Path(__file__).parents[1] / "examples" / "usecases" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def within(metric: dict, expected: float, sigmas: float = 4.0) -> bool:
    """``expected`` lies within ``sigmas`` standard errors of the estimate (the 95% CI is 1.96)."""
    lo, hi = metric["ci95"]
    half = (hi - lo) / 2 * sigmas / 1.959963984540054
    return abs(metric["mean"] - expected) <= half


@pytest.fixture
def isolated_registries(monkeypatch):
    """Plug-ins loaded by a test (directly or through the CLI) are forgotten after it."""
    for registry in (mechanisms.REGISTRY, agents.REGISTRY, FAMILIES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_sources", dict(registry._sources))
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setenv(plugins.ENV_VAR, "")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Property tests explore new examples locally; CI replays a fixed, derandomized sequence.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
