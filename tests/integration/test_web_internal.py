"""Internal routes: the X-Internal-Key is required (and only from configured networks when set);
a polling sweep runs on request, queue and ledger figures are reported, cleanup runs."""
from __future__ import annotations

from web_client import INTERNAL_KEY, configured, scan

ROUTES = (("POST", "/api/internal/tracking/process-jobs"), ("GET", "/api/internal/tracking/queue-stats"),
          ("POST", "/api/internal/tracking/cleanup"))


def test_internal_routes_require_the_internal_key(api):
    for method, path in ROUTES:
        missing = api.client.request(method, path)
        wrong = api.client.request(method, path, headers={"X-Internal-Key": INTERNAL_KEY[:-1] + "X"})
        admin_token = api.admin(method, path)
        for response in (missing, wrong, admin_token):
            assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_internal_routes_answer_only_configured_networks(api):
    with configured(internal_networks=("10.0.0.0/8",)):
        refused = api.internal("GET", "/api/internal/tracking/queue-stats")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden_network"
    with configured(internal_networks=("203.0.113.0/24",)):
        assert api.internal("GET", "/api/internal/tracking/queue-stats").status_code == 200


def test_process_jobs_runs_a_polling_sweep_now(api):
    api.register("ORD-I1", "FKI001")
    api.register("ORD-I2", "FKI002")
    api.stack.courier.script_journey("FKI001", [scan(0, "Parcel collected")])
    api.stack.courier.script_journey("FKI002", [scan(0, "Parcel collected")])
    assert api.internal("POST", "/api/internal/tracking/process-jobs").json() == {"enqueued": 2}
    assert api.internal("POST", "/api/internal/tracking/process-jobs").json() == {"enqueued": 0}
    api.stack.wait_for(lambda: api.internal("GET", "/api/internal/tracking/queue-stats").json()["ledger"]["completed"]
                       == 2, what="the sweep's polls")


def test_queue_stats_report_every_lane_and_the_ledger(api):
    response = api.internal("GET", "/api/internal/tracking/queue-stats")
    body = response.json()
    assert response.headers["etag"].startswith('W/"')
    assert api.internal("GET", "/api/internal/tracking/queue-stats",
                        headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert set(body["queues"]) == {"manual", "webhook", "retry", "bulk", "scheduled", "cleanup", "estimates"}
    assert set(body["ledger"]) == {"pending", "running", "completed", "failed"}


def test_cleanup_runs_and_reports_what_it_removed(api):
    body = api.internal("POST", "/api/internal/tracking/cleanup").json()
    assert set(body) >= {"deactivated", "logs_deleted", "jobs_deleted", "inbox_deleted"}
