"""The OpenAPI 3.1 document of the HTTP API, as data, served at /openapi.json. A test checks that
its paths and methods are exactly the app's routes."""
from __future__ import annotations

from typing import Any

ORDER_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,127}$"}
ISO_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(_ref("Error"), description, headers)


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                "schema": {"type": "string"}}}
_ETAG = {"ETag": {"description": "Weak validator of the answer; send it back in If-None-Match.",
                  "schema": {"type": "string"}}}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "An ETag from an earlier answer: 304 when nothing changed."}
_COMMON_ERRORS = {
    "500": _error("The server failed; the traceback is logged, never sent."),
    "503": _error("The database or the broker cannot be reached.", _RETRY_AFTER),
}
_GROUP_COMMIT = ("Answered once the body is committed to the inbox. Requests arriving within a few milliseconds "
                 "share one transaction (group commit): if it fails, every one of them is answered 503 and none is "
                 "stored, so send it again. A repeated event id answers 200 with status duplicate.")
# Every route: a NUL character in the path or query string (web.errors.RefuseNulCharacters).
_MALFORMED_REQUEST = _error("`malformed_request`: the path or query string holds a NUL character.")
_STAFF_ERRORS = {
    "401": _error("No admin or viewer bearer token, or an unknown one."),
    "403": _error("A viewer token was used for a write."),
}
_INTERNAL_ERRORS = {
    "401": _error("No X-Internal-Key header, or a wrong one."),
    "403": _error("The client address is outside TRACKING_INTERNAL_NETWORKS."),
}
_VALIDATION = _json(_ref("ValidationError"), "The input is not valid; `fields` says what is wrong with each field.")
_OBJECT = {"type": "object"}
# What both forms of the tracking read (GET query, POST body) answer alike.
_TRACKING_ANSWERS: dict[str, Any] = {
    "200": _json(_ref("Tracking"), "The order's shipments, from the store.",
                 {**_ETAG, "Cache-Control": {"schema": {"type": "string"}}}),
    "401": _error("A bearer token was sent but is not a valid customer token."),
    "404": _error("No such order for this email or customer (the same answer either way)."),
    "422": _VALIDATION,
    "429": _error("Too many lookups this hour.", _RETRY_AFTER),
}


def _operation(operation_id: str, summary: str, tag: str, responses: dict[str, Any], *,
               security: list[dict[str, list[str]]] | None = None, parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag],
                                 "responses": {"400": _MALFORMED_REQUEST, **responses, **_COMMON_ERRORS}}
    if description:
        operation["description"] = description
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


