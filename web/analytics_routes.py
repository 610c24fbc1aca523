"""Courier analytics over HTTP: `GET /api/admin/analytics` (every section as JSON),
`GET /api/admin/analytics/{section}` (one section as JSON, or CSV with `format=csv`) and the
dashboard page `/admin/analytics`. Thin: load journey facts and courier calls, call the pure
`web.analytics`, shape the answer."""
from __future__ import annotations

from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import CourierApiCall, JourneyFact
from pipeline import runtime, store
from web import analytics, pages
from web.admin import admin_json
from web.auth import require_staff
from web.database import call
from web.errors import ApiError

_FACT_FIELDS = (JourneyFact.courier, JourneyFact.origin_state, JourneyFact.destination_state, JourneyFact.outcome,
                JourneyFact.business_days, JourneyFact.failed_attempts, JourneyFact.had_exception,
                JourneyFact.first_estimated_delivery, JourneyFact.delivered_at, JourneyFact.finished_at)


def load_report(selection: analytics.AnalyticsFilter) -> dict[str, Any]:
    """The analytics report of journeys finished, and courier calls made, in the selected period."""
    rt = runtime.current()
    now = rt.now()
    since = selection.since(now)
    field_names = [field.name for field in _FACT_FIELDS]
    model_fields = [JourneyFact._meta.fields[name] for name in field_names]
    facts = [dict(zip(field_names, (field.python_value(value) for field, value in zip(model_fields, row))))
             for row in JourneyFact.select(*_FACT_FIELDS).where(JourneyFact.finished_at >= since).tuples()]
    calls = list(CourierApiCall.select(CourierApiCall.courier, CourierApiCall.called_at, CourierApiCall.latency_ms,
                                       CourierApiCall.is_success)
                 .where((CourierApiCall.called_at >= since) & store.is_tracking_call()).dicts())
    for item in calls:
        item["called_at"] = CourierApiCall.called_at.python_value(item["called_at"])
    return analytics.report(facts, calls, selection=selection, zone=rt.config.shop_timezone, now=now)


def selection_of(request: Request) -> analytics.AnalyticsFilter:
    """Raises: ApiError 422 naming the bad filter."""
    selection, problems = analytics.parse_filter(request.query_params)
    if selection is None:
        raise ApiError(422, "validation_failed", "the analytics filter is not valid", fields=problems)
    return selection


async def analytics_report(request: Request) -> Response:
    require_staff(request)
    return admin_json(request, await call(load_report, selection_of(request)))


async def analytics_section(request: Request) -> Response:
    require_staff(request)
    section = request.path_params["section"]
    if section not in analytics.SECTIONS:
        raise ApiError(404, "not_found", f"no analytics section {section!r}; sections: {', '.join(analytics.SECTIONS)}")
    output = request.query_params.get("format", "json")
    if output not in ("json", "csv"):
        raise ApiError(422, "validation_failed", "the format is not valid", fields={"format": "must be json or csv"})
    selection = selection_of(request)
    data = await call(load_report, selection)
    if output == "csv":
        stamp = f"{selection.period_days}d" + (f"-{selection.courier}" if selection.courier else "")
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in f"trackcache-{section}-{stamp}")
        return Response(analytics.csv_text(data[section]), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                                 "Cache-Control": "no-store"})
    return admin_json(request, {"filter": data["filter"], "rows": data[section]})


async def analytics_page(request: Request) -> Response:
    staff = pages.current_staff(request)
    if staff is None:
        return pages.to_login(request)
    selection, problems = analytics.parse_filter(request.query_params)
    if selection is None:
        selection = analytics.AnalyticsFilter()
    data = await call(load_report, selection)
    chart_parts = {name: {"svg": Markup(chart["svg"]), "text": chart["text"]}
                   for name, chart in analytics.charts_of(data).items()}
    query = "&".join(f"{key}={value}" for key, value in selection.query().items())
    return await pages.dashboard_page(
        request, staff, "admin_analytics.html", status=422 if problems else 200, data=data, charts=chart_parts,
        selection=selection, periods=analytics.PERIODS, problems=problems, percent=analytics.percent,
        csv_query=query, sections=analytics.SECTIONS)


routes = [
    Route("/api/admin/analytics", analytics_report, methods=["GET"], name="analytics"),
    Route("/api/admin/analytics/{section}", analytics_section, methods=["GET"], name="analytics_section"),
    pages.page("/admin/analytics", analytics_page, "GET"),
]
