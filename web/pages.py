"""The server-rendered pages: the customer tracking page (`/track`) and the admin dashboard
(`/admin`). Endpoints validate, call one function of `web.reads`, `web.dashboard` or the pure
shaping in `web.display` and `web.charts`, and render a Jinja2 template; they work without
JavaScript, and `static/live.js` adds live updates (polling with ETags) where it helps."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline import runtime
from pipeline import status as statuses
from pipeline.registration import ORDER_ID_PATTERN
from web import charts, dashboard, display, ratelimit, reads, sessions, views
from web.auth import ADMIN, Staff, client_address, role_of
from web.customer import MAX_EMAIL_LENGTH
from web.database import call
from web.errors import ApiError
from web.metrics import record_read
from web.webhooks import read_body

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MAX_FORM_BYTES = 8192
MAX_ACTIONS = 5  # recent refreshes a dashboard session keeps watching
NO_STORE = {"Cache-Control": "no-store"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
ADMIN_LOGIN_LIMIT = 30  # sign-in attempts per hour per client address

environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                                 trim_blocks=True, lstrip_blocks=True, auto_reload=False,
                                 undefined=jinja2.StrictUndefined)


@cache
def static_url(name: str) -> str:
    """A static file's URL with a content hash, so browsers fetch it again after it changes."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def when(value: Any) -> Any:
    """A stored value for the dashboard: moments as the shop's local time in a `<time>` element
    carrying the UTC value, "–" for nothing, anything else as it is."""
    if value is None or value == "":
        return "–"
    if not isinstance(value, (str, datetime)) or not display.is_moment(value):
        return value
    moment = display.as_utc(value)
    zone = runtime.current().config.shop_timezone
    utc = views.iso(moment)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(
        utc, display.format_local(moment, zone, with_year=True))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value is not None else "(none)"


environment.globals.update(static_url=static_url, statuses=statuses)
environment.filters.update(when=when, pretty_json=pretty_json, tone=display.status_tone)


