"""Customer status emails: rendering the plain-text and HTML parts from Jinja2 templates (ours in
`pipeline/email_templates/`, or the shop's from TRACKING_EMAIL_TEMPLATE_DIR by the same name) in
the order's language through gettext catalogs (`pipeline/locales/<locale>/LC_MESSAGES/messages.po`,
read with Babel), the signed links (tracking page, unsubscribe), and the message itself with its
List-Unsubscribe headers. No I/O beyond reading templates and catalogs."""
from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date
from babel.dates import format_datetime as babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from pipeline import status as statuses

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "email_templates"
LOCALES = HERE / "locales"
DEFAULT_LOCALE = "en"
TRACK_SALT = "trackcache-email-track"
UNSUBSCRIBE_SALT = "trackcache-email-unsubscribe"
# How long the tracking link in an email keeps working (it opens a fresh page link each time).
TRACK_LINK_DAYS = 90

# Every status label and sentence in the templates' words, marked for `pybabel extract`.
def _(text: str) -> str:
    return text


STATUS_SENTENCES = {
    statuses.PENDING: _("We are waiting for the courier to receive your parcel."),
    statuses.INFO_RECEIVED: _("The courier has the details of your parcel and will collect it soon."),
    statuses.IN_TRANSIT: _("Your parcel is on its way."),
    statuses.AVAILABLE_FOR_PICKUP: _("Your parcel is waiting for you at a pickup point."),
    statuses.OUT_FOR_DELIVERY: _("Your parcel is out for delivery today."),
    statuses.FAILED_ATTEMPT: _("The courier tried to deliver your parcel but could not. They will try again."),
    statuses.EXCEPTION: _("There is a problem with your parcel's delivery. The courier is working on it."),
    statuses.DELIVERED: _("Your parcel has been delivered."),
    statuses.RETURNED: _("Your parcel is being returned to the shop."),
    statuses.CANCELLED: _("This shipment was cancelled."),
    statuses.EXPIRED: _("We have had no news of your parcel for a long time."),
}
STATUS_LABELS = {
    "Pending": _("Pending"), "Information received": _("Information received"), "In transit": _("In transit"),
    "Available for pickup": _("Available for pickup"), "Out for delivery": _("Out for delivery"),
    "Delivery attempt failed": _("Delivery attempt failed"), "Exception": _("Exception"),
    "Delivered": _("Delivered"), "Returned to sender": _("Returned to sender"), "Cancelled": _("Cancelled"),
    "Expired": _("Expired"),
}


def available_locales() -> tuple[str, ...]:
    """English (the templates' own language) and every language with a catalog."""
    found = sorted(path.parent.parent.name for path in LOCALES.glob("*/LC_MESSAGES/messages.po"))
    return (DEFAULT_LOCALE, *[name for name in found if name != DEFAULT_LOCALE])


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The gettext catalog of a language, compiled in memory from its .po file (English: none)."""
    path = LOCALES / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT_LOCALE or not path.exists():
        return gettext.NullTranslations()
    with open(path, "rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


@cache
def environment(locale: str, template_dir: str) -> jinja2.Environment:
    """Templates of one language: the shop's folder first (if set), then ours."""
    loaders: list[jinja2.BaseLoader] = []
    if template_dir:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATES)))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), extensions=["jinja2.ext.i18n"],
                             autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


# --- signed links ----------------------------------------------------------------------------------

def link_token(key: str, order_id: str, salt: str) -> str:
    return URLSafeTimedSerializer(key, salt=salt).dumps({"o": order_id})


def read_link_token(key: str, token: str, salt: str, *, max_age_seconds: int | None = None) -> str | None:
    """The order id a link from an email names, or None when it is forged, expired or malformed."""
    try:
        payload = URLSafeTimedSerializer(key, salt=salt).loads(token, max_age=max_age_seconds)
    except (SignatureExpired, BadSignature):
        return None
    order_id = payload.get("o") if isinstance(payload, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


@dataclass(frozen=True)
class EmailLinks:
    track: str
    unsubscribe: str


def links_for(order_id: str, *, base_url: str, key: str) -> EmailLinks:
    base = base_url.rstrip("/")
    return EmailLinks(track=f"{base}/track/email?t={link_token(key, order_id, TRACK_SALT)}",
                      unsubscribe=f"{base}/notifications/unsubscribe?t={link_token(key, order_id, UNSUBSCRIBE_SALT)}")


# --- rendering -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def email_context(payload: Mapping[str, Any], links: EmailLinks, *, zone: str) -> dict[str, Any]:
    """What the templates see, with moments shown in the shop's zone in the order's language."""
    locale = payload.get("locale") or DEFAULT_LOCALE
    tr = translations(locale)
    tz = ZoneInfo(zone)
    status = payload["status"]
    event = payload.get("event") or None
    estimated = _moment(payload.get("estimated_delivery"))
    event_time = _moment(event.get("time")) if event else None
    return {
        "order_id": payload["order_id"], "tracking_number": payload["tracking_number"],
        "courier": payload["courier"], "status": status,
        "status_label": tr.gettext(statuses.label_of(status)),
        "status_sentence": tr.gettext(STATUS_SENTENCES.get(status, "")) if status in STATUS_SENTENCES else "",
        "event_description": (event or {}).get("description"), "event_location": (event or {}).get("location"),
        "event_time": babel_datetime(event_time.astimezone(tz), "medium", locale=locale) if event_time else None,
        "estimated_delivery": format_date(estimated.astimezone(tz).date(), "full", locale=locale) if estimated else None,
        "track_url": links.track, "unsubscribe_url": links.unsubscribe, "locale": locale,
    }


def render_email(payload: Mapping[str, Any], links: EmailLinks, *, zone: str, template_dir: str = "") -> RenderedEmail:
    """Subject, plain text and HTML of a status email."""
    context = email_context(payload, links, zone=zone)
    env = environment(context["locale"], template_dir)
    subject = env.get_template("status_change.subject.txt").render(context).strip()
    return RenderedEmail(subject=" ".join(subject.split()),
                         text=env.get_template("status_change.txt").render(context),
                         html=env.get_template("status_change.html").render(context))


def build_message(rendered: RenderedEmail, *, sender: str, recipient: str, message_id: str,
                  unsubscribe_url: str, now: datetime) -> EmailMessage:
    """The MIME message: text and HTML alternatives, and one-click List-Unsubscribe (RFC 8058)."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    domain = sender.rpartition("@")[2].strip(" >") or "trackcache.local"
    message["Message-ID"] = make_msgid(idstring=message_id, domain=domain)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
