"""BENCHMARKS.md's marked sections: each benchmark rewrites its own, between its markers."""
from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADING = "# Benchmarks\n\nFigures from `bench/`, newest run of each.\n"


def write_section(name: str, section: str, path: Path = BENCHMARKS) -> None:
    """Put `section` between `<!-- NAME:begin -->` and `<!-- NAME:end -->` (replacing what was
    there, or appended with its markers); the rest of the file is kept."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADING
    block = f"{begin}\n{section}\n{end}"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
