"""Notification settings and registration options: bad values are refused naming the variable or
field; production checks want keys, a sender and a public URL once SMTP is set."""
from __future__ import annotations

import pytest

import settings
from pipeline.contacts import new_key
from pipeline.registration import validate_registration

BASE = {"order_id": "ORD-1", "customer_email": "b@example.com", "tracking_number": "EP12345"}


@pytest.mark.parametrize("env, variable", [
    ({"TRACKING_CONTACT_KEYS": "not-a-fernet-key"}, "TRACKING_CONTACT_KEYS"),
    ({"TRACKING_SMTP_URL": "http://mail.example"}, "TRACKING_SMTP_URL"),
    ({"TRACKING_SMTP_URL": "smtp://mail.example:notaport"}, "TRACKING_SMTP_URL"),
    ({"TRACKING_EMAIL_STATUSES": "delivered,lost"}, "TRACKING_EMAIL_STATUSES"),
    ({"TRACKING_EMAIL_LOCALE": "Malay"}, "TRACKING_EMAIL_LOCALE"),
    ({"TRACKING_NOTIFY_RETRY_DELAYS": "5,-1"}, "TRACKING_NOTIFY_RETRY_DELAYS"),
])
def test_bad_notification_settings_name_the_variable(env, variable):
    with pytest.raises(settings.SettingsError, match=variable) as raised:
        settings.load(env, dotenv_path=None)
    assert "smtp://" not in str(raised.value).split("got")[-1] or variable != "TRACKING_SMTP_URL"


def test_secrets_stay_hidden_in_errors_and_reprs():
    with pytest.raises(settings.SettingsError) as raised:
        settings.load({"TRACKING_SMTP_URL": "ftp://user:hunter2@mail.example"}, dotenv_path=None)
    assert "hunter2" not in str(raised.value)
    config = settings.load({"TRACKING_SMTP_URL": "smtp://user:hunter2@mail.example:587",
                            "TRACKING_CONTACT_KEYS": f"{new_key()}, {new_key()}"}, dotenv_path=None)
    assert "hunter2" not in repr(config)


def test_production_wants_keys_sender_and_public_url_once_smtp_is_set():
    config = settings.load({"TRACKING_SMTP_URL": "smtp://mail.example:587"}, dotenv_path=None)
    problems = " ".join(config.production_problems())
    assert "TRACKING_CONTACT_KEYS" in problems and "TRACKING_PUBLIC_URL" in problems
    ready = settings.load({"TRACKING_SMTP_URL": "smtp://mail.example:587", "TRACKING_CONTACT_KEYS": new_key(),
                           "TRACKING_EMAIL_FROM": "shop@example.com",
                           "TRACKING_PUBLIC_URL": "https://track.example.com"}, dotenv_path=None)
    assert not any("SMTP" in problem for problem in ready.production_problems())


def test_registration_takes_notify_email_and_a_known_locale():
    registration, errors = validate_registration({**BASE, "notify_email": True, "locale": "ms"}, ["easyparcel"],
                                                 ("en", "ms"))
    assert errors == {} and registration.notify_email is True and registration.locale == "ms"
    plain, _ = validate_registration(BASE, ["easyparcel"], ("en", "ms"))
    assert plain.notify_email is None and plain.locale is None
    _, errors = validate_registration({**BASE, "notify_email": 1, "locale": "fr"}, ["easyparcel"], ("en", "ms"))
    assert errors == {"notify_email": "must be true or false", "locale": "must be one of: en, ms"}
