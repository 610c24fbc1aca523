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
    sent: list[str] = []
    original = models.database.execute_sql

    def watching(sql, params=None):
        sent.append(sql)
        return original(sql, params)

    monkeypatch.setattr(models.database.obj, "execute_sql", watching)
    entries = [("easyparcel", inbox.InboxEntry('{"uuid": "durable-1"}', "shipment.tracking.update", "durable-1")),
               ("easyparcel", inbox.InboxEntry("not json", None, None, "the body is not valid JSON"))]
    received = inbox.store_webhooks(entries, now=datetime.now(UTC))
    monkeypatch.undo()
    assert [r.outcome for r in received] == [inbox.ACCEPTED, inbox.REJECTED]
    # One round trip: the durable-commit setting and both inserts go as one query, which
    # PostgreSQL runs as one implicit transaction ...
    assert len(sent) == 1 and sent[0].startswith(models.DURABLE_COMMIT + "; WITH ")
    # ... in which SET LOCAL holds, for that transaction only.
    inside = original(f"{models.DURABLE_COMMIT}; SELECT current_setting('synchronous_commit')").fetchone()[0]
    assert inside == "on", "the inbox row would be committed asynchronously"
    assert models.database.execute_sql("SHOW synchronous_commit").fetchone()[0] == "off"
    models.database.execute_sql("SET synchronous_commit TO on")
