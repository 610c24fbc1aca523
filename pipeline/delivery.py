"""Delivering one outbox row, the I/O shell around `pipeline.outbox` and `pipeline.webhook_events`:
claim the row, POST a signed webhook (short timeouts, redirects not followed) or send an email
over SMTP, record the attempt, and say when to try again."""
from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import requests

from pipeline import emails, outbox, runtime
from pipeline import webhook_events as events
from pipeline.contacts import ContactKeyError

logger = logging.getLogger(__name__)


def deliver(outbox_id: int) -> float | None:
    """One delivery attempt of an outbox row; seconds until it should be tried again (a retry,
    or a row another worker holds), or None when there is nothing more to do."""
    rt = runtime.current()
    config = rt.config
    now = rt.now()
    claimed = outbox.claim(outbox_id, now=now, lease=timedelta(seconds=config.notify_timeout * 3 + 10))
    if claimed.row is None:
        return claimed.retry_in
    row = claimed.row
    attempt = send_webhook(row, now=now) if row.channel == events.WEBHOOK else send_email(row, now=now)
    if attempt is None:
        return None
    outcome = outbox.record_attempt(row, attempt, now=rt.now(), delays=config.notify_retry_delays,
                                    disable_after=timedelta(days=config.notify_disable_after_days))
    if outcome.endpoint_disabled:
        logger.error("ALERT notification endpoint %s disabled: every delivery failed for %d days",
                     row.endpoint_id, config.notify_disable_after_days)
    log = logger.info if attempt.is_success else logger.warning
    log("notification %s (%s %s, outbox %s) attempt %d: %s%s", row.message_id, row.channel, row.event_type, row.id,
        (row.attempts or 0) + 1, "delivered" if attempt.is_success else attempt.error,
        f"; retry in {outcome.retry_in}s" if outcome.retry_in is not None else "")
    return outcome.retry_in


# --- webhooks --------------------------------------------------------------------------------------

def send_webhook(row: Any, *, now: datetime) -> outbox.Attempt | None:
    """POST one signed webhook; None (and the row cancelled) when its endpoint is gone or disabled."""
    config = runtime.current().config
    keys = outbox.signing_keys(row.endpoint_id) if row.endpoint_id is not None else None
    url = outbox.endpoint_url(row.endpoint_id) if keys is not None else None
    if keys is None or url is None:
        outbox.cancel(row.id, "the endpoint was deleted or disabled", now=now)
        return None
    problem = events.url_problem(url, allow_http=config.notify_allow_http)
    if problem:
        return outbox.Attempt(is_success=False, error=f"endpoint URL {problem}", is_permanent=True)
    body = json.dumps(row.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    headers = events.signed_headers(keys, row.message_id, body, now=now)
    return post(url, body.encode("utf-8"), headers, timeout=config.notify_timeout)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> outbox.Attempt:
    """One POST: connect and read timeouts of `timeout`, redirects never followed, at most the
    first bytes of the answer read."""
    started = time.perf_counter()
    try:
        with requests.post(url, data=body, headers=headers, timeout=(timeout, timeout), allow_redirects=False,
                           stream=True) as response:
            excerpt = response.raw.read(events.EXCERPT_BYTES, decode_content=True) or b""
            latency = int((time.perf_counter() - started) * 1000)
            code = response.status_code
            error = None
            if 300 <= code < 400:
                error = f"HTTP {code}: redirect to {response.headers.get('location', '?')} not followed"
            elif not events.is_success(code):
                error = f"HTTP {code}"
            return outbox.Attempt(is_success=events.is_success(code), status_code=code, latency_ms=latency,
                                  excerpt=excerpt.decode("utf-8", errors="replace"), error=error)
    except requests.RequestException as failure:
        latency = int((time.perf_counter() - started) * 1000)
        return outbox.Attempt(is_success=False, latency_ms=latency, error=f"{type(failure).__name__}: {failure}")


# --- emails ----------------------------------------------------------------------------------------

def send_email(row: Any, *, now: datetime) -> outbox.Attempt | None:
    """Render and send one status email; None (and the row cancelled) when the customer
    unsubscribed, bounced or was erased, the shop turned the order's emails off, or email is no
    longer configured."""
    config = runtime.current().config
    if not config.smtp_url:
        outbox.cancel(row.id, "TRACKING_SMTP_URL is not set", now=now)
        return None
    try:
        address = outbox.customer_address(row.order_id)
    except ContactKeyError as error:
        return outbox.Attempt(is_success=False, error=str(error))
    if address is None:
        outbox.cancel(row.id, "no address to send to (emails off, unsubscribed, bounced or erased)", now=now)
        return None
    from web.sessions import key_from_config

    links = emails.links_for(row.order_id, base_url=config.public_url or "http://127.0.0.1:8000",
                             key=key_from_config(config))
    rendered = emails.render_email(row.payload, links, zone=config.shop_timezone,
                                   template_dir=config.email_template_dir)
    message = emails.build_message(rendered, sender=config.email_from or "trackcache@localhost", recipient=address,
                                   message_id=row.message_id, unsubscribe_url=links.unsubscribe, now=now)
    return send_smtp(config.smtp_url.reveal(), message, timeout=config.notify_timeout)


def send_smtp(smtp_url: str, message: Any, *, timeout: float) -> outbox.Attempt:
    """Send over SMTP: smtps:// with TLS, smtp:// with STARTTLS when the server offers it, a login
    when the URL has a user. A recipient refused with a 5xx code is a permanent failure (bounce)."""
    parsed = urlparse(smtp_url)
    started = time.perf_counter()
    host = parsed.hostname or "localhost"
    try:
        if parsed.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, parsed.port or 465, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, parsed.port or 587, timeout=timeout)
        with client:
            client.ehlo()
            if parsed.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parsed.username:
                client.login(unquote(parsed.username), unquote(parsed.password or ""))
            client.send_message(message)
        return outbox.Attempt(is_success=True, status_code=250, latency_ms=_ms(started))
    except smtplib.SMTPRecipientsRefused as refused:
        codes = [code for code, _ in refused.recipients.values()]
        detail = "; ".join(f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
                           for code, text in refused.recipients.values())
        return outbox.Attempt(is_success=False, status_code=codes[0] if codes else None, latency_ms=_ms(started),
                              error=f"recipient refused: {detail}", is_permanent=all(c >= 500 for c in codes))
    except smtplib.SMTPResponseException as failure:
        text = failure.smtp_error.decode("utf-8", "replace") if isinstance(failure.smtp_error, bytes) else failure.smtp_error
        return outbox.Attempt(is_success=False, status_code=failure.smtp_code, latency_ms=_ms(started),
                              error=f"SMTP {failure.smtp_code}: {text}")
    except (smtplib.SMTPException, OSError) as failure:
        return outbox.Attempt(is_success=False, latency_ms=_ms(started), error=f"{type(failure).__name__}: {failure}")


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
