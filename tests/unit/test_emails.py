"""Customer emails without I/O: English and Malay rendering from the catalogs, the signed links,
the MIME message with both parts and one-click List-Unsubscribe, templates a shop overrides, and
the address cipher (Fernet) with key rotation."""
from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from pipeline import emails
from pipeline.contacts import ContactCipher, ContactKeyError, new_key

KEY = "link-signing-key-0123456789"
PAYLOAD = {"order_id": "ORD-1001", "tracking_number": "EP123456789MY", "courier": "easyparcel",
           "previous_status": "in_transit", "status": "out_for_delivery",
           "event": {"time": "2026-11-25T01:30:00Z", "status": "out_for_delivery", "description": "Out for delivery",
                     "location": "Petaling Jaya, Selangor, MY"},
           "estimated_delivery": "2026-11-25T00:00:00Z", "locale": "en"}


def links() -> emails.EmailLinks:
    # Signed links carry a timestamp; one set per module, so two calls never straddle a second.
    return LINKS


LINKS = emails.links_for("ORD-1001", base_url="https://track.shop.example/", key=KEY)


def test_an_english_email_names_the_status_event_estimate_and_links():
    rendered = emails.render_email(PAYLOAD, links(), zone="Asia/Kuala_Lumpur")
    assert rendered.subject == "Order ORD-1001: Out for delivery"
    assert "Your parcel EP123456789MY (order ORD-1001) is now: Out for delivery." in rendered.text
    assert "Latest update: Out for delivery (Petaling Jaya, Selangor, MY), Nov 25, 2026, 9:30:00" in rendered.text
    assert "Estimated delivery: Wednesday, November 25, 2026" in rendered.text
    assert links().track in rendered.text and links().unsubscribe in rendered.text
    assert 'href="https://track.shop.example/track/email?t=' in rendered.html
    assert "<html lang=\"en\">" in rendered.html


def test_a_malay_email_is_translated_from_its_catalog():
    rendered = emails.render_email({**PAYLOAD, "locale": "ms"}, links(), zone="Asia/Kuala_Lumpur")
    assert rendered.subject == "Pesanan ORD-1001: Sedang dihantar"
    assert "Bungkusan anda sedang dihantar hari ini." in rendered.text
    assert "Anggaran penghantaran: Rabu, 25 November 2026" in rendered.text
    assert "Berhenti menerima e-mel ini" in rendered.html and '<html lang="ms">' in rendered.html
    assert emails.available_locales() == ("en", "ms")


def test_every_catalog_translates_every_message():
    from babel.messages.pofile import read_po

    for locale in emails.available_locales()[1:]:
        with open(emails.LOCALES / locale / "LC_MESSAGES" / "messages.po", "rb") as source:
            catalog = read_po(source, locale=locale)
        untranslated = [m.id for m in catalog if m.id and not m.string]
        assert untranslated == [], locale


def test_html_escapes_what_the_courier_wrote():
    payload = {**PAYLOAD, "event": {**PAYLOAD["event"], "description": "<script>x</script>"}}
    rendered = emails.render_email(payload, links(), zone="UTC")
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_links_are_signed_and_forgeries_refused():
    token = links().unsubscribe.split("t=")[1]
    assert emails.read_link_token(KEY, token, emails.UNSUBSCRIBE_SALT) == "ORD-1001"
    assert emails.read_link_token(KEY, token, emails.TRACK_SALT) is None
    assert emails.read_link_token("another-key-0123456789", token, emails.UNSUBSCRIBE_SALT) is None
    assert emails.read_link_token(KEY, "garbage", emails.UNSUBSCRIBE_SALT) is None


def test_the_message_has_both_parts_and_one_click_unsubscribe():
    rendered = emails.render_email(PAYLOAD, links(), zone="UTC")
    message = emails.build_message(rendered, sender="Shop <track@shop.example>", recipient="buyer@example.com",
                                   message_id="msg_1", unsubscribe_url=links().unsubscribe,
                                   now=datetime(2026, 11, 25, tzinfo=UTC))
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == f"<{links().unsubscribe}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"].endswith("@shop.example>")
    assert parsed.get_body(("plain",)).get_content().startswith("Hello,")
    assert "<html" in parsed.get_body(("html",)).get_content()


def test_a_shop_overrides_a_template_by_name(tmp_path):
    (tmp_path / "status_change.subject.txt").write_text("{{ order_id }} is {{ status_label }}!", encoding="utf-8")
    rendered = emails.render_email(PAYLOAD, links(), zone="UTC", template_dir=str(tmp_path))
    assert rendered.subject == "ORD-1001 is Out for delivery!"
    assert "Your parcel EP123456789MY" in rendered.text  # the others are still ours


def test_addresses_are_encrypted_and_old_keys_still_decrypt_after_a_new_key_is_added():
    old, new = new_key(), new_key()
    token = ContactCipher(old).encrypt(" buyer@example.com ")
    assert "buyer" not in token
    assert ContactCipher(f"{new},{old}").decrypt(token) == "buyer@example.com"
    rotated = ContactCipher(f"{new},{old}").rotate(token)
    assert ContactCipher(new).decrypt(rotated) == "buyer@example.com"
    with pytest.raises(ContactKeyError):
        ContactCipher(new).decrypt(token)
    with pytest.raises(ContactKeyError):
        ContactCipher("").encrypt("buyer@example.com")
