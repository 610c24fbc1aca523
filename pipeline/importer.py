"""Importing existing orders from CSV (the seed's data migration): validate every row, register
the good ones in bulk and idempotently, spread their first polls, and report the rest with line
numbers and reasons (also written to a rejects CSV). A rerun is safe."""
from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Callable, Iterator, Sequence

from pipeline import runtime, service
from pipeline.registration import ShipmentRegistration, validate_registration

REQUIRED_COLUMNS = ("order_id", "customer_email", "tracking_number")
CHUNK_ROWS = 2000

ProgressCallback = Callable[[int, int, float], None]


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, unreadable, wrong header)."""


@dataclass
class ImportSummary:
    total: int = 0
    created: int = 0
    already_present: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejects_path: str | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        rate = self.total / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"rows: {self.total}  created: {self.created}  already present: {self.already_present}  "
            f"rejected: {len(self.rejected)}  ({self.seconds:.1f} s, {rate:,.0f} rows/s)",
        ]
        for line, reason in self.rejected[:20]:
            lines.append(f"  line {line}: {reason}")
        if len(self.rejected) > 20:
            lines.append(f"  ... and {len(self.rejected) - 20} more")
        if self.rejects_path and self.rejected:
            lines.append(f"rejected rows written to {self.rejects_path}")
        return "\n".join(lines)


def read_rows(handle: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; the header must name the required columns.

    Raises:
        ImportFileError: the header lacks a required column.
    """
    reader = csv.DictReader(handle)
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ImportFileError(f"the header must name {', '.join(REQUIRED_COLUMNS)} (courier optional); "
                              f"missing: {', '.join(missing)}")
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}


def count_data_rows(path: str) -> int:
    with open(path, "rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def import_file(path: str, *, rejects_path: str | None = None, spread_minutes: int = 60,
                progress: ProgressCallback | None = None, now: datetime | None = None) -> ImportSummary:
    """Import a CSV of orders; see the module docstring.

    Raises:
        ImportFileError: the file is missing, unreadable or has the wrong header.
    """
    if not os.path.isfile(path):
        raise ImportFileError(f"no such file: {path}")
    rt = runtime.current()
    now = now or rt.now()
    couriers = service.enabled_couriers()
    expected = count_data_rows(path)
    window = timedelta(minutes=spread_minutes)
    summary = ImportSummary(rejects_path=rejects_path or f"{path}.rejects.csv")
    started = time.monotonic()
    rejected_rows: list[tuple[int, str, dict[str, str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            chunk: list[tuple[int, ShipmentRegistration, datetime]] = []
            for line, row in read_rows(handle):
                summary.total += 1
                row.setdefault("courier", "")
                registration, errors = validate_registration(row, couriers)
                if registration is None:
                    reason = "; ".join(f"{name} {problem}" for name, problem in errors.items())
                    rejected_rows.append((line, reason, row))
                    continue
                first_poll = now + window * (summary.total / max(expected, 1))
                chunk.append((line, registration, first_poll))
                if len(chunk) >= CHUNK_ROWS:
                    _register(chunk, summary, rejected_rows, now)
                    chunk = []
                    if progress:
                        progress(summary.total, expected, time.monotonic() - started)
            if chunk:
                _register(chunk, summary, rejected_rows, now)
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise ImportFileError(f"{path} is not a readable CSV file: {error}") from None
    summary.seconds = time.monotonic() - started
    if progress:
        progress(summary.total, expected, summary.seconds)
    summary.rejected = [(line, reason) for line, reason, _ in sorted(rejected_rows, key=lambda r: r[0])]
    if rejected_rows:
        write_rejects(summary.rejects_path or "", sorted(rejected_rows, key=lambda r: r[0]))
    return summary


def _register(chunk: Sequence[tuple[int, ShipmentRegistration, datetime]], summary: ImportSummary,
              rejected_rows: list[tuple[int, str, dict[str, str]]], now: datetime) -> None:
    outcomes = service.register_many([(registration, first_poll) for _, registration, first_poll in chunk], now=now)
    for (line, registration, _), outcome in zip(chunk, outcomes):
        if outcome.outcome == service.CREATED:
            summary.created += 1
        elif outcome.outcome == service.UNCHANGED:
            summary.already_present += 1
        else:
            row = {"order_id": registration.order_id, "customer_email": registration.customer_email,
                   "tracking_number": registration.tracking_number, "courier": registration.courier}
            rejected_rows.append((line, outcome.detail or "conflict", row))


def write_rejects(path: str, rows: Sequence[tuple[int, str, dict[str, str]]]) -> None:
    """The rejected rows, with their line number and reason, as CSV."""
    columns = ["line", "reason", *REQUIRED_COLUMNS, "courier"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for line, reason, row in rows:
            writer.writerow({"line": line, "reason": reason, **row})


def progress_printer(stream: IO[str]) -> ProgressCallback:
    """A progress bar with rate and ETA on a terminal; plain lines otherwise."""
    is_tty = stream.isatty()
    last_plain = [0.0]

    def report(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        remaining = (total - done) / rate if rate > 0 and total >= done else 0.0
        if is_tty:
            width = 30
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "-" * (width - filled)
            stream.write(f"\r[{bar}] {done:,}/{total:,} rows  {rate:,.0f}/s  ETA {remaining:4.0f}s")
            if done >= total:
                stream.write("\n")
            stream.flush()
        elif elapsed - last_plain[0] >= 2 or done >= total:
            last_plain[0] = elapsed
            stream.write(f"imported {done}/{total} rows ({rate:.0f} rows/s, ETA {remaining:.0f}s)\n")
            stream.flush()

    return report


def default_progress() -> ProgressCallback:
    return progress_printer(sys.stderr)
