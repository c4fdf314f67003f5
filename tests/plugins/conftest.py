"""Every test here starts from the built-in registries and leaves them as it found them."""

import pytest


@pytest.fixture(autouse=True)
def _isolated(isolated_registries):
    """Every test here runs with the registries isolated (tests/conftest.py)."""
