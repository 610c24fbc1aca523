"""Writes the fault table of RELIABILITY.md from the figures the fault scenarios appended to
faults-results.jsonl: one row per scenario, broker and scale, runs summed (run by `make faults`).
Rows of this run replace the table's rows of the same scenario variant, broker and scale; rows the
run did not produce (the small scale, a scenario left out with -k, one that failed) are kept.

    python tests/faults/reliability_table.py faults-results.jsonl [RELIABILITY.md]
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

BEGIN, END = "<!-- fault table: begin -->", "<!-- fault table: end -->"
COLUMNS = ("scenario", "broker", "scale", "load", "runs", "updates sent", "accepted", "persisted", "lost",
           "duplicated", "regressions", "recovery time", "rerun")


def rows(entries: list[dict]) -> list[list[str]]:
    grouped: dict[tuple[str, str, str, str], list[dict]] = defaultdict(list)
    for entry in entries:  # one row per scenario variant (its rerun command), broker and scale
        grouped[(entry["scenario"], entry["command"], entry["broker"], entry["scale"])].append(entry)
    table = []
    for (scenario, _command, broker, scale), runs in sorted(grouped.items()):
        last = runs[-1]
        recoveries = [r["recovery_seconds"] for r in runs if r.get("recovery_seconds") is not None]
        recovery = f"{max(recoveries):.0f} s (worst of {len(recoveries)})" if recoveries else "-"
        notes = "; ".join(sorted({r["note"] for r in runs if r.get("note")}))
        if last.get("budget") is not None:
            calls = f"{max(r['courier_calls'] for r in runs)} courier calls, budget {last['budget']}"
            notes = "; ".join(filter(None, [notes, calls]))
        table.append([scenario.removeprefix("test_").replace("_", " ") + (f" ({notes})" if notes else ""), broker,
                      scale, last["load"], str(len(runs)),
                      *(str(sum(r[k] for r in runs)) for k in ("sent", "accepted", "persisted", "lost", "duplicated",
                                                               "regressions")),
                      recovery, f"`{last['command']}`"])
    return table


def row_line(row: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"


def row_key(line: str) -> tuple[str, str, str, str]:
    """What a table line is a figure of: the scenario (without its notes), broker, scale, rerun command."""
    cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    return cells[0].split(" (", 1)[0], cells[1], cells[2], cells[-1]


def merged_table(existing: str, entries: list[dict]) -> str:
    """The table section's new text: this run's rows over the existing ones, sorted like `rows`."""
    kept = {row_key(line): line for line in existing.splitlines()
            if line.startswith("| ") and not line.startswith("| scenario |")}
    for row in rows(entries):
        line = row_line(row)
        kept[row_key(line)] = line
    order = sorted(kept, key=lambda key: (key[0], key[3], key[1], key[2]))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + [kept[key] for key in order])


def main(argv: list[str]) -> int:
    results = Path(argv[1] if len(argv) > 1 else "faults-results.jsonl")
    target = Path(argv[2] if len(argv) > 2 else "RELIABILITY.md")
    entries = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    text = target.read_text()
    if BEGIN not in text or END not in text:
        print(f"{target} has no {BEGIN} ... {END} section", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    existing, tail = rest.split(END, 1)
    target.write_text(f"{head}{BEGIN}\n{merged_table(existing, entries)}\n{END}{tail}")
    print(f"wrote {len(rows(entries))} rows of this run to {target} (rows of scenarios it did not run kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
