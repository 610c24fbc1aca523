"""Health, readiness, metrics and the OpenAPI document of the running app: /readyz follows the
database and the broker, /metrics carries the HTTP histogram by route template and the store's
figures (every metric the Prometheus alert rules use), errors are JSON everywhere."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from web_client import database_down, scan

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_without_touching_anything(api):
    with database_down():
        response = api.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_follows_the_database(api):
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    with database_down():
        down = api.client.get("/readyz")
    assert down.status_code == 503 and down.json()["error"] == "not_ready"
    assert down.json()["checks"]["database"] == "unreachable"


def test_readyz_follows_the_broker(redis_api):
    from pipeline import runtime
    from pipeline.coordination import RedisCoordination

    rt = runtime.current()
    working = rt.coordination
    rt.coordination = RedisCoordination("redis://127.0.0.1:1/0")
    try:
        down = redis_api.client.get("/readyz")
    finally:
        rt.coordination = working
    # Redis down alone degrades a node but keeps it in the load balancer (reads and webhooks work).
    assert down.status_code == 200 and down.json()["status"] == "degraded"
    assert down.json()["checks"]["broker"] == "unreachable"


def test_unknown_routes_and_methods_answer_json(api):
    assert api.client.get("/api/nowhere").json()["error"] == "not_found"
    wrong = api.client.delete("/api/customer/track-order")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_metrics_carry_http_latency_by_route_template_and_the_stores_figures(api):
    api.polled("ORD-M1", "FKM001", [scan(0, "Mystery", None, "Penang", "Q1")])
    api.guest("ORD-M1", "buyer@example.com")
    api.admin("GET", "/api/admin/shipments/ORD-M1")
    text = api.client.get("/metrics").text
    assert 'trackcache_http_request_duration_seconds_count{method="GET",route="/api/customer/track-order",status="200"}' \
        in text
    assert 'route="/api/admin/shipments/{order_id:path}"' in text and "ORD-M1" not in text
    assert 'trackcache_courier_calls_today{courier="fake",outcome="success"} 1.0' in text
    assert 'trackcache_queue_depth{lane="manual"}' in text
    assert "trackcache_shipments_with_unmapped_codes 1.0" in text
    assert 'trackcache_read_cache_lookups_total{result="miss"}' in text
    assert "trackcache_database_up 1.0" in text
    assert "trackcache_updates_persisted_total" in text  # the pipeline's process counters


def test_every_metric_the_prometheus_alert_rules_use_is_exposed(api):
    api.polled("ORD-M2", "FKM002")
    api.guest("ORD-M2", "buyer@example.com")
    exposed = set(re.findall(r"^([a-z_]+)(?:\{| )", api.client.get("/metrics").text, re.MULTILINE))
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"\btrackcache_[a-z_]+", rule["expr"]))
    assert used and used <= exposed, used - exposed


def test_metrics_answer_only_configured_networks(api):
    from web_client import configured

    with configured(internal_networks=("10.0.0.0/8",)):
        assert api.client.get("/metrics").status_code == 403


def test_the_openapi_document_is_served(api):
    document = api.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/api/customer/track-order" in document["paths"]
