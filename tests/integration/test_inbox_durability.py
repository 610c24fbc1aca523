"""The webhook inbox's commit is durable whatever the server's default: the receiver answers 200
only for rows that survive a PostgreSQL crash. Found by the fault suite: with
`synchronous_commit = off`, PostgreSQL stopped in immediate mode (a crash) lost an inbox row whose
webhook had been answered 200."""
from __future__ import annotations

from datetime import UTC, datetime

import models
from pipeline import inbox


def test_the_inbox_commits_durably_even_when_the_session_default_is_asynchronous(redis_stack, monkeypatch):
    models.database.connect(reuse_if_open=True)
    models.database.execute_sql("SET synchronous_commit TO off")  # as a server tuned for speed would be
    seen: list[str] = []
    original = models.insert_inbox_rows

    def watching(rows, **kwargs):
        seen.append(models.database.execute_sql("SHOW synchronous_commit").fetchone()[0])
        return original(rows, **kwargs)

    monkeypatch.setattr(models, "insert_inbox_rows", watching)
    entry = inbox.InboxEntry('{"uuid": "durable-1"}', "shipment.tracking.update", "durable-1")
    received = inbox.store_webhooks([("easyparcel", entry)], now=datetime.now(UTC))
    assert received[0].outcome == inbox.ACCEPTED
    assert seen == ["on"], "the inbox row was committed asynchronously"
    # Only that transaction: the session's own setting is untouched.
    assert models.database.execute_sql("SHOW synchronous_commit").fetchone()[0] == "off"
    models.database.execute_sql("SET synchronous_commit TO on")
