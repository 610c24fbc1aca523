"""`trackcache import`: a good file lands, bad rows are reported with line and reason (and
written to a rejects CSV) while good rows land, a rerun is safe, and 100k rows import in bulk."""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone

import pytest

from models import Order, TrackingCache
from pipeline import importer

HEADER = "order_id,customer_email,tracking_number,courier,notes\n"


def write(tmp_path, text: str, name: str = "orders.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_good_file_registers_every_row_with_first_polls_spread(stack, tmp_path):
    rows = "".join(f"ORD-{i},buyer{i}@example.com,EPT{i:06d},,gift wrap\n" for i in range(40))
    now = datetime.now(timezone.utc)
    summary = importer.import_file(write(tmp_path, HEADER + rows), spread_minutes=60, now=now)
    assert (summary.total, summary.created, summary.already_present, summary.rejected) == (40, 40, 0, [])
    assert TrackingCache.select().count() == 40 and Order.select().count() == 40
    dues = sorted(row.next_update_due for row in TrackingCache.select())
    assert dues[0] >= now and dues[-1] <= now + timedelta(minutes=60)
    assert dues[-1] - dues[0] > timedelta(minutes=50), "first polls are spread, not one burst"
    assert all(row.courier_service == "easyparcel" for row in TrackingCache.select())


def test_bad_rows_are_reported_and_good_rows_land_and_a_rerun_is_safe(stack, tmp_path):
    text = HEADER + (
        "ORD-1,a@example.com,EPT000001,easyparcel,\n"      # line 2: good
        ",b@example.com,EPT000002,,\n"                      # line 3: no order id
        "ORD-3,not-an-email,EPT000003,,\n"                  # line 4: bad email
        "ORD-4,d@example.com,EPT000004,dhl,\n"              # line 5: unknown courier
        "ORD-1,other@example.com,EPT000005,,\n"             # line 6: order 1 has another email
        "ORD-6,f@example.com,EPT000006,,\n"                 # line 7: good
    )
    path = write(tmp_path, text)
    summary = importer.import_file(path)
    assert (summary.created, summary.already_present) == (2, 0)
    assert [line for line, _ in summary.rejected] == [3, 4, 5, 6]
    reasons = dict(summary.rejected)
    assert "order_id is required" in reasons[3]
    assert "customer_email must be an email address" in reasons[4]
    assert "courier must be one of" in reasons[5]
    assert "different customer email" in reasons[6]
    with open(summary.rejects_path, newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [r["line"] for r in rejects] == ["3", "4", "5", "6"] and rejects[1]["customer_email"] == "not-an-email"
    # a rerun changes nothing and says so
    again = importer.import_file(path)
    assert (again.created, again.already_present, len(again.rejected)) == (0, 2, 4)
    assert TrackingCache.select().count() == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("order,email\nA,b@example.com\n", "missing: order_id, customer_email, tracking_number"),
        (b"\xff\xfe\x00bad", "is not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_imported_fails_whole_with_a_reason(stack, tmp_path, content, message):
    path = tmp_path / "broken.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(importer.ImportFileError, match=message):
        importer.import_file(str(path))
    assert TrackingCache.select().count() == 0


def test_a_missing_file_is_a_clear_error(stack, tmp_path):
    with pytest.raises(importer.ImportFileError, match="no such file"):
        importer.import_file(str(tmp_path / "nope.csv"))


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = Terminal()
    importer.progress_printer(bar)(50, 100, 2.0)
    assert "[###############---------------] 50/100 rows" in bar.getvalue() and "ETA" in bar.getvalue()
    plain = io.StringIO()
    importer.progress_printer(plain)(100, 100, 4.0)
    assert plain.getvalue() == "imported 100/100 rows (25 rows/s, ETA 0s)\n"


def test_a_hundred_thousand_rows_import_in_bulk(redis_stack, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for i in range(100_000):
            handle.write(f"BIG-{i // 2},big{i // 2}@example.com,EPB{i:07d},easyparcel,\n")
    started = time.monotonic()
    summary = importer.import_file(str(path), spread_minutes=120)
    elapsed = time.monotonic() - started
    print(f"\n100k-row import: {elapsed:.1f} s ({100_000 / elapsed:,.0f} rows/s) on PostgreSQL")
    assert summary.created == 100_000 and not summary.rejected
    assert TrackingCache.select().count() == 100_000 and Order.select().count() == 50_000
    rerun = importer.import_file(str(path), spread_minutes=120)
    assert rerun.already_present == 100_000 and rerun.created == 0
