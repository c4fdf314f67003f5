"""Every test here starts from the built-in registries and leaves them as it found them."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """Every test here runs with the registries isolated (tests/conftest.py)."""


def load_example(relative: str) -> ModuleType:
    """An example script (``examples/RELATIVE``) as a module, without running its ``main``."""
    spec = importlib.util.spec_from_file_location(Path(relative).stem, EXAMPLES / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
