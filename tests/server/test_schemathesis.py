"""Property-based tests of ``mecharena serve``'s OpenAPI schema with schemathesis: every operation
gets generated valid and invalid requests against a loopback uvicorn server; no answer may be a 5xx,
use an undeclared status, or break its declared response schema."""

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("openenv")

from hypothesis import HealthCheck, given, settings

from mecharena.server.app import build_app
from tests.server.test_app import serving

EXAMPLES = 12  # per operation: ~18 operations, a few hundred requests in all
# Generic OpenEnv task routes name an environment the server does not serve (404 by design).
SKIP = ("/{env_name}", "/list_environments")


def check_schema(app, paths: tuple[str, ...] | None = None) -> int:
    """Run the generated requests against ``app`` served on loopback (every operation but SKIP and
    /mcp, or only ``paths``); raise on the first failed check. Returns the number of requests sent."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    with serving(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [op.ok() for op in schema.get_all_operations()
                      if not op.ok().path.startswith(SKIP) and op.ok().path != "/mcp"
                      and (paths is None or op.ok().path in paths)]
        sent = []
        for operation in operations:
            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def check(case):
                case.call_and_validate(base_url=url, checks=checks)
                sent.append(case)

            check()
        return len(sent)


@pytest.mark.slow
def test_the_openapi_schema_holds_for_generated_requests():
    assert check_schema(build_app(idle_timeout=60.0, max_sessions=64)) >= 100  # ~18 operations, bounded


def test_a_planted_server_error_is_found():
    """The harness can fail: a route that answers 500 for odd numbers is caught within its examples."""
    app = build_app(idle_timeout=60.0, max_sessions=4)

    @app.get("/planted")
    def planted(x: int) -> dict:
        if x % 2:
            raise RuntimeError("planted defect")
        return {"x": x}

    from schemathesis.core.failures import FailureGroup

    with pytest.raises(FailureGroup) as caught:  # the distinct failures schemathesis found
        check_schema(app, ("/planted",))
    assert "ServerError" in {type(f).__name__ for f in caught.value.exceptions}, repr(caught.value)
