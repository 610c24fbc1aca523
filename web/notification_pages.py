"""Dashboard pages of the notifications: the shop's webhook endpoints with their recent
deliveries and failures (`/admin/notifications`, a test event button for admins), and, in
`trackcache dev` only, the emails the local SMTP sink caught (`/admin/dev/emails`)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from pipeline import outbox, runtime
from web import pages
from web.database import call

RECENT_DELIVERIES = 10


def overview() -> dict[str, Any]:
    """Endpoints with their figures of the last day and their newest deliveries."""
    endpoints = outbox.endpoint_summaries(now=runtime.current().now())
    recent = {e["id"]: outbox.deliveries(e["id"], limit=RECENT_DELIVERIES) for e in endpoints}
    return {"endpoints": endpoints, "deliveries": recent}


async def admin_notifications(request: Request) -> Response:
    staff = pages.current_staff(request)
    if staff is None:
        return pages.to_login(request)
    return await pages.dashboard_page(request, staff, "admin_notifications.html", **await call(overview))


def send_test(staff: Any, request: Request, endpoint_id: int) -> int | None:
    from web import notifications

    return notifications.send_test(staff, request, endpoint_id)


async def admin_test_endpoint(request: Request) -> Response:
    checked = await pages.admin_action(request)
    if isinstance(checked, Response):
        return checked
    staff, _ = checked
    endpoint_id = int(request.path_params["endpoint_id"])
    delivery_id = await call(send_test, staff, request, endpoint_id)
    request.session["flash"] = (f"Test event queued for endpoint {endpoint_id} (delivery {delivery_id})."
                                if delivery_id is not None else "That endpoint no longer exists.")
    return pages.back_to({"next": "/admin/notifications"})


async def admin_dev_emails(request: Request) -> Response:
    """The emails the dev SMTP sink caught; 404 unless this process runs one (`trackcache dev`)."""
    from sim import mail_sink

    sink = mail_sink.current()
    staff = pages.current_staff(request)
    if sink is None:
        return Response("There is no development mail sink in this process (only `trackcache dev` runs one).",
                        status_code=404, media_type="text/plain", headers=pages.NO_STORE)
    if staff is None:
        return pages.to_login(request)
    return await pages.dashboard_page(request, staff, "admin_dev_emails.html", messages=sink.caught()[::-1],
                                      sink_address=f"{sink.host}:{sink.port}")


routes: list[BaseRoute] = [
    pages.page("/admin/notifications", admin_notifications, "GET"),
    pages.page("/admin/notifications/{endpoint_id:int}/test", admin_test_endpoint, "POST"),
    pages.page("/admin/dev/emails", admin_dev_emails, "GET"),
]
