"""Property-based requests generated from the OpenAPI document (schemathesis) against the app on
PostgreSQL and Redis, every operation with and without credentials: no operation answers with a
server error, answers conform to the document (status codes, content types, schemas), and a
rejected request (4xx) stores nothing. Bounded: a few examples per operation in the test suite;
`make faults` sets TRACKCACHE_SCHEMATHESIS_EXAMPLES to a few hundred."""
from __future__ import annotations

import os

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
EXAMPLES = int(os.environ.get("TRACKCACHE_SCHEMATHESIS_EXAMPLES", "8"))


def stored_counts() -> dict[str, int]:
    """Rows per table, leaving out the audit log (it records refused admin attempts on purpose)
    and refused webhooks (kept, marked rejected, for the operator)."""
    import models
    from models import WebhookInbox

    counts = {model._meta.table_name: model.select().count() for model in models.ALL_MODELS
              if model._meta.table_name not in ("audit_log", "webhook_inbox")}
    counts["webhook_inbox"] = WebhookInbox.select().where(WebhookInbox.status != models.INBOX_REJECTED).count()
    return counts


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
@pytest.mark.parametrize("with_credentials", [True, False], ids=["credentials", "anonymous"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(redis_api, label, with_credentials):
    schema = schemathesis.openapi.from_dict(openapi.document())
    schema.app = create_app(redis_api.stack.config, boot=False)
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    headers = credentials(operation.path) if with_credentials else {}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES if with_credentials else max(3, EXAMPLES // 2), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        if operation.path == "/api/webhooks/easyparcel/{secret}" and with_credentials:
            case.path_parameters = {"secret": WEBHOOK_SECRET}
        before = stored_counts()
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        if 400 <= response.status_code < 500:
            assert stored_counts() == before, f"a refused request ({response.status_code}) stored something"

    check()