ADMIN = [{"adminBearer": []}]
# Courier analytics (issue 16): the sections and the filter every analytics route takes.
ANALYTICS_SECTIONS = ("couriers", "routes", "distribution", "rates", "weekly", "courier-api")
_ANALYTICS_FILTER = [
    _query("period", {"type": "string", "enum": ["7", "30", "90", "180", "365"]},
           "Journeys finished (and courier calls made) in the last this many days; default 90."),
    _query("courier", {"type": "string", "minLength": 1, "maxLength": 64},
           "Only this courier's journeys, as named in the answer (e.g. City-Link)."),
]
INTERNAL = [{"internalKey": []}]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error", "detail"],
        "properties": {"error": {"type": "string", "description": "A stable, machine-readable code."},
                       "detail": {"type": "string", "description": "What is wrong, for people."}},
    },
    "ValidationError": {
        "type": "object", "required": ["error", "detail", "fields"],
        "properties": {"error": {"const": "validation_failed"}, "detail": {"type": "string"},
                       "fields": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
    "TrackingEvent": {
        "type": "object", "required": ["time", "status", "description", "location"],
        "properties": {
            "time": ISO_TIME, "status": {"type": ["string", "null"]}, "description": {"type": "string"},
            "location": {"type": ["string", "null"]},
            "raw_code": {"type": ["string", "null"], "description": "Signed-in customers only."},
        },
    },
    "Shipment": {
        "type": "object",
        "required": ["tracking_number", "courier", "status", "status_label", "events", "estimated_delivery",
                     "estimated_delivery_range", "estimate_source", "courier_estimated_delivery",
                     "delivered_at", "last_updated", "data_age_seconds", "next_refresh_at"],
        "properties": {
            "tracking_number": {"type": "string"}, "courier": {"type": "string"}, "status": {"type": "string"},
            "status_label": {"type": "string"}, "events": {"type": "array", "items": _ref("TrackingEvent")},
            "estimated_delivery": {**ISO_TIME, "description": "Most likely delivery day (noon of that day in the "
                                   "shop's zone): ours from similar journeys, else the courier's; null when unknown "
                                   "or finished."},
            "estimated_delivery_range": {"type": ["object", "null"], "required": ["earliest", "latest"],
                                         "properties": {"earliest": ISO_TIME, "latest": ISO_TIME},
                                         "description": "Days between which 80% of similar journeys were "
                                         "delivered (10th to 90th percentile)."},
            "estimate_source": {"type": ["string", "null"], "enum": ["history", "courier", None]},
            "courier_estimated_delivery": {**ISO_TIME, "description": "The courier's own estimate, when it sent one."},
            "delivered_at": ISO_TIME, "last_updated": ISO_TIME,
            "data_age_seconds": {"type": ["integer", "null"], "minimum": 0}, "next_refresh_at": ISO_TIME,
        },
    },
    "Tracking": {
        "type": "object", "required": ["order_id", "shipments", "refresh"],
        "properties": {
            "order_id": {"type": "string"}, "shipments": {"type": "array", "items": _ref("Shipment")},
            "refresh": {
                "type": "object", "required": ["requested"],
                "description": "What this read did about refreshing the data: `requested` (this read "
                               "created the poll jobs in `job_ids`), `under_way` (an earlier read asked "
                               "`since` then; nothing new was created), `not_needed` (the data is fresh, or "
                               "every shipment is final) or `unavailable` (the queue could not be reached; "
                               "the scheduler polls anyway). `requested` is true only for the first.",
                "properties": {
                    "requested": {"type": "boolean"},
                    "state": {"type": "string", "enum": ["requested", "under_way", "not_needed", "unavailable"]},
                    "reason": {"type": "string", "enum": ["customer", "stale", "fresh", "final"]},
                    "job_ids": {"type": "array", "items": {"type": "integer"}},
                    "since": ISO_TIME},
                "example": {"requested": True, "state": "requested", "reason": "stale", "job_ids": [5120],
                            "since": "2026-12-01T09:00:02Z"}},
        },
    },
    "Registration": {
        "type": "object", "required": ["order_id", "customer_email", "tracking_number"],
        "properties": {
            "order_id": ORDER_ID, "customer_email": {"type": "string", "format": "email", "maxLength": 254},
            "tracking_number": {"type": "string", "minLength": 4, "maxLength": 64},
            "courier": {"type": "string", "default": "easyparcel"},
            "customer_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "notify_email": {"type": "boolean",
                             "description": "Email the customer on status changes (absent: TRACKING_EMAIL_ALL_SHIPMENTS "
                                            "decides). Needs TRACKING_CONTACT_KEYS: the address is stored encrypted; "
                                            "without emails only its hash is kept."},
            "locale": {"type": "string", "description": "The emails' language (absent: TRACKING_EMAIL_LOCALE)."},
        },
        "example": {"order_id": "ORD-1001", "customer_email": "aina@example.com", "tracking_number": "EP123456789MY",
                    "courier": "easyparcel", "customer_id": "cust-77", "notify_email": True, "locale": "ms"},
    },
    "RegistrationResult": {
        "type": "object", "required": ["status", "shipment_id", "order_id", "tracking_number", "courier"],
        "properties": {"status": {"enum": ["created", "unchanged"]}, "shipment_id": {"type": ["integer", "null"]},
                       "order_id": {"type": "string"}, "tracking_number": {"type": "string"},
                       "courier": {"type": "string"}, "customer_id": {"type": ["string", "null"]},
                       "notify_email": {"type": ["boolean", "null"]}, "locale": {"type": ["string", "null"]}},
        "example": {"status": "created", "shipment_id": 412, "order_id": "ORD-1001", "tracking_number": "EP123456789MY",
                    "courier": "easyparcel", "customer_id": "cust-77", "notify_email": True, "locale": "ms"},
    },
    "BulkRefresh": {
        "type": "object",
        "description": "Which shipments to refresh: by order ids, by status, or every active one.",
        "properties": {"order_ids": {"type": "array", "items": ORDER_ID, "minItems": 1, "maxItems": 10000},
                       "status": {"type": "string"}, "all_active": {"type": "boolean"},
                       "force": {"type": "boolean",
                                 "description": "Poll final shipments (delivered, returned, ...) too."}},
    },
    "OrderRefresh": {
        "type": "object", "required": ["order_id", "outcome", "queued", "final", "over_budget"],
        "description": "What a refresh did for one order id: shipments queued, final (not polled) and over "
                       "budget; outcome unknown when no such order exists.",
        "properties": {"order_id": {"type": "string"},
                       "outcome": {"enum": ["queued", "unknown", "final", "over_budget"]},
                       "queued": {"type": "integer"}, "final": {"type": "integer"},
                       "over_budget": {"type": "integer"}},
    },
    "WebhookAnswer": {
        "type": "object", "required": ["status"],
        "properties": {"status": {"enum": ["accepted", "duplicate"]}, "inbox_id": {"type": "integer"}},
    },
}