def render(template: str, context: Mapping[str, Any], *, status: int = 200, private: bool = True,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page (or fragment) rendered with the pages' security headers (see `page_response`)."""
    html = environment.get_template(template).render(context)
    return page_response(html, status=status, private=private, headers=headers,
                         is_dashboard=template.startswith(("admin", "_admin")))


def page_response(html: str, *, status: int = 200, private: bool = True, is_dashboard: bool = False,
                  headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """An HTML answer with a strict CSP (no inline code) and no framing. Pages holding personal or
    admin data are never stored by caches. Tracking pages send no referrer (their URLs carry a
    link token); dashboard pages send it to this site only, so that browsers send the Origin
    header the dashboard's form check compares."""
    merged = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
              "Referrer-Policy": "same-origin" if is_dashboard else "no-referrer",
              "Cache-Control": "no-store" if private else "no-cache", **(headers or {})}
    return HTMLResponse(html, status_code=status, headers=merged)


def server_timing(started: float, is_cache_hit: bool) -> str:
    """A Server-Timing header value: the handler's time, and whether the read cache answered."""
    elapsed_ms = (time.perf_counter() - started) * 1000
    return f'app;dur={elapsed_ms:.1f}, cache;desc="{"hit" if is_cache_hit else "miss"}"'


def zone_context(now: datetime) -> dict[str, Any]:
    zone = runtime.current().config.shop_timezone
    return {"zone": zone, "zone_caption": display.zone_caption(zone, now)}


# --- customer tracking page ------------------------------------------------------------------------

NOT_FOUND_MESSAGE = ("We could not find an order with that order number and email address. Check both (the "
                     "email is the one you ordered with) and try again.")
LINK_EXPIRED = "This tracking link has expired. Please enter your order number and email again."
LINK_INVALID = "This tracking link is not valid. Please enter your order number and email."


def lookup_problems(order_id: str, email: str) -> dict[str, str]:
    """What is wrong with a guest's lookup form, per field, in the customer's words (pure)."""
    problems = {}
    if not order_id:
        problems["order_id"] = "Enter your order number."
    elif not ORDER_ID_PATTERN.match(order_id):
        problems["order_id"] = "Order numbers use letters, digits and . _ : # / - only."
    if not email:
        problems["email"] = "Enter the email address you used for the order."
    elif len(email) > MAX_EMAIL_LENGTH or "@" not in email.strip("@"):
        problems["email"] = "Enter an email address like name@example.com."
    return problems


def wait_in_words(seconds: int) -> str:
    """A Retry-After in words for the rate-limit messages ("about 40 minutes")."""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return "a minute" if minutes == 1 else f"about {minutes} minutes"
    hours = round(minutes / 60)
    return "an hour" if hours == 1 else f"about {hours} hours"


def track_form_page(*, order_id: str = "", email: str = "", problems: Mapping[str, str] | None = None,
                    message: str | None = None, status: int = 200,
                    headers: Mapping[str, str] | None = None) -> HTMLResponse:
    context = {"order_id": order_id, "email": email, "problems": dict(problems or {}), "message": message,
               "message_kind": "error"}
    return render("track_form.html", context, status=status, private=bool(email or message), headers=headers)


async def track_form(request: Request) -> Response:
    prefill = request.query_params.get("order_id", "")
    return track_form_page(order_id=prefill if ORDER_ID_PATTERN.match(prefill) else "")


async def track_lookup(request: Request) -> Response:
    """The guest form: the same checks, rate limit and not-found parity as the JSON API, then a
    redirect to the result page under a signed link (the email never goes into a URL)."""
    started = time.perf_counter()
    try:
        form = sessions.parse_form(await read_body(request, MAX_FORM_BYTES))
    except ApiError:
        return track_form_page(message="That form was too large to read.", status=413)
    order_id, email = form.get("order_id", "").strip(), form.get("email", "").strip()
    problems = lookup_problems(order_id, email)
    if problems:
        return track_form_page(order_id=order_id, email=email, problems=problems, status=422)
    rt = runtime.current()
    config = rt.config
    key = ratelimit.guest_key(client_address(request))
    verdict = await call(ratelimit.charge, rt.coordination, key, limit=config.guest_rate_limit)
    if not verdict.is_allowed:
        message = (f"You have looked up orders many times in a short while. Please try again in "
                   f"{wait_in_words(verdict.retry_after)}.")
        return track_form_page(order_id=order_id, email=email, message=message, status=429,
                               headers=verdict.headers())
    outcome = await call(reads.read_order, order_id, email=email, customer=None, wants_refresh=False)
    record_read(views.GUEST, time.perf_counter() - started, is_cache_hit=outcome.is_cache_hit)
    if not outcome.is_found:
        if config.failed_lookup_cost > 1:
            await call(ratelimit.charge, rt.coordination, key, limit=config.guest_rate_limit,
                       cost=config.failed_lookup_cost - 1)
        return track_form_page(order_id=order_id, email=email, message=NOT_FOUND_MESSAGE, status=404)
    link = sessions.make_track_link(sessions.key_from_config(config), order_id)
    query = {"t": link}
    if outcome.refresh.get("state") in REFRESH_NOTICES:  # the result page says what the lookup did
        query["refresh"] = outcome.refresh["state"]
    return RedirectResponse(f"/track/view?{urlencode(query)}", status_code=303,
                            headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


# What the result page says when the lookup refreshed stale data (the API's `refresh.state`).
REFRESH_NOTICES = {
    reads.REQUESTED: "Our copy was getting old, so we have asked the courier for news. "
                     "This page shows it as soon as it arrives.",
    reads.UNDER_WAY: "We are already asking the courier for news. This page shows it as soon as it arrives.",
}


def linked_order(token: str) -> str:
    """The order a tracking-page link names.

    Raises:
        sessions.InvalidLink: see `sessions.read_track_link`.
    """
    config = runtime.current().config
    return sessions.read_track_link(sessions.key_from_config(config), token,
                                    max_age_seconds=config.track_link_hours * 3600)


def live_etag(view: Mapping[str, Any]) -> str:
    """The ETag of a tracking result's data ("N minutes ago" is kept current by the browser)."""
    return views.etag_for({"page": 1, "view": view})


def html_etag(html: str) -> str:
    return 'W/"' + hashlib.sha256(html.encode("utf-8")).hexdigest()[:32] + '"'


def result_context(order_id: str, view: Mapping[str, Any], token: str) -> dict[str, Any]:
    rt = runtime.current()
    now = rt.now()
    shipments = display.shipment_pages(view, zone=rt.config.shop_timezone, now=now)
    return {"order_id": order_id, "shipments": shipments,
            "live_url": f"/track/live?t={quote(token)}", "live_etag": live_etag(view),
            "refresh_seconds": rt.config.page_refresh_seconds, **zone_context(now)}


async def track_view(request: Request) -> Response:
    """The result page: the guest view from the read cache (else the database), rendered."""
    started = time.perf_counter()
    token = request.query_params.get("t", "")
    try:
        order_id = linked_order(token)
    except sessions.InvalidLink as error:
        return track_form_page(message=LINK_EXPIRED if error.is_expired else LINK_INVALID,
                               status=410 if error.is_expired else 400)
    document, is_hit = await call(reads.load_document, order_id, views.GUEST)
    record_read(views.GUEST, time.perf_counter() - started, is_cache_hit=is_hit)
    if not document.exists:
        return track_form_page(message=NOT_FOUND_MESSAGE, status=404)
    context = result_context(order_id, document.view, token)
    context["refresh_notice"] = REFRESH_NOTICES.get(request.query_params.get("refresh", ""))
    html = environment.get_template("track_result.html").render(context)
    return page_response(html, headers={"Server-Timing": server_timing(started, is_hit)})


async def track_live(request: Request) -> Response:
    """The result fragment the open page polls, with an ETag of the data (304 when unchanged)."""
    token = request.query_params.get("t", "")
    try:
        order_id = linked_order(token)
    except sessions.InvalidLink as error:
        return Response(LINK_EXPIRED if error.is_expired else LINK_INVALID, status_code=410,
                        media_type="text/plain", headers=NO_STORE)
    document, _ = await call(reads.load_document, order_id, views.GUEST)
    if not document.exists:
        return Response(NOT_FOUND_MESSAGE, status_code=410, media_type="text/plain", headers=NO_STORE)
    etag = live_etag(document.view)
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"}
    if views.matches_etag(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return render("_track_shipments.html", result_context(order_id, document.view, token), headers=headers)


# --- admin dashboard: sign-in --------------------------------------------------------------------

ADMIN_LOGIN_LIMIT = 30  # sign-in attempts per hour per client address
FORM_EXPIRED = "This form has expired (or was sent from another site). Please try again."
VIEWER_REFUSED = "Viewer tokens can only look: refreshing needs an admin token."


def current_staff(request: Request) -> Staff | None:
    config = runtime.current().config
    return sessions.staff_of(request.session, config.admin_tokens, config.viewer_tokens)


def local_path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def to_login(request: Request) -> Response:
    target = sessions.safe_next(local_path(request))
    return RedirectResponse(f"/admin/login?{urlencode({'next': target})}", status_code=303, headers=NO_STORE)


def login_page(request: Request, *, message: str | None = None, status: int = 200,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
    context = {"csrf": sessions.csrf_token(request.session), "message": message,
               "next": sessions.safe_next(request.query_params.get("next"))}
    return render("admin_login.html", context, status=status, headers=headers)


async def admin_login_form(request: Request) -> Response:
    if current_staff(request) is not None:
        return RedirectResponse(sessions.safe_next(request.query_params.get("next")), status_code=303)
    return login_page(request)


async def read_admin_form(request: Request) -> dict[str, str] | None:
    """A posted dashboard form, or None when its CSRF token or origin is not this session's."""
    try:
        form = sessions.parse_form(await read_body(request, MAX_FORM_BYTES))
    except ApiError:
        return None
    is_same_origin = sessions.is_same_origin(request.headers.get("origin"), request.headers.get("host"),
                                             request.url.scheme)
    if not is_same_origin or not sessions.is_valid_csrf(request.session, form.get(sessions.CSRF_FIELD)):
        return None
    return form


async def admin_login(request: Request) -> Response:
    form = await read_admin_form(request)
    if form is None:
        return login_page(request, message=FORM_EXPIRED, status=403)
    rt = runtime.current()
    key = f"ratelimit:admin-login:{client_address(request)}"
    verdict = await call(ratelimit.charge, rt.coordination, key, limit=ADMIN_LOGIN_LIMIT)
    if not verdict.is_allowed:
        message = f"Too many sign-in attempts. Try again in {wait_in_words(verdict.retry_after)}."
        return login_page(request, message=message, status=429, headers=verdict.headers())
    token = form.get("token", "").strip()
    if not token or role_of(token, rt.config.admin_tokens, rt.config.viewer_tokens) is None:
        return login_page(request, message="That token is not an admin or viewer token.", status=401)
    sessions.sign_in(request.session, token)
    return RedirectResponse(sessions.safe_next(form.get("next")), status_code=303, headers=NO_STORE)


async def admin_logout(request: Request) -> Response:
    form = await read_admin_form(request)
    if form is None:
        return login_page(request, message=FORM_EXPIRED, status=403)
    request.session.clear()
    return RedirectResponse("/admin/login", status_code=303, headers=NO_STORE)


# --- admin dashboard: pages ----------------------------------------------------------------------

def overview_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard's figures and charts from `dashboard.overview()` (pure)."""
    today = data["usage"]["today"]
    days = display.usage_days(data["usage"]["history"], data["now"].date())
    active = data["shipments"]["active_by_status"]
    by_status = display.status_counts(active)
    budget, used = int(today["budget"]), int(today["budget_used"])
    meter = charts.meter(used, budget, chart_id="budget-meter", title="Courier API budget used today",
                         reserve=int(today["scheduled_limit"]))
    calls = charts.daily_bars([charts.DayBar(day["label"], day["ok"], day["failed"]) for day in days],
                              chart_id="calls-chart", title="Courier API calls per day, last 30 days",
                              budget=budget)
    by_status_chart = charts.horizontal_bars(
        [charts.Bar(row["label"], row["count"], row["tone"]) for row in by_status], chart_id="status-chart",
        title="Active shipments by status")
    return {
        "jobs": data["jobs"], "usage": today, "days": days, "shipments": data["shipments"],
        "attention": data["attention"],
        "estimates": data.get("estimates"),
        "oldest_wait": display.duration(data["jobs"]["oldest_pending_age_seconds"]),
        "success_rate": display.percent(today["success_rate"]),
        "budget_chart": Markup(meter), "calls_chart": Markup(calls), "status_chart": Markup(by_status_chart),
        "shows_budget": charts.shows_budget(max((day["calls"] for day in days), default=0), budget),
        "bulk_statuses": [(name, statuses.label_of(name), int(active.get(name, 0)))
                          for name in statuses.STATUSES],
    }


async def actions_panel(request: Request) -> Markup | None:
    """The "your recent refreshes" panel of this session (None when it has none)."""
    actions = request.session.get("actions") or []
    if not actions:
        return None
    reports = await call(dashboard.action_reports, actions)
    context = {"reports": reports, "is_live": any(not report["is_finished"] for report in reports)}
    return Markup(environment.get_template("_admin_actions.html").render(context))


async def dashboard_page(request: Request, staff: Staff, template: str, *, status: int = 200,
                         **context: Any) -> HTMLResponse:
    """A dashboard page with what every one shows: who is signed in, the session's CSRF token, the
    last action's message and the recent refreshes panel."""
    actions = await actions_panel(request)
    now = runtime.current().now()
    base = {"staff": staff, "is_admin": staff.role == ADMIN, "csrf": sessions.csrf_token(request.session),
            "flash": request.session.pop("flash", None), "path": local_path(request), "actions_html": actions,
            "actions_etag": html_etag(str(actions)) if actions else "", **zone_context(now)}
    return render(template, {**base, **context}, status=status)


async def admin_dashboard(request: Request) -> Response:
    staff = current_staff(request)
    if staff is None:
        return to_login(request)
    data = await call(dashboard.overview)
    return await dashboard_page(request, staff, "admin_dashboard.html", **overview_context(data))


async def admin_search(request: Request) -> Response:
    staff = current_staff(request)
    if staff is None:
        return to_login(request)
    text = request.query_params.get("q", "").strip()[:128]
    records = await call(dashboard.search, staff, request, text) if text else []
    return await dashboard_page(request, staff, "admin_search.html", q=text, records=records,
                                status=200 if records or not text else 404)


async def admin_actions(request: Request) -> Response:
    """The recent-refreshes panel alone, polled by the open page while jobs run (ETag: its HTML)."""
    if current_staff(request) is None:
        return Response("You are signed out.", status_code=401, media_type="text/plain", headers=NO_STORE)
    html = str(await actions_panel(request) or "")
    headers = {"ETag": html_etag(html), "Cache-Control": "no-cache, private"}
    if views.matches_etag(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return page_response(html, is_dashboard=True, headers=headers)


# --- admin dashboard: actions --------------------------------------------------------------------

def remember_action(request: Request, action: dict[str, Any], message: str) -> None:
    """Keep an action in the session (for the recent refreshes panel) and say it on the next page."""
    request.session["actions"] = ([action] + list(request.session.get("actions") or []))[:MAX_ACTIONS]
    request.session["flash"] = message


async def admin_action(request: Request) -> tuple[Staff, dict[str, str]] | Response:
    """The admin and the form behind a dashboard action, or the page refusing it (an expired or
    forged form, signed out, or a viewer: 403)."""
    form = await read_admin_form(request)
    staff = current_staff(request)
    if form is None:
        if staff is None:
            return login_page(request, message=FORM_EXPIRED, status=403)
        return await dashboard_page(request, staff, "admin_error.html", message=FORM_EXPIRED, status=403)
    if staff is None:
        return to_login(request)
    if staff.role != ADMIN:
        return await dashboard_page(request, staff, "admin_error.html", message=VIEWER_REFUSED, status=403)
    return staff, form


def back_to(form: Mapping[str, str]) -> RedirectResponse:
    return RedirectResponse(sessions.safe_next(form.get("next")), status_code=303, headers=NO_STORE)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


async def admin_refresh_shipment(request: Request) -> Response:
    checked = await admin_action(request)
    if isinstance(checked, Response):
        return checked
    staff, form = checked
    result = await call(dashboard.refresh_shipment, staff, request, int(request.path_params["shipment_id"]))
    if result is None:
        request.session["flash"] = "That shipment no longer exists."
        return back_to(form)
    number, job_ids = result["tracking_number"], result["job_ids"]
    remember_action(request, {"label": f"Refresh of {number} ({result['order_id']})", "job_ids": job_ids},
                    f"Refresh of {number} queued (job {', '.join(map(str, job_ids))}).")
    return back_to(form)


async def admin_refresh_order(request: Request) -> Response:
    checked = await admin_action(request)
    if isinstance(checked, Response):
        return checked
    staff, form = checked
    order_id = form.get("order_id", "").strip()
    result = None
    if ORDER_ID_PATTERN.match(order_id):
        result = await call(dashboard.refresh_order, staff, request, order_id)
    if result is None:
        request.session["flash"] = f"There is no order {order_id}."
        return back_to(form)
    job_ids, final = result["job_ids"], result["skipped_final"]
    if not job_ids:
        request.session["flash"] = (f"Order {order_id} was not refreshed: its shipments are final "
                                    "(delivered, returned, cancelled or expired).")
        return back_to(form)
    remember_action(request, {"label": f"Refresh of order {order_id}", "job_ids": job_ids},
                    f"Refresh of order {order_id} queued ({plural(len(job_ids), 'job')})"
                    + (f"; {plural(final, 'final shipment')} not polled." if final else "."))
    return back_to(form)


async def admin_bulk_refresh(request: Request) -> Response:
    checked = await admin_action(request)
    if isinstance(checked, Response):
        return checked
    staff, form = checked
    status = form.get("status", "")
    if not statuses.is_known(status):
        request.session["flash"] = "Choose a status to refresh."
        return back_to(form)
    result = await call(dashboard.bulk_refresh, staff, request, status)
    label = statuses.label_of(status)
    skipped, final = result["skipped_over_budget"], result["skipped_final"]
    if final and not result["count"]:
        request.session["flash"] = (f"Nothing refreshed: “{label}” is final, and "
                                    f"{plural(final, 'shipment')} in it need no polling.")
        return back_to(form)
    remember_action(request, {"label": f"Bulk refresh: {label}", "batch_id": result["batch_id"]},
                    f"Bulk refresh of {plural(result['count'], 'shipment')} in “{label}” queued"
                    + (f"; {skipped} skipped, over today's budget." if skipped else "."))
    return back_to(form)


def page(path: str, endpoint: Any, method: str) -> Route:
    """A page route; pages are not the JSON API, so the OpenAPI document leaves them out."""
    return Route(path, endpoint, methods=[method], name=endpoint.__name__, include_in_schema=False)


routes: list[BaseRoute] = [
    page("/track", track_form, "GET"),
    page("/track", track_lookup, "POST"),
    page("/track/view", track_view, "GET"),
    page("/track/live", track_live, "GET"),
    page("/admin", admin_dashboard, "GET"),
    page("/admin/login", admin_login_form, "GET"),
    page("/admin/login", admin_login, "POST"),
    page("/admin/logout", admin_logout, "POST"),
    page("/admin/search", admin_search, "GET"),
    page("/admin/actions", admin_actions, "GET"),
    page("/admin/refresh/shipment/{shipment_id:int}", admin_refresh_shipment, "POST"),
    page("/admin/refresh/order", admin_refresh_order, "POST"),
    page("/admin/refresh/bulk", admin_bulk_refresh, "POST"),
    Mount("/static", app=StaticFiles(directory=str(STATIC), check_dir=False), name="static"),
]
