"""Property-based requests generated from the OpenAPI document (schemathesis) against the app on
PostgreSQL and Redis: no operation answers with a server error, and answers conform to the
document (status codes, content types, schemas). Bounded: a few examples per operation."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from web import openapi
from web.app import create_app
from web_client import ADMIN_TOKEN, INTERNAL_KEY, WEBHOOK_SECRET

OPERATIONS = sorted(result.ok().label for result in
                    schemathesis.openapi.from_dict(openapi.document()).get_all_operations())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def credentials(path: str) -> dict[str, str]:
    """Real credentials for admin and internal routes, so generated requests reach the handlers."""
    if path.startswith("/api/admin/"):
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if path.startswith("/api/internal/"):
        return {"X-Internal-Key": INTERNAL_KEY}
    return {}


# schemathesis 4.32 draws from `random` inside its strategies, which hypothesis 6.170 deprecates;
# that one warning is not ours to fix.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(redis_api, label):
    schema = schemathesis.openapi.from_dict(openapi.document())
    schema.app = create_app(redis_api.stack.config, boot=False)
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    headers = credentials(operation.path)

    @given(case=operation.as_strategy())
    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        if operation.path == "/api/webhooks/easyparcel/{secret}":
            case.path_parameters = {"secret": WEBHOOK_SECRET}
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