_ORDER_REFRESH = {"type": "object", "required": ["order_id", "job_ids", "count", "skipped_final", "outcome"],
                  "properties": {"order_id": {"type": "string"},
                                 "job_ids": {"type": "array", "items": {"type": "integer"}},
                                 "count": {"type": "integer"}, "skipped_final": {"type": "integer"},
                                 "outcome": {"enum": ["queued", "final"]}}}


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    courier_body = {"type": "object", "description": "The courier's webhook body, stored as received."}
    described = {
        "openapi": "3.1.0",
        "info": {"title": "trackcache", "version": "1.0.0",
                 "description": "Shipment tracking served from the shop's own store. Every error is "
                                "`{\"error\": \"<code>\", \"detail\": \"<what is wrong>\"}`."},
        "components": {
            "securitySchemes": {
                "adminBearer": {"type": "http", "scheme": "bearer",
                                "description": "TRACKING_ADMIN_TOKENS (read and write) or TRACKING_VIEWER_TOKENS "
                                               "(GET only)."},
                "customerBearer": {"type": "http", "scheme": "bearer",
                                   "description": "A customer token the shop signs with TRACKING_CUSTOMER_TOKEN_SECRET."},
                "internalKey": {"type": "apiKey", "in": "header", "name": "X-Internal-Key"},
                "webhookSignature": {"type": "apiKey", "in": "header", "name": "X-Trackcache-Signature",
                                     "description": "sha256=<hex HMAC-SHA256 of \"<timestamp>.<raw body>\"> with "
                                                    "TRACKING_WEBHOOK_SECRET."},
            },
            "schemas": SCHEMAS,
        },
        "paths": {
            "/api/customer/track-order": {"get": _operation(
                "trackOrder", "Track an order (guest or signed-in customer)", "customer",
                {**_TRACKING_ANSWERS, "304": {"description": "Not modified since the ETag in If-None-Match."},
                 "403": _error("refresh=1 without a premium customer token.")},
                security=[{}, {"customerBearer": []}],
                parameters=[
                    _query("order_id", ORDER_ID, "The shop's order id.", required=True),
                    _query("email", {"type": "string", "maxLength": 254}, "The order's email (guests)."),
                    _query("refresh", {"type": "string", "enum": ["0", "1"]},
                           "1: enqueue a high-priority refresh (premium customers)."),
                    _IF_NONE_MATCH,
                ], description="Kept for older clients, but discouraged for guests: the email in the query "
                               "string ends up in access logs and browser history. Use the POST form."),
                "post": _operation(
                "trackOrderByBody", "Track an order with a JSON body (the email stays out of the URL)", "customer",
                {**_TRACKING_ANSWERS, "403": _error("refresh: true without a premium customer token."),
                 "413": _error("The body is larger than 4 KB.")},
                security=[{}, {"customerBearer": []}],
                body={"type": "object", "required": ["order_id"], "additionalProperties": False,
                      "properties": {"order_id": ORDER_ID,
                                     "email": {"type": "string", "maxLength": 254,
                                               "description": "The order's email (guests)."},
                                     "refresh": {"type": "boolean",
                                                 "description": "true: enqueue a high-priority refresh "
                                                                "(premium customers)."}},
                      "example": {"order_id": "ORD-1001", "email": "buyer@example.com"}})},
            "/api/webhooks/easyparcel/{secret}": {"post": _operation(
                "easyparcelWebhook", "EasyParcel webhook (secret in the URL)", "webhooks",
                {"200": _json(_ref("WebhookAnswer"), "Stored (or a duplicate, acknowledged)."),
                 "400": _error("Not a JSON object; stored as rejected with the reason."),
                 "401": _error("Wrong secret."),
                 "413": _error("Larger than TRACKING_WEBHOOK_MAX_BYTES.")},
                parameters=[_path_param("secret", {"type": "string"}, "TRACKING_WEBHOOK_SECRET.")],
                body=courier_body, description=_GROUP_COMMIT)},
            "/api/webhooks/{courier}": {"post": _operation(
                "signedWebhook", "Signed webhook for any registered courier", "webhooks",
                {"200": _json(_ref("WebhookAnswer"), "Stored (or a duplicate, acknowledged)."),
                 "400": _error("Not a JSON object; stored as rejected with the reason."),
                 "401": _error("Missing, stale (over 5 minutes) or wrong signature."),
                 "404": _error("No courier of that name."),
                 "413": _error("Larger than TRACKING_WEBHOOK_MAX_BYTES.")},
                security=[{"webhookSignature": []}], description=_GROUP_COMMIT,
                parameters=[_path_param("courier", {"type": "string"}, "A courier of the registry."),
                            {"name": "X-Trackcache-Timestamp", "in": "header", "required": True,
                             "schema": {"type": "string"}, "description": "Unix seconds, signed with the body."}],
                body=courier_body)},
            "/api/admin/shipments": {"post": _operation(
                "registerShipment", "Register a shipment", "admin",
                {"201": _json(_ref("RegistrationResult"), "Registered; its first poll is due now."),
                 "200": _json(_ref("RegistrationResult"), "An identical registration already exists."),
                 "400": _error("The body is not a JSON object."),
                 "409": _error("Conflicts with a stored registration (other email, customer or courier)."),
                 "413": _error("The body is too large."),
                 "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, body=_ref("Registration"))},
            "/api/admin/shipments/{order_id}": {"get": _operation(
                "getOrder", "An order's full record: shipments, update logs, ledger jobs", "admin",
                {"200": _json(_OBJECT, "Everything stored about the order, unfiltered.", _ETAG),
                 "304": {"description": "Not modified."},
                 "404": _error("No such order."), "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, parameters=[_path_param("order_id", ORDER_ID, "The order id."), _IF_NONE_MATCH])},
            "/api/admin/tracking/refresh-order/{order_id}": {"post": _operation(
                "refreshOrder", "Refresh an order's shipments now (manual lane)", "admin",
                {"202": _json(_ORDER_REFRESH, "Enqueued; the ledger job ids (final shipments are not polled)."),
                 "200": _json(_ORDER_REFRESH, "Nothing enqueued: every shipment of the order is final."),
                 "404": _error("No such order."), "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, parameters=[_path_param("order_id", ORDER_ID, "The order id."),
                                            _query("force", {"type": "string", "enum": ["true", "false", "1", "0"]},
                                                   "true: poll final shipments too.")])},
            "/api/admin/tracking/bulk-refresh": {"post": _operation(
                "bulkRefresh", "Refresh many shipments within the scheduled share of the budget", "admin",
                {"202": _json({"type": "object",
                               "required": ["batch_id", "count", "skipped_over_budget", "skipped_final"],
                               "properties": {"batch_id": {"type": "string"}, "count": {"type": "integer"},
                                              "skipped_over_budget": {"type": "integer"},
                                              "skipped_final": {"type": "integer"},
                                              "orders": {"type": "array", "items": _ref("OrderRefresh")}}},
                              "Enqueued; follow it with job-status?batch_id=. `orders` (when order_ids were "
                              "given) says per id: queued, unknown, final or over_budget."),
                 "400": _error("The body is not a JSON object."), "413": _error("The body is too large."),
                 "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, body=_ref("BulkRefresh"))},
            "/api/admin/tracking/job-status": {"get": _operation(
                "jobStatus", "Ledger counts, oldest pending age, recent failures; or one job or batch", "admin",
                {"200": _json(_OBJECT, "The figures.", _ETAG), "304": {"description": "Not modified."},
                 "404": _error("No such job or batch."), "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN,
                parameters=[_query("job_id", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "One ledger job."),
                            _query("batch_id", {"type": "string", "minLength": 1, "maxLength": 64},
                                   "One bulk refresh."), _IF_NONE_MATCH])},
            "/api/admin/tracking/api-usage": {"get": _operation(
                "apiUsage", "Courier API usage today against the budget, and the last 30 days", "admin",
                {"200": _json(_OBJECT, "Usage figures.", _ETAG), "304": {"description": "Not modified."},
                 **_STAFF_ERRORS},
                security=ADMIN, parameters=[_IF_NONE_MATCH])},
            "/api/admin/tracking/attention": {"get": _operation(
                "attention", "Shipments requiring attention, expired, or with unmapped courier codes", "admin",
                {"200": _json(_OBJECT, "The shipments and why.", _ETAG), "304": {"description": "Not modified."},
                 "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN,
                parameters=[_query("limit", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "At most this many (1-1000)."),
                            _IF_NONE_MATCH])},
            "/api/admin/tracking/alerts": {"get": _operation(
                "alerts", "The alert rules evaluated on live figures", "operations",
                {"200": _json(_OBJECT, "Firing alerts, the figures and the thresholds.", _ETAG),
                 "304": {"description": "Not modified."}, **_STAFF_ERRORS},
                security=ADMIN, parameters=[_IF_NONE_MATCH])},
            # Courier analytics (issue 16).
            "/api/admin/analytics": {"get": _operation(
                "analytics", "Courier analytics: transit per courier and route, rates, weekly trends, API", "admin",
                {"200": _json(_OBJECT, "Every section for the filter (see /admin/analytics).", _ETAG),
                 "304": {"description": "Not modified."}, "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, parameters=[*_ANALYTICS_FILTER, _IF_NONE_MATCH])},
            "/api/admin/analytics/{section}": {"get": _operation(
                "analyticsSection", "One analytics section as JSON rows or CSV", "admin",
                {"200": {"description": "The section's rows (JSON) or a CSV file (format=csv).",
                         "content": {"application/json": {"schema": _OBJECT},
                                     "text/csv": {"schema": {"type": "string"}}}},
                 "304": {"description": "Not modified."}, "404": _error("No such section."), "422": _VALIDATION,
                 **_STAFF_ERRORS},
                security=ADMIN,
                parameters=[_path_param("section", {"type": "string", "enum": list(ANALYTICS_SECTIONS)},
                                        "Which section."),
                            _query("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv."),
                            *_ANALYTICS_FILTER, _IF_NONE_MATCH])},
            "/api/internal/tracking/process-jobs": {"post": _operation(
                "processJobs", "Run a polling sweep now", "internal",
                {"200": _json({"type": "object", "required": ["enqueued"],
                               "properties": {"enqueued": {"type": "integer"}}}, "How many shipments were enqueued."),
                 **_INTERNAL_ERRORS},
                security=INTERNAL)},
            "/api/internal/tracking/queue-stats": {"get": _operation(
                "queueStats", "Broker queue depths per lane and ledger counts", "internal",
                {"200": _json({"type": "object", "required": ["queues", "ledger"],
                               "properties": {"queues": _OBJECT, "ledger": _OBJECT}}, "The figures."),
                 **_INTERNAL_ERRORS},
                security=INTERNAL)},
            "/api/internal/tracking/cleanup": {"post": _operation(
                "cleanup", "Run the cleanup now", "internal",
                {"200": _json(_OBJECT, "What was deactivated and deleted."), **_INTERNAL_ERRORS},
                security=INTERNAL)},
            "/healthz": {"get": _operation(
                "healthz", "The process is alive (no I/O)", "operations",
                {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive.")},
                security=[{}])},
            "/readyz": {"get": _operation(
                "readyz", "The database answers and is migrated (503 otherwise); Redis down is 200 degraded",
                "operations",
                {"200": _json(_OBJECT, "Ready (`status: ready`), or serving without Redis (`status: degraded`, "
                                       "`checks.broker: unreachable`).")}, security=[{}])},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics", "tags": ["operations"], "security": [{}],
                "responses": {"200": {"description": "Prometheus text format.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "403": _error("The client address is outside TRACKING_INTERNAL_NETWORKS."),
                              **_COMMON_ERRORS}}},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "tags": ["operations"], "security": [{}],
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {"schema": _OBJECT}}}}}},
            **notification_paths(),
        },
        "webhooks": notification_webhooks(),
    }
    return with_integration_api(described)


# --- integration API (issue 17) -------------------------------------------------------------------

_SHIPMENT_PATH = "/api/admin/shipments/{order_id}/{tracking_number}"
_STRING_OR_NULL = {"type": ["string", "null"]}
_TRACKING_NUMBER = {"type": "string", "minLength": 4, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9 -]{3,63}$"}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "Makes the POST safe to retry: the same key and body get the first answer again "
                   "(Idempotent-Replayed: true) for 24 hours; the same key with another body is 422.",
}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "The shipment's `version` from a list or an earlier answer: 412 if it changed since."}
_IDEMPOTENCY_ERRORS = {
    "400": _error("The body is not a JSON object, or the Idempotency-Key header is not 1-255 visible ASCII "
                  "characters."),
    "409": _error("A request with this Idempotency-Key is still running.", _RETRY_AFTER),
}
# Every admin POST can answer 422 for either reason, whatever its own 422 says.
_IDEMPOTENT_422 = _json({"anyOf": [_ref("ValidationError"), _ref("IdempotencyKeyReused")]},
                        "The input is not valid (`fields` says why), or the Idempotency-Key was used with another "
                        "request (`idempotency_key_reused`).")
_SHIPMENT_EXAMPLE = {
    "shipment_id": 412, "order_id": "ORD-1001", "tracking_number": "EP123456789MY", "courier": "easyparcel",
    "status": "in_transit", "status_label": "In transit", "is_active": True, "requires_attention": False,
    "is_delayed": False, "estimated_delivery": "2026-12-03T10:00:00Z", "delivered_at": None,
    "last_event_at": "2026-12-01T08:15:00Z", "last_checked_at": "2026-12-01T09:00:02Z",
    "next_poll_at": "2026-12-01T11:00:02Z", "created_at": "2026-11-30T14:02:11Z",
    "updated_at": "2026-12-01T09:00:02Z", "notify_email": True, "locale": "ms",
    "version": '"5c1f0e9a2b7d4c3e8f6a1b2c"'}

INTEGRATION_SCHEMAS: dict[str, Any] = {
    "IdempotencyKeyReused": {
        "type": "object", "required": ["error", "detail"],
        "properties": {"error": {"const": "idempotency_key_reused"}, "detail": {"type": "string"}},
    },
    "ShipmentItem": {
        "type": "object",
        "required": ["shipment_id", "order_id", "tracking_number", "courier", "status", "status_label", "is_active",
                     "requires_attention", "is_delayed", "estimated_delivery", "delivered_at", "last_event_at",
                     "last_checked_at", "next_poll_at", "created_at", "updated_at"],
        "properties": {
            "shipment_id": {"type": "integer"}, "order_id": {"type": "string"}, "tracking_number": {"type": "string"},
            "courier": {"type": "string"}, "status": {"type": "string"}, "status_label": {"type": "string"},
            "is_active": {"type": "boolean", "description": "False once tracking stopped (DELETE) or finished."},
            "requires_attention": {"type": "boolean"},
            "is_delayed": {"type": "boolean", "description": "Past its estimated delivery and not finished."},
            "estimated_delivery": ISO_TIME, "delivered_at": ISO_TIME, "last_event_at": ISO_TIME,
            "last_checked_at": ISO_TIME, "next_poll_at": ISO_TIME, "created_at": ISO_TIME, "updated_at": ISO_TIME,
            "notify_email": {"type": "boolean", "description": "Status emails go to the order's customer (turned "
                                                               "on, not unsubscribed, address not bouncing)."},
            "locale": {"type": ["string", "null"], "description": "The emails' language; null when the order has "
                                                                 "no stored address."},
            "version": {"type": "string", "description": "Send it back in If-Match to PATCH or DELETE safely."},
        },
        "example": _SHIPMENT_EXAMPLE,
    },
    "BulkRegistration": {
        "type": "object", "required": ["shipments"],
        "properties": {"shipments": {"type": "array", "items": _ref("Registration"), "minItems": 1, "maxItems": 1000}},
        "example": {"shipments": [
            {"order_id": "ORD-1001", "customer_email": "aina@example.com", "tracking_number": "EP123456789MY",
             "customer_id": "cust-77"},
            {"order_id": "ORD-1002", "customer_email": "wei@example.com", "tracking_number": "EP987654321MY"}]},
    },
    "BulkResult": {
        "type": "object", "required": ["count", "summary", "results"],
        "properties": {
            "count": {"type": "integer"},
            "summary": {"type": "object", "required": ["created", "unchanged", "conflict", "invalid"],
                        "properties": {k: {"type": "integer"} for k in ("created", "unchanged", "conflict", "invalid")}},
            "results": {"type": "array", "items": {
                "type": "object", "required": ["index", "status"],
                "properties": {
                    "index": {"type": "integer", "description": "The item's position in the request."},
                    "status": {"enum": ["created", "unchanged", "conflict", "invalid"]},
                    "shipment_id": {"type": ["integer", "null"]}, "order_id": {}, "tracking_number": {},
                    "courier": {"type": "string"},
                    "detail": {"type": "string", "description": "Why the item conflicts."},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "What is wrong with an invalid item, per field."}}}},
        },
        "example": {"count": 3, "summary": {"created": 1, "unchanged": 0, "conflict": 1, "invalid": 1}, "results": [
            {"index": 0, "status": "created", "shipment_id": 412, "order_id": "ORD-1001",
             "tracking_number": "EP123456789MY", "courier": "easyparcel"},
            {"index": 1, "status": "conflict", "shipment_id": None, "order_id": "ORD-0999",
             "tracking_number": "EP111111111MY", "courier": "easyparcel",
             "detail": "order ORD-0999 is registered with a different customer email"},
            {"index": 2, "status": "invalid", "order_id": "ORD-1003", "tracking_number": "x",
             "fields": {"tracking_number": "must be 4-64 characters: letters, digits and -"}}]},
    },
    "ShipmentList": {
        "type": "object", "required": ["count", "shipments", "next_cursor"],
        "properties": {"count": {"type": "integer"}, "shipments": {"type": "array", "items": _ref("ShipmentItem")},
                       "next_cursor": {"type": ["string", "null"],
                                       "description": "Pass as `cursor` for the next page; null on the last."}},
        "example": {"count": 1, "shipments": [_SHIPMENT_EXAMPLE], "next_cursor": "czEuNDEyLjdhM2Y5YzBkMWUyYg"},
    },
    "Correction": {
        "type": "object", "minProperties": 1, "additionalProperties": False,
        "properties": {"customer_email": {"type": "string", "format": "email", "maxLength": 254},
                       "customer_id": {"type": ["string", "null"], "maxLength": 128,
                                       "description": "null removes the order's customer."},
                       "courier": {"type": "string"},
                       "notify_email": {"type": "boolean", "description": (
                           "Status emails on or off for the order. Turning them on for an order registered without "
                           "them needs customer_email in the same request (only a hash of the address was kept); "
                           "off keeps the encrypted address and cancels unsent emails.")},
                       "locale": {"type": "string", "description": "The emails' language (unsent emails too)."}},
        "example": {"notify_email": True, "customer_email": "aina@example.com", "locale": "ms"},
    },
    "ShipmentWrite": {
        "type": "object", "required": ["status", "changed", "shipment"],
        "properties": {"status": {"enum": ["corrected", "stopped", "unchanged"]},
                       "changed": {"type": "array", "items": {"type": "string"}},
                       "shipment": {"oneOf": [_ref("ShipmentItem"), {"type": "null"}]}},
        "example": {"status": "corrected", "changed": ["customer_email"], "shipment": _SHIPMENT_EXAMPLE},
    },
    "Erasure": {
        "type": "object", "required": ["status", "order_id", "erased", "shipments"],
        "properties": {"status": {"enum": ["erased", "unchanged"]}, "order_id": {"type": "string"},
                       "erased": {"type": "array", "items": {"type": "string"}},
                       "shipments": {"type": "integer"}},
        "example": {"status": "erased", "order_id": "ORD-1001", "erased": ["customer_email_hash", "customer_id"],
                    "shipments": 1},
    },
    "Changes": {
        "type": "object", "required": ["count", "changes", "next_cursor", "has_more"],
        "properties": {
            "count": {"type": "integer"},
            "changes": {"type": "array", "items": {
                "type": "object", "required": ["cursor", "change", "changed_at", "shipment_id", "shipment"],
                "properties": {"cursor": {"type": "string"},
                               "change": {"enum": ["registered", "tracking", "corrected", "stopped", "erased"]},
                               "changed_at": ISO_TIME, "shipment_id": {"type": "integer"},
                               "shipment": {"oneOf": [_ref("ShipmentItem"), {"type": "null"}],
                                            "description": "The shipment as it is now."}}}},
            "next_cursor": {"type": "string", "description": "Pass as `after` next time (the same when nothing "
                                                             "is new)."},
            "has_more": {"type": "boolean"},
        },
        "example": {"count": 1, "changes": [{"cursor": "YzEuNzQxMi4xMDM", "change": "tracking",
                                             "changed_at": "2026-12-01T09:00:02Z", "shipment_id": 412,
                                             "shipment": _SHIPMENT_EXAMPLE}],
                    "next_cursor": "YzEuNzQxMi4xMDM", "has_more": False},
    },
    "CustomerOrders": {
        "type": "object", "required": ["customer_id", "count", "orders", "next_cursor"],
        "properties": {
            "customer_id": {"type": "string"}, "count": {"type": "integer"},
            "orders": {"type": "array", "items": {
                "type": "object", "required": ["order_id", "created_at", "shipments"],
                "properties": {"order_id": {"type": "string"}, "created_at": ISO_TIME,
                               "shipments": {"type": "array", "items": {
                                   "type": "object",
                                   "required": ["tracking_number", "courier", "status", "status_label",
                                                "estimated_delivery", "delivered_at", "last_updated"],
                                   "properties": {"tracking_number": {"type": "string"}, "courier": {"type": "string"},
                                                  "status": {"type": "string"}, "status_label": {"type": "string"},
                                                  "estimated_delivery": ISO_TIME, "delivered_at": ISO_TIME,
                                                  "last_updated": ISO_TIME}}}}}},
            "next_cursor": {"type": ["string", "null"]},
        },
        "example": {"customer_id": "cust-77", "count": 1, "next_cursor": None, "orders": [
            {"order_id": "ORD-1001", "created_at": "2026-11-30T14:02:11Z", "shipments": [
                {"tracking_number": "EP123456789MY", "courier": "easyparcel", "status": "in_transit",
                 "status_label": "In transit", "estimated_delivery": "2026-12-03T10:00:00Z", "delivered_at": None,
                 "last_updated": "2026-12-01T09:00:02Z"}]}]},
    },
}


def _bool_query(name: str, description: str) -> dict[str, Any]:
    return _query(name, {"type": "string", "enum": ["true", "false"]}, description)


def integration_paths() -> dict[str, dict[str, Any]]:
    """The integration API's operations (merged into the document's paths)."""
    shipment_params = [_path_param("order_id", ORDER_ID, "The order id."),
                       _path_param("tracking_number", _TRACKING_NUMBER, "The tracking number.")]
    write_errors = {"404": _error("No such shipment in this order."),
                    "412": _error("If-Match does not match the shipment's current version."),
                    "422": _VALIDATION, **_STAFF_ERRORS}
    return {
        "/api/admin/shipments": {"get": _operation(
            "listShipments", "Find shipments by tracking number, or list them with filters and a cursor", "admin",
            {"200": _json(_ref("ShipmentList"), "One page, oldest first (by id): rows registered while paging "
                                                "never shift a page.", _ETAG),
             "304": {"description": "Not modified."}, "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN, parameters=[
                _query("tracking_number", _TRACKING_NUMBER, "Every shipment with this tracking number."),
                _query("status", {"type": "string"}, "A canonical status, e.g. in_transit."),
                _query("courier", {"type": "string"}, "A courier of the registry."),
                _bool_query("requires_attention", "Only shipments flagged (true) or not (false)."),
                _bool_query("delayed", "Past their estimated delivery and not finished (true), or not."),
                _bool_query("active", "Still tracked (true) or stopped (false)."),
                _query("updated_since", {"type": "string", "format": "date-time"}, "Changed at or after this time."),
                _query("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "Page size, 1-500 (default 100)."),
                _query("cursor", {"type": "string"}, "`next_cursor` of the previous page (same filters)."),
                _IF_NONE_MATCH])},
        "/api/admin/shipments/bulk": {"post": _operation(
            "registerShipments", "Register up to 1,000 shipments; one result per item", "admin",
            {"200": _json(_ref("BulkResult"), "A result per item, in the request's order; valid items are "
                                              "registered even when others are invalid or conflict."),
             "413": _error("The body is too large."), **_IDEMPOTENCY_ERRORS, **_STAFF_ERRORS},
            security=ADMIN, body=_ref("BulkRegistration"), parameters=[_IDEMPOTENCY_KEY])},
        _SHIPMENT_PATH: {
            "patch": _operation(
                "correctShipment", "Correct a shipment's customer email, customer id, courier or email options",
                "admin",
                {"200": _json(_ref("ShipmentWrite"), "Corrected (or already so: `unchanged`); audited without "
                                                     "the values."),
                 "400": _error("The body is not a JSON object."),
                 "409": _error("The order's personal data was erased; or emails are turned on for a customer who "
                               "unsubscribed, or whose address bounced (give a new customer_email)."),
                 "413": _error("The body is too large."), **write_errors},
                security=ADMIN, body=_ref("Correction"), parameters=[*shipment_params, _IF_MATCH],
                description="The email, customer id and email options belong to the order, so they change for all "
                            "its shipments; a new courier makes the next poll due at once. `notify_email: true` on "
                            "an order without a stored address, or a `locale` alone there, is 422 naming the field."),
            "delete": _operation(
                "stopTracking", "Stop tracking a shipment (it is kept for history)", "admin",
                {"200": _json(_ref("ShipmentWrite"), "Stopped (or already: `unchanged`)."), **write_errors},
                security=ADMIN, parameters=[*shipment_params, _IF_MATCH])},
        "/api/admin/orders/{order_id}": {"delete": _operation(
            "eraseOrder", "Erase an order's personal data (email hash, customer id, locations)", "admin",
            {"200": _json(_ref("Erasure"), "Erased (or already: `unchanged`); statuses and times stay as "
                                           "anonymous statistics and tracking stops."),
             "404": _error("No such order."), "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN, parameters=[_path_param("order_id", ORDER_ID, "The order id.")])},
        "/api/admin/changes": {"get": _operation(
            "changes", "Shipments changed since a cursor; never skips a committed change", "admin",
            {"200": _json(_ref("Changes"), "The changes after the cursor, each with the shipment as it is now.",
                          _ETAG),
             "304": {"description": "Not modified."}, "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN, parameters=[
                _query("after", {"type": "string"}, "A `next_cursor` (or a change's `cursor`); `latest` for "
                                                    "now; absent for the start of the kept history."),
                _query("limit", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "Page size, 1-1000 (default 100)."),
                _IF_NONE_MATCH])},
        "/api/customer/orders": {"get": _operation(
            "customerOrders", "A signed-in customer's own orders with their latest statuses", "customer",
            {"200": _json(_ref("CustomerOrders"), "Newest first.", _ETAG),
             "304": {"description": "Not modified."},
             "401": _error("No customer token, or an invalid or expired one."),
             "422": _VALIDATION, "429": _error("Too many lookups this hour.", _RETRY_AFTER)},
            security=[{"customerBearer": []}], parameters=[
                _query("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "Page size, 1-100 (default 20)."),
                _query("cursor", {"type": "string"}, "`next_cursor` of the previous page."), _IF_NONE_MATCH])},
    }


def with_integration_api(described: dict[str, Any]) -> dict[str, Any]:
    """The document with the integration API: its schemas and paths, the Idempotency-Key header on
    every admin POST, and customer JWTs in the customer token scheme."""
    described["components"]["schemas"] = {**described["components"]["schemas"], **INTEGRATION_SCHEMAS}
    described["components"]["securitySchemes"]["customerBearer"] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT the shop signs (HS256 with TRACKING_CUSTOMER_JWT_SECRET, or RS256/ES256 with a key of "
                       "TRACKING_CUSTOMER_JWKS_FILE; `sub` is the customer id, `exp` is required), or the older "
                       "token signed with TRACKING_CUSTOMER_TOKEN_SECRET."}
    from pipeline.emails import available_locales

    schemas = described["components"]["schemas"]
    for name in ("Registration", "Correction"):  # the languages that have email catalogs
        properties = schemas[name]["properties"]
        schemas[name] = {**schemas[name], "properties": {
            **properties, "locale": {**properties["locale"], "enum": list(available_locales())}}}
    paths = described["paths"]
    for path, item in integration_paths().items():
        paths[path] = {**paths.get(path, {}), **item}
    for path, item in paths.items():
        post = item.get("post")
        if post is None or not path.startswith("/api/admin/"):
            continue
        if _IDEMPOTENCY_KEY not in post.setdefault("parameters", []):
            post["parameters"].append(_IDEMPOTENCY_KEY)
        for status, response in _IDEMPOTENCY_ERRORS.items():
            post["responses"].setdefault(status, response)
        post["responses"]["422"] = _IDEMPOTENT_422
    return described


# --- notifications: the endpoints' admin API and the webhooks sent to them ------------------------

NOTIFICATION_SCHEMAS: dict[str, Any] = {
    "NotificationEndpointInput": {
        "type": "object", "required": ["url", "events"], "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "maxLength": 2048,
                    "description": "https:// (http:// only with TRACKING_NOTIFY_ALLOW_HTTP)."},
            "events": {"type": "array", "minItems": 1,
                       "items": {"enum": ["shipment.status_changed", "shipment.out_for_delivery", "shipment.delivered",
                                          "shipment.exception", "shipment.attention_required", "*"]}},
            "description": {"type": "string", "maxLength": 255},
        },
    },
    "NotificationEndpointUpdate": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {
            "url": {"type": "string", "maxLength": 2048}, "description": {"type": "string", "maxLength": 255},
            "events": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "enabled": {"type": "boolean", "description": "false disables the endpoint; true enables it again."},
        },
    },
    "NotificationEndpoint": {
        "type": "object", "required": ["id", "url", "events", "enabled"],
        "properties": {
            "id": {"type": "integer"}, "url": {"type": "string"}, "description": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}}, "enabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]}, "failing_since": ISO_TIME,
            "created_at": ISO_TIME, "updated_at": ISO_TIME, "previous_secret_expires_at": ISO_TIME,
            "secret": {"type": "string", "description": "whsec_...: only in the answers that create or rotate it."},
        },
    },
    "ShipmentEvent": {
        "type": "object", "required": ["type", "timestamp", "data"],
        "description": "The body of every shipment webhook (Standard Webhooks' type / timestamp / data).",
        "properties": {
            "type": {"enum": ["shipment.status_changed", "shipment.out_for_delivery", "shipment.delivered",
                              "shipment.exception", "shipment.attention_required"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "replay_of": {"type": "string", "description": "Only on replays: the webhook-id of the original."},
            "data": {
                "type": "object",
                "required": ["order_id", "tracking_number", "courier", "previous_status", "status", "event",
                             "estimated_delivery", "occurred_at"],
                "properties": {
                    "order_id": {"type": "string"}, "tracking_number": {"type": "string"},
                    "courier": {"type": "string"}, "previous_status": {"type": "string"},
                    "status": {"type": "string"}, "status_label": {"type": "string"},
                    "event": {"type": ["object", "null"], "description": "The courier event that caused the change."},
                    "estimated_delivery": ISO_TIME, "delivered_at": ISO_TIME,
                    "requires_attention": {"type": "boolean"}, "attention_reason": {"type": ["string", "null"]},
                    "occurred_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}
SCHEMAS.update(NOTIFICATION_SCHEMAS)
_ENDPOINT_ID = _path_param("endpoint_id", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "The endpoint id.")


def notification_paths() -> dict[str, Any]:
    base = "/api/admin/notifications"
    endpoint = _json(_ref("NotificationEndpoint"), "The endpoint (never its secret).", _ETAG)
    not_found = _error("No such endpoint.")
    return {
        f"{base}/endpoints": {
            "post": _operation(
                "createNotificationEndpoint", "Add a webhook endpoint; its secret is shown once", "notifications",
                {"201": _json(_ref("NotificationEndpoint"), "Created, with its whsec_ secret (shown only now)."),
                 "400": _error("The body is not a JSON object."), "413": _error("The body is too large."),
                 "422": _VALIDATION, **_STAFF_ERRORS},
                security=ADMIN, body=_ref("NotificationEndpointInput")),
            "get": _operation(
                "listNotificationEndpoints", "Webhook endpoints with their deliveries of the last day",
                "notifications",
                {"200": _json(_OBJECT, "The endpoints.", _ETAG), "304": {"description": "Not modified."},
                 **_STAFF_ERRORS},
                security=ADMIN, parameters=[_IF_NONE_MATCH]),
        },
        f"{base}/endpoints/{{endpoint_id}}": {
            "get": _operation("getNotificationEndpoint", "One webhook endpoint", "notifications",
                              {"200": endpoint, "304": {"description": "Not modified."}, "404": not_found,
                               "422": _VALIDATION, **_STAFF_ERRORS},
                              security=ADMIN, parameters=[_ENDPOINT_ID, _IF_NONE_MATCH]),
            "patch": _operation("updateNotificationEndpoint", "Change, disable or enable a webhook endpoint",
                                "notifications",
                                {"200": endpoint, "400": _error("The body is not a JSON object."),
                                 "404": not_found, "413": _error("The body is too large."), "422": _VALIDATION,
                                 **_STAFF_ERRORS},
                                security=ADMIN, parameters=[_ENDPOINT_ID], body=_ref("NotificationEndpointUpdate")),
            "delete": _operation("deleteNotificationEndpoint", "Delete a webhook endpoint (pending deliveries are "
                                 "cancelled)", "notifications",
                                 {"204": {"description": "Deleted."}, "404": not_found, "422": _VALIDATION,
                                  **_STAFF_ERRORS},
                                 security=ADMIN, parameters=[_ENDPOINT_ID]),
        },
        f"{base}/endpoints/{{endpoint_id}}/rotate-secret": {"post": _operation(
            "rotateNotificationSecret", "A new secret; the old one keeps signing for 24 hours", "notifications",
            {"200": _json(_ref("NotificationEndpoint"), "The endpoint with its new secret (shown only now)."),
             "404": not_found, "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN, parameters=[_ENDPOINT_ID])},
        f"{base}/endpoints/{{endpoint_id}}/test": {"post": _operation(
            "testNotificationEndpoint", "Send a webhook.test event to the endpoint", "notifications",
            {"202": _json({"type": "object", "properties": {"delivery_id": {"type": "integer"},
                                                            "event_type": {"const": "webhook.test"}}},
                          "Queued; follow it in the deliveries."),
             "404": not_found, "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN, parameters=[_ENDPOINT_ID])},
        f"{base}/endpoints/{{endpoint_id}}/deliveries": {"get": _operation(
            "listNotificationDeliveries", "An endpoint's newest deliveries, each with every attempt", "notifications",
            {"200": _json(_OBJECT, "Deliveries (status, attempts with status code, latency, first bytes of the "
                                   "answer).", _ETAG),
             "304": {"description": "Not modified."}, "404": not_found, "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN,
            parameters=[_ENDPOINT_ID,
                        _query("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "At most this many (1-200)."),
                        _query("status", {"enum": ["failed"]}, "Only deliveries that failed for good."),
                        _IF_NONE_MATCH])},
        f"{base}/deliveries/{{delivery_id}}/replay": {"post": _operation(
            "replayNotificationDelivery", "Send a webhook again, under a new webhook-id, marked as a replay",
            "notifications",
            {"202": _json({"type": "object", "properties": {"delivery_id": {"type": "integer"},
                                                            "replay_of": {"type": "integer"}}}, "Queued."),
             "404": _error("No such webhook delivery."), "422": _VALIDATION, **_STAFF_ERRORS},
            security=ADMIN,
            parameters=[_path_param("delivery_id", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                                    "The delivery id.")])},
    }


WEBHOOK_HEADERS = {
    "webhook-id": {"required": True, "schema": {"type": "string"},
                   "description": "Unique per message and the same on every retry: deduplicate on it."},
    "webhook-timestamp": {"required": True, "schema": {"type": "string"}, "description": "Unix seconds."},
    "webhook-signature": {"required": True, "schema": {"type": "string"},
                          "description": "v1,<base64 HMAC-SHA256 of \"<id>.<timestamp>.<body>\">; two, "
                                         "space-separated, for 24 hours after a secret rotation."},
}


def notification_webhooks() -> dict[str, Any]:
    """The webhooks trackcache sends to the shop's endpoints (OpenAPI 3.1 `webhooks`), one per
    event type, each with an example body."""
    from pipeline.webhook_events import EVENT_TYPES
    from web.notification_examples import example_payload

    sent = {}
    for event_type in EVENT_TYPES:
        sent[event_type] = {"post": {
            "operationId": "webhook_" + event_type.replace(".", "_"), "tags": ["notifications"],
            "summary": f"{event_type}, signed per Standard Webhooks",
            "parameters": [{"name": name, "in": "header", **spec} for name, spec in WEBHOOK_HEADERS.items()],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("ShipmentEvent"), "example": example_payload(event_type)}}},
            "responses": {"2XX": {"description": "Delivered. Anything else (or no answer within "
                                                 "TRACKING_NOTIFY_TIMEOUT) is retried; redirects are not followed."}},
        }}
    return sent
