"""Property-based fuzzing of every route from the OpenAPI spec (schemathesis) against a real API
on real Redis/PostgreSQL: whatever hypothesis generates, no answer is a 5xx, and every 4xx is
the API's JSON error naming the field and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from backend.settings import Settings
from tests.support.processes import basic_auth_header, make_settings, running, settings_env

pytestmark = pytest.mark.integration

API_KEY = "fuzz-key"
HEADERS = {"Authorization": basic_auth_header(), "x-api-key": API_KEY}


@pytest.fixture(scope="module")
def fuzz_api(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fuzz_settings: Settings = make_settings(servers.redis_url, servers.pg_url)
    fuzz_settings = fuzz_settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    with running(settings_env(fuzz_settings), tmp_path_factory.mktemp("fuzz")) as procs:
        procs.start_api()
        yield procs.api_url
        assert procs.procs["api"].poll() is None, "the API died under fuzzing"
        log = procs.log("api")
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def api_schema(fuzz_api: str) -> Any:
    schema = schemathesis.openapi.from_url(fuzz_api + "/openapi.json")
    # /stream never ends by design (SSE); it is tested by hand in test_api.py.
    return schema.exclude(path="/stream")


def check_answer(case: Any) -> None:
    response = case.call(headers=HEADERS, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500 and response.status_code not in (404, 405):
        body = response.json()
        assert {"error", "message"} <= set(body), (case.path, body)
        if response.status_code == 422:
            assert body.get("detail"), body
            assert all(d.get("field") and d.get("reason") for d in body["detail"]), body


def test_no_generated_input_makes_any_route_fail(api_schema: Any) -> None:
    """Each operation gets its own hypothesis run (schemathesis' pytest plugin does not load on
    this pytest, so the operations are driven directly)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/ingest/tick", "/ingest/ticks", "/symbols/{symbol}/candles"} <= paths, paths
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=80,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            check_answer(case)

        run()
