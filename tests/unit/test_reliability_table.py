"""The fault table writer: a run replaces its own rows and keeps the rows of scenarios it did not run."""
import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "reliability_table", Path(__file__).parents[1] / "faults" / "reliability_table.py")
reliability_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reliability_table)


def entry(scenario: str, broker: str, scale: str, recovery: float, command: str = "make faults ARGS='-k x'") -> dict:
    return {"scenario": scenario, "command": command, "broker": broker, "scale": scale, "load": "some load",
            "sent": 10, "accepted": 10, "persisted": 10, "lost": 0, "duplicated": 0, "regressions": 0,
            "recovery_seconds": recovery}


def write(path: Path, entries: list[dict]) -> str:
    results = path / "faults-results.jsonl"
    results.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert reliability_table.main(["reliability_table.py", str(results), str(path / "RELIABILITY.md")]) == 0
    return (path / "RELIABILITY.md").read_text()


def test_a_run_replaces_its_rows_and_keeps_the_others(tmp_path):
    (tmp_path / "RELIABILITY.md").write_text(
        f"intro\n{reliability_table.BEGIN}\nold\n{reliability_table.END}\nafter\n")
    first = write(tmp_path, [entry("test_storm", "redis", "small", 5), entry("test_storm", "redis", "full", 50),
                             entry("test_kill", "rabbitmq", "full", 80)])
    assert first.startswith("intro\n") and first.endswith("after\n") and "\nold\n" not in first

    second = write(tmp_path, [entry("test_storm", "redis", "full", 42)])
    table = [line for line in second.splitlines() if line.startswith(("| storm", "| kill"))]
    assert len(table) == 3
    storm_full = [line for line in table if line.startswith("| storm | redis | full")]
    assert storm_full and "42 s (worst of 1)" in storm_full[0] and "50 s" not in second
    assert any(line.startswith("| storm | redis | small") and "5 s" in line for line in table)
    assert any(line.startswith("| kill | rabbitmq | full") and "80 s" in line for line in table)


def test_rows_differing_only_in_their_notes_are_one_row(tmp_path):
    (tmp_path / "RELIABILITY.md").write_text(f"{reliability_table.BEGIN}\n{reliability_table.END}\n")
    budgeted = dict(entry("test_quota", "redis", "full", 9), budget=240, courier_calls=120)
    write(tmp_path, [budgeted])
    text = write(tmp_path, [dict(budgeted, courier_calls=136, recovery_seconds=7)])
    rows = [line for line in text.splitlines() if line.startswith("| quota")]
    assert len(rows) == 1 and "136 courier calls" in rows[0] and "7 s" in rows[0]
