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


def _operation(operation_id: str, summary: str, tag: str, responses: dict[str, Any], *,
               security: list[dict[str, list[str]]] | None = None, parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag],
                                 "responses": {**responses, **_COMMON_ERRORS}}
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
                     "delivered_at", "last_updated", "data_age_seconds", "next_refresh_at"],
        "properties": {
            "tracking_number": {"type": "string"}, "courier": {"type": "string"}, "status": {"type": "string"},
            "status_label": {"type": "string"}, "events": {"type": "array", "items": _ref("TrackingEvent")},
            "estimated_delivery": ISO_TIME, "delivered_at": ISO_TIME, "last_updated": ISO_TIME,
            "data_age_seconds": {"type": ["integer", "null"], "minimum": 0}, "next_refresh_at": ISO_TIME,
        },
    },
    "Tracking": {
        "type": "object", "required": ["order_id", "shipments", "refresh"],
        "properties": {
            "order_id": {"type": "string"}, "shipments": {"type": "array", "items": _ref("Shipment")},
            "refresh": {"type": "object", "required": ["requested"],
                        "properties": {"requested": {"type": "boolean"},
                                       "reason": {"type": "string", "enum": ["customer", "stale", "final"]}}},
        },
    },
    "Registration": {
        "type": "object", "required": ["order_id", "customer_email", "tracking_number"],
        "properties": {
            "order_id": ORDER_ID, "customer_email": {"type": "string", "format": "email", "maxLength": 254},
            "tracking_number": {"type": "string", "minLength": 4, "maxLength": 64},
            "courier": {"type": "string", "default": "easyparcel"},
            "customer_id": {"type": "string", "minLength": 1, "maxLength": 128},
        },
    },
    "RegistrationResult": {
        "type": "object", "required": ["status", "shipment_id", "order_id", "tracking_number", "courier"],
        "properties": {"status": {"enum": ["created", "unchanged"]}, "shipment_id": {"type": ["integer", "null"]},
                       "order_id": {"type": "string"}, "tracking_number": {"type": "string"},
                       "courier": {"type": "string"}, "customer_id": {"type": ["string", "null"]}},
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
    return {
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
                {"200": _json(_ref("Tracking"), "The order's shipments, from the store.",
                              {**_ETAG, "Cache-Control": {"schema": {"type": "string"}}}),
                 "304": {"description": "Not modified since the ETag in If-None-Match."},
                 "401": _error("A bearer token was sent but is not a valid customer token."),
                 "403": _error("refresh=1 without a premium customer token."),
                 "404": _error("No such order for this email or customer (the same answer either way)."),
                 "422": _VALIDATION,
                 "429": _error("Too many lookups this hour.", _RETRY_AFTER)},
                security=[{}, {"customerBearer": []}],
                parameters=[
                    _query("order_id", ORDER_ID, "The shop's order id.", required=True),
                    _query("email", {"type": "string", "maxLength": 254}, "The order's email (guests)."),
                    _query("refresh", {"type": "string", "enum": ["0", "1"]},
                           "1: enqueue a high-priority refresh (premium customers)."),
                    _IF_NONE_MATCH,
                ])},
            "/api/webhooks/easyparcel/{secret}": {"post": _operation(
                "easyparcelWebhook", "EasyParcel webhook (secret in the URL)", "webhooks",
                {"200": _json(_ref("WebhookAnswer"), "Stored (or a duplicate, acknowledged)."),
                 "400": _error("Not a JSON object; stored as rejected with the reason."),
                 "401": _error("Wrong secret."),
                 "413": _error("Larger than TRACKING_WEBHOOK_MAX_BYTES.")},
                parameters=[_path_param("secret", {"type": "string"}, "TRACKING_WEBHOOK_SECRET.")],
                body=courier_body)},
            "/api/webhooks/{courier}": {"post": _operation(
                "signedWebhook", "Signed webhook for any registered courier", "webhooks",
                {"200": _json(_ref("WebhookAnswer"), "Stored (or a duplicate, acknowledged)."),
                 "400": _error("Not a JSON object; stored as rejected with the reason."),
                 "401": _error("Missing, stale (over 5 minutes) or wrong signature."),
                 "404": _error("No courier of that name."),
                 "413": _error("Larger than TRACKING_WEBHOOK_MAX_BYTES.")},
                security=[{"webhookSignature": []}],
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
                "readyz", "The database (migrated) and the broker answer", "operations",
                {"200": _json(_OBJECT, "Ready.")}, security=[{}])},
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
        },
    }
