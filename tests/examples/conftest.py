"""Every test here starts from the built-in registries and leaves them as it found them."""

from tests.plugins.conftest import isolated_registries  # noqa: F401 (the same autouse fixture)
