"""The pure parts of web/pages.py: the tracking form's checks and messages in the customer's
words, and the dashboard's figures and charts shaped from the overview."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from web import pages


@pytest.mark.parametrize(("order_id", "email", "problems"), [
    ("ORD-1", "a@b.example", {}),
    ("", "a@b.example", {"order_id": "Enter your order number."}),
    ("ORD 1", "a@b.example", {"order_id": "Order numbers use letters, digits and . _ : # / - only."}),
    ("<x>", "a@b.example", {"order_id": "Order numbers use letters, digits and . _ : # / - only."}),
    ("ORD-1", "", {"email": "Enter the email address you used for the order."}),
    ("ORD-1", "nobody", {"email": "Enter an email address like name@example.com."}),
    ("ORD-1", "@", {"email": "Enter an email address like name@example.com."}),
    ("ORD-1", "a@" + "b" * 260, {"email": "Enter an email address like name@example.com."}),
])
def test_lookup_problems(order_id, email, problems):
    assert pages.lookup_problems(order_id, email) == problems


@pytest.mark.parametrize(("seconds", "words"), [
    (1, "a minute"), (60, "a minute"), (89, "a minute"), (600, "about 10 minutes"), (3540, "about 59 minutes"),
    (3600, "an hour"), (3 * 3600, "about 3 hours"),
])
def test_wait_in_words(seconds, words):
    assert pages.wait_in_words(seconds) == words


OVERVIEW = {
    "now": datetime(2026, 3, 3, 6, 0, tzinfo=UTC),
    "jobs": {"counts": {"pending": 2, "running": 0, "completed": 40, "failed": 1},
             "oldest_pending_age_seconds": 754, "recent_failures": []},
    "usage": {"today": {"budget": 1000, "scheduled_limit": 950, "budget_used": 300, "calls": 300, "successes": 297,
                        "failures": 3, "success_rate": 0.99, "p50_latency_ms": 120, "p95_latency_ms": 900,
                        "remaining": 700, "remaining_scheduled": 650},
              "history": [{"day": "2026-03-02", "calls": 500, "successes": 490}]},
    "shipments": {"active_by_status": {"in_transit": 5, "delivered": 2, "pending": 0}, "stale": 1,
                  "with_unmapped_codes": 0},
    "attention": [],
}


def test_the_overview_becomes_figures_and_three_labelled_charts():
    context = pages.overview_context(OVERVIEW)
    assert (context["oldest_wait"], context["success_rate"]) == ("12 min", "99 %")
    assert len(context["days"]) == 30 and context["days"][-2]["calls"] == 500
    assert context["shows_budget"] is True, "500 calls is within reach of a 1000 budget"
    assert 'class="chart-budget"' in context["calls_chart"]
    assert "300 of 1000 used (30 %). Scheduled polls stop at 950." in context["budget_chart"]
    assert "7 in all. In transit: 5; Delivered: 2." in context["status_chart"]
    assert ("in_transit", "In transit", 5) in context["bulk_statuses"]
    assert ("pending", "Pending", 0) in context["bulk_statuses"]
